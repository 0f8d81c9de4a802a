"""The paper's Table 1 (``paper_table1.csv``) and the reproduced cells beside it.

* :func:`load_paper_table`: the paper's cells in long form, display units (ACC and ECE ×100 in %,
  NLL, Brier), as printed, and the cells where the paper's own printed numbers disagree beyond
  rounding;
* :func:`pattern`: the comparison that carries across scales: per metric and column, each of the
  paper's eight rows against AdamW (the sign of row − AdamW and its size relative to AdamW's value)
  beside the paper's, the rows' rank order, and Kendall's τ_b between our order and the paper's
  (two-sided p of ``scipy.stats.kendalltau``);
* :func:`compare`: the absolute cells: each reproduced cell of the paper's eight rows on the
  paper's six datasets and its Average, beside the paper's value; the difference ours − paper and
  t = difference / √(SEM_ours² + SEM_paper²). The paper's SEM as used (:func:`paper_sems`): as
  printed; a printed 0.00 (below half a unit) floored at half a unit of the last printed digit; the
  Average (printed without SEM) derived from the six (floored) SEMs as our own Average is,
  √(Σ SEM²) / 6. A cell **agrees within noise** when |t| ≤ the two-sided 95 % point of Student's t
  with Welch–Satterthwaite degrees of freedom (n − 1 per SEM: our seeds, the paper's 3 runs), so
  about 5 % of cells disagree by chance where the two agree in truth. Where our SEM is unknown (one
  seed) or the combined SE is 0, a cell agrees when the difference is at most half a printed unit.
  Only runs of the paper's model (:func:`is_paper_model`) are judged: for another model every cell
  is "different model" (listed, never **no**). The Average is compared only when the run covers
  exactly the paper's six datasets.

``Z_MAX`` (2) is the claims' "comparable" margin in combined SEMs (:mod:`bayeslora.results.claims`);
the absolute cells use the t threshold above.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from bayeslora.results.layout import (
    AVERAGE,
    BASELINE,
    DATASET_ORDER,
    HIGHER_IS_BETTER,
    METRIC_KEYS,
    dataset_rank,
    metric_info,
)
from bayeslora.results.runs import AggregationError
from bayeslora.results.summary import averages, base_rows

PAPER_CSV = Path(__file__).with_name("paper_table1.csv")
PAPER_SOURCE = 'Cong et al. 2024, "Variational Low-Rank Adaptation Using IVON", arXiv:2411.04421v1, Table 1'
Z_MAX = 2.0  # the claims' "comparable" margin (combined SEMs); the cells below use ALPHA
ALPHA = 0.05  # two-sided level of the absolute cells' t test
PAPER_SEEDS = 3  # Table 1's caption: "standard error of the mean across 3 runs"
PAPER_MODEL = "llama2_7b"  # conf/model/llama2_7b*.yaml: the paper's Llama-2-7B
DIFFERENT_MODEL = "different model: absolute cells are not comparable"
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


def is_paper_model(model: str) -> bool:
    """A run of the paper's model: ``llama2_7b`` and its variants (``llama2_7b_bf16``), not the
    random-weight architecture ``llama2_7b_random`` (a benchmark model, no trained weights)."""
    return str(model).startswith(PAPER_MODEL) and not str(model).endswith("_random")


def paper_sems(paper: pd.DataFrame) -> pd.DataFrame:
    """``paper`` with the SEM the comparison uses, ``sem_used``, and where it comes from,
    ``sem_basis``: "printed"; "floored" (a printed 0.00 means below half a unit of the last printed
    digit: half a unit, the largest value it can stand for); "derived" (the Average, printed without
    SEM: √(Σ SEM²) / 6 over the row's six (floored) SEMs, as :func:`bayeslora.results.summary.averages`
    computes ours); "none" (an Average whose row lacks a SEM)."""
    out = paper.copy()
    half = out.metric.map(half_unit).astype(float)
    printed = out["sem"].astype(float)
    floored = printed.notna() & (printed < half - 1e-12)
    out["sem_used"] = printed.where(~floored, half)
    out["sem_basis"] = np.where(floored, "floored", np.where(printed.notna(), "printed", "none"))
    per = out[out.dataset.isin(DATASET_ORDER)]
    for (pred, metric), g in per.groupby(["predictive", "metric"], sort=False):
        at = out.index[(out.predictive == pred) & (out.metric == metric) & (out.dataset == AVERAGE)]
        if len(at) and out.loc[at, "sem"].isna().all():
            ok = len(g) == len(DATASET_ORDER) and g.sem_used.notna().all()
            value = math.sqrt(float((g.sem_used**2).sum())) / len(g) if ok else np.nan
            out.loc[at, "sem_used"] = value
            out.loc[at, "sem_basis"] = "derived" if ok else "none"
    return out


def welch_df(parts: list[tuple[float, float]]) -> float:
    """Welch–Satterthwaite degrees of freedom of a sum of independent variance estimates, each
    ``(variance, its degrees of freedom)``: (Σ v)² / Σ (v² / df). Zero variances add nothing; NaN
    when the sum is 0 or a part is unknown."""
    parts = [(float(v), float(d)) for v, d in parts]
    if any(math.isnan(v) or math.isnan(d) for v, d in parts):
        return float("nan")
    parts = [(v, d) for v, d in parts if v > 0]
    if not parts or any(d <= 0 for _, d in parts):
        return float("nan")
    return sum(v for v, _ in parts) ** 2 / sum(v * v / d for v, d in parts)


def t_threshold(df: float, alpha: float = ALPHA) -> float:
    """The two-sided ``alpha`` point of Student's t with ``df`` degrees of freedom (NaN for NaN)."""
    return float(stats.t.ppf(1 - alpha / 2, df)) if df > 0 else float("nan")


def _variance_parts(cells: pd.DataFrame) -> list[list[tuple[float, float]]]:
    """Per cell, the variance parts of ours − paper with their degrees of freedom (n − 1: our seeds,
    the paper's ``PAPER_SEEDS``): one per side for a dataset cell; for an Average cell the six
    datasets' parts of each side, each divided by 6² (the Average's SEM is √(Σ SEM²) / 6)."""
    per: dict[tuple, list] = {}
    for c in cells[cells.dataset != AVERAGE].itertuples(index=False):
        per.setdefault((c.model, c.predictive, c.metric), []).append(c)
    out = []
    for r in cells.itertuples(index=False):
        rows = [r] if r.dataset != AVERAGE else per.get((r.model, r.predictive, r.metric), [])
        if len(rows) not in (1, len(DATASET_ORDER)):
            out.append([(float("nan"), float("nan"))])
            continue
        k = len(rows) ** 2
        out.append(
            [
                part
                for c in rows
                for part in (
                    (c.ours_sem**2 / k, float(c.n) - 1 if pd.notna(c.n) else float("nan")),
                    (c.paper_sem**2 / k, PAPER_SEEDS - 1),
                )
            ]
        )
    return out


def compare(
    summary: pd.DataFrame, paper: pd.DataFrame, alpha: float = ALPHA
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(cells, lacking): every reproduced cell of the paper's rows and columns beside the paper's,
    and the paper's cells the run does not have. ``cells`` carries ``paper_sem`` (as used, see
    :func:`paper_sems`) and ``paper_sem_basis``, the difference, ``t``, its Welch–Satterthwaite
    ``df``, the ``threshold`` on |t| and ``within_noise`` (None: not judged, ``basis`` says why)."""
    ours = ours_display(summary, paper)
    run_datasets = set(base_rows(summary).dataset) if len(summary) else set()
    comparable_avg = run_datasets == set(DATASET_ORDER)
    ours = ours[ours.dataset.isin(DATASET_ORDER) | ((ours.dataset == AVERAGE) & comparable_avg)]
    used = paper_sems(paper).drop(columns=["sem"])
    cells = ours.merge(
        used.rename(
            columns={
                "mean": "paper",
                "sem_used": "paper_sem",
                "sem_basis": "paper_sem_basis",
                PAPER_CHANGE: "paper_change",
            }
        ),
        on=["predictive", "dataset", "metric"],
        how="left",
    )
    cells["diff"] = cells.ours - cells.paper
    se = np.sqrt(cells.ours_sem.astype(float) ** 2 + cells.paper_sem.astype(float) ** 2)
    dfs = [welch_df(parts) for parts in _variance_parts(cells)]
    cells["t"] = np.where(se > 0, cells["diff"] / se.where(se > 0), np.nan)
    cells["df"] = np.where(se > 0, dfs, np.nan)
    cells["threshold"] = [t_threshold(d, alpha) if s > 0 else np.nan for d, s in zip(cells.df, se)]
    half = cells.metric.map(half_unit)
    by_t = cells.t.abs() <= cells.threshold
    by_rounding = cells["diff"].abs() <= half + 1e-9
    judged = cells.model.map(is_paper_model).astype(bool)
    cells["within_noise"] = np.where(cells.paper.isna() | ~judged, None, np.where(se > 0, by_t, by_rounding))
    cells["basis"] = np.where(
        cells.paper.isna(),
        "no paper value",
        np.where(~judged, "different model", np.where(se > 0, "t", "rounding")),
    )
    for col in ("t", "df", "threshold"):
        cells[col] = cells[col].where(judged)
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


PATTERN_COLUMNS = [
    "model",
    "dataset",
    "predictive",
    "label",
    "metric",
    "ours",
    "ours_change",
    "ours_rel",
    "ours_rank",
    "paper",
    "paper_change",
    "paper_rel",
    "paper_rank",
    "same_direction",
]
RANK_COLUMNS = ["model", "dataset", "metric", "n_rows", "tau", "p", "n_same_direction", "n_changes"]


def _rank(values: pd.Series, metric: str) -> pd.Series:
    """1 = best (highest ACC, lowest ECE / NLL / Brier); ties share the lower rank."""
    key = -values if HIGHER_IS_BETTER[metric] else values
    return key.rank(method="min").astype("Int64")


def pattern(summary: pd.DataFrame, paper: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(rows, ranks): the comparison with the paper that does not depend on the scale of the model.

    ``rows``: per model, column (the paper's datasets the run has, and the Average when the run
    covers all six), metric and paper row that both have: our value and the paper's (display
    units), each minus AdamW's (``*_change``; the paper's from its printed means, rounded to its
    printed precision), that change relative to AdamW's value (``*_rel`` = change / |AdamW|), each
    side's rank of the row (1 = best), and ``same_direction`` (the two changes have one sign; None
    for AdamW itself). ``ranks``: per model, column and metric, Kendall's τ_b between our rows'
    values and the paper's with its two-sided p (``scipy.stats.kendalltau``: exact when neither side
    has ties, else the normal approximation), and how many rows move from AdamW in the paper's
    direction."""
    ours = ours_display(summary, paper)
    run_datasets = set(base_rows(summary).dataset) if len(summary) else set()
    comparable_avg = run_datasets == set(DATASET_ORDER)
    ours = ours[ours.dataset.isin(DATASET_ORDER) | ((ours.dataset == AVERAGE) & comparable_avg)]
    theirs = paper.dropna(subset=["mean"])[["predictive", "label", "dataset", "metric", "mean"]]
    both = ours.merge(theirs.rename(columns={"mean": "paper"}), on=["predictive", "dataset", "metric"])
    both = both.dropna(subset=["ours"])
    if both.empty:
        return pd.DataFrame(columns=PATTERN_COLUMNS), pd.DataFrame(columns=RANK_COLUMNS)
    rows, ranks = [], []
    for (model, dataset, metric), g in _sorted(both, paper).groupby(
        ["model", "dataset", "metric"], sort=False
    ):
        g = g.copy()
        dec = metric_info(metric)[2]
        ref = g[g.predictive == BASELINE[1]]
        a_ours = float(ref.ours.iloc[0]) if len(ref) else np.nan
        a_paper = float(ref.paper.iloc[0]) if len(ref) else np.nan
        g["ours_change"] = g.ours - a_ours
        g["paper_change"] = (g.paper - a_paper).round(dec)
        g["ours_rel"] = g.ours_change / abs(a_ours) if a_ours else np.nan
        g["paper_rel"] = g.paper_change / abs(a_paper) if a_paper else np.nan
        g["ours_rank"] = _rank(g.ours, metric)
        g["paper_rank"] = _rank(g.paper, metric)
        others = g.predictive != BASELINE[1]
        same = np.sign(g.ours_change) == np.sign(g.paper_change)
        g["same_direction"] = np.where(others & g.ours_change.notna(), same, None)
        rows.append(g[PATTERN_COLUMNS])
        tau, p = (np.nan, np.nan)
        if len(g) >= 2:
            res = stats.kendalltau(g.ours.to_numpy(float), g.paper.to_numpy(float))
            tau, p = float(res.statistic), float(res.pvalue)
        judged = g.same_direction[others & g.ours_change.notna()]
        ranks.append(
            dict(
                model=model,
                dataset=dataset,
                metric=metric,
                n_rows=len(g),
                tau=round(tau, 12) if not math.isnan(tau) else tau,
                p=p,
                n_same_direction=int(judged.astype(bool).sum()),
                n_changes=len(judged),
            )
        )
    return pd.concat(rows, ignore_index=True), pd.DataFrame(ranks, columns=RANK_COLUMNS)


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
