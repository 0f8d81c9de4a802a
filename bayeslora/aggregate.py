"""Tables from run records only: mean ± SEM over seeds, in the paper's Table 1 layout.

    bayeslora-table <exp> [--split S] [--seeds 21,42,87] [--recompute --ece-bins 15]
                          [--posthoc-ensemble] [--figures] [--wandb --wandb-project P] [--no-write]

Reads every ``metrics.json`` under ``<results>/runs/<exp>/``, keeps successful runs, groups them by
(dataset, model, method), requires one config hash per group (seeds that disagree are an error,
never averaged), and writes ``<results>/tables/<exp>.{csv,md,tex}``:

* one block per metric (ACC ↑, ECE ×100 ↓, NLL ↓, Brier ↓); rows are predictives in the paper's
  order (each record's ``labels`` names them, its ``table_rows`` says which are table rows);
  columns are the datasets in the paper's order, then **Average** (when there are at least two);
* a cell is the mean ± SEM over seeds, SEM = sample std (ddof=1) / sqrt(n) (no SEM for n = 1);
  accuracy and ECE are in %. ``(n=k)`` marks a cell whose seeds differ from the expected ones
  (``--seeds``); the missing seeds are listed under the table. A post-hoc ensemble record
  (``provenance.member_seeds``) covers the seeds of its members;
* **Average** is the mean of a row's per-dataset means over *all* dataset columns of the table, with
  SEM = sqrt(sum of the squared per-dataset SEMs) / D (datasets are independent experiments). A row
  that lacks any dataset column has no Average (shown as "–", and a note names what it lacks): an
  average over a different set of datasets would not be comparable with the other rows;
* "Δ vs AdamW": each IVON row (``ivon_mean``, ``ivon``) minus the AdamW row (predictive ``map`` of
  method ``adamw``, same dataset and model), as the paper prints it: the difference of the displayed
  quantities (accuracy points, ECE ×100, NLL, Brier), per dataset and for the Average (only where
  both rows have one).

The CSV is long form, one row per (experiment, split, dataset, model, method, predictive, metric)
with ``n``, ``mean`` and ``sem`` in raw units (fractions, not %). ``dataset == "average"`` rows hold
the Average column and ``metric == "delta_vs_adamw/<metric>"`` rows the changes vs AdamW (``sem``
empty). Everything is computed before anything is written; the files are first written to a staging
folder and then renamed into place, so bad input never leaves partial outputs.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import sys
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from bayeslora import metrics as M
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
METRIC_KEYS = [m for m, *_ in METRICS]
AVERAGE = "average"
AVERAGE_LABEL = "Average"
DELTA = "delta_vs_adamw"
# the row the IVON rows are compared with: (method, predictive)
BASELINE = ("adamw", "map")
DELTA_PREDICTIVES = ("ivon_mean", "ivon")
DEFAULT_ECE_BINS = 10
POSTHOC_SUFFIX = "_posthoc_ensemble"
CSV_COLUMNS = [
    "experiment",
    "split",
    "dataset",
    "model",
    "method",
    "predictive",
    "label",
    "metric",
    "n",
    "mean",
    "sem",
    "seeds",
    "missing_seeds",
    "extra_seeds",
    "dirty",
    "config_hash",
]
_REQUIRED = ("dataset", "model", "method", "seed", "config_hash")


class AggregationError(BayesLoraError):
    pass


# --------------------------------------------------------------------------------------- records


def load_records(exp_dir: Path) -> list[dict]:
    """Every ``metrics.json`` under ``exp_dir`` (``_path`` added); a successful one must be complete."""
    exp_dir = Path(exp_dir)
    if not exp_dir.is_dir():
        raise AggregationError(f"no runs under {exp_dir}")
    records = []
    for path in sorted(exp_dir.rglob("metrics.json")):
        try:
            rec = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            raise AggregationError(f"{path}: not valid JSON ({e.msg})") from None
        except (OSError, UnicodeDecodeError) as e:
            raise AggregationError(f"{path}: unreadable ({e})") from None
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


def _metrics_of(record: dict, split: str | None) -> dict:
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
        new = dict(r, splits=splits)
        new["metrics"] = splits.get(r.get("eval_split"), {}) if r.get("eval_split") else {}
        out.append(new)
    return out


# --------------------------------------------------------------------------------------- summary


def _sem(vals: list[float]) -> float:
    n = len(vals)
    if n < 2:
        return float("nan")
    mean = sum(vals) / n
    return math.sqrt(sum((v - mean) ** 2 for v in vals) / (n - 1) / n)


def _seeds_str(seeds) -> str:
    return " ".join(map(str, sorted(seeds)))


def summarize(
    records: list[dict],
    split: str | None = None,
    expected_seeds: list[int] | None = None,
    all_rows: bool = False,
) -> pd.DataFrame:
    """Long-form summary: one row per (dataset, model, method, predictive, metric), raw units.

    Only each record's ``table_rows`` unless ``all_rows`` (which adds e.g. the IVON τ grid).
    ``missing_seeds``/``extra_seeds`` compare the seeds behind each predictive with ``expected_seeds``."""
    expected = set(expected_seeds or [])
    rows = []
    for (dataset, model, method), recs in group_records(records).items():
        dirty = bool(any((r.get("provenance") or {}).get("git_dirty") for r in recs))
        predictives: list[str] = []
        for r in recs:
            m = _metrics_of(r, split)
            if not isinstance(m, dict):
                raise AggregationError(f"{r['_path']}: metrics of split {split!r} must be a mapping")
            for p in m:
                if not all_rows and "table_rows" in r and p not in r["table_rows"]:
                    continue
                if p not in predictives:
                    predictives.append(p)
        for pred in predictives:
            has = [r for r in recs if pred in _metrics_of(r, split)]
            label = next((r.get("labels", {}).get(pred) for r in has if r.get("labels", {}).get(pred)), pred)
            seeds = sorted(r["seed"] for r in has)
            covered = {s for r in has for s in covered_seeds(r)}
            missing = sorted(expected - covered) if expected else []
            extra = sorted(covered - expected) if expected else []
            for metric in METRIC_KEYS:
                vals = []
                for r in has:
                    v = _metrics_of(r, split)[pred]
                    if not isinstance(v, dict) or metric not in v:
                        raise AggregationError(f"{r['_path']}: predictive {pred!r} has no {metric!r}")
                    try:
                        vals.append(float(v[metric]))
                    except (TypeError, ValueError):
                        raise AggregationError(
                            f"{r['_path']}: {pred}/{metric} = {v[metric]!r} is not a number"
                        ) from None
                rows.append(
                    dict(
                        experiment=str(has[0].get("exp_name", "")),
                        split=split or has[0].get("eval_split") or "",
                        dataset=dataset,
                        model=model,
                        method=method,
                        predictive=pred,
                        label=label,
                        metric=metric,
                        n=len(vals),
                        mean=sum(vals) / len(vals),
                        sem=_sem(vals),
                        seeds=_seeds_str(seeds),
                        missing_seeds=_seeds_str(missing),
                        extra_seeds=_seeds_str(extra),
                        dirty=dirty,
                        config_hash=str(has[0]["config_hash"]),
                    )
                )
    df = pd.DataFrame(rows, columns=CSV_COLUMNS)
    df["n"] = df["n"].astype("Int64")
    return df


def _base(df: pd.DataFrame) -> pd.DataFrame:
    """The per-dataset value rows of a summary or long table (no Average, no Δ rows)."""
    if df.empty:
        return df
    out = df[(df.dataset != AVERAGE) & df.metric.isin(METRIC_KEYS)].copy()
    for col in ("missing_seeds", "extra_seeds", "seeds", "experiment", "split"):
        if col not in out:
            out[col] = ""
        out[col] = out[col].fillna("").astype(str)
    return out


def _order(values, preferred):
    return [v for v in preferred if v in values] + sorted(v for v in values if v not in preferred)


def _datasets(base: pd.DataFrame) -> list[str]:
    return _order(set(base.dataset), DATASET_ORDER)


def _column_label(d: str) -> str:
    return AVERAGE_LABEL if d == AVERAGE else DATASET_LABELS.get(d, d)


def _columns(datasets: list[str]) -> list[str]:
    """The table's columns: the datasets, then the Average when there are at least two."""
    return [*datasets, AVERAGE] if len(datasets) > 1 else list(datasets)


def _row_keys(base: pd.DataFrame) -> list[tuple[tuple[str, str, str], str]]:
    """Table rows in the paper's order: ((model, method, predictive), displayed name)."""
    keys = base[["model", "method", "predictive", "label"]].drop_duplicates(["model", "method", "predictive"])

    def sort_key(k):
        model, method, pred, _ = k
        o = PREDICTIVE_ORDER.index(pred) if pred in PREDICTIVE_ORDER else len(PREDICTIVE_ORDER)
        return (model, o, method.endswith(POSTHOC_SUFFIX), method, pred)

    ks = sorted(keys.itertuples(index=False, name=None), key=sort_key)
    multi_model = len({k[0] for k in ks}) > 1
    names = [f"{label} [{model}]" if multi_model else str(label) for model, _, _, label in ks]
    dup = {n for n in names if names.count(n) > 1}
    names = [f"{n} ({k[1]}/{k[2]})" if n in dup else n for n, k in zip(names, ks)]
    return [((m, me, p), n) for (m, me, p, _), n in zip(ks, names)]


def averages(base: pd.DataFrame) -> pd.DataFrame:
    """Average-column rows (``dataset == "average"``) for rows that cover every dataset column."""
    base = _base(base)
    if base.empty:
        return pd.DataFrame(columns=CSV_COLUMNS)
    datasets = _datasets(base)
    rows = []
    if len(datasets) < 2:  # the Average of one dataset would repeat its column
        return pd.DataFrame(rows, columns=CSV_COLUMNS).astype({"n": "Int64"})
    for (model, method, pred, metric), g in base.groupby(["model", "method", "predictive", "metric"]):
        if set(g.dataset) != set(datasets):
            continue
        sems = g["sem"].astype(float)
        rows.append(
            dict(
                experiment=g.experiment.iloc[0],
                split=g.split.iloc[0],
                dataset=AVERAGE,
                model=model,
                method=method,
                predictive=pred,
                label=g.label.iloc[0],
                metric=metric,
                n=pd.NA,
                mean=float(g["mean"].astype(float).mean()),
                sem=float(math.sqrt((sems**2).sum()) / len(g)) if sems.notna().all() else float("nan"),
                seeds="",
                missing_seeds=" ".join(sorted({s for v in g.missing_seeds for s in v.split()}, key=int)),
                extra_seeds=" ".join(sorted({s for v in g.extra_seeds for s in v.split()}, key=int)),
                dirty=bool(g.dirty.astype(bool).any()),
                config_hash="",
            )
        )
    out = pd.DataFrame(rows, columns=CSV_COLUMNS)
    out["n"] = out["n"].astype("Int64")
    return out


def deltas_vs_adamw(base: pd.DataFrame, avg: pd.DataFrame | None = None) -> pd.DataFrame:
    """``metric == "delta_vs_adamw/<m>"`` rows: IVON row minus AdamW's ``map`` (raw units), per dataset
    and for the Average column (where both rows have one)."""
    base = _base(base)
    if base.empty:
        return pd.DataFrame(columns=CSV_COLUMNS)
    avg = averages(base) if avg is None else avg
    both = pd.concat([base, avg], ignore_index=True) if len(avg) else base
    idx = {(r.dataset, r.model, r.method, r.predictive, r.metric): r for r in both.itertuples(index=False)}
    rows = []
    for r in both.itertuples(index=False):
        if r.predictive not in DELTA_PREDICTIVES:
            continue
        ref = idx.get((r.dataset, r.model, *BASELINE, r.metric))
        if ref is None:
            continue
        rows.append(
            dict(
                experiment=r.experiment,
                split=r.split,
                dataset=r.dataset,
                model=r.model,
                method=r.method,
                predictive=r.predictive,
                label=r.label,
                metric=f"{DELTA}/{r.metric}",
                n=r.n,
                mean=float(r.mean) - float(ref.mean),
                sem=float("nan"),
                seeds=r.seeds,
                missing_seeds=r.missing_seeds,
                extra_seeds=r.extra_seeds,
                dirty=bool(r.dirty or ref.dirty),
                config_hash=r.config_hash,
            )
        )
    out = pd.DataFrame(rows, columns=CSV_COLUMNS)
    out["n"] = out["n"].astype("Int64")
    return out


def long_table(summary: pd.DataFrame) -> pd.DataFrame:
    """The CSV: per-dataset rows, then the Average rows, then the Δ-vs-AdamW rows."""
    base = _base(summary)
    avg = averages(base)
    parts = [p for p in (base, avg, deltas_vs_adamw(base, avg)) if len(p)]
    if not parts:
        return pd.DataFrame(columns=CSV_COLUMNS)
    out = pd.concat(parts, ignore_index=True)[CSV_COLUMNS]
    out["n"] = out["n"].astype("Int64")
    # value rows, then Average rows, then Δ rows; each in the paper's dataset/row/metric order
    rank = {
        "_kind": out.metric.str.startswith(DELTA).astype(int) * 2 + (out.dataset == AVERAGE).astype(int),
        "_d": out.dataset.map(lambda d: DATASET_ORDER.index(d) if d in DATASET_ORDER else len(DATASET_ORDER)),
        "_p": out.predictive.map(lambda p: PREDICTIVE_ORDER.index(p) if p in PREDICTIVE_ORDER else 99),
        "_m": out.metric.map(lambda m: METRIC_KEYS.index(m.split("/")[-1])),
    }
    out = out.assign(**rank).sort_values(
        ["_kind", "_d", "dataset", "model", "_p", "method", "predictive", "_m"], kind="stable"
    )
    return out.drop(columns=list(rank)).reset_index(drop=True)


# ------------------------------------------------------------------------------------ rendering


@dataclass
class _Cell:
    mean: float
    sem: float
    n: int | None
    flag: bool  # seeds differ from the expected ones


@dataclass
class _Layout:
    datasets: list[str]
    rows: list[tuple[tuple[str, str, str], str]]
    cells: dict[tuple, _Cell]  # (metric, row key, dataset | AVERAGE) -> cell
    delta_rows: list[tuple[str, tuple[str, str, str], str]]  # (metric, row key, name)
    deltas: dict[tuple, float]  # (metric, row key, dataset | AVERAGE) -> difference (raw)
    notes: list[str] = field(default_factory=list)


def _layout(df: pd.DataFrame) -> _Layout:
    base = _base(df)
    datasets = _datasets(base)
    rows = _row_keys(base)
    avg = averages(base)
    cells = {}
    for r in pd.concat([base, avg], ignore_index=True).itertuples(index=False):
        n = None if pd.isna(r.n) else int(r.n)
        flag = bool(r.missing_seeds or r.extra_seeds) and r.dataset != AVERAGE
        cells[(r.metric, (r.model, r.method, r.predictive), r.dataset)] = _Cell(
            float(r.mean), float(r.sem), n, flag
        )
    deltas = {}
    for r in deltas_vs_adamw(base, avg).itertuples(index=False):
        deltas[(r.metric.split("/", 1)[1], (r.model, r.method, r.predictive), r.dataset)] = float(r.mean)
    names = dict(rows)
    delta_rows = [
        (metric, key, names[key])
        for metric in METRIC_KEYS
        for key, _ in rows
        if any(k[0] == metric and k[1] == key for k in deltas)
    ]
    notes = []
    for key, name in rows:
        lacking = [d for d in datasets if not any((m, key, d) in cells for m in METRIC_KEYS)]
        if lacking and len(datasets) > 1:
            notes.append(
                f"no Average for {name}: it lacks {', '.join(DATASET_LABELS.get(d, d) for d in lacking)}"
            )
    miss = (
        base[base.missing_seeds != ""]
        .groupby(["dataset", "model", "method", "missing_seeds"], sort=True)
        .predictive.unique()
    )
    for (dataset, model, method, missing), preds in miss.items():
        all_preds = set(
            base[(base.dataset == dataset) & (base.model == model) & (base.method == method)].predictive
        )
        which = "" if set(preds) == all_preds else f" ({', '.join(preds)})"
        notes.append(f"missing seeds for {dataset}/{model}/{method}{which}: {missing}")
    extra = base[base.extra_seeds != ""][["dataset", "model", "method", "extra_seeds"]].drop_duplicates()
    for r in extra.itertuples(index=False):
        notes.append(f"unexpected seeds for {r.dataset}/{r.model}/{r.method}: {r.extra_seeds}")
    return _Layout(datasets, rows, cells, delta_rows, deltas, notes)


def _fmt(cell: _Cell, scale: float, dec: int) -> tuple[str, str | None]:
    mean, sem = cell.mean * scale, cell.sem * scale
    return f"{mean:.{dec}f}", None if math.isnan(sem) else f"{sem:.{dec}f}"


def _md_cell(cell: _Cell | None, scale: float, dec: int) -> str:
    """``mean ± SEM``; ``(n=k)`` marks a cell whose seeds differ from the expected ones."""
    if cell is None:
        return "–"
    mean, sem = _fmt(cell, scale, dec)
    s = mean if sem is None else f"{mean} ± {sem}"
    if cell.flag:
        s += f" (n={cell.n})"
    return s


def _metric_info(metric: str) -> tuple[str, float, int]:
    _, title, scale, dec = next(m for m in METRICS if m[0] == metric)
    return title, scale, dec


def markdown_table(df: pd.DataFrame, notes: list[str] | None = None) -> str:
    """One block per metric (rows = predictives, columns = datasets + Average), then Δ vs AdamW."""
    base = _base(df)
    if base.empty:
        return "(no successful runs)\n"
    lay = _layout(base)
    cols = _columns(lay.datasets)
    head_cols = [_column_label(d) for d in cols]
    out = []
    for metric, title, scale, dec in METRICS:
        header = [title, *head_cols]
        out.append("| " + " | ".join(header) + " |")
        out.append("|" + "---|" * len(header))
        for key, name in lay.rows:
            cells = [_md_cell(lay.cells.get((metric, key, d)), scale, dec) for d in cols]
            out.append("| " + " | ".join([name, *cells]) + " |")
        out.append("")
    if lay.delta_rows:
        header = ["Δ vs AdamW", *head_cols]
        out.append("| " + " | ".join(header) + " |")
        out.append("|" + "---|" * len(header))
        for metric, key, name in lay.delta_rows:
            title, scale, dec = _metric_info(metric)
            vals = [lay.deltas.get((metric, key, d)) for d in cols]
            cells = ["–" if v is None else f"{v * scale:+.{dec}f}" for v in vals]
            out.append("| " + " | ".join([f"{title}: {name}", *cells]) + " |")
        out.append("")
    for note in [*lay.notes, *(notes or [])]:
        out.append(f"- {note}")
    return "\n".join(out).rstrip("\n") + "\n"


_TEX_MAP = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "↑": r"$\uparrow$",
    "↓": r"$\downarrow$",
    "×": r"$\times$",
    "τ": r"$\tau$",
    "±": r"$\pm$",
    "Δ": r"$\Delta$",
    "−": "-",
    "–": "--",
}


def tex_escape(text: str) -> str:
    return "".join(_TEX_MAP.get(c, c) for c in str(text))


def _tex_cell(cell: _Cell | None, scale: float, dec: int) -> str:
    if cell is None:
        return "--"
    mean, sem = _fmt(cell, scale, dec)
    s = f"${mean}$" if sem is None else f"${mean}_{{\\pm {sem}}}$"
    if cell.flag:
        s += f"\\textsuperscript{{n={cell.n}}}"
    return s


def latex_table(df: pd.DataFrame, notes: list[str] | None = None) -> str:
    """booktabs tabular(s): the main table (mean with the SEM as subscript), then Δ vs AdamW."""
    base = _base(df)
    if base.empty:
        return "% (no successful runs)\n"
    lay = _layout(base)
    cols = _columns(lay.datasets)
    head = " & ".join(["Method", *[tex_escape(_column_label(d)) for d in cols]])
    spec = "l" + "c" * len(cols)
    out = [
        "% generated by bayeslora-table from run records: mean over seeds with the SEM as subscript;",
        "% ACC and ECE in %; \\textsuperscript{n=k} marks cells whose seeds differ from the expected ones.",
        "% needs \\usepackage{booktabs}",
        f"\\begin{{tabular}}{{{spec}}}",
        "\\toprule",
        head + " \\\\",
    ]
    for metric, title, scale, dec in METRICS:
        out.append("\\midrule")
        out.append(f"\\multicolumn{{{len(cols) + 1}}}{{l}}{{\\textit{{{tex_escape(title)}}}}} \\\\")
        for key, name in lay.rows:
            cells = [_tex_cell(lay.cells.get((metric, key, d)), scale, dec) for d in cols]
            out.append(" & ".join([tex_escape(name), *cells]) + " \\\\")
    out += ["\\bottomrule", "\\end{tabular}"]
    if lay.delta_rows:
        out += [
            "",
            "% change of each IVON row vs AdamW (difference of the displayed quantities)",
            f"\\begin{{tabular}}{{{spec}}}",
            "\\toprule",
            head.replace("Method", "$\\Delta$ vs AdamW", 1) + " \\\\",
            "\\midrule",
        ]
        for metric, key, name in lay.delta_rows:
            title, scale, dec = _metric_info(metric)
            vals = [lay.deltas.get((metric, key, d)) for d in cols]
            cells = ["--" if v is None else f"${v * scale:+.{dec}f}$" for v in vals]
            out.append(" & ".join([f"{tex_escape(title)}: {tex_escape(name)}", *cells]) + " \\\\")
        out += ["\\bottomrule", "\\end{tabular}"]
    for note in [*lay.notes, *(notes or [])]:
        out.append(f"% {note}")
    return "\n".join(out) + "\n"


# ------------------------------------------------------------------------------------- outputs


class StagedOutputs:
    """Files are written under a staging folder and renamed into ``root`` only by :meth:`commit`.

    With ``root=None`` (``--no-write``) the staging folder is a temporary one that is discarded."""

    def __init__(self, root: Path | None):
        self.root = None if root is None else Path(root)
        base = self.root if self.root is not None and self.root.is_dir() else None
        self.dir = Path(tempfile.mkdtemp(prefix=".bayeslora-staging-", dir=base))
        self.files: list[str] = []

    def path(self, rel: str | Path) -> Path:
        p = self.dir / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        if str(rel) not in self.files:
            self.files.append(str(rel))
        return p

    def write_text(self, rel: str | Path, text: str) -> Path:
        p = self.path(rel)
        p.write_text(text, encoding="utf-8")
        return p

    def add_dir(self, rel: str | Path) -> Path:
        """A staged folder whose files (written later by someone else) are committed too."""
        p = self.dir / rel
        p.mkdir(parents=True, exist_ok=True)
        return p

    def all_files(self) -> list[str]:
        found = [str(p.relative_to(self.dir)) for p in sorted(self.dir.rglob("*")) if p.is_file()]
        return self.files + [f for f in found if f not in self.files]

    def commit(self) -> list[Path]:
        if self.root is None:
            return []
        done = []
        for rel in self.all_files():
            dst = self.root / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            os.replace(self.dir / rel, dst)
            done.append(dst)
        return done

    def cleanup(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


def safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._+=-]", "-", name)


def posthoc_ensembles(
    records: list[dict], out: StagedOutputs, results_dir: Path, n_bins: int = DEFAULT_ECE_BINS
) -> list[dict]:
    """For every (dataset, model) with >= 2 successful ``adamw`` seeds: a post-hoc ensemble of their
    ``map`` probabilities (:func:`bayeslora.ensemble.posthoc_ensemble`), staged at
    ``<method dir>/adamw_posthoc_ensemble/seed=<a+b+c>/``. Returns the records, old ones at the same
    place replaced by the new ones."""
    from bayeslora.ensemble import posthoc_ensemble

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
        rec = posthoc_ensemble(run_dirs, staged, BASELINE[1], n_bins)
        rec["_path"] = str(staged / "metrics.json")
        replaced.add(str((final / "metrics.json").resolve()))
        new.append(rec)
    kept = [r for r in records if str(Path(r["_path"]).resolve()) not in replaced]
    return kept + new


def upload_to_wandb(
    files: dict[str, Path],
    figures: dict[str, Path],
    exp: str,
    project: str,
    entity: str | None = None,
    config: dict | None = None,
) -> None:
    """Tables (and figures) as W&B artifacts; the mode comes from ``WANDB_MODE`` (online, offline,
    disabled). The run is always finished."""
    try:
        import wandb
    except ImportError:
        raise AggregationError("--wandb needs the wandb package (pip install wandb)") from None
    mode = os.environ.get("WANDB_MODE") or None
    if mode == "dryrun":
        mode = "offline"
    if mode not in (None, "online", "offline", "disabled"):
        raise AggregationError(f"WANDB_MODE must be online, offline or disabled, not {mode!r}")
    run, ok = None, False
    try:
        # mode and folder are read from the environment now: wandb ignores later changes to it
        # once a session has started in this process
        run = wandb.init(
            mode=mode,
            dir=os.environ.get("WANDB_DIR") or None,
            project=project,
            entity=entity,
            job_type="aggregate",
            name=f"tables/{exp}",
            config=config or {},
            reinit="finish_previous",
        )
        for kind, group in (("tables", files), ("figures", figures)):
            if not group:
                continue
            art = wandb.Artifact(safe_name(f"{exp}-{kind}").replace("+", "-").replace("=", "-"), type=kind)
            for name, path in group.items():
                art.add_file(str(path), name=name)
            run.log_artifact(art)
        ok = True
    except AggregationError:
        raise
    except Exception as e:
        raise AggregationError(f"uploading to W&B failed: {type(e).__name__}: {e}") from e
    finally:
        if run is not None:
            run.finish(exit_code=0 if ok else 1)


@dataclass
class Tables:
    long: pd.DataFrame
    md: str
    tex: str
    figures: dict[str, pd.DataFrame] = field(default_factory=dict)
    written: list[Path] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def make_tables(
    records: list[dict],
    split: str | None = None,
    expected_seeds: list[int] | None = None,
    all_rows: bool = False,
    recomputed_bins: int | None = None,
) -> Tables:
    """Pure: records -> long CSV frame, Markdown and LaTeX (nothing is read or written)."""
    ok = [r for r in records if r.get("status") == "success"]
    if split is not None and ok and not any(split in (r.get("splits") or {}) for r in ok):
        present = sorted({s for r in ok for s in (r.get("splits") or {})})
        raise AggregationError(
            f"no record has split {split!r}; splits present: {', '.join(present) or 'none'}"
        )
    summary = summarize(records, split, expected_seeds, all_rows)
    long = long_table(summary)
    notes = []
    if recomputed_bins is not None:
        notes.append(f"metrics recomputed from preds.npz, ECE with {recomputed_bins} bins")
    failed = [r for r in records if r.get("status") != "success"]
    notes += [f"{r.get('status')}: {r['_path']}: {r.get('error')}" for r in failed]
    return Tables(long, markdown_table(summary, notes), latex_table(summary, notes))


def _suffix(split: str | None, recompute_bins: int | None) -> str:
    s = f"_{safe_name(split)}" if split else ""
    return s + (f"_ece{recompute_bins}" if recompute_bins is not None else "")


def aggregate(
    exp: str,
    results_dir: Path,
    split: str | None = None,
    expected_seeds: list[int] | None = None,
    write: bool = True,
    all_rows: bool = False,
    *,
    recompute: bool = False,
    ece_bins: int | None = None,
    posthoc_ensemble: bool = False,
    figures: bool = False,
    wandb_project: str | None = None,
    wandb_entity: str | None = None,
) -> Tables:
    """Everything the CLI does; outputs are written only after all of it has been computed."""
    results_dir = Path(results_dir)
    exp_dir = results_dir / "runs" / exp
    bins = None
    if recompute or ece_bins is not None:
        bins = DEFAULT_ECE_BINS if ece_bins is None else int(ece_bins)
        if bins < 1:
            raise AggregationError(f"--ece-bins must be >= 1, got {bins}")
    records = load_records(exp_dir)
    if not records:
        raise AggregationError(f"no run records (metrics.json) under {exp_dir}")
    if not any(r.get("status") == "success" for r in records):
        first = records[0]
        raise AggregationError(
            f"no successful runs under {exp_dir} ({len(records)} not successful, e.g. "
            f"{first['_path']}: {first.get('status')}: {first.get('error')})"
        )
    out = StagedOutputs(results_dir if write else None)
    try:
        group_records(records)  # a hash clash stops here, before anything is built
        if posthoc_ensemble:
            records = posthoc_ensembles(records, out, results_dir)
        if bins is not None:
            records = recompute_metrics(records, bins)
        tables = make_tables(records, split, expected_seeds, all_rows, bins)
        suffix = _suffix(split, bins)
        table_files = {}
        for ext, text in (
            ("csv", tables.long.to_csv(index=False)),
            ("md", tables.md),
            ("tex", tables.tex),
        ):
            rel = f"tables/{exp}{suffix}.{ext}"
            table_files[Path(rel).name] = out.write_text(rel, text)
        figure_files: dict[str, Path] = {}
        if figures:
            from bayeslora import figures as F

            data = F.compute_figures(records, split, bins or DEFAULT_ECE_BINS)
            tables.skipped = data.skipped
            if not data.figures:
                raise AggregationError(f"--figures: nothing to plot for {exp} ({'; '.join(data.skipped)})")
            fig_rel = f"figures/{exp}{suffix}"
            for path in F.render_figures(data, out.add_dir(fig_rel)):
                figure_files[path.name] = path
            tables.figures = data.figures
        tables.written = out.commit()
        if write:
            table_files = {k: results_dir / "tables" / v.name for k, v in table_files.items()}
            figure_files = {k: results_dir / fig_rel / k for k in figure_files} if figures else {}
        if wandb_project:
            try:
                upload_to_wandb(
                    table_files,
                    figure_files,
                    exp,
                    wandb_project,
                    wandb_entity,
                    config={"exp": exp, "split": split, "ece_bins": bins, "seeds": expected_seeds},
                )
            except AggregationError as e:
                if not tables.written:
                    raise
                raise AggregationError(f"{e} (the tables and figures were written locally)") from e
    finally:
        out.cleanup()
    return tables


def build_tables(
    exp: str,
    results_dir: Path,
    split: str | None = None,
    expected_seeds: list[int] | None = None,
    write: bool = True,
    all_rows: bool = False,
    **kwargs,
) -> tuple[pd.DataFrame, str]:
    """The long CSV frame and the Markdown; writes ``<results>/tables/<exp>.{csv,md,tex}``."""
    t = aggregate(exp, results_dir, split, expected_seeds, write, all_rows, **kwargs)
    return t.long, t.md


# ------------------------------------------------------------------------------------------ CLI


class OneLineParser(argparse.ArgumentParser):
    """argparse that reports bad arguments as one ``<prog>: error: ...`` line (exit 2)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message}\n")


def parse_seeds(text: str) -> list[int] | None:
    try:
        return [int(s) for s in text.split(",") if s.strip()] or None
    except ValueError:
        raise AggregationError(f"--seeds must be comma-separated integers, got {text!r}") from None


def main(argv: list[str] | None = None) -> int:
    ap = OneLineParser(prog="bayeslora-table", description=__doc__.splitlines()[0])
    ap.add_argument("exp", help="experiment name (folder under <results>/runs/)")
    ap.add_argument("--results-dir", default="results")
    ap.add_argument("--split", default=None, help="evaluation split (default: each record's first)")
    ap.add_argument("--seeds", default="21,42,87", help="expected seeds, comma-separated ('' = no check)")
    ap.add_argument("--no-write", action="store_true", help="print only")
    ap.add_argument("--all-rows", action="store_true", help="also analysis rows such as the IVON τ grid")
    ap.add_argument(
        "--recompute", action="store_true", help="recompute every metric from the runs' preds.npz"
    )
    ap.add_argument(
        "--ece-bins",
        type=int,
        default=None,
        help=f"ECE bins for --recompute (default {DEFAULT_ECE_BINS}; implies --recompute)",
    )
    ap.add_argument(
        "--posthoc-ensemble",
        action="store_true",
        help="first build a post-hoc ensemble of every dataset/model's adamw seeds (>= 2)",
    )
    ap.add_argument("--figures", action="store_true", help="also draw <results>/figures/<exp>/")
    ap.add_argument("--wandb", action="store_true", help="upload tables and figures as W&B artifacts")
    ap.add_argument(
        "--wandb-project",
        default=None,
        help="W&B project (implies --wandb; default $WANDB_PROJECT or bayeslora); mode from $WANDB_MODE",
    )
    ap.add_argument("--wandb-entity", default=os.environ.get("WANDB_ENTITY") or None)
    args = ap.parse_args(argv)
    project = None
    if args.wandb or args.wandb_project:
        project = args.wandb_project or os.environ.get("WANDB_PROJECT") or "bayeslora"
    try:
        seeds = parse_seeds(args.seeds)
        t = aggregate(
            args.exp,
            Path(args.results_dir),
            args.split,
            seeds,
            write=not args.no_write,
            all_rows=args.all_rows,
            recompute=args.recompute,
            ece_bins=args.ece_bins,
            posthoc_ensemble=args.posthoc_ensemble,
            figures=args.figures,
            wandb_project=project,
            wandb_entity=args.wandb_entity,
        )
    except (BayesLoraError, OSError) as e:
        msg = " ".join(str(e).split())
        print(f"bayeslora-table: error: {msg}", file=sys.stderr)
        return 1
    print(t.md)
    for s in t.skipped:
        print(f"bayeslora-table: skipped {s}", file=sys.stderr)
    for p in t.written:
        print(f"wrote {p}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
