"""Tables from run records only: mean ± SEM over seeds, in the paper's Table 1 layout.

Reads every ``metrics.json`` under ``results/runs/<exp>/``, keeps successful runs, groups them by
(dataset, model, method), requires one config hash per group, and reports for every predictive and
metric ``n``, mean and SEM = sample std (ddof=1) / sqrt(n). Accuracy and ECE are shown in %.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import pandas as pd

from bayeslora.errors import BayesLoraError

PREDICTIVE_ORDER = [
    "map",
    "mc_dropout",
    "laplace_kfac",
    "laplace_diag",
    "swa",
    "swag",
    "ivon_mean",
    "ivon",
    "ensemble",
    "blob_mean",
    "blob",
]
DATASET_ORDER = ["winogrande_s", "arc_c", "arc_e", "winogrande_m", "obqa", "boolq"]
DATASET_LABELS = {
    "winogrande_s": "WG-S",
    "arc_c": "ARC-C",
    "arc_e": "ARC-E",
    "winogrande_m": "WG-M",
    "obqa": "OBQA",
    "boolq": "BoolQ",
}
# (key, title, scale, decimals)
METRICS = [
    ("acc", "ACC ↑", 100.0, 2),
    ("ece", "ECE ×100 ↓", 100.0, 2),
    ("nll", "NLL ↓", 1.0, 3),
    ("brier", "Brier ↓", 1.0, 3),
]


class AggregationError(BayesLoraError):
    pass


def load_records(exp_dir: Path) -> list[dict]:
    exp_dir = Path(exp_dir)
    if not exp_dir.is_dir():
        raise AggregationError(f"no runs under {exp_dir}")
    records = []
    for path in sorted(exp_dir.rglob("metrics.json")):
        try:
            rec = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            raise AggregationError(f"{path}: not valid JSON ({e.msg})") from None
        rec["_path"] = str(path)
        records.append(rec)
    return records


def summarize(
    records: list[dict],
    split: str | None = None,
    expected_seeds: list[int] | None = None,
    all_rows: bool = False,
) -> pd.DataFrame:
    """Long-form summary: one row per (dataset, model, method, predictive, metric).

    Only each record's ``table_rows`` unless ``all_rows`` (which adds e.g. the IVON τ grid)."""
    ok = [r for r in records if r.get("status") == "success"]
    groups: dict[tuple, list[dict]] = {}
    for r in ok:
        groups.setdefault((r["dataset"], r["model"], r["method"]), []).append(r)
    rows = []
    for (dataset, model, method), recs in sorted(groups.items()):
        hashes = sorted({r["config_hash"] for r in recs})
        if len(hashes) > 1:
            paths = ", ".join(r["_path"] for r in recs)
            raise AggregationError(
                f"{dataset}/{model}/{method}: seeds disagree on the config hash ({', '.join(hashes)}); "
                f"refusing to average them: {paths}"
            )
        seeds = sorted(int(r["seed"]) for r in recs)
        # a post-hoc ensemble record covers the seeds of its members
        covered = {
            int(s) for r in recs for s in ((r.get("provenance") or {}).get("member_seeds") or [r["seed"]])
        }
        missing = sorted(set(expected_seeds or []) - covered)
        dirty = any((r.get("provenance") or {}).get("git_dirty") for r in recs)
        predictives = []
        for r in recs:
            for p in _metrics_of(r, split):
                if not all_rows and "table_rows" in r and p not in r["table_rows"]:
                    continue
                if p not in predictives:
                    predictives.append(p)
        for pred in predictives:
            label = next((r.get("labels", {}).get(pred) for r in recs if r.get("labels", {}).get(pred)), pred)
            for metric, *_ in METRICS:
                vals = [_metrics_of(r, split)[pred][metric] for r in recs if pred in _metrics_of(r, split)]
                n = len(vals)
                mean = sum(vals) / n
                sem = math.sqrt(sum((v - mean) ** 2 for v in vals) / (n - 1) / n) if n > 1 else float("nan")
                rows.append(
                    dict(
                        dataset=dataset,
                        model=model,
                        method=method,
                        predictive=pred,
                        label=label,
                        metric=metric,
                        n=n,
                        mean=mean,
                        sem=sem,
                        seeds=" ".join(map(str, seeds)),
                        missing_seeds=" ".join(map(str, missing)),
                        dirty=dirty,
                        config_hash=hashes[0],
                    )
                )
    return pd.DataFrame(rows)


def _metrics_of(record: dict, split: str | None) -> dict:
    if split is None:
        return record.get("metrics") or {}
    return (record.get("splits") or {}).get(split, {})


def _order(values, preferred):
    return [v for v in preferred if v in values] + sorted(v for v in values if v not in preferred)


def _cell(row, scale: float, dec: int) -> str:
    """``mean ± SEM``; ``(n=k)`` marks a group that lacks some of the expected seeds."""
    mean, sem = row["mean"] * scale, row["sem"] * scale
    s = f"{mean:.{dec}f}" if math.isnan(sem) else f"{mean:.{dec}f} ± {sem:.{dec}f}"
    if row["missing_seeds"]:
        s += f" (n={row['n']})"
    return s


def markdown_table(df: pd.DataFrame) -> str:
    """One block per metric; rows = predictives in the paper's order; columns = datasets."""
    if df.empty:
        return "(no successful runs)\n"
    datasets = _order(set(df.dataset), DATASET_ORDER)
    keys = df[["model", "method", "predictive", "label"]].drop_duplicates()
    keys = keys.assign(
        _o=keys.predictive.map(lambda p: PREDICTIVE_ORDER.index(p) if p in PREDICTIVE_ORDER else 99)
    )
    keys = keys.assign(_posthoc=keys.method.str.endswith("_posthoc_ensemble"))
    keys = keys.sort_values(["model", "_o", "_posthoc", "method", "predictive"])
    multi_model = keys.model.nunique() > 1
    out = []
    for metric, title, scale, dec in METRICS:
        header = [title, *[DATASET_LABELS.get(d, d) for d in datasets]]
        out.append("| " + " | ".join(header) + " |")
        out.append("|" + "---|" * len(header))
        for _, k in keys.iterrows():
            name = f"{k.label} [{k.model}]" if multi_model else k.label
            cells = []
            for d in datasets:
                sel = df[
                    (df.dataset == d)
                    & (df.model == k.model)
                    & (df.method == k.method)
                    & (df.predictive == k.predictive)
                    & (df.metric == metric)
                ]
                cells.append(_cell(sel.iloc[0], scale, dec) if len(sel) else "–")
            out.append("| " + " | ".join([name, *cells]) + " |")
        out.append("")
    missing = df[df.missing_seeds != ""][["dataset", "model", "method", "missing_seeds"]].drop_duplicates()
    for _, m in missing.iterrows():
        out.append(f"- missing seeds for {m.dataset}/{m.model}/{m.method}: {m.missing_seeds}")
    return "\n".join(out) + "\n"


def build_tables(
    exp: str,
    results_dir: Path,
    split: str | None = None,
    expected_seeds: list[int] | None = None,
    write: bool = True,
    all_rows: bool = False,
) -> tuple[pd.DataFrame, str]:
    records = load_records(Path(results_dir) / "runs" / exp)
    df = summarize(records, split, expected_seeds, all_rows)
    md = markdown_table(df)
    failed = [r for r in records if r.get("status") != "success"]
    if failed:
        md += "\n" + "\n".join(f"- {r.get('status')}: {r['_path']}: {r.get('error')}" for r in failed) + "\n"
    if write:
        out = Path(results_dir) / "tables"
        out.mkdir(parents=True, exist_ok=True)
        suffix = f"_{split}" if split else ""
        df.to_csv(out / f"{exp}{suffix}.csv", index=False)
        (out / f"{exp}{suffix}.md").write_text(md, encoding="utf-8")
    return df, md


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="bayeslora-table", description=__doc__.splitlines()[0])
    ap.add_argument("exp", help="experiment name (folder under <results>/runs/)")
    ap.add_argument("--results-dir", default="results")
    ap.add_argument("--split", default=None, help="evaluation split (default: each record's first)")
    ap.add_argument("--seeds", default="21,42,87", help="expected seeds, comma-separated ('' = no check)")
    ap.add_argument("--no-write", action="store_true", help="print only")
    ap.add_argument("--all-rows", action="store_true", help="also analysis rows such as the IVON τ grid")
    args = ap.parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()] or None
    try:
        _, md = build_tables(
            args.exp,
            Path(args.results_dir),
            args.split,
            seeds,
            write=not args.no_write,
            all_rows=args.all_rows,
        )
    except BayesLoraError as e:
        print(f"bayeslora-table: error: {e}", file=sys.stderr)
        return 1
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
