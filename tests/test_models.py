"""Model builders: the Llama-2-7B shape (meta device), random-weight Llama in 8-bit, LoRA placement."""

from __future__ import annotations

import bitsandbytes as bnb
import pytest
import torch
from omegaconf import OmegaConf

from bayeslora.models import attach_lora, build_model
from bayeslora.runner import run

from .conftest import DATA_DIR, needs_data


def test_llama2_7b_shape_and_lora_count_on_meta(compose):
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = compose(["model=llama2_7b_random"])
    arch = {
        k: v
        for k, v in OmegaConf.to_container(cfg.model.loader).items()
        if k not in ("_target_", "tokenizer_path", "init_seed")
    }
    with torch.device("meta"):
        model = LlamaForCausalLM(LlamaConfig(**arch))
    model = attach_lora(model, cfg.model.lora)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    assert trainable == 4_194_304  # 32 layers x (q: 8*(4096+4096) + v: 8*(4096+4096))
    assert total == 6_742_609_920
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    assert all(".q_proj." in n or ".v_proj." in n for n in names) and not any("lm_head" in n for n in names)


def test_random_llama_in_8bit_trains(compose, tiny_overrides):
    small = [
        "model=llama2_7b_random",
        "model.loader.tokenizer_path=null",  # the built-in tokenizer (no model folder needed)
        "model.loader.hidden_size=64",
        "model.loader.intermediate_size=128",
        "model.loader.num_hidden_layers=2",
        "model.loader.num_attention_heads=4",
        "model.loader.num_key_value_heads=4",
        "model.dtype=float32",
        "method.predictives=[map]",
    ]
    cfg = compose(tiny_overrides + small)
    model, _ = build_model(cfg.model, torch.device("cpu"), 0)
    base = model.get_base_model()
    assert isinstance(base.model.layers[0].mlp.down_proj, bnb.nn.Linear8bitLt)
    assert isinstance(base.model.layers[0].self_attn.q_proj.base_layer, bnb.nn.Linear8bitLt)
    assert isinstance(base.lm_head, torch.nn.Linear) and base.lm_head.weight.dtype == torch.float32
    rec = run(cfg)
    assert rec["status"] == "success" and rec["provenance"]["n_lora_params"] == 2 * (8 * 128 + 8 * 128)


@needs_data
@pytest.mark.slow
def test_smollm2_bf16_body_keeps_lora_head_and_logits_in_fp32_and_matches_fp32(compose):
    """model=smollm2_135m_bf16: the transformer layers are bf16, LoRA weights and the tied embedding /
    LM-head rows the class head reads are fp32, the class logits are fp32; on real ARC-E rows its
    class probabilities stay close to the fp32 model's (measured: max |Δp| 0.03, 95 % argmax agreement
    on 64 near-uniform zero-shot rows)."""
    from bayeslora.data import build_task, eval_batches
    from bayeslora.models import class_logits

    probs = {}
    for name in ("smollm2_135m", "smollm2_135m_bf16"):
        cfg = compose([f"model={name}", "dataset=arc_e", f"paths.data_dir={DATA_DIR}"])
        model, tok = build_model(cfg.model, torch.device("cpu"), 0)
        base = model.get_base_model()
        lora = [p for n, p in model.named_parameters() if "lora_" in n]
        assert lora and all(p.dtype == torch.float32 for p in lora)
        body = base.model.layers[0].mlp.up_proj.weight.dtype
        assert body == (torch.bfloat16 if name.endswith("bf16") else torch.float32)
        assert base.get_output_embeddings().weight.dtype == torch.float32
        task = build_task(cfg.dataset, tok, 320, 32)
        model.eval()
        out = []
        with torch.no_grad():
            for _, b in eval_batches(task.evals["validation"], 8, task.pad_id, 8):
                logits = class_logits(model, b, task.class_ids)
                assert logits.dtype == torch.float32
                out.append(torch.softmax(logits, -1))
        probs[name] = torch.cat(out)
    fp32, bf16 = probs["smollm2_135m"], probs["smollm2_135m_bf16"]
    assert fp32.shape == (32, 4)
    dp = (fp32 - bf16).abs().max().item()
    assert 0 < dp < 0.06, dp  # > 0: the bf16 body is really in use
    assert (fp32.argmax(1) == bf16.argmax(1)).float().mean().item() >= 0.85
