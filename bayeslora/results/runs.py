"""Reading finished runs back: every ``metrics.json`` of an experiment, grouped and checked.

The first step of the results flow (records -> summary -> tables/figures/report -> outputs); it
imports only the record layer, ``metrics`` (to recompute from ``preds.npz``) and ``layout``.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from bayeslora import metrics as M
from bayeslora.errors import AggregationError
from bayeslora.records import RECORD_FILE, read_record
from bayeslora.results.layout import DATASET_LABELS, legacy_rank

_REQUIRED = ("dataset", "model", "method", "seed", "config_hash")


# experiments with a make target of their own (the Makefile's demo, mini and reproduce)
MAKE_TARGETS = {"demo": "make demo", "mini": "make mini", "table1": "make reproduce"}


def how_to_make(exp: str) -> str:
    """The command that makes the runs of experiment ``exp``: its make target, else its
    ``conf/experiment/<exp>.yaml`` multirun, else a run with ``exp_name=<exp>``."""
    if exp in MAKE_TARGETS:
        return MAKE_TARGETS[exp]
    from bayeslora.config import CONF_DIR

    if (CONF_DIR / "experiment" / f"{exp}.yaml").is_file():
        return f"python -m bayeslora.train -m experiment={exp}"
    return f"python -m bayeslora.train exp_name={exp} ..."


def load_records(exp_dir: Path) -> list[dict]:
    """Every ``metrics.json`` under ``exp_dir`` (``_path`` added); a successful one must be complete.
    No folder is an error that names the command making its runs (:func:`how_to_make`)."""
    exp_dir = Path(exp_dir)
    if not exp_dir.is_dir():
        raise AggregationError(f"no runs under {exp_dir}: run `{how_to_make(exp_dir.name)}` first")
    records = []
    for path in sorted(exp_dir.rglob(RECORD_FILE)):
        try:
            rec = read_record(path.parent)
        except (OSError, UnicodeDecodeError) as e:
            raise AggregationError(f"{path}: unreadable ({e})") from None
        if rec is None:
            raise AggregationError(f"{path}: not valid JSON")
        if not isinstance(rec, dict) or "status" not in rec:
            raise AggregationError(f"{path}: not a run record (no 'status')")
        if rec["status"] == "success":
            lacking = [k for k in _REQUIRED if k not in rec]
            if lacking:
                raise AggregationError(f"{path}: successful record lacks {', '.join(lacking)}")
            if not isinstance(rec.get("metrics", {}), dict) or not isinstance(rec.get("splits", {}), dict):
                raise AggregationError(f"{path}: 'metrics' and 'splits' must be mappings")
            try:
                rec["seed"] = int(rec["seed"])
            except (TypeError, ValueError):
                raise AggregationError(f"{path}: seed {rec['seed']!r} is not an integer") from None
        rec["_path"] = str(path)
        records.append(rec)
    return records


def no_records(exp_dir: Path) -> AggregationError:
    """The error of an experiment folder without records, naming the command that makes them."""
    exp_dir = Path(exp_dir)
    return AggregationError(
        f"no run records under {exp_dir} (no metrics.json): run `{how_to_make(exp_dir.name)}` first"
    )


def run_dir_of(record: dict) -> Path:
    return Path(record["_path"]).parent


def group_records(records: list[dict]) -> dict[tuple[str, str, str], list[dict]]:
    """Successful records by (dataset, model, method), sorted; one config hash per group or an error."""
    groups: dict[tuple, list[dict]] = {}
    for r in records:
        if r.get("status") == "success":
            groups.setdefault((r["dataset"], r["model"], r["method"]), []).append(r)
    for (dataset, model, method), recs in groups.items():
        hashes = sorted({str(r["config_hash"]) for r in recs})
        if len(hashes) > 1:
            paths = ", ".join(r["_path"] for r in recs)
            raise AggregationError(
                f"{dataset}/{model}/{method}: seeds disagree on the config hash ({', '.join(hashes)}); "
                f"refusing to average them: {paths}"
            )
        recs.sort(key=lambda r: (r["seed"], r["_path"]))
    return dict(sorted(groups.items()))


def covered_seeds(record: dict) -> list[int]:
    """The seeds a record stands for: its own, or its members' for a post-hoc ensemble."""
    members = (record.get("provenance") or {}).get("member_seeds")
    return [int(s) for s in members] if members else [int(record["seed"])]


def dataset_label(record: dict) -> str:
    """The record's ``dataset_label`` (from the dataset config); older records fall back to the
    paper's labels, then to the dataset name."""
    label = record.get("dataset_label")
    return str(label) if label else DATASET_LABELS.get(record["dataset"], record["dataset"])


def run_label(records: list[dict]) -> str:
    """The name of a training run's line in the figures: the label the record gives the predictive
    its validation uses (``val_predictive``, else its first table row), else the method's name."""
    r = records[0]
    pred = r.get("val_predictive") or next(iter(r.get("table_rows") or []), None)
    return str((r.get("labels") or {}).get(pred) or r["method"])


def row_rank(record: dict, pred: str) -> int:
    """The row order of a predictive: the record's ``ranks`` (from its predictive config's
    ``table_rank``), else :func:`bayeslora.results.layout.legacy_rank`."""
    rank = (record.get("ranks") or {}).get(pred)
    return int(rank) if rank is not None else legacy_rank(pred)


def metrics_of(record: dict, split: str | None) -> dict:
    """predictive -> metric -> value of one split (``None``: the record's evaluation split)."""
    if split is None:
        return record.get("metrics") or {}
    return (record.get("splits") or {}).get(split, {})


def recompute_metrics(records: list[dict], n_bins: int) -> list[dict]:
    """Copies of the records whose metrics are recomputed from their ``preds.npz`` with
    :func:`bayeslora.metrics.classification_metrics` (ECE with ``n_bins`` bins), every split."""
    if int(n_bins) < 1:
        raise AggregationError(f"--ece-bins must be >= 1, got {n_bins}")
    out = []
    for r in records:
        if r.get("status") != "success":
            out.append(r)
            continue
        path = run_dir_of(r) / "preds.npz"
        if not path.is_file():
            raise AggregationError(
                f"{path.parent}: no preds.npz to recompute the metrics from "
                f"(run with eval.save_predictions=true, or copy its predictions here)"
            )
        try:
            with np.load(path) as z:
                arrays = {k: z[k] for k in z.files}
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
            raise AggregationError(f"{path}: unreadable ({e})") from None
        splits: dict[str, dict] = {}
        for split, preds in (r.get("splits") or {}).items():
            labels = arrays.get(f"{split}/labels")
            if labels is None:
                raise AggregationError(f"{path}: no labels for split {split!r}")
            splits[split] = {}
            for pred in preds:
                key = f"{split}/{pred}"
                if key not in arrays:
                    raise AggregationError(f"{path}: no probabilities {key!r}")
                try:
                    splits[split][pred] = M.classification_metrics(arrays[key], labels, int(n_bins))
                except ValueError as e:
                    raise AggregationError(f"{path}: {key}: {e}") from None
        new = dict(r, splits=splits, ece_bins=int(n_bins))  # the claims recompute with the same bins
        new["metrics"] = splits.get(r.get("eval_split"), {}) if r.get("eval_split") else {}
        out.append(new)
    return out
