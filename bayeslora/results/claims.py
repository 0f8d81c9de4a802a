"""The paper's qualitative claims, checked on the reproduced numbers alone.

Per dataset column and for the Average: holds / does not hold / cannot be checked (a row is
missing). "Comparable" means not worse by more than ``Z_MAX`` combined SEMs (better counts as
comparable). The cost claim is judged from the bench (:mod:`bayeslora.results.cost`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from bayeslora.results.cost import cost_claims
from bayeslora.results.layout import dataset_rank, fmt, metric_info
from bayeslora.results.paper_table import Z_MAX, half_unit, load_paper_table, ours_display
from bayeslora.results.summary import base_rows
from bayeslora.results.tables import column_labels


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
    summary: pd.DataFrame,
    records: list[dict] | None = None,
    z_max: float = Z_MAX,
    paper: pd.DataFrame | None = None,
    bench: dict | None = None,
) -> pd.DataFrame:
    """Each claim per model and column (datasets, then Average): holds / does not hold / cannot be
    checked, with the numbers behind the verdict. ``paper`` names the paper's rows (default: the
    shipped ``paper_table1.csv``); ``bench`` is the bench report the cost claim is judged from
    (:mod:`bayeslora.results.cost`; None: not checked)."""
    ours = ours_display(summary, load_paper_table() if paper is None else paper)
    cols = ["model", "claim", "text", "column", "verdict", "evidence"]
    if ours.empty:
        return pd.DataFrame(columns=cols)
    labels = column_labels(base_rows(summary))
    idx = {(r.model, r.dataset, r.predictive, r.metric): r for r in ours.itertuples(index=False)}
    rows = []
    for model in sorted(set(ours.model)):
        columns = sorted({d for (mo, d, _, _) in idx if mo == model}, key=lambda d: (dataset_rank(d), d))
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
                m = c.metric
                ev = f"{fmt(a.ours, m, 1, scaled=True)} vs {fmt(b.ours, m, 1, scaled=True)} "
                ev += f"(diff {fmt(diff, m, 1, sign=True, scaled=True)}"
                ev += f", combined SEM {fmt(se, m, 1, scaled=True)})" if c.kind == "comparable" else ")"
                rows.append([model, c.id, c.text, labels.get(d, d), "holds" if ok else "does not hold", ev])
    rows += cost_claims(records or [], bench)
    return pd.DataFrame(rows, columns=cols)
