"""The floor: which rows of a run beat the Prior row (the class frequencies of the training rows).

:func:`against_floor` judges every table row of every run beside the ``prior`` row of its column on
NLL and Brier, by the claims' rule (:mod:`bayeslora.results.intervals`): ours − Prior with its 95 %
interval from the paired bootstrap over examples plus the between-seed spread. The Prior depends
on the training labels only, so one set of its probabilities serves every seed (the records that
hold it are checked to agree). docs/results.md ("The floor") states the rule.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from bayeslora.results.intervals import (
    ALPHA,
    CONTRADICTED,
    HOLDS,
    N_BOOT,
    UNCHECKED,
    WITHIN,
    Estimate,
    combine_paired,
    judge,
    replicates,
    resample_indices,
)
from bayeslora.results.layout import DEFAULT_ECE_BINS, dataset_rank, metric_info
from bayeslora.results.runs import group_records, metrics_of, run_dir_of

FLOOR = "prior"  # the row every useful row must beat on NLL and Brier (conf/predictive/prior.yaml)
FLOOR_METRICS = ("nll", "brier")
FLOOR_COLUMNS = [
    "model",
    "dataset",
    "method",
    "predictive",
    "label",
    "metric",
    "n_seeds",
    "ours",
    "floor",
    "diff",
    "lo",
    "hi",
    "verdict",
    "basis",
]
BEATS, WORSE = "beats the prior", "worse than the prior"
FLOOR_VERDICTS = {HOLDS: BEATS, CONTRADICTED: WORSE, WITHIN: WITHIN, UNCHECKED: UNCHECKED}


def _floor_probs(
    recs: list[dict], floor: str, split: str | None = None
) -> tuple[np.ndarray, np.ndarray, str] | None:
    """(labels, probabilities, split) of the ``floor`` row of a column on ``split`` (default: each
    record's first): it depends on the training labels only, so every record that has it must hold
    the same numbers (checked)."""
    found = None
    for r in recs:
        sp = split or r.get("eval_split")
        path = run_dir_of(r) / "preds.npz"
        if floor not in (metrics_of(r, sp) or {}) or not path.is_file():
            continue
        with np.load(path) as z:
            if f"{sp}/{floor}" not in z.files:
                continue
            here = (z[f"{sp}/labels"].astype(np.int64), z[f"{sp}/{floor}"].astype(np.float64), sp)
        if found is not None and not (np.array_equal(found[0], here[0]) and np.allclose(found[1], here[1])):
            raise ValueError(f"two records disagree on the {floor} row: {r['_path']}")
        found = here
    return found


def _row_probs(group: list[dict], split: str, pred: str, labels: np.ndarray, floor: str):
    """Each seed's probabilities of row ``pred`` on the floor's examples, or the reason there are none."""
    probs = []
    for r in group:
        path, where = run_dir_of(r) / "preds.npz", f"{r['method']} seed {r['seed']}"
        if not path.is_file():
            return f"no preds.npz for {where}"
        with np.load(path) as z:
            if f"{split}/{pred}" not in z.files:
                return f"preds.npz of {where} lacks {split}/{pred}"
            if not np.array_equal(z[f"{split}/labels"], labels):
                raise ValueError(f"{r['_path']}: not on the {floor} row's examples")
            probs.append(z[f"{split}/{pred}"].astype(np.float64))
    return probs


def _estimate(probs, floor_p, labels, metric, idx, n_boot, untrained: bool, alpha: float):
    """(estimate in display units, lo, hi, verdict, basis) of one row against the floor."""
    scale = metric_info(metric)[1]
    ours = [replicates(p, labels, metric, idx, DEFAULT_ECE_BINS) for p in probs]
    ref = replicates(floor_p, labels, metric, idx, DEFAULT_ECE_BINS)
    if len(probs) >= 2:
        est = combine_paired(ours, [ref] * len(ours), len(labels), n_boot).scaled(scale)
    elif untrained:  # no training randomness, no seed term
        boot = float(np.var(ours[0][1] - ref[1], ddof=1))
        basis = f"paired bootstrap, untrained × {len(labels)} examples, {n_boot} replicates"
        diff = ours[0][0] - ref[0]
        est = Estimate(ours[0][0], ref[0], diff, ((boot, math.inf),), basis).scaled(scale)
    else:
        full = ours[0][0]
        est = Estimate(full * scale, ref[0] * scale, (full - ref[0]) * scale, (), "")
        basis = "1 seed of a trained run: no between-seed spread"
        return est, math.nan, math.nan, UNCHECKED, basis
    lo, hi = est.interval(alpha)
    return est, lo, hi, judge("below", metric, lo, hi), est.basis


def against_floor(
    records: list[dict],
    floor: str = FLOOR,
    metrics: tuple[str, ...] = FLOOR_METRICS,
    n_boot: int = N_BOOT,
    alpha: float = ALPHA,
    split: str | None = None,
) -> pd.DataFrame:
    """Every row of every run beside the ``floor`` row (the class prior) of its column, on
    ``metrics`` (lower is better) and ``split`` (default: each record's first): ours − floor with
    its 95 % interval, by the claims' rule (:func:`~bayeslora.results.intervals.paired_bootstrap`:
    the same resampled examples for every seed and both rows, plus the between-seed spread); the
    floor is one set of probabilities for every seed (it depends on the training labels only). A
    row of an untrained run (``steps == 0``: no training randomness) is judged on the bootstrap
    alone; a trained row with one seed, or one without predictions, cannot be checked. Verdicts:
    "beats the prior" (interval below 0), "worse than the prior" (above), "within noise",
    "cannot be checked". A column without the floor row has no rows here."""
    rows = []
    by_column: dict[tuple[str, str], list[dict]] = {}
    for r in records:
        if r.get("status") == "success":
            by_column.setdefault((r["model"], r["dataset"]), []).append(r)
    for (model, dataset), recs in sorted(
        by_column.items(), key=lambda kv: (kv[0][0], dataset_rank(kv[0][1]))
    ):
        base = _floor_probs(recs, floor, split)
        if base is None:
            continue
        labels, floor_p, sp = base
        idx = resample_indices(len(labels), n_boot)
        for (_, _, method), group in group_records(recs).items():
            first = group[0]
            for pred in first.get("table_rows") or []:
                if pred == floor:
                    continue
                probs = _row_probs(group, sp, pred, labels, floor)
                for m in metrics:
                    if isinstance(probs, str):  # no predictions: the reason
                        nan = math.nan
                        est, lo, hi, verdict, basis = (
                            Estimate(nan, nan, nan, (), ""),
                            nan,
                            nan,
                            UNCHECKED,
                            probs,
                        )
                    else:
                        untrained = first.get("steps") == 0
                        est, lo, hi, verdict, basis = _estimate(
                            probs, floor_p, labels, m, idx, n_boot, untrained, alpha
                        )
                    label = first["labels"].get(pred, pred)
                    rows.append(
                        [model, dataset, method, pred, label, m, len(group), est.ours, est.other, est.diff]
                        + [lo, hi, FLOOR_VERDICTS[verdict], basis]
                    )
    return pd.DataFrame(rows, columns=FLOOR_COLUMNS)
