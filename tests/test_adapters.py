"""An IVON run's saved posterior read back for an adapter evaluation (:mod:`bayeslora.adapters`):
a real tiny IVON run's ``ivon_posterior.pt`` is accepted as saved and refused, in one line, when
its variance is not finite."""

from __future__ import annotations

import pytest
import torch

from bayeslora.adapters import FixedAdapterPosterior
from bayeslora.errors import ConfigError
from bayeslora.runner import fit, setup


@pytest.fixture
def ivon_run(compose, tiny_overrides, tmp_path):
    """A tiny IVON run trained by the runner, and its posterior as the run saves it."""
    r = setup(compose(tiny_overrides + ["method=ivon", "method.predictives=[ivon_mean]"]))
    assert fit(r, loggers=[]) == 4
    r.method.save_artifacts(tmp_path)
    return r, torch.load(tmp_path / "ivon_posterior.pt", weights_only=True)


def _read_back(r, state, path):
    torch.save(state, path)
    method = FixedAdapterPosterior("ivon", ["ivon"], str(path))
    method.setup(r.model, r.task.class_ids, 0, len(r.task.train), 0)
    return method


def test_the_saved_posterior_is_read_back(ivon_run, tmp_path):
    r, state = ivon_run
    method = _read_back(r, state, tmp_path / "as_saved.pt")
    torch.testing.assert_close(method.posterior_variance(), state["variance"].float(), rtol=0, atol=0)


@pytest.mark.parametrize("bad", [float("inf"), float("nan")])
def test_a_non_finite_posterior_variance_is_refused(ivon_run, tmp_path, bad):
    """Checked positive only, an inf variance (inf > 0) would pass and give NaN weight samples."""
    r, state = ivon_run
    state["variance"] = state["variance"].clone()
    state["variance"][3] = bad
    with pytest.raises(ConfigError, match=r"its variance is not finite everywhere \(NaN or inf\)") as e:
        _read_back(r, state, tmp_path / "bad.pt")
    assert "ivon_posterior=" in str(e.value) and "\n" not in str(e.value)
