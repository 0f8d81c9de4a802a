"""GPU checks (``make test-gpu``): deselected by default, skipped without CUDA.

They catch a broken 8-bit path, not only crashes: the base layers must really be int8 bitsandbytes
layers on the GPU, the 8-bit model must compute (nearly) what the fp16 model with the same weights
computes, training must lower the loss and move the LoRA weights, and the paper's own loader
(``from_pretrained`` with ``BitsAndBytesConfig(load_in_8bit=True)``) must run on CUDA.
"""

from __future__ import annotations

import csv
import gc
import math
from pathlib import Path

import pytest
import torch

from bayeslora.data import eval_batches
from bayeslora.models import class_logits
from bayeslora.runner import run, setup, to_device

from .conftest import METHODS

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]

CUDA = ["trainer.device=cuda"]
# Two 7B-shaped layers (hidden 4096) with random weights, built on the GPU and quantised in place.
SMALL_7B_SHAPE = [
    "model=llama2_7b_random",
    "model.loader.num_hidden_layers=2",
    "model.loader.tokenizer_path=null",  # the in-code word tokenizer: no files needed
    *CUDA,
]
# The paper's loader path: a small saved Llama loaded by from_pretrained(..., BitsAndBytesConfig(8-bit)).
PAPER_LOADER_8BIT = ["model=tiny", "model.quantization=8bit", *CUDA]
# Runs set up (runner.setup) only to look at their model: short prompts, the MAP row
SETUP_ONLY = ["trainer.max_length=64", "eval.max_examples=32", "method.predictives=[map]"]


def _base_linears(model):
    """The frozen base projections that LoRA wraps (q_proj / v_proj ``base_layer``) and the others."""
    return {
        n: m
        for n, m in model.named_modules()
        if n.endswith(("q_proj.base_layer", "v_proj.base_layer", "k_proj", "o_proj", "up_proj"))
    }


@pytest.mark.parametrize(
    "overrides", [SMALL_7B_SHAPE, PAPER_LOADER_8BIT], ids=["quantize_in_place", "from_pretrained"]
)
def test_base_layers_are_int8_on_cuda(compose, tiny_overrides, overrides):
    import bitsandbytes as bnb

    model = setup(compose(tiny_overrides + overrides + SETUP_ONLY)).model  # the run's model
    linears = _base_linears(model)
    assert len(linears) >= 10
    for name, m in linears.items():
        assert isinstance(m, bnb.nn.Linear8bitLt), f"{name} is {type(m).__name__}, not Linear8bitLt"
        assert m.weight.dtype == torch.int8 and m.weight.device.type == "cuda", name
        assert not m.weight.requires_grad, name
    lora = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    assert lora and all(".lora_" in n and p.is_floating_point() and p.device.type == "cuda" for n, p in lora)


def test_8bit_logits_agree_with_fp16_of_the_same_weights(compose, tiny_overrides):
    """The same random 7B-shaped weights in fp16 and in LLM.int8: class logits within 5 % (relative
    to their spread) and the same predicted class on almost every example."""
    fp16 = ["model.quantization=none", "model.dtype=float16"]
    r16 = setup(compose(tiny_overrides + SMALL_7B_SHAPE + SETUP_ONLY + fp16))
    task = r16.task
    batches = [to_device(b, r16.device) for _, b in eval_batches(task.evals["validation"], 16, task.pad_id)]
    with torch.no_grad():
        l16 = torch.cat([class_logits(r16.model, b, task.class_ids) for b in batches])
    del r16
    gc.collect()
    torch.cuda.empty_cache()
    m8 = setup(compose(tiny_overrides + SMALL_7B_SHAPE + SETUP_ONLY)).model
    with torch.no_grad():
        l8 = torch.cat([class_logits(m8, b, task.class_ids) for b in batches])
    centred = l16 - l16.mean(dim=1, keepdim=True)
    rel = float((l8 - l16).norm() / centred.norm())
    agree = float((l8.argmax(1) == l16.argmax(1)).float().mean())
    print(f"int8 vs fp16 class logits: relative error {rel:.4f}, argmax agreement {agree:.3f}")
    assert torch.isfinite(l8).all() and rel < 0.05
    assert agree >= 0.9


def test_loss_falls_and_lora_moves_on_cuda_through_the_paper_loader(compose, tiny_overrides):
    cfg = compose(
        tiny_overrides
        + PAPER_LOADER_8BIT
        + ["method=adamw", "method.predictives=[map]", "trainer.max_steps=80", "trainer.log_every=10"]
    )
    rec = run(cfg)
    assert rec["status"] == "success" and rec["provenance"]["device"].startswith("cuda")
    rows = list(csv.DictReader((Path(cfg.run_dir) / "history.csv").open()))
    losses = [float(r["value"]) for r in rows if r["key"] == "train/loss"]  # long form: step,key,value
    assert len(losses) == 8
    print(f"8-bit AdamW on CUDA, train loss per 10 steps: {[round(x, 3) for x in losses]}")
    assert sum(losses[-2:]) / 2 < 0.9 * sum(losses[:2]) / 2, "the loss must fall"
    from safetensors.torch import load_file

    adapter = load_file(str(Path(cfg.run_dir) / "adapter" / "adapter_model.safetensors"))
    lora_b = [v for k, v in adapter.items() if "lora_B" in k]
    assert lora_b and all(float(v.abs().max()) > 0 for v in lora_b), "LoRA B starts at 0 and must move"


@pytest.mark.parametrize("method", METHODS)
def test_8bit_7b_shaped_layers_train_every_method_on_cuda(compose, tiny_overrides, method):
    """Two 7B-shaped layers in 8-bit on the GPU: every method trains and evaluates every predictive."""
    cfg = compose(
        tiny_overrides + SMALL_7B_SHAPE + [f"method={method}", "predictive.laplace_kfac.n_samples=100"]
    )
    rec = run(cfg)
    assert rec["status"] == "success" and rec["provenance"]["device"].startswith("cuda")
    assert rec["provenance"]["cuda_max_allocated_mb"] > 0
    assert set(rec["table_rows"]) <= set(rec["metrics"])
    for m in rec["metrics"].values():
        assert math.isfinite(m["nll"]) and 0.0 <= m["acc"] <= 1.0
