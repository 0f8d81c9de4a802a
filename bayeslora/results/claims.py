"""The paper's qualitative claims, checked on the reproduced numbers alone.

Per dataset column and for the Average: holds / does not hold / cannot be checked (a row is
missing). "Comparable" means not worse by more than ``Z_MAX`` combined SEMs (better counts as
comparable). The cost claim compares IVON's median training-step time with AdamW's, from each run's
``history.csv`` (``time/train_s`` per logged step); it holds when the ratio is at most
``COST_RATIO_MAX`` (our reading of "similar cost", not a number from the paper).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from bayeslora.results.history import median_step_seconds
from bayeslora.results.layout import DATASET_LABELS, dataset_rank, fmt, metric_info
from bayeslora.results.paper_table import Z_MAX, half_unit, load_paper_table, ours_display
from bayeslora.results.runs import dataset_label, group_records
from bayeslora.results.summary import base_rows
from bayeslora.results.tables import column_labels

COST_RATIO_MAX = 1.25


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
) -> pd.DataFrame:
    """Each claim per model and column (datasets, then Average): holds / does not hold / cannot be
    checked, with the numbers behind the verdict. ``paper`` names the paper's rows (default: the
    shipped ``paper_table1.csv``)."""
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
    rows += cost_claims(records or [])
    return pd.DataFrame(rows, columns=cols)


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
            s = median_step_seconds(r)
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
