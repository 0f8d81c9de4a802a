"""The reproduction beside the paper: every Table 1 cell against the paper's, and its claims checked.

``bayeslora-table <exp> --vs-paper`` writes ``<results>/reports/<exp>_vs_paper.{md,csv,png}``:

* **the verdicts** (:mod:`bayeslora.results.verdicts`), first: the claims' tally and the rows that
  do not beat the Prior row on NLL (:mod:`bayeslora.results.floor`), which ``make compare`` also
  prints;
* **pattern** (:func:`bayeslora.results.paper_table.pattern`): what compares across model
  scales: per metric and column, each row's change against AdamW (sign, and size relative to
  AdamW's value) beside the paper's, the rows' rank order and Kendall's τ between ours and the
  paper's, with its p;
* **absolute cells** (:mod:`bayeslora.results.paper_table`): each reproduced cell of the paper's
  eight rows on its six datasets and its Average, beside the paper's value, with the difference and
  t judged against Student's t (Welch–Satterthwaite df), for runs of the paper's model only (any
  other model: "different model", listed, never judged); the paper cells the run lacks, and the
  paper's cells that disagree with its other printed numbers beyond rounding (an Average that is not
  the mean of its row, a change that is not IVON − AdamW);
* **claims** (:mod:`bayeslora.results.claims`): the paper's qualitative claims checked on the
  reproduced numbers alone;
* the figure (:mod:`bayeslora.results.paper_figure`): the pattern's changes from AdamW, ours
  against the paper's; not written when nothing compares.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from bayeslora.results.claims import RULE as CLAIMS_RULE
from bayeslora.results.claims import VERDICTS, check_claims
from bayeslora.results.cost import COST_RATIO_MAX
from bayeslora.results.draw import save_figure
from bayeslora.results.fit import NOT_EVIDENCE
from bayeslora.results.floor import against_floor
from bayeslora.results.layout import (
    AVERAGE,
    AVERAGE_LABEL,
    BASELINE,
    DATASET_LABELS,
    DATASET_ORDER,
    fmt,
    metric_info,
)
from bayeslora.results.outputs import StagedOutputs
from bayeslora.results.paper_figure import report_figure
from bayeslora.results.paper_table import (
    ALPHA,
    DIFFERENT_MODEL,
    PAPER_SEEDS,
    PAPER_SOURCE,
    Z_MAX,
    compare,
    is_paper_model,
    load_paper_table,
    paper_average_mismatches,
    paper_change_mismatches,
    paper_rows,
    pattern,
)
from bayeslora.results.runs import AggregationError
from bayeslora.results.verdicts import head_markdown, terminal_summary

PATTERN_HEADING = "The pattern beside the paper's"
ABSOLUTE_HEADING = "Absolute cells (ours − paper)"


def report_markdown(
    exp: str,
    cells: pd.DataFrame,
    lacking: pd.DataFrame,
    claims: pd.DataFrame,
    paper: pd.DataFrame,
    extra_digits: int = 0,
    z_max: float = Z_MAX,
    pattern_tables: tuple[pd.DataFrame, pd.DataFrame] | None = None,
    floor: pd.DataFrame | None = None,
) -> str:
    """The report: first the claims' tally and the rows that do not beat the Prior (``floor`` =
    :func:`bayeslora.results.floor.against_floor`'s frame; None: not checked), then the pattern
    (``pattern_tables`` = :func:`bayeslora.results.paper_table.pattern`'s (rows, ranks); None: none
    compared), the absolute cells, the lacking cells, the claims."""
    n_paper, rows = int(paper["mean"].notna().sum()), paper_rows(paper)
    out = [
        f"# {exp} beside the paper's Table 1",
        "",
        *head_markdown(claims, floor),
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
        *pattern_markdown(*(pattern_tables or (pd.DataFrame(), pd.DataFrame())), extra_digits=extra_digits),
        f"## {ABSOLUTE_HEADING}",
        "",
        "t = (ours − paper) / √(SEM_ours² + SEM_paper²), in the displayed units (ACC and ECE ×100 in %, "
        f"NLL, Brier). A cell agrees within noise when |t| is at most the two-sided {100 * (1 - ALPHA):g} % "
        "point of Student's t with Welch–Satterthwaite degrees of freedom (df; n − 1 per SEM: our "
        f"seeds and the paper's {PAPER_SEEDS} runs, so with three seeds df lies between 2 and 4 and the "
        f"threshold between 4.30 and 2.78): about {100 * ALPHA:g} % of cells disagree by chance where "
        "ours and the paper's agree in truth. The paper's SEM as used: as printed; a printed 0.00 "
        "means below half a unit of its last digit and is floored at that half unit (‡); the Average, "
        "printed without SEM, gets √(Σ SEM²) / 6 over its row's six SEMs, as our Average does (†). "
        "Where our SEM is unknown (one seed), a cell agrees when |ours − paper| is at most half a unit "
        "of the paper's last printed digit. Only runs of the paper's model (Llama-2-7B, "
        "`model=llama2_7b`) are judged: the paper's cells are that model's, so for any other model "
        f'the cells are listed for reference and labelled "{DIFFERENT_MODEL}".',
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
        other = [m for m in dict.fromkeys(cells.model) if not is_paper_model(m)]
        for m in other:
            out += [
                f"**{m}: {DIFFERENT_MODEL}** (the paper's numbers are Llama-2-7B's; the pattern above "
                "is the comparison that carries across models). Its cells below are not judged.",
                "",
            ]
        header = [
            "row",
            "column",
            "metric",
            "ours",
            "paper",
            "ours − paper",
            "t",
            "df",
            "|t| ≤",
            "within noise",
        ]
        out += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        marks = {"derived": "†", "floored": "‡"}
        for r in cells.itertuples(index=False):
            title = metric_info(r.metric)[0]
            ours = fmt(r.ours, r.metric, extra_digits, scaled=True) + (
                "" if math.isnan(r.ours_sem) else f" ± {fmt(r.ours_sem, r.metric, extra_digits, scaled=True)}"
            )
            mark = marks.get(r.paper_sem_basis, "")
            sem_digits = max(extra_digits, 1) if mark else extra_digits  # not printed: a digit more
            paper_s = (
                "–"
                if pd.isna(r.paper)
                else fmt(r.paper, r.metric, extra_digits, scaled=True)
                + (
                    ""
                    if pd.isna(r.paper_sem)
                    else f" ± {fmt(r.paper_sem, r.metric, sem_digits, scaled=True)}{mark}"
                )
            )
            within = {True: "yes", False: "**no**"}.get(
                r.within_noise, "different model" if r.basis == "different model" else "no paper value"
            )
            col = AVERAGE_LABEL if r.dataset == AVERAGE else DATASET_LABELS.get(r.dataset, r.dataset)
            name = f"{r.label} [{r.model}]" if multi else r.label
            t = "–" if pd.isna(r.t) else f"{r.t:+.1f}"
            df = "–" if pd.isna(r.df) else f"{r.df:.1f}"
            thr = "–" if pd.isna(r.threshold) else f"{r.threshold:.2f}"
            out.append(
                f"| {name} | {col} | {title} | {ours} | {paper_s} | {fmt(r.diff, r.metric, extra_digits, sign=True, scaled=True)} | {t} | {df} | {thr} | {within} |"
            )
        if set(cells.paper_sem_basis.dropna()) & set(marks):
            out += [
                "",
                "† the paper's Average SEM, derived: √(Σ SEM²) / 6; ‡ printed 0.00, floored at half a unit.",
            ]
        compared = cells[cells.within_noise.notna()]
        if len(compared):
            n_ok = int(compared.within_noise.astype(bool).sum())
            out += [
                "",
                f"{n_ok} of {len(compared)} judged cells agree within noise"
                + (" (all)." if n_ok == len(compared) else "."),
            ]
        elif other:
            out += ["", "No cell is judged: no run of the paper's model."]
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
        f"{CLAIMS_RULE} Cost: IVON's training step at most {COST_RATIO_MAX}× AdamW's (our "
        "threshold; one ratio, no interval) as `scripts/bench.py` measures it, both interleaved in "
        "one process on the run's model (`results/bench/bench.json`); "
        "the runs' own wall clocks are not compared, as runs made at different times on a shared "
        "machine are no benchmark.",
        "",
    ]
    if claims.empty:
        out.append("No claim can be checked: the run has none of the paper's rows.")
    else:
        multi = claims.model.nunique() > 1
        out += ["| claim | column | verdict | 95 % interval | evidence |", "|---|---|---|---|---|"]
        for r in claims.itertuples(index=False):
            name = f"{r.text} [{r.model}]" if multi else r.text
            v = r.verdict if r.verdict != "contradicted" else "**contradicted**"
            fit = getattr(r, "fit", "") or ""
            if fit:
                v += f" — *{NOT_EVIDENCE}*"
            ev = f"{r.evidence}; {fit}" if fit else r.evidence
            out.append(f"| {name} | {r.column} | {v} | {r.interval} | {ev} |")
        counts = claims.verdict.value_counts()
        out += [
            "",
            ", ".join(f"{counts.get(k, 0)} {k}" for k in VERDICTS) + ".",
        ]
    return "\n".join(out) + "\n"


def _pvalue(p: float) -> str:
    if pd.isna(p):
        return "–"
    return f"{p:.3f}" if p >= 0.001 else f"{p:.1e}"


def _relative(rel: float) -> str:
    return "–" if pd.isna(rel) else f"{100 * rel:+.1f} %"


def pattern_markdown(rows: pd.DataFrame, ranks: pd.DataFrame, extra_digits: int = 0) -> list[str]:
    """The report's first section: Kendall's τ per column and metric, then each row against AdamW,
    ours beside the paper's (:func:`bayeslora.results.paper_table.pattern`)."""
    out = [
        f"## {PATTERN_HEADING}",
        "",
        "What compares across models and scales: per metric and column, how each of the paper's rows "
        "moves from AdamW, and the order of the rows, beside the paper's. Kendall's τ_b between our "
        "rows' values and the paper's (1: the same order, −1: the reverse, 0: unrelated), with the "
        "two-sided p of `scipy.stats.kendalltau` (exact when neither side has ties, else the normal "
        "approximation); same direction: the rows whose change from AdamW has the paper's sign.",
        "",
    ]
    if ranks.empty:
        return out + ["No column of the paper's is in the run, so there is no pattern to compare.", ""]
    multi = ranks.model.nunique() > 1

    def column(model: str, d: str) -> str:
        col = AVERAGE_LABEL if d == AVERAGE else DATASET_LABELS.get(d, d)
        return f"{col} [{model}]" if multi else col

    out += [
        "| column | metric | rows | Kendall's τ | p | same direction as the paper |",
        "|---|---|---|---|---|---|",
    ]
    for r in ranks.itertuples(index=False):
        tau = "–" if pd.isna(r.tau) else f"{r.tau:+.2f}"
        out.append(
            f"| {column(r.model, r.dataset)} | {metric_info(r.metric)[0]} | {r.n_rows} | {tau} | "
            f"{_pvalue(r.p)} | {r.n_same_direction} of {r.n_changes} |"
        )
    out += [
        "",
        "Each row against AdamW (change = row − AdamW in the displayed units; relative = change / "
        "AdamW's value; rank 1 = the best of the rows):",
        "",
        "| column | metric | row | ours | ours − AdamW | relative | rank | paper | paper − AdamW | "
        "relative | rank | same direction |",
        "|" + "---|" * 12,
    ]
    for r in rows.itertuples(index=False):
        m, d = r.metric, extra_digits
        same = {True: "yes", False: "**no**"}.get(r.same_direction, "–")
        ref = r.predictive == BASELINE[1]  # AdamW itself: the reference of the changes
        ours_change = "ref." if ref else fmt(r.ours_change, m, d, sign=True, scaled=True)
        paper_change = "ref." if ref else fmt(r.paper_change, m, sign=True, scaled=True)
        out.append(
            f"| {column(r.model, r.dataset)} | {metric_info(m)[0]} | {r.label} | "
            f"{fmt(r.ours, m, d, scaled=True)} | {ours_change} | {'–' if ref else _relative(r.ours_rel)} | "
            f"{r.ours_rank} | {fmt(r.paper, m, scaled=True)} | {paper_change} | "
            f"{'–' if ref else _relative(r.paper_rel)} | {r.paper_rank} | {same} |"
        )
    return out + [""]


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


@dataclass
class Report:
    paths: dict[str, Path]  # the staged files: md, csv, and png when something compares
    verdicts: str  # what ``make compare`` prints (:func:`bayeslora.results.verdicts.terminal_summary`)


def write_report(
    records: list[dict],
    summary: pd.DataFrame,
    out: StagedOutputs,
    stem: str,
    exp: str,
    extra_digits: int = 0,
    paper: pd.DataFrame | None = None,
    bench: dict | None = None,
    split: str | None = None,
) -> Report:
    """Stage ``<stem>.md``, ``.csv`` (the pattern's τ rows and its rows, the cells, then the lacking
    cells and claims; ``kind`` says which) and ``.png`` (only when something compares; an old one is
    removed otherwise); ``bench`` (:func:`bayeslora.results.cost.load_bench`) judges the cost claim,
    ``split`` is the split the rows are judged against the Prior on (default: each record's first)."""
    paper = load_paper_table() if paper is None else paper
    cells, lacking, claims = build_report(records, summary, paper, bench)
    rows, ranks = pattern(summary, paper)
    try:
        floor = against_floor(records, metrics=("nll",), split=split)
    except ValueError as e:
        raise AggregationError(f"the rows against the Prior: {e}") from None
    md = report_markdown(
        exp, cells, lacking, claims, paper, extra_digits, pattern_tables=(rows, ranks), floor=floor
    )
    csv = pd.concat(
        [
            ranks.assign(kind="rank"),
            rows.assign(kind="pattern"),
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
    fig = report_figure(rows)
    if fig is None:
        out.remove(f"{stem}.png")
    else:
        paths["png"] = save_figure(fig, out.path(f"{stem}.png"), dpi=120)
    return Report(paths, terminal_summary(exp, claims, floor))


def build_report(records: list[dict], summary: pd.DataFrame, paper: pd.DataFrame, bench: dict | None = None):
    """(cells, lacking, claims) of one run set against ``paper`` (the cost claim from ``bench``)."""
    cells, lacking = compare(summary, paper)
    return cells, lacking, check_claims(summary, records, paper=paper, bench=bench)
