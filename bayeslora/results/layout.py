"""The paper's Table 1 layout: row and column order, labels and the printed precision.

Tables, figures and the comparison with the paper all take their order and labels from here; this
module imports nothing from the package.
"""

from __future__ import annotations

# Table rows (predictives) in the paper's order; the ones after "ivon" are this package's extras.
PREDICTIVE_ORDER = [
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
# The paper's eight rows: predictive -> (training method, printed label).
PAPER_ROWS = {
    "map": ("adamw", "AdamW"),
    "mc_dropout": ("adamw", "+ MC Drop"),
    "laplace_kfac": ("adamw", "+ LA (KFAC)"),
    "laplace_diag": ("adamw", "+ LA (diag)"),
    "swa": ("adamw", "+ SWA"),
    "swag": ("adamw", "+ SWAG"),
    "ivon_mean": ("ivon", "IVON@mean"),
    "ivon": ("ivon", "IVON"),
}
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


def order(values, preferred) -> list:
    """``values`` in ``preferred`` order, the others after it, sorted."""
    values = set(values)
    return [v for v in preferred if v in values] + sorted(v for v in values if v not in preferred)


def predictive_rank(pred: str) -> int:
    return PREDICTIVE_ORDER.index(pred) if pred in PREDICTIVE_ORDER else len(PREDICTIVE_ORDER)


def dataset_rank(dataset: str) -> int:
    return DATASET_ORDER.index(dataset) if dataset in DATASET_ORDER else len(DATASET_ORDER)
