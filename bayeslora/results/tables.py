"""Summary -> the paper-layout table, as Markdown and LaTeX rendered from one formatted grid.

One block per metric (ACC ↑, ECE ×100 ↓, NLL ↓, Brier ↓); rows are predictives in the paper's order
(each record's ``labels`` names them); columns are the datasets in the paper's order (labels from
the records' ``dataset_label``), then **Average** when there are at least two. A cell is
"mean ± SEM"; ``(n=k)`` marks a cell whose seeds differ from the expected ones. Numbers have the
paper's precision (one decimal for ACC and ECE ×100, two for NLL and Brier) plus ``extra_digits``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from bayeslora.results.layout import (
    AVERAGE,
    AVERAGE_LABEL,
    DATASET_LABELS,
    METRIC_KEYS,
    METRICS,
    POSTHOC_SUFFIX,
    fmt,
    metric_info,
)
from bayeslora.results.runs import AggregationError
from bayeslora.results.summary import averages, base_rows, datasets_of, deltas_vs_adamw, long_table, summarize


@dataclass
class Cell:
    mean: str
    sem: str | None
    n: int | None = None  # shown when the cell's seeds differ from the expected ones


@dataclass
class Block:
    title: str  # the corner cell: "ACC ↑", ..., "Δ vs AdamW"
    rows: list[tuple[str, list[Cell | None]]]


@dataclass
class Grid:
    """The formatted table: column labels, blocks of rows of formatted cells, notes."""

    columns: list[str]
    blocks: list[Block]
    notes: list[str] = field(default_factory=list)


def row_keys(base: pd.DataFrame) -> list[tuple[tuple[str, str, str], str]]:
    """Table rows in the paper's order: ((model, method, predictive), displayed name)."""
    cols = ["model", "method", "predictive", "label", "rank"]
    keys = base[cols].drop_duplicates(["model", "method", "predictive"])

    def sort_key(k):
        model, method, pred, _, rank = k
        return (model, int(rank), method.endswith(POSTHOC_SUFFIX), method, pred)

    ks = sorted(keys.itertuples(index=False, name=None), key=sort_key)
    multi_model = len({k[0] for k in ks}) > 1
    names = [f"{label} [{model}]" if multi_model else str(label) for model, _, _, label, _ in ks]
    dup = {n for n in names if names.count(n) > 1}
    names = [f"{n} ({k[1]}/{k[2]})" if n in dup else n for n, k in zip(names, ks)]
    return [((m, me, p), n) for (m, me, p, _, _), n in zip(ks, names)]


def column_labels(base: pd.DataFrame) -> dict[str, str]:
    """dataset -> column label: the records' ``dataset_label``, else the paper's, else the name."""
    out = {}
    for d, g in base.groupby("dataset"):
        given = g["dataset_label"].dropna() if "dataset_label" in g else pd.Series([], dtype=object)
        out[d] = str(given.iloc[0]) if len(given) else DATASET_LABELS.get(d, d)
    out[AVERAGE] = AVERAGE_LABEL
    return out


def table_columns(datasets: list[str]) -> list[str]:
    """The table's columns: the datasets, then the Average when there are at least two."""
    return [*datasets, AVERAGE] if len(datasets) > 1 else list(datasets)


def grid(df: pd.DataFrame, notes: list[str] | None = None, extra_digits: int = 0) -> Grid:
    """The formatted grid of a summary or long table."""
    base = base_rows(df)
    datasets = datasets_of(base)
    cols = table_columns(datasets)
    labels = column_labels(base)
    rows = row_keys(base)
    avg = averages(base)
    cells = {}
    for r in pd.concat([base, avg], ignore_index=True).itertuples(index=False):
        flag = bool(r.missing_seeds or r.extra_seeds) and r.dataset != AVERAGE
        sem = float(r.sem)
        cells[(r.metric, (r.model, r.method, r.predictive), r.dataset)] = Cell(
            fmt(float(r.mean), r.metric, extra_digits),
            None if math.isnan(sem) else fmt(sem, r.metric, extra_digits),
            (None if pd.isna(r.n) else int(r.n)) if flag else None,
        )
    blocks = [
        Block(title, [(name, [cells.get((metric, key, d)) for d in cols]) for key, name in rows])
        for metric, title, _, _ in METRICS
    ]
    deltas = {}
    for r in deltas_vs_adamw(base, avg).itertuples(index=False):
        metric = r.metric.split("/", 1)[1]
        deltas[(metric, (r.model, r.method, r.predictive), r.dataset)] = Cell(
            fmt(float(r.mean), metric, extra_digits, sign=True), None
        )
    delta_rows = [
        (f"{metric_info(metric)[0]}: {name}", [deltas.get((metric, key, d)) for d in cols])
        for metric in METRIC_KEYS
        for key, name in rows
        if any(k[0] == metric and k[1] == key for k in deltas)
    ]
    if delta_rows:
        blocks.append(Block("Δ vs AdamW", delta_rows))
    out_notes = []
    for key, name in rows:
        lacking = [d for d in datasets if not any((m, key, d) in cells for m in METRIC_KEYS)]
        if lacking and len(datasets) > 1:
            out_notes.append(f"no Average for {name}: it lacks {', '.join(labels[d] for d in lacking)}")
    if len(base):
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
            out_notes.append(f"missing seeds for {dataset}/{model}/{method}{which}: {missing}")
        extra = base[base.extra_seeds != ""][["dataset", "model", "method", "extra_seeds"]].drop_duplicates()
        for r in extra.itertuples(index=False):
            out_notes.append(f"unexpected seeds for {r.dataset}/{r.model}/{r.method}: {r.extra_seeds}")
    return Grid([labels[c] for c in cols], blocks, [*out_notes, *(notes or [])])


def _md_cell(c: Cell | None) -> str:
    if c is None:
        return "–"
    s = c.mean if c.sem is None else f"{c.mean} ± {c.sem}"
    return s + (f" (n={c.n})" if c.n is not None else "")


def markdown_table(df: pd.DataFrame, notes: list[str] | None = None, extra_digits: int = 0) -> str:
    """One block per metric (rows = predictives, columns = datasets + Average), then Δ vs AdamW."""
    if base_rows(df).empty:
        return "(no successful runs)\n"
    g = grid(df, notes, extra_digits)
    out = []
    for b in g.blocks:
        header = [b.title, *g.columns]
        out.append("| " + " | ".join(header) + " |")
        out.append("|" + "---|" * len(header))
        for name, cells in b.rows:
            out.append("| " + " | ".join([name, *map(_md_cell, cells)]) + " |")
        out.append("")
    out += [f"- {note}" for note in g.notes]
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


def _tex_cell(c: Cell | None) -> str:
    if c is None:
        return "--"
    s = f"${c.mean}$" if c.sem is None else f"${c.mean}_{{\\pm {c.sem}}}$"
    return s + (f"\\textsuperscript{{n={c.n}}}" if c.n is not None else "")


def latex_table(df: pd.DataFrame, notes: list[str] | None = None, extra_digits: int = 0) -> str:
    """booktabs tabular(s): the main table (mean with the SEM as subscript), then Δ vs AdamW."""
    if base_rows(df).empty:
        return "% (no successful runs)\n"
    g = grid(df, notes, extra_digits)
    head = " & ".join(["Method", *map(tex_escape, g.columns)])
    spec = "l" + "c" * len(g.columns)
    main = [b for b in g.blocks if b.title != "Δ vs AdamW"]
    delta = [b for b in g.blocks if b.title == "Δ vs AdamW"]
    out = [
        "% generated by bayeslora-table from run records: mean over seeds with the SEM as subscript;",
        "% ACC and ECE in %; \\textsuperscript{n=k} marks cells whose seeds differ from the expected ones.",
        "% needs \\usepackage{booktabs}",
        f"\\begin{{tabular}}{{{spec}}}",
        "\\toprule",
        head + " \\\\",
    ]
    for b in main:
        out.append("\\midrule")
        out.append(f"\\multicolumn{{{len(g.columns) + 1}}}{{l}}{{\\textit{{{tex_escape(b.title)}}}}} \\\\")
        for name, cells in b.rows:
            out.append(" & ".join([tex_escape(name), *map(_tex_cell, cells)]) + " \\\\")
    out += ["\\bottomrule", "\\end{tabular}"]
    for b in delta:
        out += [
            "",
            "% change of each IVON row vs AdamW (difference of the displayed quantities)",
            f"\\begin{{tabular}}{{{spec}}}",
            "\\toprule",
            head.replace("Method", "$\\Delta$ vs AdamW", 1) + " \\\\",
            "\\midrule",
        ]
        for name, cells in b.rows:
            out.append(" & ".join([tex_escape(name), *map(_tex_cell, cells)]) + " \\\\")
        out += ["\\bottomrule", "\\end{tabular}"]
    out += [f"% {note}" for note in g.notes]
    return "\n".join(out) + "\n"


@dataclass
class Tables:
    long: pd.DataFrame
    md: str
    tex: str
    summary: pd.DataFrame | None = None
    figures: dict[str, pd.DataFrame] = field(default_factory=dict)
    written: list[Path] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    verdicts: str = ""  # --vs-paper: the claims' tally, the rows on the Prior, the claims


def make_tables(
    records: list[dict],
    split: str | None = None,
    expected_seeds: list[int] | None = None,
    all_rows: bool = False,
    recomputed_bins: int | None = None,
    extra_digits: int = 0,
) -> Tables:
    """Pure: records -> long frame, Markdown and LaTeX (nothing is read or written)."""
    ok = [r for r in records if r.get("status") == "success"]
    if split is not None and ok and not any(split in (r.get("splits") or {}) for r in ok):
        present = sorted({s for r in ok for s in (r.get("splits") or {})})
        raise AggregationError(
            f"no record has split {split!r}; splits present: {', '.join(present) or 'none'}"
        )
    if int(extra_digits) < 0:
        raise AggregationError(f"--extra-digits must be >= 0, got {extra_digits}")
    summary = summarize(records, split, expected_seeds, all_rows)
    long = long_table(summary)
    notes = []
    if recomputed_bins is not None:
        notes.append(f"metrics recomputed from preds.npz, ECE with {recomputed_bins} bins")
    failed = [r for r in records if r.get("status") != "success"]
    notes += [f"{r.get('status')}: {r['_path']}: {r.get('error')}" for r in failed]
    return Tables(
        long,
        markdown_table(summary, notes, extra_digits),
        latex_table(summary, notes, extra_digits),
        summary,
    )
