"""All evaluation metrics, computed from predictive probabilities only.

Every predictive returns log-probabilities ``[samples, batch, classes]``; the runner averages them
over samples in log space (:func:`log_mean_probs`) and this module scores the result. NLL is taken
from the log-probabilities when they are given, so it has no cap: an example whose true class has
probability 1e-20 contributes 46.05. Nothing else in the package computes a metric.
"""

from __future__ import annotations

import numpy as np
import torch

METRICS = ("acc", "nll", "ece", "brier")
# Smallest positive float64: -log of it (708.4) bounds NLL only when probabilities alone are given.
_TINY = np.finfo(np.float64).tiny


def _as_numpy(x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().to(torch.float64).cpu().numpy()
    return np.asarray(x, dtype=np.float64)


def mean_probs(probs) -> np.ndarray:
    """Average ``[S, N, C]`` over samples (``[N, C]`` passes through) -> ``[N, C]`` float64."""
    p = _as_numpy(probs)
    if p.ndim == 3:
        p = p.mean(axis=0)
    if p.ndim != 2:
        raise ValueError(f"probabilities must be [N, C] or [S, N, C], got shape {p.shape}")
    return p


def log_mean_probs(log_probs) -> np.ndarray:
    """log of the sample-averaged probabilities, ``log (1/S) Σ_s p_s``, from ``[S, N, C]`` log-probs
    (``[N, C]`` passes through), in float64 with logsumexp (no underflow)."""
    lp = log_probs if isinstance(log_probs, torch.Tensor) else torch.as_tensor(np.asarray(log_probs))
    lp = lp.detach().to(torch.float64).cpu()
    if lp.dim() == 3:
        lp = torch.logsumexp(lp, dim=0) - np.log(lp.shape[0])
    if lp.dim() != 2:
        raise ValueError(f"log-probabilities must be [N, C] or [S, N, C], got shape {tuple(lp.shape)}")
    return lp.numpy()


def calibration_bins(p, labels, n_bins: int = 10) -> dict[str, np.ndarray]:
    """Equal-width bins ``(lo, hi]`` over the max probability of ``p`` ``[N, C]`` (or ``[S, N, C]``,
    averaged over samples first): per bin its ``lo``/``hi`` edges, ``count``, ``acc`` (fraction
    correct) and ``conf`` (mean max probability); ``acc``/``conf`` are NaN for an empty bin.

    The one binning of the package: :func:`expected_calibration_error` and the reliability
    diagrams both use it."""
    if int(n_bins) < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    p = mean_probs(p)
    y = _as_numpy(labels).astype(np.int64)
    conf = p.max(axis=1)
    correct = (p.argmax(axis=1) == y).astype(np.float64)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    # bin b holds conf in (edges[b], edges[b+1]]; conf == 0 cannot occur for a distribution.
    idx = np.clip(np.searchsorted(edges, conf, side="left") - 1, 0, n_bins - 1)
    count = np.bincount(idx, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        acc = np.bincount(idx, weights=correct, minlength=n_bins) / count
        mean_conf = np.bincount(idx, weights=conf, minlength=n_bins) / count
    return {"lo": edges[:-1], "hi": edges[1:], "count": count, "acc": acc, "conf": mean_conf}


def expected_calibration_error(p: np.ndarray, labels: np.ndarray, n_bins: int = 10) -> float:
    """ECE with ``n_bins`` equal-width bins over the max probability, bins ``(lo, hi]``,
    each bin's |accuracy - confidence| weighted by its share of the examples
    (bins from :func:`calibration_bins`)."""
    b = calibration_bins(p, labels, n_bins)
    filled = b["count"] > 0
    share = b["count"][filled] / b["count"].sum()
    return float((share * np.abs(b["acc"][filled] - b["conf"][filled])).sum())


def classification_metrics(probs, labels, n_bins: int = 10, log_probs=None) -> dict[str, float]:
    """Accuracy, NLL, ECE and Brier of the sample-averaged predictive.

    probs: ``[N, C]`` or ``[S, N, C]`` probabilities; labels: ``[N]`` class indices; ``log_probs``:
    optionally ``log p̄`` ``[N, C]`` (then ``probs`` may be None), used for the NLL.
    acc = mean(argmax p̄ == y); nll = mean(-log p̄(y)); ece = equal-width binned calibration error;
    brier = mean over examples of sum over classes (p̄ - onehot)^2 (not divided by C).
    """
    p, y, per = _checked_per_example(probs, labels, log_probs)
    return {
        "acc": float(per["acc"].mean()),
        "nll": float(per["nll"].mean()),
        "ece": expected_calibration_error(p, y, n_bins),
        "brier": float(per["brier"].mean()),
    }


# the metrics that are means of a per-example value (ECE is a statistic of the whole set)
PER_EXAMPLE = ("acc", "nll", "brier")


def per_example_metrics(probs, labels, log_probs=None) -> dict[str, np.ndarray]:
    """Each example's contribution ``[N]`` to acc (1.0 if argmax p̄ == y, else 0.0), NLL (−log p̄(y))
    and Brier (Σ_c (p̄ − onehot)²): :func:`classification_metrics`' acc, nll and brier are their
    means (same arguments). For paired comparisons of two predictives on the same examples."""
    return _checked_per_example(probs, labels, log_probs)[2]


def _checked_per_example(probs, labels, log_probs=None):
    lp = None if log_probs is None else log_mean_probs(log_probs)
    p = np.exp(lp) if probs is None else mean_probs(probs)
    if lp is not None and lp.shape != p.shape:
        raise ValueError(f"log_probs shape {lp.shape} differs from probs shape {p.shape}")
    y = _as_numpy(labels).astype(np.int64)
    if y.ndim != 1 or len(y) != len(p):
        raise ValueError(f"labels must be [N] with N={len(p)}, got shape {y.shape}")
    if len(y) == 0:
        raise ValueError("cannot compute metrics on zero examples")
    if y.min() < 0 or y.max() >= p.shape[1]:
        raise ValueError(f"labels must lie in [0, {p.shape[1]}), got range [{y.min()}, {y.max()}]")
    n = len(y)
    onehot = np.zeros_like(p)
    onehot[np.arange(n), y] = 1.0
    per = {
        "acc": (p.argmax(axis=1) == y).astype(np.float64),
        "nll": -(lp[np.arange(n), y] if lp is not None else np.log(np.maximum(p[np.arange(n), y], _TINY))),
        "brier": ((p - onehot) ** 2).sum(axis=1),
    }
    return p, y, per
