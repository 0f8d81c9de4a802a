"""The paper's Table 1 layout: column order, metric titles, the printed precision, and formatting.

Tables, figures and the comparison with the paper all take their column order, metric titles and
number formatting from here; row order and row labels come from the records (``ranks``,
``labels``), the paper's rows from ``paper_table1.csv``. This module imports nothing from the
package.
"""

from __future__ import annotations

import math

# Row order of records written before they carried ``ranks``; every conf/predictive/<name>.yaml's
# ``table_rank`` is the source of truth, and for these rows it is 10 × the position here.
LEGACY_ROW_ORDER = [
    "zero_shot",
    "map",
    "mc_dropout",
    "laplace_kfac",
    "laplace_diag",
    "swa",
    "swag",
    "ivon_mean",
    "ivon",
    "ensemble",
    "blob_mean",
    "blob",
]
# Columns in the paper's order.
DATASET_ORDER = ["winogrande_s", "arc_c", "arc_e", "winogrande_m", "obqa", "boolq"]
# Fallback column labels for records written before records carried ``dataset_label``
# (conf/dataset/<name>.yaml ``label:`` is the source of truth).
DATASET_LABELS = {
    "winogrande_s": "WG-S",
    "arc_c": "ARC-C",
    "arc_e": "ARC-E",
    "winogrande_m": "WG-M",
    "obqa": "OBQA",
    "boolq": "BoolQ",
}
# (key, title, display scale, decimals as printed in the paper)
METRICS = [
    ("acc", "ACC ↑", 100.0, 1),
    ("ece", "ECE ×100 ↓", 100.0, 1),
    ("nll", "NLL ↓", 1.0, 2),
    ("brier", "Brier ↓", 1.0, 2),
]
METRIC_KEYS = [m for m, *_ in METRICS]
HIGHER_IS_BETTER = {"acc": True, "ece": False, "nll": False, "brier": False}
AVERAGE = "average"
AVERAGE_LABEL = "Average"
DELTA = "delta_vs_adamw"
# the row the IVON rows are compared with: (method, predictive)
BASELINE = ("adamw", "map")
DELTA_PREDICTIVES = ("ivon_mean", "ivon")
DEFAULT_ECE_BINS = 10
POSTHOC_SUFFIX = "_posthoc_ensemble"


def metric_info(metric: str) -> tuple[str, float, int]:
    """(title, display scale, paper decimals) of a metric key."""
    _, title, scale, dec = next(m for m in METRICS if m[0] == metric)
    return title, scale, dec


def fmt(value, metric: str, extra_digits: int = 0, sign: bool = False, scaled: bool = False) -> str:
    """A value with the paper's precision for ``metric`` plus ``extra_digits``: raw units (fractions)
    are scaled to the displayed ones (ACC and ECE ×100) unless ``scaled``; None or NaN is "–"."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    _, scale, dec = metric_info(metric)
    v = float(value) if scaled else float(value) * scale
    return f"{v:{'+' if sign else ''}.{dec + int(extra_digits)}f}"


def legacy_rank(pred: str) -> int:
    """The row rank of a predictive in a record without ``ranks`` (unknown ones last)."""
    order = LEGACY_ROW_ORDER
    return 10 * (order.index(pred) if pred in order else len(order))


def dataset_rank(dataset: str) -> int:
    """Columns in the paper's order, then the others, then the Average."""
    if dataset == AVERAGE:
        return len(DATASET_ORDER) + 1
    return DATASET_ORDER.index(dataset) if dataset in DATASET_ORDER else len(DATASET_ORDER)
