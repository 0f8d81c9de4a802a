"""Tests of bayeslora.metrics.classification_metrics against hand-computed values and an
independent loop implementation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from bayeslora.metrics import METRICS, classification_metrics

# ---------------------------------------------------------------------------------------------
# Hand-computed example (C = 3, 10 bins)
# ---------------------------------------------------------------------------------------------

HAND_PROBS = [
    [0.7, 0.2, 0.1],  # row 0: y=0, argmax 0 (correct), conf 0.7  -> on the 0.7 edge -> bin (0.6, 0.7]
    [0.5, 0.25, 0.25],  # row 1: y=1, argmax 0 (wrong),  conf 0.5  -> on the 0.5 edge -> bin (0.4, 0.5]
    [0.0, 0.0, 1.0],  # row 2: y=2, argmax 2 (correct), conf 1.0  -> bin (0.9, 1.0]
    [0.1, 0.65, 0.25],  # row 3: y=2, argmax 1 (wrong),  conf 0.65 -> bin (0.6, 0.7]
    [0.2, 0.2, 0.6],  # row 4: y=2, argmax 2 (correct), conf 0.6  -> on the 0.6 edge -> bin (0.5, 0.6]
]
HAND_LABELS = [0, 1, 2, 2, 2]

# acc: rows 0, 2, 4 correct -> 3/5.
HAND_ACC = 3 / 5
# nll: p(y) per row = 0.7, 0.25, 1.0, 0.25, 0.6.
HAND_NLL = -(math.log(0.7) + math.log(0.25) + math.log(1.0) + math.log(0.25) + math.log(0.6)) / 5
# brier, per row sum_c (p_c - onehot_c)^2:
#   row 0: 0.3^2 + 0.2^2 + 0.1^2           = 0.09 + 0.04 + 0.01     = 0.14
#   row 1: 0.5^2 + 0.75^2 + 0.25^2         = 0.25 + 0.5625 + 0.0625 = 0.875
#   row 2: 0
#   row 3: 0.1^2 + 0.65^2 + 0.75^2         = 0.01 + 0.4225 + 0.5625 = 0.995
#   row 4: 0.2^2 + 0.2^2 + 0.4^2           = 0.04 + 0.04 + 0.16     = 0.24
#   sum 2.25, mean over 5 rows -> 0.45 (NOT divided by C=3).
HAND_BRIER = 0.45
# ece, bins (lo, hi]:
#   (0.4, 0.5]: row 1       -> weight 1/5, |acc 0 - conf 0.5|          = 0.5   -> 0.1
#   (0.5, 0.6]: row 4       -> weight 1/5, |acc 1 - conf 0.6|          = 0.4   -> 0.08
#   (0.6, 0.7]: rows 0 and 3 -> weight 2/5, |acc 0.5 - conf 0.675|     = 0.175 -> 0.07
#   (0.9, 1.0]: row 2       -> weight 1/5, |acc 1 - conf 1.0|          = 0     -> 0
#   total 0.25.  (With bins [lo, hi) instead, 0.5 alone in [0.5, 0.6) -> 0.1, 0.6 and 0.65 in
#   [0.6, 0.7) -> 2/5 * |0.5 - 0.625| = 0.05, 0.7 alone in [0.7, 0.8) -> 1/5 * 0.3 = 0.06: 0.21.)
HAND_ECE = 0.25


def test_hand_computed_values():
    m = classification_metrics(np.array(HAND_PROBS), np.array(HAND_LABELS))
    assert set(m) == set(METRICS) == {"acc", "nll", "ece", "brier"}
    assert m["acc"] == pytest.approx(HAND_ACC, abs=1e-12)
    assert m["nll"] == pytest.approx(HAND_NLL, abs=1e-12)
    assert m["brier"] == pytest.approx(HAND_BRIER, abs=1e-12)
    assert m["ece"] == pytest.approx(HAND_ECE, abs=1e-12)
    assert all(isinstance(v, float) for v in m.values())


def test_hand_computed_values_from_torch_and_lists():
    ref = classification_metrics(np.array(HAND_PROBS), np.array(HAND_LABELS))
    from_torch = classification_metrics(
        torch.tensor(HAND_PROBS, dtype=torch.float64), torch.tensor(HAND_LABELS)
    )
    from_lists = classification_metrics(HAND_PROBS, HAND_LABELS)
    for k in METRICS:
        assert from_torch[k] == pytest.approx(ref[k], abs=1e-12)
        assert from_lists[k] == pytest.approx(ref[k], abs=1e-12)


def test_accuracy_uses_sample_averaged_probs_not_majority_vote():
    # S=3 samples of one example, C=2: two samples say class 0 (0.51), one says class 1 (1.0).
    # Majority vote -> class 0; the mean [0.34, 0.66] -> class 1.
    probs = np.array([[[0.51, 0.49]], [[0.51, 0.49]], [[0.0, 1.0]]])
    m = classification_metrics(probs, np.array([1]))
    assert m["acc"] == 1.0
    # nll of the mean, -log 0.66 = 0.4155 (not the mean of per-sample nlls, (2 * -log 0.49 + 0) / 3 = 0.4756)
    assert m["nll"] == pytest.approx(-math.log(0.66), abs=1e-12)
    # brier: (0.34 - 0)^2 + (0.66 - 1)^2 = 2 * 0.34^2
    assert m["brier"] == pytest.approx(2 * 0.34**2, abs=1e-12)
    # ece: one example, conf 0.66, correct -> |1 - 0.66|
    assert m["ece"] == pytest.approx(0.34, abs=1e-12)


def test_samples_input_equals_metrics_of_mean():
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.full(4, 0.5), size=(6, 50))  # [S, N, C]
    labels = rng.integers(0, 4, size=50)
    m3 = classification_metrics(probs, labels)
    m2 = classification_metrics(probs.mean(axis=0), labels)
    for k in METRICS:
        assert m3[k] == pytest.approx(m2[k], abs=1e-12)
    # and the [S, N, C] result is not simply the average of per-sample metrics
    per_sample_nll = np.mean([classification_metrics(p, labels)["nll"] for p in probs])
    assert abs(per_sample_nll - m3["nll"]) > 1e-3


# ---------------------------------------------------------------------------------------------
# Independent loop implementation
# ---------------------------------------------------------------------------------------------


def reference_metrics(probs, labels, n_bins=10):
    """Straightforward pure-Python version of the spec."""
    probs = np.asarray(probs, dtype=np.float64).tolist()
    labels = [int(y) for y in labels]
    if isinstance(probs[0][0], list):  # [S, N, C] -> average over S
        s_count = len(probs)
        n, c = len(probs[0]), len(probs[0][0])
        pbar = [[sum(probs[s][i][k] for s in range(s_count)) / s_count for k in range(c)] for i in range(n)]
    else:
        pbar = probs
    n, c = len(pbar), len(pbar[0])
    correct, conf = [], []
    nll = brier = 0.0
    for row, y in zip(pbar, labels):
        pred = max(range(c), key=lambda k: row[k])  # first maximum
        correct.append(1.0 if pred == y else 0.0)
        conf.append(row[pred])
        nll += -math.log(row[y])
        brier += sum((row[k] - (1.0 if k == y else 0.0)) ** 2 for k in range(c))
    ece = 0.0
    for b in range(n_bins):
        lo, hi = b / n_bins, (b + 1) / n_bins
        members = [i for i in range(n) if lo < conf[i] <= hi]
        if members:
            acc_b = sum(correct[i] for i in members) / len(members)
            conf_b = sum(conf[i] for i in members) / len(members)
            ece += len(members) / n * abs(acc_b - conf_b)
    return {"acc": sum(correct) / n, "nll": nll / n, "ece": ece, "brier": brier / n}


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
@pytest.mark.parametrize("n_classes", [2, 4])
@pytest.mark.parametrize("n_bins", [10, 15])
@pytest.mark.parametrize("n_samples", [None, 3])
def test_matches_loop_reference(seed, n_classes, n_bins, n_samples):
    rng = np.random.default_rng(1000 * seed + 10 * n_classes + n_bins)
    alpha = [0.3, 1.0, 3.0, 0.7][seed]  # sharp and flat distributions, so many bins are populated
    shape = (120,) if n_samples is None else (n_samples, 120)
    probs = rng.dirichlet(np.full(n_classes, alpha), size=shape)
    # keep p(y) away from 0 so -log p(y) is finite and not clipped
    probs = 0.98 * probs + 0.02 / n_classes
    labels = rng.integers(0, n_classes, size=120)
    got = classification_metrics(probs, labels, n_bins=n_bins)
    want = reference_metrics(probs, labels, n_bins=n_bins)
    for k in METRICS:
        assert got[k] == pytest.approx(want[k], abs=1e-12), k
    # sanity on the generated data: the comparison is not vacuous
    assert 0.0 < want["ece"] and 0.0 < want["acc"] < 1.0


# ---------------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "probs, labels",
    [
        (np.full(4, 0.25), np.array([0])),  # [C] only
        (np.full((2, 2, 3, 2), 0.5), np.array([0, 1, 0])),  # 4-D
        (np.full((3, 2), 0.5), np.array([0, 1])),  # N mismatch
        (np.full((3, 2), 0.5), np.array([[0], [1], [0]])),  # labels [N, 1]
        (np.full((2, 3, 2), 0.5), np.array([0, 1])),  # [S, N, C] with wrong N
    ],
)
def test_wrong_shape_raises(probs, labels):
    with pytest.raises(ValueError):
        classification_metrics(probs, labels)


@pytest.mark.parametrize("bad", [-1, 3, 7])
def test_label_out_of_range_raises(bad):
    probs = np.full((3, 3), 1 / 3)
    with pytest.raises(ValueError, match="labels"):
        classification_metrics(probs, np.array([0, bad, 1]))


@pytest.mark.parametrize("shape", [(0, 3), (2, 0, 3)])
def test_zero_examples_raises(shape):
    with pytest.raises(ValueError, match="zero examples"):
        classification_metrics(np.zeros(shape), np.zeros(0, dtype=np.int64))


def test_nll_has_no_cap():
    """An example whose true class has probability 1e-20 contributes -log(1e-20) = 46.05, from
    log-probabilities and from float64 probabilities alike (no clipping at 1e-12)."""
    lp = np.array([[0.0, -20 * math.log(10)]])
    assert classification_metrics(None, [1], log_probs=lp)["nll"] == pytest.approx(46.0517, abs=1e-4)
    assert classification_metrics(np.exp(lp), [1])["nll"] == pytest.approx(46.0517, abs=1e-4)
    # a logit gap of 40 (softmax in float32 would still hold it; 1e-12 clipping gave 27.6)
    logits = torch.tensor([[40.0, 0.0]])
    out = classification_metrics(None, [1], log_probs=torch.log_softmax(logits, -1))
    assert out["nll"] == pytest.approx(40.0, abs=1e-5)


def test_log_mean_probs_averages_in_probability_space():
    from bayeslora.metrics import log_mean_probs

    rng = np.random.default_rng(0)
    logits = rng.normal(size=(5, 7, 3)) * 30  # large gaps: naive float32 softmax would underflow
    lp = torch.log_softmax(torch.tensor(logits), -1)
    expected = np.log(np.exp(lp.numpy()).mean(0))
    np.testing.assert_allclose(log_mean_probs(lp), expected, rtol=1e-10, atol=1e-12)
    assert log_mean_probs(lp[0]).shape == (7, 3)


def test_log_mean_probs_of_two_opposite_samples_is_log_one_half():
    """Two samples, one sure of class 0 and one of class 1: the averaged prediction is (0.5, 0.5),
    so log 0.5 for both classes; the mean of the log-probabilities would be about log(1e-6) / 2."""
    from bayeslora.metrics import log_mean_probs

    eps = 1e-12
    p = np.array([[[1 - eps, eps]], [[eps, 1 - eps]]])  # [S=2, N=1, C=2]
    out = log_mean_probs(np.log(p))
    np.testing.assert_allclose(out, np.log([[0.5, 0.5]]), rtol=1e-9)
    assert out.dtype == np.float64
    # three samples (0.9, 0.1), (0.6, 0.4), (0.3, 0.7): mean (0.6, 0.4)
    p = np.array([[[0.9, 0.1]], [[0.6, 0.4]], [[0.3, 0.7]]])
    np.testing.assert_allclose(log_mean_probs(torch.log(torch.tensor(p))), np.log([[0.6, 0.4]]), rtol=1e-12)
    assert not np.allclose(log_mean_probs(np.log(p)), np.log(p).mean(0))
