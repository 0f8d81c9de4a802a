"""The reproduction beside the paper: every Table 1 cell against the paper's, and its claims checked.

``bayeslora-table <exp> --vs-paper`` writes ``<results>/reports/<exp>_vs_paper.{md,csv,png}``:

* **cells**: each reproduced cell of the paper's eight rows (AdamW's six views, IVON@mean, IVON) on
  the paper's six datasets and its Average, in the paper's display units (ACC and ECE in %, NLL,
  Brier), beside the paper's value (``paper_table1.csv``); the difference ours − paper and
  z = difference / √(SEM_ours² + SEM_paper²). A cell **agrees within noise** when |z| ≤ ``Z_MAX``
  (2); where that combined SE is 0 or unknown (one seed, or no SEM printed) it agrees when the
  difference is at most half a unit of the paper's last printed digit. The Average is compared only
  when the run covers exactly the paper's six datasets. Paper cells the run lacks are listed, and
  so are the paper's cells that disagree with its other printed numbers beyond rounding (an Average
  that is not the mean of its row, a change that is not IVON − AdamW).
* **claims**: the paper's qualitative claims checked on the reproduced numbers alone, per dataset
  column and for the Average: holds / does not hold / cannot be checked (a row is missing).
  "Comparable" means not worse by more than ``Z_MAX`` combined SEMs (better counts as comparable).
  The cost claim compares IVON's median training-step time with AdamW's, from each run's
  ``history.csv`` (``time/train_s`` per logged step); it holds when the ratio is at most
  ``COST_RATIO_MAX`` (our reading of "similar cost", not a number from the paper).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from bayeslora.results.layout import (
    AVERAGE,
    AVERAGE_LABEL,
    DATASET_LABELS,
    DATASET_ORDER,
    METRIC_KEYS,
    PAPER_ROWS,
    dataset_rank,
    metric_info,
    predictive_rank,
)
from bayeslora.results.outputs import StagedOutputs
from bayeslora.results.runs import AggregationError, dataset_label, group_records, run_dir_of
from bayeslora.results.summary import averages, base_rows
from bayeslora.results.tables import column_labels

PAPER_CSV = Path(__file__).with_name("paper_table1.csv")
PAPER_SOURCE = 'Cong et al. 2024, "Variational Low-Rank Adaptation Using IVON", arXiv:2411.04421v1, Table 1'
Z_MAX = 2.0
COST_RATIO_MAX = 1.25
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


def ours_display(summary: pd.DataFrame) -> pd.DataFrame:
    """Reproduced cells of the paper's rows (per dataset + Average) in display units."""
    base = base_rows(summary)
    if base.empty:
        return pd.DataFrame(columns=["model", "dataset", "predictive", "metric", "ours", "ours_sem", "n"])
    both = pd.concat([base, averages(base)], ignore_index=True)
    keep = both.apply(lambda r: PAPER_ROWS.get(r.predictive, (None,))[0] == r.method, axis=1)
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
    ours = ours_display(summary)
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
    cells = _sorted(cells)
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
    return cells, _sorted(lacking)


def _sorted(df: pd.DataFrame) -> pd.DataFrame:
    if df.empty:
        return df.reset_index(drop=True)
    key = {
        "_d": df.dataset.map(lambda d: len(DATASET_ORDER) if d == AVERAGE else dataset_rank(d)),
        "_p": df.predictive.map(predictive_rank),
        "_m": df.metric.map(METRIC_KEYS.index),
    }
    cols = ["model", "_d", "_p", "_m"] if "model" in df else ["_d", "_p", "_m"]
    return df.assign(**key).sort_values(cols, kind="stable").drop(columns=list(key)).reset_index(drop=True)


# ------------------------------------------------------------------------------------- claims


@dataclass
class Claim:
    id: str
    text: str
    metric: str
    ours: str  # predictive
    other: str  # predictive
    kind: str  # "above" | "below" | "comparable"


def _claims() -> list[Claim]:
    out = [
        Claim(
            "acc_ivon_mean_above_adamw", "IVON@mean accuracy above AdamW", "acc", "ivon_mean", "map", "above"
        )
    ]
    for m in ("ece", "nll", "brier"):
        t = metric_info(m)[0].split()[0]
        out.append(Claim(f"{m}_ivon_below_adamw", f"IVON {t} below AdamW", m, "ivon", "map", "below"))
        out.append(
            Claim(
                f"{m}_ivon_below_mc_dropout", f"IVON {t} below MC Dropout", m, "ivon", "mc_dropout", "below"
            )
        )
    for m in ("ece", "nll", "brier"):
        t = metric_info(m)[0].split()[0]
        for other, name in (("laplace_kfac", "LA (KFAC)"), ("swag", "SWAG")):
            out.append(
                Claim(
                    f"{m}_ivon_comparable_{other}",
                    f"IVON {t} comparable to {name}",
                    m,
                    "ivon",
                    other,
                    "comparable",
                )
            )
    return out


CLAIMS = _claims()


def check_claims(
    summary: pd.DataFrame, records: list[dict] | None = None, z_max: float = Z_MAX
) -> pd.DataFrame:
    """Each claim per model and column (datasets, then Average): holds / does not hold / cannot be
    checked, with the numbers behind the verdict."""
    ours = ours_display(summary)
    cols = ["model", "claim", "text", "column", "verdict", "evidence"]
    if ours.empty:
        return pd.DataFrame(columns=cols)
    labels = column_labels(base_rows(summary))
    idx = {(r.model, r.dataset, r.predictive, r.metric): r for r in ours.itertuples(index=False)}
    rows = []
    for model in sorted(set(ours.model)):
        columns = sorted(
            {d for (mo, d, _, _) in idx if mo == model}, key=lambda d: (d == AVERAGE, dataset_rank(d), d)
        )
        for c in CLAIMS:
            for d in columns:
                a, b = idx.get((model, d, c.ours, c.metric)), idx.get((model, d, c.other, c.metric))
                if a is None or b is None:
                    lacking = " and ".join(p for p, r in ((c.ours, a), (c.other, b)) if r is None)
                    rows.append([model, c.id, c.text, labels.get(d, d), "cannot be checked", f"no {lacking}"])
                    continue
                diff = a.ours - b.ours
                se = math.sqrt(np.nansum([a.ours_sem**2, b.ours_sem**2]))
                if c.kind == "above":
                    ok = diff > 0
                elif c.kind == "below":
                    ok = diff < 0
                else:  # not worse by more than z_max combined SEMs (half a printed unit without SEMs)
                    ok = diff <= (z_max * se if se > 0 else half_unit(c.metric))
                dec = metric_info(c.metric)[2] + 1
                ev = f"{a.ours:.{dec}f} vs {b.ours:.{dec}f} (diff {diff:+.{dec}f}"
                ev += f", combined SEM {se:.{dec}f})" if c.kind == "comparable" else ")"
                rows.append([model, c.id, c.text, labels.get(d, d), "holds" if ok else "does not hold", ev])
    rows += cost_claims(records or [])
    return pd.DataFrame(rows, columns=cols)


def median_step_seconds(run_dir: Path) -> float | None:
    """Median seconds per training step between consecutive ``time/train_s`` rows of ``history.csv``
    (the median skips the intervals that include a validation pass)."""
    path = Path(run_dir) / "history.csv"
    if not path.is_file():
        return None
    try:
        h = pd.read_csv(path)
    except (OSError, ValueError, pd.errors.ParserError):
        return None
    t = (
        h[h.key == "time/train_s"][["step", "value"]]
        .astype(float)
        .drop_duplicates("step")
        .sort_values("step")
    )
    t = pd.concat([pd.DataFrame({"step": [0.0], "value": [0.0]}), t], ignore_index=True)
    per = (t.value.diff() / t.step.diff()).iloc[1:]
    per = per[np.isfinite(per) & (per > 0)]
    return float(per.median()) if len(per) else None


def cost_claims(records: list[dict]) -> list[list]:
    """IVON's median step time vs AdamW's, per dataset and model, from the runs' histories."""
    if not records:
        return []
    times: dict[tuple[str, str, str], list[float]] = {}
    labels: dict[str, str] = {}
    for (dataset, model, method), recs in group_records(records).items():
        if method not in ("adamw", "ivon"):
            continue
        labels[dataset] = dataset_label(recs[0])
        for r in recs:
            s = median_step_seconds(run_dir_of(r))
            if s is not None:
                times.setdefault((dataset, model, method), []).append(s)
    rows = []
    text = f"IVON step time at most {COST_RATIO_MAX}× AdamW's"
    for dataset, model in sorted({(d, m) for d, m, _ in times} | {(d, m) for (d, m, me) in _groups(records)}):
        a, b = times.get((dataset, model, "ivon")), times.get((dataset, model, "adamw"))
        col = labels.get(dataset, DATASET_LABELS.get(dataset, dataset))
        if not a or not b:
            rows.append(
                [
                    model,
                    "cost_ivon_step_time",
                    text,
                    col,
                    "cannot be checked",
                    "no history.csv timing for IVON and AdamW",
                ]
            )
            continue
        ratio = float(np.mean(a) / np.mean(b))
        ev = f"{1000 * np.mean(a):.1f} ms vs {1000 * np.mean(b):.1f} ms per step (×{ratio:.2f}; {len(a)}/{len(b)} runs)"
        rows.append(
            [
                model,
                "cost_ivon_step_time",
                text,
                col,
                "holds" if ratio <= COST_RATIO_MAX else "does not hold",
                ev,
            ]
        )
    return rows


def _groups(records: list[dict]) -> list[tuple[str, str, str]]:
    return [k for k in group_records(records) if k[2] in ("adamw", "ivon")]


# ------------------------------------------------------------------------------------- report


def _fmt(v, metric: str, extra: int, sign: bool = False) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    return f"{v:{'+' if sign else ''}.{metric_info(metric)[2] + extra}f}"


def report_markdown(
    exp: str,
    cells: pd.DataFrame,
    lacking: pd.DataFrame,
    claims: pd.DataFrame,
    paper: pd.DataFrame,
    extra_digits: int = 0,
    z_max: float = Z_MAX,
) -> str:
    n_paper = int(paper["mean"].notna().sum())
    out = [
        f"# {exp} beside the paper's Table 1",
        "",
        f"Paper: {PAPER_SOURCE}; numbers from `bayeslora/results/paper_table1.csv` "
        f"({n_paper} of {len(paper)} cells typed in"
        + (
            "; **the paper's numbers are not in this package yet**, so no cell can be compared"
            if n_paper == 0
            else ""
        )
        + ").",
        "",
        *_paper_self_check(paper),
        f"A cell agrees within noise when |z| ≤ {z_max:g}, z = (ours − paper) / √(SEM_ours² + SEM_paper²), in the "
        "displayed units (ACC and ECE ×100 in %, NLL, Brier); where that SE is 0 or unknown, when "
        "|ours − paper| is at most half a unit of the paper's last printed digit.",
        "",
        "## Cells",
        "",
    ]
    if cells.empty:
        out.append(
            "No comparable cells: the run has none of the paper's rows on the paper's datasets "
            f"({', '.join(DATASET_LABELS[d] for d in DATASET_ORDER)})."
        )
        own = [c for c in dict.fromkeys(claims.column) if c != AVERAGE_LABEL] if len(claims) else []
        if own:
            out += [
                "",
                f"The run's columns ({', '.join(own)}) are not the paper's tasks, so its numbers are not "
                "comparable with the paper's cells (listed below as lacking); the paper's claims are "
                "still checked on the run's own numbers.",
            ]
    else:
        multi = cells.model.nunique() > 1
        out += [
            "| "
            + " | ".join(["row", "column", "metric", "ours", "paper", "ours − paper", "z", "within noise"])
            + " |",
            "|" + "---|" * 8,
        ]
        for r in cells.itertuples(index=False):
            title = metric_info(r.metric)[0]
            ours = _fmt(r.ours, r.metric, extra_digits) + (
                "" if math.isnan(r.ours_sem) else f" ± {_fmt(r.ours_sem, r.metric, extra_digits)}"
            )
            paper_s = (
                "–"
                if pd.isna(r.paper)
                else _fmt(r.paper, r.metric, extra_digits)
                + ("" if pd.isna(r.paper_sem) else f" ± {_fmt(r.paper_sem, r.metric, extra_digits)}")
            )
            within = {True: "yes", False: "**no**"}.get(r.within_noise, "no paper value")
            col = AVERAGE_LABEL if r.dataset == AVERAGE else DATASET_LABELS.get(r.dataset, r.dataset)
            name = f"{r.label} [{r.model}]" if multi else r.label
            z = "–" if pd.isna(r.z) else f"{r.z:+.1f}"
            out.append(
                f"| {name} | {col} | {title} | {ours} | {paper_s} | {_fmt(r.diff, r.metric, extra_digits, True)} | {z} | {within} |"
            )
        compared = cells[cells.within_noise.notna()]
        if len(compared):
            n_ok = int(compared.within_noise.astype(bool).sum())
            out += [
                "",
                f"{n_ok} of {len(compared)} compared cells agree within noise"
                + (" (all)." if n_ok == len(compared) else "."),
            ]
    out += ["", "## Paper cells the run lacks", ""]
    if lacking.empty:
        out.append("None.")
    else:
        g = lacking.groupby(["dataset", "reason"], sort=False).predictive.unique()
        for (d, reason), preds in g.items():
            col = AVERAGE_LABEL if d == AVERAGE else DATASET_LABELS.get(d, d)
            labels = [PAPER_ROWS[p][1] for p in preds]
            out.append(f"- {col}: {', '.join(labels)} ({reason})")
    out += [
        "",
        "## The paper's claims on the reproduced numbers",
        "",
        f'"Comparable": not worse by more than {z_max:g} combined SEMs (better counts). Cost: IVON\'s '
        f"median training-step time (history.csv) at most {COST_RATIO_MAX}× AdamW's (our threshold).",
        "",
    ]
    if claims.empty:
        out.append("No claim can be checked: the run has none of the paper's rows.")
    else:
        multi = claims.model.nunique() > 1
        out += ["| claim | column | verdict | evidence |", "|---|---|---|---|"]
        for r in claims.itertuples(index=False):
            name = f"{r.text} [{r.model}]" if multi else r.text
            v = r.verdict if r.verdict != "does not hold" else "**does not hold**"
            out.append(f"| {name} | {r.column} | {v} | {r.evidence} |")
        counts = claims.verdict.value_counts()
        out += [
            "",
            ", ".join(f"{counts.get(k, 0)} {k}" for k in ("holds", "does not hold", "cannot be checked"))
            + ".",
        ]
    return "\n".join(out) + "\n"


def _paper_self_check(paper: pd.DataFrame) -> list[str]:
    """Report lines naming the paper's cells that disagree with the paper's other printed numbers."""
    lines = []
    for r in paper_average_mismatches(paper).itertuples(index=False):
        dec = metric_info(r.metric)[2]
        lines.append(
            f"- {PAPER_ROWS[r.predictive][1]}, {metric_info(r.metric)[0]}: the Average is printed as "
            f"{r.printed:.{dec}f}, but the row's six printed means average to {r.derived:.{dec + 1}f}."
        )
    for r in paper_change_mismatches(paper).itertuples(index=False):
        dec = metric_info(r.metric)[2]
        col = AVERAGE_LABEL if r.dataset == AVERAGE else DATASET_LABELS.get(r.dataset, r.dataset)
        lines.append(
            f"- {PAPER_ROWS[r.predictive][1]}, {col}, {metric_info(r.metric)[0]}: the change vs AdamW is "
            f"printed as {r.printed:+.{dec}f}, but the printed means differ by {r.derived:+.{dec}f}."
        )
    if not lines:
        return []
    head = "The paper's own numbers disagree in these cells beyond rounding (kept as printed):"
    return [head, "", *lines, ""]


def report_figure(cells: pd.DataFrame):
    """Ours against the paper, one panel per metric (with the y = x line); a note when nothing compares."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(13, 3.4), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(METRIC_KEYS))
    comparable = cells[cells.paper.notna()] if len(cells) else cells
    for ax, metric in zip(axes, METRIC_KEYS):
        ax.set_title(metric_info(metric)[0])
        ax.set_xlabel("paper")
        ax.set_ylabel("ours")
        g = comparable[comparable.metric == metric] if len(comparable) else comparable
        if g.empty:
            ax.text(0.5, 0.5, "no comparable cells", ha="center", va="center", transform=ax.transAxes)
            continue
        ok = g.within_noise.astype(bool)
        for sel, color, lab in ((ok, "tab:green", f"|z| ≤ {Z_MAX:g}"), (~ok, "tab:red", "beyond noise")):
            h = g[sel]
            if len(h):
                ax.errorbar(
                    h.paper,
                    h.ours,
                    xerr=h.paper_sem.fillna(0),
                    yerr=h.ours_sem.fillna(0),
                    fmt="o",
                    color=color,
                    label=lab,
                    ms=4,
                )
        lo, hi = float(min(g.paper.min(), g.ours.min())), float(max(g.paper.max(), g.ours.max()))
        ax.plot([lo, hi], [lo, hi], color="gray", lw=0.8)
        ax.legend(fontsize=7)
    return fig


def write_report(
    records: list[dict],
    summary: pd.DataFrame,
    out: StagedOutputs,
    stem: str,
    exp: str,
    extra_digits: int = 0,
    paper: pd.DataFrame | None = None,
) -> dict[str, Path]:
    """Stage ``<stem>.md``, ``.csv`` (cells, then the lacking cells and claims) and ``.png``."""
    paper = load_paper_table() if paper is None else paper
    cells, lacking, claims = build_report(records, summary, paper)
    md = report_markdown(exp, cells, lacking, claims, paper, extra_digits)
    csv = pd.concat(
        [
            cells.assign(kind="cell"),
            lacking.assign(kind="lacking"),
            claims.rename(columns={"column": "dataset"}).assign(kind="claim"),
        ],
        ignore_index=True,
    )
    paths = {
        "md": out.write_text(f"{stem}.md", md),
        "csv": out.write_text(f"{stem}.csv", csv.to_csv(index=False)),
    }
    paths["png"] = out.path(f"{stem}.png")
    report_figure(cells).savefig(paths["png"], dpi=120)
    return paths


def build_report(records: list[dict], summary: pd.DataFrame, paper: pd.DataFrame):
    """(cells, lacking, claims) of one run set against ``paper``."""
    cells, lacking = compare(summary, paper)
    return cells, lacking, check_claims(summary, records)
