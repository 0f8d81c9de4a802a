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


def _floor_probs(recs: list[dict], floor: str) -> tuple[np.ndarray, np.ndarray, str] | None:
    """(labels, probabilities, split) of the ``floor`` row of a column: it depends on the training
    labels only, so every record that has it must hold the same numbers (checked)."""
    found = None
    for r in recs:
        split = r.get("eval_split")
        path = run_dir_of(r) / "preds.npz"
        if floor not in (metrics_of(r, split) or {}) or not path.is_file():
            continue
        with np.load(path) as z:
            if f"{split}/{floor}" not in z.files:
                continue
            here = (z[f"{split}/labels"].astype(np.int64), z[f"{split}/{floor}"].astype(np.float64), split)
        if found is not None and not (np.array_equal(found[0], here[0]) and np.allclose(found[1], here[1])):
            raise ValueError(f"two records disagree on the {floor} row: {r['_path']}")
        found = here
    return found


def against_floor(
    records: list[dict],
    floor: str = FLOOR,
    metrics: tuple[str, ...] = FLOOR_METRICS,
    n_boot: int = N_BOOT,
    alpha: float = ALPHA,
) -> pd.DataFrame:
    """Every row of every run beside the ``floor`` row (the class prior) of its column, on
    ``metrics`` (lower is better): ours − floor with its 95 % interval, by the claims' rule
    (:func:`paired_bootstrap`: the same resampled examples for every seed and both rows, plus the
    between-seed spread); the floor is one set of probabilities for every seed (it depends on the
    training labels only). A row of an untrained run (``steps == 0``: no training randomness) is
    judged on the bootstrap alone; a trained row with one seed cannot be checked. Verdicts:
    "beats the prior" (interval below 0), "worse than the prior" (above), "within noise",
    "cannot be checked"."""
    rows = []
    by_column: dict[tuple[str, str], list[dict]] = {}
    for r in records:
        if r.get("status") == "success":
            by_column.setdefault((r["model"], r["dataset"]), []).append(r)
    for (model, dataset), recs in sorted(
        by_column.items(), key=lambda kv: (kv[0][0], dataset_rank(kv[0][1]))
    ):
        base = _floor_probs(recs, floor)
        if base is None:
            continue
        labels, floor_p, split = base
        idx = resample_indices(len(labels), n_boot)
        groups = group_records(recs)
        for (_, _, method), group in groups.items():
            first = group[0]
            for pred in first.get("table_rows") or []:
                if pred == floor:
                    continue
                probs = []
                for r in group:
                    with np.load(run_dir_of(r) / "preds.npz") as z:
                        if not np.array_equal(z[f"{split}/labels"], labels):
                            raise ValueError(f"{r['_path']}: not on the {floor} row's examples")
                        probs.append(z[f"{split}/{pred}"].astype(np.float64))
                for m in metrics:
                    scale = metric_info(m)[1]
                    ours = [replicates(p, labels, m, idx, DEFAULT_ECE_BINS) for p in probs]
                    ref = replicates(floor_p, labels, m, idx, DEFAULT_ECE_BINS)
                    if len(group) >= 2:
                        est = combine_paired(ours, [ref] * len(ours), len(labels), n_boot).scaled(scale)
                    elif first.get("steps") == 0:  # untrained: no training randomness, no seed term
                        boot = float(np.var(ours[0][1] - ref[1], ddof=1))
                        basis = f"paired bootstrap, untrained × {len(labels)} examples, {n_boot} replicates"
                        diff = ours[0][0] - ref[0]
                        est = Estimate(ours[0][0], ref[0], diff, ((boot, math.inf),), basis).scaled(scale)
                    if len(group) >= 2 or first.get("steps") == 0:
                        lo, hi = est.interval(alpha)
                        verdict, basis = judge("below", m, lo, hi), est.basis
                    else:
                        full = ours[0][0]
                        est = Estimate(full * scale, ref[0] * scale, (full - ref[0]) * scale, (), "")
                        lo = hi = math.nan
                        verdict, basis = UNCHECKED, "1 seed of a trained run: no between-seed spread"
                    rows.append(
                        [
                            model,
                            dataset,
                            method,
                            pred,
                            first["labels"].get(pred, pred),
                            m,
                            len(group),
                            est.ours,
                            est.other,
                            est.diff,
                            lo,
                            hi,
                            FLOOR_VERDICTS[verdict],
                            basis,
                        ]
                    )
    return pd.DataFrame(rows, columns=FLOOR_COLUMNS)
