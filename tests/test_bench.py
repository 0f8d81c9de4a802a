"""scripts/bench.py's FLOP floor and matmul peak: the floor counts the weights a token is multiplied
through (the body's linear layers, not the embedding, not the head's unused rows, not LoRA), and the
peak is the best product it measured, named."""

from __future__ import annotations

import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
import bench  # noqa: E402

from bayeslora.runner import setup  # noqa: E402


def test_the_flop_floor_counts_the_body_linear_weights(tiny_overrides, compose):
    model = setup(compose(tiny_overrides), device=torch.device("cpu")).model
    c = model.get_base_model().config
    head_dim = c.hidden_size // c.num_attention_heads
    per_layer = (
        2 * c.hidden_size * c.num_attention_heads * head_dim  # q, o
        + 2 * c.hidden_size * c.num_key_value_heads * head_dim  # k, v
        + 3 * c.hidden_size * c.intermediate_size  # gate, up, down
    )
    assert bench.body_matmul_params(model) == c.num_hidden_layers * per_layer
    everything = sum(p.numel() for n, p in model.named_parameters() if "lora_" not in n)
    assert bench.body_matmul_params(model) < everything  # the embedding is not multiplied
    shapes = bench.linear_shapes(model, tokens=7)
    assert (7, c.hidden_size, c.intermediate_size) in shapes
    assert (7, c.intermediate_size, c.hidden_size) in shapes
    assert all(m == 7 for m, _, _ in shapes) and len(shapes) == len(set(shapes))
    assert (7, c.hidden_size, c.vocab_size) not in shapes  # the head computes C rows only


def test_the_peak_is_the_best_product_measured_and_named():
    peak, at = bench.matmul_peak_tflops(torch.device("cpu"), shapes=[(8, 16, 32)], squares=(16,), repeat=1)
    assert peak > 0
    layout, _, shape = at.rpartition(" ")
    assert layout in ("a @ b", "linear") and shape in ("16x16x16", "8x16x32")
