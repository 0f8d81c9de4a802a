"""The paper's cost claim ("IVON costs about the same as AdamW"), judged from the bench.

A cost ratio needs both optimizers timed under the same conditions: ``scripts/bench.py``
(``make bench``) times AdamW and IVON training steps of the same model, interleaved in one process,
and writes the ratio to ``<results>/bench/bench.json``. The claim holds on a model when that
measured ratio is at most ``COST_RATIO_MAX`` (our reading of "about the same", not a number from
the paper). The runs' own ``history.csv`` wall clocks are never compared: runs made at different
times on a shared machine are no benchmark, and a rerun would change the verdict. A model the bench
has not measured is "cannot be checked", saying so.
"""

from __future__ import annotations

import json
from pathlib import Path

from bayeslora.errors import AggregationError
from bayeslora.results.layout import DATASET_LABELS
from bayeslora.results.runs import dataset_label, group_records

COST_RATIO_MAX = 1.25
BENCH_FILE = Path("bench") / "bench.json"
CLAIM_ID = "cost_ivon_step_time"
CLAIM_TEXT = f"IVON training step at most {COST_RATIO_MAX}× AdamW's (bench)"
METHODS = ("adamw", "ivon")


def load_bench(results_dir: Path) -> dict | None:
    """``<results>/bench/bench.json`` (None when absent); one clear error when it is unreadable."""
    path = Path(results_dir) / BENCH_FILE
    if not path.is_file():
        return None
    try:
        bench = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise AggregationError(f"{path}: unreadable ({e})") from None
    if not isinstance(bench, dict) or not isinstance(bench.get("models", {}), dict):
        raise AggregationError(f"{path}: not a bench report (no 'models' mapping)")
    return bench


def bench_ratio(bench: dict | None, model: str) -> float | None:
    """IVON's measured training-step time over AdamW's on ``model``, or None if not measured."""
    training = ((bench or {}).get("models", {}).get(model) or {}).get("training") or {}
    ivon, adamw = training.get("ivon") or {}, training.get("adamw") or {}
    if "median_s" not in ivon or "median_s" not in adamw or not adamw["median_s"] > 0:
        return None
    return float(ivon["median_s"]) / float(adamw["median_s"])


def _conditions(bench: dict, model: str) -> str:
    """How ``model`` was measured: its own ``conditions`` (a ``bench.py --merge`` entry) or the report's."""
    own = (bench.get("models", {}).get(model) or {}).get("conditions")
    args = own or bench.get("args") or {}
    machine = (own or bench).get("machine") or "machine not recorded"
    steps = (
        f"median of {args['steps']} steps × {args.get('repeat', 1)} repeats, " if args.get("steps") else ""
    )
    batches = f", on {args['dataset']} batches" if args.get("dataset") else ""
    return f"{steps}interleaved in one process; {machine}{batches}"


def cost_claims(records: list[dict], bench: dict | None) -> list[list]:
    """One row per (model, dataset column) that has AdamW and IVON runs: the bench's ratio for the
    model, or why the claim cannot be checked."""
    columns: dict[str, dict[str, str]] = {}
    for (dataset, model, method), recs in group_records(records).items():
        if method in METHODS:
            columns.setdefault(model, {})[dataset] = dataset_label(recs[0])
    rows = []
    for model, datasets in sorted(columns.items()):
        ratio = bench_ratio(bench, model)
        for dataset, label in sorted(datasets.items()):
            col = label or DATASET_LABELS.get(dataset, dataset)
            if ratio is None:
                why = (
                    f"no bench of {model} in results/{BENCH_FILE.as_posix()} (make bench); the runs' "
                    "wall clocks are not compared: runs made at different times on a shared machine "
                    "are no benchmark"
                )
                rows.append([model, CLAIM_ID, CLAIM_TEXT, col, "cannot be checked", why])
                continue
            verdict = "holds" if ratio <= COST_RATIO_MAX else "contradicted"
            ev = f"×{ratio:.2f} per training step on {model} (scripts/bench.py: {_conditions(bench, model)})"
            rows.append([model, CLAIM_ID, CLAIM_TEXT, col, verdict, ev])
    return rows
