"""Shared fixtures: compose the real configs, offline, W&B disabled, results in tmp_path."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ["WANDB_MODE"] = "disabled"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
SHARED_DATA = SHARED / "data"
LLAMA_TOKENIZER = SHARED / "models" / "llama2-tokenizer"

needs_shared = pytest.mark.skipif(
    not SHARED_DATA.is_dir(), reason="../shared/data is not present (CI has it)"
)


@pytest.fixture(autouse=True)
def _isolated_env(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "wandb"))
    monkeypatch.setenv("WANDB_CACHE_DIR", str(tmp_path / "wandb-cache"))
    monkeypatch.delenv("BAYESLORA_DATA_DIR", raising=False)
    yield


@pytest.fixture
def tiny_base(tmp_path):
    """Overrides for a fast tiny-model run (4 steps, W&B off) writing under tmp_path."""
    return [
        "model=tiny",
        "dataset=synthetic",
        "debug=fast",
        f"paths.root={tmp_path}",
        "trainer.num_threads=1",
    ]


@pytest.fixture
def tiny_overrides(tiny_base):
    """:func:`tiny_base` on a small synthetic task (64 train, 32 validation, 16 shifted)."""
    return tiny_base + [
        "dataset.source.n_train=64",
        "dataset.source.n_validation=32",
        "dataset.source.n_shifted=16",
    ]


@pytest.fixture
def compose():
    from bayeslora.config import compose_config

    return compose_config
