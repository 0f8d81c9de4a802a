"""The reproduction beside the paper: every Table 1 cell against the paper's, and its claims checked.

``bayeslora-table <exp> --vs-paper`` writes ``<results>/reports/<exp>_vs_paper.{md,csv,png}``:

* **cells** (:mod:`bayeslora.results.paper_table`): each reproduced cell of the paper's eight rows on
  its six datasets and its Average, beside the paper's value, with the difference and z; the paper
  cells the run lacks, and the paper's cells that disagree with its other printed numbers beyond
  rounding (an Average that is not the mean of its row, a change that is not IVON − AdamW);
* **claims** (:mod:`bayeslora.results.claims`): the paper's qualitative claims checked on the
  reproduced numbers alone.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from bayeslora.results.claims import check_claims
from bayeslora.results.cost import COST_RATIO_MAX
from bayeslora.results.draw import save_figure
from bayeslora.results.layout import (
    AVERAGE,
    AVERAGE_LABEL,
    DATASET_LABELS,
    DATASET_ORDER,
    METRIC_KEYS,
    fmt,
    metric_info,
)
from bayeslora.results.outputs import StagedOutputs
from bayeslora.results.paper_table import (
    PAPER_SOURCE,
    Z_MAX,
    compare,
    load_paper_table,
    paper_average_mismatches,
    paper_change_mismatches,
    paper_rows,
)


def report_markdown(
    exp: str,
    cells: pd.DataFrame,
    lacking: pd.DataFrame,
    claims: pd.DataFrame,
    paper: pd.DataFrame,
    extra_digits: int = 0,
    z_max: float = Z_MAX,
) -> str:
    n_paper, rows = int(paper["mean"].notna().sum()), paper_rows(paper)
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
            ours = fmt(r.ours, r.metric, extra_digits, scaled=True) + (
                "" if math.isnan(r.ours_sem) else f" ± {fmt(r.ours_sem, r.metric, extra_digits, scaled=True)}"
            )
            paper_s = (
                "–"
                if pd.isna(r.paper)
                else fmt(r.paper, r.metric, extra_digits, scaled=True)
                + (
                    ""
                    if pd.isna(r.paper_sem)
                    else f" ± {fmt(r.paper_sem, r.metric, extra_digits, scaled=True)}"
                )
            )
            within = {True: "yes", False: "**no**"}.get(r.within_noise, "no paper value")
            col = AVERAGE_LABEL if r.dataset == AVERAGE else DATASET_LABELS.get(r.dataset, r.dataset)
            name = f"{r.label} [{r.model}]" if multi else r.label
            z = "–" if pd.isna(r.z) else f"{r.z:+.1f}"
            out.append(
                f"| {name} | {col} | {title} | {ours} | {paper_s} | {fmt(r.diff, r.metric, extra_digits, sign=True, scaled=True)} | {z} | {within} |"
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
            labels = [rows[p][1] for p in preds]
            out.append(f"- {col}: {', '.join(labels)} ({reason})")
    out += [
        "",
        "## The paper's claims on the reproduced numbers",
        "",
        f'"Comparable": not worse by more than {z_max:g} combined SEMs (better counts). Cost: IVON\'s '
        f"training step at most {COST_RATIO_MAX}× AdamW's (our threshold) as `scripts/bench.py` "
        "measures it, both interleaved in one process on the run's model (`results/bench/bench.json`); "
        "the runs' own wall clocks are not compared, as runs made at different times on a shared "
        "machine are no benchmark.",
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
    rows, lines = paper_rows(paper), []
    for r in paper_average_mismatches(paper).itertuples(index=False):
        lines.append(
            f"- {rows[r.predictive][1]}, {metric_info(r.metric)[0]}: the Average is printed as "
            f"{fmt(r.printed, r.metric, scaled=True)}, but the row's six printed means average to "
            f"{fmt(r.derived, r.metric, 1, scaled=True)}."
        )
    for r in paper_change_mismatches(paper).itertuples(index=False):
        col = AVERAGE_LABEL if r.dataset == AVERAGE else DATASET_LABELS.get(r.dataset, r.dataset)
        lines.append(
            f"- {rows[r.predictive][1]}, {col}, {metric_info(r.metric)[0]}: the change vs AdamW is "
            f"printed as {fmt(r.printed, r.metric, sign=True, scaled=True)}, but the printed means "
            f"differ by {fmt(r.derived, r.metric, sign=True, scaled=True)}."
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
    bench: dict | None = None,
) -> dict[str, Path]:
    """Stage ``<stem>.md``, ``.csv`` (cells, then the lacking cells and claims) and ``.png``;
    ``bench`` (:func:`bayeslora.results.cost.load_bench`) judges the cost claim."""
    paper = load_paper_table() if paper is None else paper
    cells, lacking, claims = build_report(records, summary, paper, bench)
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
    paths["png"] = save_figure(report_figure(cells), out.path(f"{stem}.png"), dpi=120)
    return paths


def build_report(records: list[dict], summary: pd.DataFrame, paper: pd.DataFrame, bench: dict | None = None):
    """(cells, lacking, claims) of one run set against ``paper`` (the cost claim from ``bench``)."""
    cells, lacking = compare(summary, paper)
    return cells, lacking, check_claims(summary, records, paper=paper, bench=bench)
