"""All evaluation metrics, computed from predictive probabilities only.

Every method returns probabilities ``[samples, batch, classes]``; this module averages over samples
and scores the result. Nothing else in the package computes a metric.
"""

from __future__ import annotations

import numpy as np
import torch

METRICS = ("acc", "nll", "ece", "brier")
_EPS = 1e-12


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


def expected_calibration_error(p: np.ndarray, labels: np.ndarray, n_bins: int = 10) -> float:
    """ECE with ``n_bins`` equal-width bins over the max probability, bins ``(lo, hi]``,
    each bin's |accuracy - confidence| weighted by its share of the examples."""
    conf = p.max(axis=1)
    correct = (p.argmax(axis=1) == labels).astype(np.float64)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    # bin b holds conf in (edges[b], edges[b+1]]; conf == 0 cannot occur for a distribution.
    idx = np.clip(np.searchsorted(edges, conf, side="left") - 1, 0, n_bins - 1)
    ece = 0.0
    n = len(labels)
    for b in range(n_bins):
        mask = idx == b
        if mask.any():
            ece += mask.sum() / n * abs(correct[mask].mean() - conf[mask].mean())
    return float(ece)


def classification_metrics(probs, labels, n_bins: int = 10) -> dict[str, float]:
    """Accuracy, NLL, ECE and Brier of the sample-averaged predictive.

    probs: ``[N, C]`` or ``[S, N, C]`` probabilities; labels: ``[N]`` class indices.
    acc = mean(argmax p̄ == y); nll = mean(-log p̄(y)); ece = equal-width binned calibration error;
    brier = mean over examples of sum over classes (p̄ - onehot)^2 (not divided by C).
    """
    p = mean_probs(probs)
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
    return {
        "acc": float((p.argmax(axis=1) == y).mean()),
        "nll": float(-np.log(np.clip(p[np.arange(n), y], _EPS, None)).mean()),
        "ece": expected_calibration_error(p, y, n_bins),
        "brier": float(((p - onehot) ** 2).sum(axis=1).mean()),
    }
