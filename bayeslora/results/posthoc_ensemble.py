"""Post-hoc ensembles of finished runs, from their saved probabilities: no training, no model.

    bayeslora-ensemble results/runs/<exp>/<dataset>/<model>/adamw --seeds 21,42,87

averages ``preds.npz`` of the listed seeds (predictive ``map`` by default) on every evaluation split
and writes a record (method ``<method>_posthoc_ensemble``, predictive ``ensemble``) beside them, so
the aggregator shows it as a table row. ``bayeslora-table --posthoc-ensemble`` builds one for every
dataset/model's AdamW seeds (:func:`posthoc_ensembles`).

(Not to be confused with ``bayeslora.methods.ensemble``, the trained-ensemble method, or
``bayeslora.predictives.ensemble``, its predictive.)
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from pathlib import Path

import numpy as np

from bayeslora import metrics as M
from bayeslora.errors import BayesLoraError, EnsembleError
from bayeslora.records import RunRecord, read_record, write_record
from bayeslora.results.layout import BASELINE, DEFAULT_ECE_BINS, POSTHOC_SUFFIX
from bayeslora.results.outputs import StagedOutputs
from bayeslora.results.runs import AggregationError, group_records, run_dir_of


def posthoc_ensemble(
    run_dirs: list[Path],
    out_dir: Path,
    predictive: str = "map",
    n_bins: int = 10,
    final_dir: Path | None = None,
) -> dict:
    """Average the members' ``predictive`` probabilities and write the record and ``preds.npz`` to
    ``out_dir``; ``final_dir`` is where they will live (``out_dir`` unless they are staged)."""
    if len(run_dirs) < 2:
        raise EnsembleError("an ensemble needs at least 2 runs")
    records = []
    for d in run_dirs:
        rec = read_record(d)
        if rec is None or rec.get("status") != "success":
            raise EnsembleError(f"{d}: no successful run record")
        if not (Path(d) / "preds.npz").is_file():
            raise EnsembleError(f"{d}: no preds.npz (was eval.save_predictions false?)")
        records.append(rec)
    keys = {(r["dataset"], r["model"], r["method"], r["config_hash"]) for r in records}
    if len(keys) > 1:
        raise EnsembleError(f"runs differ in dataset/model/method/config hash: {sorted(keys)}")
    first = records[0]
    preds = [np.load(Path(d) / "preds.npz") for d in run_dirs]
    saved, splits = {}, {}
    for split in first["splits"]:
        labels = preds[0][f"{split}/labels"]
        key = f"{split}/{predictive}"
        for d, p in zip(run_dirs, preds):
            if key not in p:
                raise EnsembleError(f"{d}: no probabilities for predictive {predictive!r} on split {split!r}")
            if not np.array_equal(p[f"{split}/labels"], labels):
                raise EnsembleError(f"{d}: labels of split {split!r} differ from the first run's")
        probs = np.stack([p[key].astype(np.float64) for p in preds])  # [members, N, C]
        splits[split] = {"ensemble": M.classification_metrics(probs, labels, n_bins)}
        saved[f"{split}/labels"] = labels
        saved[f"{split}/ensemble"] = probs.mean(0).astype(np.float32)
    seeds = sorted(int(r["seed"]) for r in records)
    chash = hashlib.sha256(json.dumps([first["config_hash"], predictive, seeds]).encode()).hexdigest()[:16]
    record = RunRecord(
        status="success",
        exp_name=first["exp_name"],
        dataset=first["dataset"],
        dataset_label=first.get("dataset_label"),
        model=first["model"],
        method=f"{first['method']}{POSTHOC_SUFFIX}",
        seed=seeds[0],
        config_hash=chash,
        metrics=splits[first["eval_split"]],
        splits=splits,
        eval_split=first["eval_split"],
        labels={"ensemble": f"Ensemble ({len(seeds)}× {first['method']}, post hoc)"},
        table_rows=["ensemble"],
        n_train=first.get("n_train"),
        n_eval=first.get("n_eval", {}),
        steps=first.get("steps", 0),
        provenance={
            # relative to this record's folder, so the record does not depend on where results/ is
            "members": [os.path.relpath(d, final_dir or out_dir) for d in run_dirs],
            "member_seeds": seeds,
            "predictive": predictive,
            "member_config_hash": first["config_hash"],
        },
    )
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out_dir / "preds.npz", **saved)
    write_record(out_dir, record)
    return record.to_dict()


def posthoc_ensembles(
    records: list[dict], out: StagedOutputs, results_dir: Path, n_bins: int = DEFAULT_ECE_BINS
) -> list[dict]:
    """For every (dataset, model) with >= 2 successful ``adamw`` seeds: a post-hoc ensemble of their
    ``map`` probabilities (:func:`posthoc_ensemble`), staged at
    ``<method dir>/adamw_posthoc_ensemble/seed=<a+b+c>/``. Returns the records, old ones at the same
    place replaced by the new ones. An ensemble of other seeds beside it (``seed=21+42`` when seed 87
    has landed) is superseded: dropped from the records, and its folder removed on commit."""
    results_dir = Path(results_dir).resolve()
    replaced, new = set(), []
    for (_, _, method), recs in group_records(records).items():
        if method != BASELINE[0] or len(recs) < 2:
            continue
        run_dirs = [run_dir_of(r) for r in recs]
        seeds = "+".join(str(r["seed"]) for r in recs)
        final = run_dirs[0].parent.parent / f"{method}{POSTHOC_SUFFIX}" / f"seed={seeds}"
        try:
            rel = final.resolve().relative_to(results_dir)
        except ValueError:
            raise AggregationError(f"{final} is not under {results_dir}") from None
        staged = out.add_dir(rel)
        rec = posthoc_ensemble(run_dirs, staged, BASELINE[1], n_bins, final_dir=final)
        rec["_path"] = str(staged / "metrics.json")
        here = final.resolve()
        for r in records:  # every ensemble already in that folder: this one's old copy, or others' seeds
            d = run_dir_of(r).resolve()
            if d.parent == here.parent:
                replaced.add(str(d / "metrics.json"))
                if d != here:
                    out.remove_dir(d.relative_to(results_dir))
        new.append(rec)
    kept = [r for r in records if str(Path(r["_path"]).resolve()) not in replaced]
    return kept + new


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="bayeslora-ensemble", description=__doc__.splitlines()[0])
    ap.add_argument(
        "method_dir", help="folder holding seed=<k>/ run folders, e.g. results/runs/demo/synthetic/tiny/adamw"
    )
    ap.add_argument("--seeds", default="21,42,87", help="comma-separated member seeds")
    ap.add_argument("--predictive", default="map", help="which predictive's probabilities to average")
    ap.add_argument(
        "--out", default=None, help="output folder (default: <method>_posthoc_ensemble/seed=<a+b+c>)"
    )
    ap.add_argument("--ece-bins", type=int, default=10)
    args = ap.parse_args(argv)
    method_dir = Path(args.method_dir)
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    out = (
        Path(args.out)
        if args.out
        else (method_dir.parent / f"{method_dir.name}_posthoc_ensemble" / f"seed={'+'.join(map(str, seeds))}")
    )
    try:
        rec = posthoc_ensemble([method_dir / f"seed={s}" for s in seeds], out, args.predictive, args.ece_bins)
    except BayesLoraError as e:
        print(f"bayeslora-ensemble: error: {e}", file=sys.stderr)
        return 1
    m = rec["metrics"]["ensemble"]
    print(f"{out}: " + "  ".join(f"{k}={v:.4f}" for k, v in m.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
