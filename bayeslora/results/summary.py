"""Records -> summary statistics: mean and SEM over seeds, the Average column, changes vs AdamW.

Everything here is a pandas frame in long form (one row per dataset x model x method x predictive x
metric) in raw units (fractions, not %); rendering is :mod:`bayeslora.results.tables`' job.

* mean and SEM = sample std (ddof=1) / sqrt(n) over the seeds that have the predictive (no SEM for
  n = 1), by ``groupby().agg()``;
* **Average** is the mean of a row's per-dataset means over *all* dataset columns, with SEM =
  sqrt(sum of the squared per-dataset SEMs) / D (datasets are independent experiments); a row that
  lacks a dataset column has no Average;
* "Δ vs AdamW": each IVON row minus the AdamW ``map`` row of the same dataset and model.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from bayeslora.results.layout import (
    AVERAGE,
    BASELINE,
    DELTA,
    DELTA_PREDICTIVES,
    METRIC_KEYS,
    dataset_rank,
    legacy_rank,
)
from bayeslora.results.runs import (
    AggregationError,
    covered_seeds,
    dataset_label,
    group_records,
    metrics_of,
    row_rank,
)

# the long CSV's columns; in memory the frames also carry ``dataset_label`` and the row's ``rank``.
# No provenance (commit, dirty flag, times): the same records give the same table, byte for byte.
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
    "config_hash",
]
COLUMNS = [*CSV_COLUMNS, "dataset_label", "rank"]
KEY = ["dataset", "model", "method", "predictive", "metric"]


def sem(values) -> float:
    """Standard error of the mean over seeds: sample std (ddof=1) / sqrt(n); NaN for n < 2. It is
    pandas' ``sem``, which :func:`summarize` takes per group (``SEM``) for the tables."""
    x = pd.Series(values, dtype=float)
    return float(x.sem(ddof=1)) if len(x) > 1 else float("nan")


SEM = "sem"  # pandas' groupby SEM, the same definition as :func:`sem`


def _seeds_str(seeds) -> str:
    return " ".join(map(str, sorted(seeds)))


def _empty() -> pd.DataFrame:
    return pd.DataFrame(columns=COLUMNS).astype({"n": "Int64"})


def observations(records: list[dict], split: str | None = None, all_rows: bool = False) -> pd.DataFrame:
    """One row per (successful record, predictive, metric) with its value; checked as it is read.

    Only each record's ``table_rows`` unless ``all_rows`` (which adds e.g. the IVON τ grid)."""
    rows = []
    for (dataset, model, method), recs in group_records(records).items():
        for r in recs:
            m = metrics_of(r, split)
            if not isinstance(m, dict):
                raise AggregationError(f"{r['_path']}: metrics of split {split!r} must be a mapping")
            for pred, vals in m.items():
                if not all_rows and "table_rows" in r and pred not in r["table_rows"]:
                    continue
                for metric in METRIC_KEYS:
                    if not isinstance(vals, dict) or metric not in vals:
                        raise AggregationError(f"{r['_path']}: predictive {pred!r} has no {metric!r}")
                    try:
                        value = float(vals[metric])
                    except (TypeError, ValueError):
                        raise AggregationError(
                            f"{r['_path']}: {pred}/{metric} = {vals[metric]!r} is not a number"
                        ) from None
                    rows.append(
                        dict(
                            experiment=str(r.get("exp_name", "")),
                            split=split or r.get("eval_split") or "",
                            dataset=dataset,
                            dataset_label=dataset_label(r),
                            model=model,
                            method=method,
                            predictive=pred,
                            label=(r.get("labels") or {}).get(pred) or None,
                            rank=row_rank(r, pred),
                            metric=metric,
                            value=value,
                            seed=int(r["seed"]),
                            covered=tuple(covered_seeds(r)),
                            config_hash=str(r["config_hash"]),
                        )
                    )
    return pd.DataFrame(rows)


# what names and places a table row, the same for every seed (and dataset) behind it
ROW_NAMING = {
    "experiment": ("experiment", "first"),
    "split": ("split", "first"),
    "label": ("label", "first"),
    "rank": ("rank", "min"),
}


def summarize(
    records: list[dict],
    split: str | None = None,
    expected_seeds: list[int] | None = None,
    all_rows: bool = False,
) -> pd.DataFrame:
    """Long-form summary: one row per (dataset, model, method, predictive, metric), raw units.

    ``missing_seeds``/``extra_seeds`` compare the seeds behind each predictive with ``expected_seeds``."""
    obs = observations(records, split, all_rows)
    if obs.empty:
        return _empty()
    expected = set(expected_seeds or [])
    # rows keep the order in which the groups, then their predictives, first appear
    df = (
        obs.groupby(KEY, sort=False)
        .agg(
            **ROW_NAMING,
            dataset_label=("dataset_label", "first"),
            n=("value", "size"),
            mean=("value", "mean"),
            sem=("value", SEM),
            seeds=("seed", _seeds_str),
            covered=("covered", lambda c: set().union(*c)),
            config_hash=("config_hash", "first"),
        )
        .reset_index()
    )
    df["label"] = df["label"].fillna(df["predictive"])
    df["missing_seeds"] = df.covered.map(lambda c: _seeds_str(expected - c) if expected else "")
    df["extra_seeds"] = df.covered.map(lambda c: _seeds_str(c - expected) if expected else "")
    df["n"] = df["n"].astype("Int64")
    return df[COLUMNS]


def base_rows(df: pd.DataFrame) -> pd.DataFrame:
    """The per-dataset value rows of a summary or long table (no Average, no Δ rows)."""
    if df.empty:
        return df
    out = df[(df.dataset != AVERAGE) & df.metric.isin(METRIC_KEYS)].copy()
    for col in ("missing_seeds", "extra_seeds", "seeds", "experiment", "split"):
        if col not in out:
            out[col] = ""
        out[col] = out[col].fillna("").astype(str)
    if "dataset_label" not in out:
        out["dataset_label"] = None
    if "rank" not in out:  # a long table read back from its CSV
        out["rank"] = out.predictive.map(legacy_rank)
    return out


def datasets_of(base: pd.DataFrame) -> list[str]:
    """The dataset columns in the paper's order (then the others, sorted)."""
    return sorted(set(base.dataset), key=lambda d: (dataset_rank(d), d))


def _join_seeds(values) -> str:
    return " ".join(sorted({s for v in values for s in str(v).split()}, key=int))


def averages(base: pd.DataFrame) -> pd.DataFrame:
    """Average-column rows (``dataset == "average"``) for rows that cover every dataset column."""
    base = base_rows(base)
    datasets = datasets_of(base) if len(base) else []
    if len(datasets) < 2:  # the Average of one dataset would repeat its column
        return _empty()
    g = base.assign(
        mean=base["mean"].astype(float), sem2=base["sem"].astype(float) ** 2, ds=base.dataset
    ).groupby(["model", "method", "predictive", "metric"], sort=True)
    out = g.agg(
        **ROW_NAMING,
        n_datasets=("ds", "nunique"),
        mean=("mean", "mean"),
        sem2=("sem2", lambda s: s.sum(min_count=len(s)) if s.notna().all() else np.nan),
        count=("ds", "size"),
        missing_seeds=("missing_seeds", _join_seeds),
        extra_seeds=("extra_seeds", _join_seeds),
    ).reset_index()
    out = out[out.n_datasets == len(datasets)]
    out = out.assign(
        dataset=AVERAGE,
        dataset_label=None,
        n=pd.NA,
        sem=np.sqrt(out.sem2.astype(float)) / out["count"],
        seeds="",
        config_hash="",
    )
    out = out[COLUMNS].reset_index(drop=True)
    out["n"] = out["n"].astype("Int64")
    return out


def deltas_vs_adamw(base: pd.DataFrame, avg: pd.DataFrame | None = None) -> pd.DataFrame:
    """``metric == "delta_vs_adamw/<m>"`` rows: IVON row minus AdamW's ``map`` (raw units), per dataset
    and for the Average column (where both rows have one)."""
    base = base_rows(base)
    if base.empty:
        return _empty()
    avg = averages(base) if avg is None else avg
    both = pd.concat([base, avg], ignore_index=True) if len(avg) else base
    ref = both[(both.method == BASELINE[0]) & (both.predictive == BASELINE[1])]
    ref = ref[["dataset", "model", "metric", "mean"]].drop_duplicates(["dataset", "model", "metric"])
    rows = both[both.predictive.isin(DELTA_PREDICTIVES)].merge(
        ref, on=["dataset", "model", "metric"], how="inner", suffixes=("", "_ref"), sort=False
    )
    if rows.empty:
        return _empty()
    rows = rows.assign(
        metric=DELTA + "/" + rows.metric,
        mean=rows["mean"].astype(float) - rows["mean_ref"].astype(float),
        sem=float("nan"),
    )
    out = rows[COLUMNS].reset_index(drop=True)
    out["n"] = out["n"].astype("Int64")
    return out


def long_table(summary: pd.DataFrame) -> pd.DataFrame:
    """Per-dataset rows, then the Average rows, then the Δ-vs-AdamW rows (``COLUMNS``)."""
    base = base_rows(summary)
    avg = averages(base)
    parts = [p for p in (base, avg, deltas_vs_adamw(base, avg)) if len(p)]
    if not parts:
        return _empty()
    out = pd.concat(parts, ignore_index=True)[COLUMNS]
    out["n"] = out["n"].astype("Int64")
    # value rows, then Average rows, then Δ rows; each in the paper's dataset/row/metric order
    rank = {
        "_kind": out.metric.str.startswith(DELTA).astype(int) * 2 + (out.dataset == AVERAGE).astype(int),
        "_d": out.dataset.map(dataset_rank),
        "_p": out["rank"],
        "_m": out.metric.map(lambda m: METRIC_KEYS.index(m.split("/")[-1])),
    }
    out = out.assign(**rank).sort_values(
        ["_kind", "_d", "dataset", "model", "_p", "method", "predictive", "_m"], kind="stable"
    )
    return out.drop(columns=list(rank)).reset_index(drop=True)
