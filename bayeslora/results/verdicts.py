"""The verdicts at a glance: the head of the report against the paper, and what ``make compare`` prints.

* the claims' verdict tally (:data:`~bayeslora.results.intervals.VERDICTS` order);
* the rows that do **not** beat the Prior row: NLL not below the Prior's beyond its 95 % interval
  (:func:`bayeslora.results.floor.against_floor` on NLL: within noise, worse than the prior, or
  cannot be checked), per column with their verdicts;
* for the terminal, the claims with their intervals (the report's evidence column left out).
"""

from __future__ import annotations

import pandas as pd

from bayeslora.results.fit import NOT_EVIDENCE
from bayeslora.results.floor import BEATS
from bayeslora.results.intervals import VERDICTS
from bayeslora.results.layout import DATASET_LABELS, dataset_rank

FLOOR_METRIC = "nll"  # the rows listed are those whose NLL does not beat the Prior's
FLOOR_RULE = "NLL not below the Prior row's beyond its 95 % interval"
NO_CLAIMS = "none can be checked (the run has none of the paper's rows)"
NO_FLOOR = (
    "not checked, no column of the run has a Prior row with saved predictions (`prior` among a run's "
    "predictives adds it, as the zero-shot line of `make mini` does)."
)


def tally(claims: pd.DataFrame) -> str:
    """``37 holds, 17 within noise, 1 contradicted, 0 cannot be checked`` (no full stop)."""
    if claims.empty:
        return NO_CLAIMS
    counts = claims.verdict.value_counts()
    out = ", ".join(f"{counts.get(v, 0)} {v}" for v in VERDICTS)
    if "fit" in claims:
        marked = claims[claims.fit.fillna("").astype(bool)]
        if len(marked):
            held = int((marked.verdict == VERDICTS[0]).sum())
            out += (
                f"; {len(marked)} of these rest on a run that did not fit ({NOT_EVIDENCE})"
                f"{f', {held} of the holds among them' if held else ''}"
            )
    return out


def not_beating_prior(floor: pd.DataFrame | None) -> list[str] | None:
    """``- <column>: <row> (<verdict>), ...`` per column with rows that do not beat the Prior on
    NLL, columns in the paper's order; [] when every row beats it, None when no column has a Prior."""
    if floor is None or floor.empty:
        return None
    nll = floor[floor.metric == FLOOR_METRIC]
    multi = nll.model.nunique() > 1
    out = []
    keys = sorted(set(zip(nll.model, nll.dataset)), key=lambda k: (dataset_rank(k[1]), k[1], k[0]))
    for model, dataset in keys:
        g = nll[(nll.model == model) & (nll.dataset == dataset) & (nll.verdict != BEATS)]
        if g.empty:
            continue
        col = DATASET_LABELS.get(dataset, dataset) + (f" [{model}]" if multi else "")
        out.append(f"- {col}: " + ", ".join(f"{r.label} ({r.verdict})" for r in g.itertuples(index=False)))
    return out


def _floor_lines(floor: pd.DataFrame | None, head: str) -> list[str]:
    rows = not_beating_prior(floor)
    if rows is None:
        return [f"{head}: {NO_FLOOR}"]
    if not rows:
        return [f"{head} ({FLOOR_RULE}): none; every row beats it."]
    return [f"{head} ({FLOOR_RULE}):", "", *rows]


def head_markdown(claims: pd.DataFrame, floor: pd.DataFrame | None) -> list[str]:
    """The report's first lines after its title: the tally, then the rows that do not beat the Prior."""
    return [
        f"**The paper's claims:** {tally(claims)}.",
        "",
        *_floor_lines(floor, "**Rows that do not beat the Prior**"),
        "",
    ]


def terminal_summary(exp: str, claims: pd.DataFrame, floor: pd.DataFrame | None) -> str:
    """What ``make compare`` prints: the tally, the rows that do not beat the Prior, and each claim
    with its verdict and interval (the evidence is in the report)."""
    out = [
        f"{exp} against the paper's claims: {tally(claims)}.",
        *_floor_lines(floor, "Rows that do not beat the Prior"),
    ]
    if not claims.empty:
        multi = claims.model.nunique() > 1
        out += ["", "| claim | column | verdict | 95 % interval |", "|---|---|---|---|"]
        for r in claims.itertuples(index=False):
            name = f"{r.text} [{r.model}]" if multi else r.text
            mark = f" — {NOT_EVIDENCE}" if getattr(r, "fit", "") else ""
            out.append(f"| {name} | {r.column} | {r.verdict}{mark} | {r.interval} |")
    return "\n".join(out) + "\n"
