"""Did each trained run fit? A row of a run that did not is no evidence for or against a claim.

A trained run (a record with ``steps`` > 0 and a ``history.csv``) **fitted** when both hold:

* its training loss fell: the mean of ``train/loss`` over the last tenth of the steps is below both
  the mean over the first tenth and ln C (a uniform guess over C classes) by more than
  :data:`FELL_BY` (2 %) of ln C. A loss that starts above ln C and settles at it has fitted nothing;
* its first table row (the method's validation row: AdamW's MAP, IVON@mean, BLoB@mean) is more
  accurate on the evaluation split than the better of the zero-shot row and the Prior row of the
  same model and dataset (a ``zero_shot`` record: ``trainer.max_steps=0`` with
  ``predictive=[zero_shot,prior]``).

Without a zero-shot record, or without a training history, the fit is not known (``None``) and
nothing is marked. One seed that did not fit marks its method's rows on that model and column, and
on the Average: a claim that uses such a row gets :data:`NOT_EVIDENCE` beside its verdict.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from bayeslora.errors import HistoryError
from bayeslora.results.history import history_path, history_table
from bayeslora.results.runs import run_dir_of

NOT_EVIDENCE = "did not fit: not evidence"
FELL_BY = 0.02  # the loss must fall by more than 2 % of ln C
BASELINE_METHOD = "zero_shot"


@dataclass
class RunFit:
    model: str
    dataset: str
    method: str
    seed: str
    row: str
    n_classes: int
    first_loss: float
    last_loss: float
    acc: float
    baseline: float  # the better of zero-shot's and the Prior's accuracy (NaN: no zero-shot record)
    baseline_row: str

    @property
    def fell(self) -> bool | None:
        if math.isnan(self.first_loss) or math.isnan(self.last_loss):
            return None
        ln_c = math.log(self.n_classes)
        return self.last_loss < min(self.first_loss, ln_c) - FELL_BY * ln_c

    @property
    def above(self) -> bool | None:
        return None if math.isnan(self.baseline) else bool(self.acc > self.baseline)

    @property
    def fitted(self) -> bool | None:
        if self.fell is False or self.above is False:
            return False
        return None if self.fell is None or self.above is None else True

    def why(self) -> str:
        parts = []
        if self.fell is False:
            parts.append(f"training loss {self.first_loss:.3f} → {self.last_loss:.3f} (first → last tenth)")
        if self.above is False:
            parts.append(f"acc {100 * self.acc:.1f} ≤ {self.baseline_row} {100 * self.baseline:.1f}")
        return f"seed {self.seed}: " + ", ".join(parts)


def _n_classes(rec: dict, row: str) -> int:
    path = run_dir_of(rec) / "preds.npz"
    try:
        with np.load(path) as z:
            return int(z[f"{rec['eval_split']}/{row}"].shape[1])
    except (OSError, KeyError, ValueError):
        return 0


def _tenths(rec: dict) -> tuple[float, float]:
    try:
        h = history_table(history_path(rec), ["train/loss"])
    except HistoryError:
        return math.nan, math.nan
    if "train/loss" not in h:
        return math.nan, math.nan
    h = h.dropna(subset=["train/loss"])
    steps = float(rec["steps"])
    first = h[h.step <= 0.1 * steps]["train/loss"]
    last = h[h.step > 0.9 * steps]["train/loss"]
    mean = lambda s: float(s.mean()) if len(s) else math.nan  # noqa: E731
    return mean(first), mean(last)


def _baselines(records: list[dict]) -> dict[tuple[str, str], tuple[float, str]]:
    """(model, dataset) -> (the better accuracy of zero-shot and Prior, which row)."""
    out = {}
    for r in records:
        if r.get("method") != BASELINE_METHOD:
            continue
        metrics = r.get("metrics") or {}
        best = max(
            (
                (float(metrics[k]["acc"]), r["labels"].get(k, k))
                for k in ("zero_shot", "prior")
                if k in metrics
            ),
            default=None,
        )
        if best is not None:
            out[(r["model"], r["dataset"])] = best
    return out


def run_fits(records: list[dict]) -> list[RunFit]:
    """One :class:`RunFit` per successful trained record (those with a training history)."""
    base = _baselines(records)
    fits = []
    for r in records:
        if r.get("status", "success") != "success" or not r.get("steps") or not history_path(r).is_file():
            continue
        row = r["table_rows"][0]
        first, last = _tenths(r)
        acc = float(r["metrics"][row]["acc"])
        baseline, baseline_row = base.get((r["model"], r["dataset"]), (math.nan, ""))
        fits.append(
            RunFit(r["model"], r["dataset"], r["method"], str(r["seed"]), row, _n_classes(r, row) or 2,
                   first, last, acc, baseline, baseline_row)
        )  # fmt: skip
    return fits


def unfit_methods(records: list[dict]) -> dict[tuple[str, str, str], str]:
    """(model, dataset, method) -> why, for every method with a seed that did not fit."""
    out: dict[tuple[str, str, str], list[str]] = {}
    for f in run_fits(records):
        if f.fitted is False:
            out.setdefault((f.model, f.dataset, f.method), []).append(f.why())
    return {k: "; ".join(v) for k, v in out.items()}
