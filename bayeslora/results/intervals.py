"""The statistics behind every verdict of the report: an interval of ours − other and its verdict.

* :class:`Estimate`: a difference ours − other with the variance terms behind it, each with its
  degrees of freedom; the interval is ± t(df) √(Σ var), df by Welch–Satterthwaite (a bootstrap term
  counts as infinitely many df, a between-seed term as S − 1);
* :func:`paired_bootstrap` (:func:`resample_indices`, :func:`replicates`, :func:`combine_paired`):
  the paired bootstrap over examples (:data:`N_BOOT` replicates, seeded, the same resampled example
  indices for every seed and both rows), plus the between-seed variance of the per-seed differences
  / S; :func:`between_seed`: the fallback without predictions (√(SEM_a² + SEM_b²), Welch df);
  :func:`average_of`: the Average column (mean of the columns' differences, variance Σ var / D²);
* :func:`judge`: one of :data:`VERDICTS` for an interval and a claim's kind ("above", "below",
  "comparable" with a margin).

Used by the paper's claims (:mod:`bayeslora.results.claims`) and the Prior floor
(:mod:`bayeslora.results.floor`); metrics come from :mod:`bayeslora.metrics`. docs/results.md
states the rule in full.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

from bayeslora import metrics as M
from bayeslora.results.layout import DEFAULT_ECE_BINS, HIGHER_IS_BETTER

HOLDS, WITHIN, CONTRADICTED, UNCHECKED = "holds", "within noise", "contradicted", "cannot be checked"
VERDICTS = (HOLDS, WITHIN, CONTRADICTED, UNCHECKED)
ALPHA = 0.05  # two-sided: 95 % intervals
N_BOOT = 2000  # bootstrap replicates
BOOT_SEED = 20241106  # the resampling's RNG seed (with the number of examples): reruns are identical


@dataclass(frozen=True)
class Estimate:
    """ours − other with the variance terms behind its interval: ``terms`` = (variance, df) pairs
    whose sum is Var(diff); df = inf for a bootstrap term, S − 1 for a between-seed one."""

    ours: float
    other: float
    diff: float
    terms: tuple[tuple[float, float], ...]
    basis: str

    @property
    def se(self) -> float:
        return math.sqrt(sum(v for v, _ in self.terms))

    @property
    def df(self) -> float:
        """Welch–Satterthwaite: (Σ v)² / Σ v² / df (inf when no term has finite df or weight)."""
        den = sum(v * v / df for v, df in self.terms if math.isfinite(df))
        return math.inf if den == 0 else sum(v for v, _ in self.terms) ** 2 / den

    def interval(self, alpha: float = ALPHA) -> tuple[float, float]:
        se = self.se
        if not math.isfinite(self.diff) or not math.isfinite(se):
            return math.nan, math.nan
        if se == 0:
            return self.diff, self.diff
        df = self.df
        q = float(stats.norm.ppf(1 - alpha / 2) if math.isinf(df) else stats.t.ppf(1 - alpha / 2, df))
        return self.diff - q * se, self.diff + q * se

    def scaled(self, k: float) -> Estimate:
        terms = tuple((v * k * k, df) for v, df in self.terms)
        return Estimate(self.ours * k, self.other * k, self.diff * k, terms, self.basis)


def resample_indices(n: int, n_boot: int = N_BOOT, seed: int = BOOT_SEED) -> np.ndarray:
    """``[n_boot, n]`` example indices drawn with replacement; a function of (n, n_boot, seed)
    only, so every seed, row and claim of a column resamples the same examples."""
    return np.random.default_rng([seed, n]).integers(0, n, size=(n_boot, n))


def replicates(probs: np.ndarray, labels: np.ndarray, metric: str, idx: np.ndarray, n_bins: int):
    """(value on all examples, value on each resample ``idx[b]``) of one predictive, by
    :mod:`bayeslora.metrics`: acc, NLL, Brier as means of :func:`~bayeslora.metrics.per_example_metrics`,
    ECE recomputed on each resampled set (:func:`~bayeslora.metrics.expected_calibration_error`)."""
    if not np.isfinite(probs).all():  # NaN or inf probabilities: no number to judge
        return math.nan, np.full(len(idx), math.nan)
    full = M.classification_metrics(probs, labels, n_bins)[metric]
    if metric in M.PER_EXAMPLE:
        per = M.per_example_metrics(probs, labels)[metric]
        return full, per[idx].mean(axis=1)
    return full, np.array([M.expected_calibration_error(probs[i], labels[i], n_bins) for i in idx])


def combine_paired(ours: list[tuple], other: list[tuple], n: int, n_boot: int) -> Estimate:
    """The paired estimate from per-seed (full value, replicates) of both rows, seed by seed:
    diff = mean over seeds of (ours_s − other_s); variance = bootstrap variance of that seed mean
    (ddof 1, df inf) + sample variance of the per-seed differences / S (df S − 1)."""
    s = len(ours)
    d = np.array([a[0] - b[0] for a, b in zip(ours, other)])
    reps = np.mean([a[1] - b[1] for a, b in zip(ours, other)], axis=0)
    boot = float(np.var(reps, ddof=1))
    seeds = float(np.var(d, ddof=1)) / s
    basis = f"paired bootstrap, {s} seeds × {n} examples, {n_boot} replicates"
    return Estimate(
        float(np.mean([a[0] for a in ours])),
        float(np.mean([b[0] for b in other])),
        float(d.mean()),
        ((boot, math.inf), (seeds, float(s - 1))),
        basis,
    )


def paired_bootstrap(
    ours: list[np.ndarray],
    other: list[np.ndarray],
    labels: np.ndarray,
    metric: str,
    n_boot: int = N_BOOT,
    seed: int = BOOT_SEED,
    n_bins: int = DEFAULT_ECE_BINS,
) -> Estimate:
    """ours − other (raw units) from per-seed probabilities ``[N, C]`` of two predictives on the
    same examples (``ours[s]`` and ``other[s]`` from the same seed; at least two seeds)."""
    if len(ours) != len(other) or len(ours) < 2:
        raise ValueError(f"need the same number (>= 2) of seeds per row, got {len(ours)} and {len(other)}")
    labels = np.asarray(labels)
    idx = resample_indices(len(labels), n_boot, seed)
    a = [replicates(np.asarray(p, dtype=np.float64), labels, metric, idx, n_bins) for p in ours]
    b = [replicates(np.asarray(p, dtype=np.float64), labels, metric, idx, n_bins) for p in other]
    return combine_paired(a, b, len(labels), n_boot)


def between_seed(ours: float, ours_sem: float, n_ours: int, other: float, other_sem: float, n_other: int):
    """The fallback without predictions: diff of the two means, variance SEM_a² + SEM_b² with
    n − 1 df each (Welch)."""
    terms = ((ours_sem**2, float(n_ours - 1)), (other_sem**2, float(n_other - 1)))
    return Estimate(ours, other, ours - other, terms, "between-seed SEMs")


def average_of(estimates: list[Estimate]) -> Estimate:
    """The Average column: mean of the columns' differences, variance Σ var / D² (columns are
    independent experiments), every term keeping its df."""
    k = len(estimates)
    terms = tuple((v / k**2, df) for e in estimates for v, df in e.terms)
    bases = sorted({e.basis.split(",")[0] for e in estimates})
    return Estimate(
        float(np.mean([e.ours for e in estimates])),
        float(np.mean([e.other for e in estimates])),
        float(np.mean([e.diff for e in estimates])),
        terms,
        f"mean of {k} columns ({'; '.join(bases)})",
    )


def judge(kind: str, metric: str, lo: float, hi: float, margin: float = math.nan) -> str:
    """The verdict of an interval [lo, hi] of ours − other for a claim of ``kind``; ``margin`` (δ,
    same units) for "comparable". Any NaN: cannot be checked."""
    if any(math.isnan(x) for x in (lo, hi)):
        return UNCHECKED
    if kind == "comparable":
        if math.isnan(margin):
            return UNCHECKED
        # how much worse ours is than the other row (positive = worse)
        w_lo, w_hi = (-hi, -lo) if HIGHER_IS_BETTER[metric] else (lo, hi)
        return HOLDS if w_hi < margin else CONTRADICTED if w_lo > margin else WITHIN
    if kind == "below":
        lo, hi = -hi, -lo
    elif kind != "above":
        raise ValueError(f"unknown claim kind {kind!r}")
    return HOLDS if lo > 0 else CONTRADICTED if hi < 0 else WITHIN
