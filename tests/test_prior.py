"""The class-prior row: every example gets the training examples' class frequencies (+ pseudo-count)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from bayeslora.config import compose_config
from bayeslora.errors import ConfigError
from bayeslora.predictives.prior import PriorPredictive
from bayeslora.runner import run, setup

ROWS = ["trainer.max_steps=0", "trainer.checkpoint_every=0", "predictive=[zero_shot,prior]"]


@pytest.mark.parametrize("n_train", [24, 64])
def test_prior_row_is_the_training_class_frequencies(tiny_base, n_train):
    overrides = [
        *tiny_base,
        *ROWS,
        f"trainer.max_train_examples={n_train}",
        "method.val_predictive=zero_shot",
    ]
    cfg = compose_config(overrides)
    train_labels = setup(cfg).task.train.labels  # what the run trains on (the first n_train rows)
    assert len(train_labels) == n_train
    counts = np.bincount(train_labels, minlength=len(cfg.dataset.classes)).astype(float)
    expected = (counts + 1.0) / (counts + 1.0).sum()  # pseudo_count 1 per class
    record = run(compose_config(overrides))
    with np.load(Path(cfg.run_dir) / "preds.npz") as z:
        p, y = z["validation/prior"], z["validation/labels"]
    np.testing.assert_allclose(p, np.broadcast_to(expected, p.shape), rtol=1e-6)
    m = record["metrics"]["prior"]
    assert m["nll"] == pytest.approx(-np.log(expected[y]).mean(), rel=1e-6)
    assert m["brier"] == pytest.approx(((np.eye(len(expected))[y] - expected) ** 2).sum(1).mean(), rel=1e-6)
    info = json.loads((Path(cfg.run_dir) / "metrics.json").read_text())["predictive_info"]["prior"]
    assert info["class_counts"] == [int(c) for c in counts]
    # the zero-shot row beside it is a model pass, not the prior
    with np.load(Path(cfg.run_dir) / "preds.npz") as z:
        assert not np.allclose(z["validation/zero_shot"], p)


def test_prior_pseudo_count_is_checked():
    with pytest.raises(ConfigError, match="pseudo_count"):
        PriorPredictive("Prior", pseudo_count=-1.0)
