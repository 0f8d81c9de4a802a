"""The paper's Table 1 (``paper_table1.csv``) and the reproduced cells beside it.

* :func:`load_paper_table`: the paper's cells in long form, display units (ACC and ECE ×100 in %,
  NLL, Brier), and the cells where the paper's own printed numbers disagree beyond rounding;
* :func:`compare`: each reproduced cell of the paper's eight rows (AdamW's six views, IVON@mean,
  IVON) on the paper's six datasets and its Average, beside the paper's value; the difference
  ours − paper and z = difference / √(SEM_ours² + SEM_paper²). A cell **agrees within noise** when
  |z| ≤ ``Z_MAX`` (2); where that combined SE is 0 or unknown (one seed, or no SEM printed) it agrees
  when the difference is at most half a unit of the paper's last printed digit. The Average is
  compared only when the run covers exactly the paper's six datasets.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from bayeslora.results.layout import (
    AVERAGE,
    DATASET_ORDER,
    METRIC_KEYS,
    dataset_rank,
    metric_info,
)
from bayeslora.results.runs import AggregationError
from bayeslora.results.summary import averages, base_rows

PAPER_CSV = Path(__file__).with_name("paper_table1.csv")
PAPER_SOURCE = 'Cong et al. 2024, "Variational Low-Rank Adaptation Using IVON", arXiv:2411.04421v1, Table 1'
Z_MAX = 2.0
PAPER_COLUMNS = ["predictive", "method", "label", "dataset", "metric", "mean", "sem", "source"]
# Optional: the paper's parenthesised change of an IVON row against AdamW (IVON − AdamW, display units).
PAPER_CHANGE = "change"


def load_paper_table(path: Path | None = None) -> pd.DataFrame:
    """The paper's Table 1 in long form, display units; empty ``mean`` = a cell not typed in, empty
    ``sem`` = none printed (the Average), empty ``change`` = not an IVON row (NaN if the file has no
    ``change`` column)."""
    df = pd.read_csv(path or PAPER_CSV, comment="#", dtype={"source": str})
    lacking = [c for c in PAPER_COLUMNS if c not in df]
    if lacking:
        raise AggregationError(f"{path or PAPER_CSV}: lacks columns {', '.join(lacking)}")
    if PAPER_CHANGE not in df:
        df[PAPER_CHANGE] = np.nan
    return df[[*PAPER_COLUMNS, PAPER_CHANGE]].astype({"mean": float, "sem": float, PAPER_CHANGE: float})


def paper_rows(paper: pd.DataFrame) -> dict[str, tuple[str, str]]:
    """The paper's rows in its order: predictive -> (training method, printed label)."""
    rows = paper[["predictive", "method", "label"]].drop_duplicates("predictive")
    return {r.predictive: (r.method, r.label) for r in rows.itertuples(index=False)}


def half_unit(metric: str) -> float:
    """Half a unit of the paper's last printed digit (0.05 for ACC/ECE ×100, 0.005 for NLL/Brier)."""
    return 0.5 * 10 ** -metric_info(metric)[2]


def paper_average_mismatches(paper: pd.DataFrame) -> pd.DataFrame:
    """Rows whose Average differs from the mean of their six per-dataset means by more than the
    rounding of the printed numbers allows (half a unit for the Average + half a unit per dataset
    mean / 6 = one unit). Rows or metrics with any cell missing are skipped."""
    out = []
    for (pred, metric), g in paper.groupby(["predictive", "metric"], sort=False):
        per = g[g.dataset.isin(DATASET_ORDER)].dropna(subset=["mean"])
        avg = g[g.dataset == AVERAGE].dropna(subset=["mean"])
        if len(per) != len(DATASET_ORDER) or avg.empty:
            continue
        derived, printed = float(per["mean"].mean()), float(avg["mean"].iloc[0])
        if abs(derived - printed) > 2 * half_unit(metric) + 1e-9:
            out.append(dict(predictive=pred, metric=metric, derived=derived, printed=printed))
    return pd.DataFrame(out, columns=["predictive", "metric", "derived", "printed"])


def paper_change_mismatches(paper: pd.DataFrame) -> pd.DataFrame:
    """Cells whose printed change (IVON − AdamW) differs from the difference of the two printed means
    by more than the rounding of the three printed numbers allows (three half units)."""
    base = paper[paper.predictive == "map"].set_index(["dataset", "metric"])["mean"]
    out = []
    for r in paper.dropna(subset=[PAPER_CHANGE, "mean"]).itertuples(index=False):
        adamw = base.get((r.dataset, r.metric), np.nan)
        derived = r.mean - adamw
        if np.isnan(derived) or abs(derived - r.change) > 3 * half_unit(r.metric) + 1e-9:
            out.append(
                dict(
                    predictive=r.predictive,
                    dataset=r.dataset,
                    metric=r.metric,
                    derived=derived,
                    printed=r.change,
                )
            )
    return pd.DataFrame(out, columns=["predictive", "dataset", "metric", "derived", "printed"])


def ours_display(summary: pd.DataFrame, paper: pd.DataFrame) -> pd.DataFrame:
    """Reproduced cells of the paper's rows (per dataset + Average) in display units: the rows whose
    (method, predictive) is one of ``paper``'s."""
    base = base_rows(summary)
    if base.empty:
        return pd.DataFrame(columns=["model", "dataset", "predictive", "metric", "ours", "ours_sem", "n"])
    both = pd.concat([base, averages(base)], ignore_index=True)
    rows = paper_rows(paper)
    keep = [rows.get(p, (None,))[0] == m for p, m in zip(both.predictive, both.method)]
    both = both[keep].copy()
    scale = both.metric.map(lambda m: metric_info(m)[1])
    both["ours"] = both["mean"].astype(float) * scale
    both["ours_sem"] = both["sem"].astype(float) * scale
    return both[["model", "dataset", "predictive", "metric", "ours", "ours_sem", "n"]].reset_index(drop=True)


def compare(
    summary: pd.DataFrame, paper: pd.DataFrame, z_max: float = Z_MAX
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(cells, lacking): every reproduced cell of the paper's rows and columns beside the paper's,
    and the paper's cells the run does not have."""
    ours = ours_display(summary, paper)
    run_datasets = set(base_rows(summary).dataset) if len(summary) else set()
    comparable_avg = run_datasets == set(DATASET_ORDER)
    ours = ours[ours.dataset.isin(DATASET_ORDER) | ((ours.dataset == AVERAGE) & comparable_avg)]
    cells = ours.merge(
        paper.rename(columns={"mean": "paper", "sem": "paper_sem", PAPER_CHANGE: "paper_change"}),
        on=["predictive", "dataset", "metric"],
        how="left",
    )
    cells["diff"] = cells.ours - cells.paper
    se = np.sqrt(cells.ours_sem.astype(float) ** 2 + cells.paper_sem.astype(float) ** 2)
    cells["z"] = np.where(se > 0, cells["diff"] / se.where(se > 0), np.nan)
    half = cells.metric.map(half_unit)
    by_z = cells.z.abs() <= z_max
    by_rounding = cells["diff"].abs() <= half + 1e-9
    cells["within_noise"] = np.where(cells.paper.isna(), None, np.where(se > 0, by_z, by_rounding))
    cells["basis"] = np.where(cells.paper.isna(), "no paper value", np.where(se > 0, "z", "rounding"))
    cells = _sorted(cells, paper)
    have = set(zip(ours.predictive, ours.dataset, ours.metric))
    lacking = paper[[(p, d, m) not in have for p, d, m in zip(paper.predictive, paper.dataset, paper.metric)]]
    reason = np.where(
        lacking.dataset == AVERAGE,
        "no comparable Average (the run does not cover exactly the paper's six datasets)"
        if not comparable_avg
        else "not in the run",
        "not in the run",
    )
    lacking = lacking.assign(reason=reason).rename(columns={"mean": "paper", "sem": "paper_sem"})
    lacking = lacking[["predictive", "label", "dataset", "metric", "paper", "paper_sem", "reason"]]
    return cells, _sorted(lacking, paper)


def _sorted(df: pd.DataFrame, paper: pd.DataFrame) -> pd.DataFrame:
    """Columns, then the paper's rows, then metrics in the paper's order."""
    if df.empty:
        return df.reset_index(drop=True)
    rows = list(paper_rows(paper))
    key = {
        "_d": df.dataset.map(dataset_rank),
        "_p": df.predictive.map(lambda p: rows.index(p) if p in rows else len(rows)),
        "_m": df.metric.map(METRIC_KEYS.index),
    }
    cols = ["model", "_d", "_p", "_m"] if "model" in df else ["_d", "_p", "_m"]
    return df.assign(**key).sort_values(cols, kind="stable").drop(columns=list(key)).reset_index(drop=True)
