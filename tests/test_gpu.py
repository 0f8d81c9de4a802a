"""GPU checks (``make test-gpu``): deselected by default, skipped without CUDA."""

from __future__ import annotations

import math

import pytest
import torch

from bayeslora.runner import run

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]

SMALL_7B_SHAPE = [
    "model=llama2_7b_random",
    "model.loader.tokenizer_path=null",  # the built-in tokenizer (no model folder needed)
    "model.loader.num_hidden_layers=2",
    "trainer.device=cuda",
]


@pytest.mark.parametrize("method", ["adamw", "ivon", "blob"])
def test_8bit_random_llama_trains_on_cuda(compose, tiny_overrides, method):
    """Two 7B-shaped layers (4096 hidden) in 8-bit on the GPU: every method trains and evaluates."""
    cfg = compose(
        tiny_overrides + SMALL_7B_SHAPE + [f"method={method}", "predictive.laplace_kfac.n_samples=100"]
    )
    rec = run(cfg)
    assert rec["status"] == "success" and rec["provenance"]["device"].startswith("cuda")
    assert rec["provenance"]["cuda_max_allocated_mb"] > 0
    for m in rec["metrics"].values():
        assert math.isfinite(m["nll"])
