"""Paths and environment a real user has: models_dir, no ../shared defaults, .env, tests' data
variables, and refused secrets that never reach the disk."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from bayeslora.errors import ConfigError
from bayeslora.utils.instantiate import instantiate

from . import conftest
from .conftest import LLAMA_TOKENIZER, REPO, needs_models
from .test_errors import _one_error_line, _python


def test_no_default_points_at_a_sibling_checkout():
    hits = []
    for folder in ("conf", "bayeslora", "scripts"):
        for f in (REPO / folder).rglob("*"):
            if f.is_file() and f.suffix in (".py", ".yaml", ".yml") and "../shared" in f.read_text():
                hits.append(str(f.relative_to(REPO)))
    assert hits == []


def test_models_dir_from_root_or_environment(compose, monkeypatch, tmp_path):
    cfg = compose([f"paths.root={tmp_path}", "model=llama2_7b_random"])
    assert cfg.paths.models_dir == f"{tmp_path}/models"
    assert cfg.model.loader.tokenizer_path == f"{tmp_path}/models/llama2-tokenizer"
    monkeypatch.setenv("BAYESLORA_MODELS_DIR", "/opt/models")
    cfg = compose(["model=llama2_7b_random"])
    assert cfg.model.loader.tokenizer_path == "/opt/models/llama2-tokenizer"


@pytest.mark.parametrize(
    "overrides, message",
    [
        (
            ["model=hf", "model.loader.model_id=${paths.models_dir}/my_llama"],
            "model.loader.model_id={root}/models/my_llama: no model folder there",
        ),
        (
            ["model=llama2_7b_random"],
            "model.loader.tokenizer_path={root}/models/llama2-tokenizer: no tokenizer",
        ),
        (["model.loader.model_id=./nowhere/llama"], "model.loader.model_id=./nowhere/llama: no model folder"),
    ],
)
def test_missing_model_or_tokenizer_is_a_config_error(compose, tmp_path, overrides, message):
    cfg = compose([f"paths.root={tmp_path}", *overrides])
    with pytest.raises(ConfigError) as e:
        instantiate(cfg.model.loader)
    assert message.format(root=tmp_path) in str(e.value) and "BAYESLORA_MODELS_DIR" in str(e.value)


def test_random_llama_tokenizer_is_explicit(compose, tmp_path):
    """No silent fallback: null selects the built-in tokenizer, a folder must exist."""
    cfg = compose(
        [
            "model=llama2_7b_random",
            "model.loader.tokenizer_path=null",
            "model.loader.hidden_size=16",
            "model.loader.intermediate_size=32",
            "model.loader.num_hidden_layers=1",
            "model.loader.num_attention_heads=2",
            "model.loader.num_key_value_heads=2",
            "model.quantization=none",
            "model.dtype=float32",
        ]
    )
    import torch

    _, tok = instantiate(cfg.model.loader).load("none", torch.float32, torch.device("cpu"))
    assert tok.name_or_path == "bayeslora-tiny"


@needs_models
def test_random_llama_reads_the_tokenizer_from_models_dir(compose):
    cfg = compose(["model=llama2_7b_random", f"paths.models_dir={LLAMA_TOKENIZER.parent}"])
    loader = instantiate(cfg.model.loader)
    assert loader.tokenizer_path == str(LLAMA_TOKENIZER)


def test_hub_ids_are_not_folders():
    from bayeslora.models import is_local_path

    assert not is_local_path("meta-llama/Llama-2-7b-hf")
    assert all(is_local_path(p) for p in ["/abs/model", "./models/x", "../x", "~/m", "a/b/c"])


# ---------------------------------------------------------------------------------------------
# .env
# ---------------------------------------------------------------------------------------------


def test_parse_dotenv():
    from bayeslora.utils.env import parse_dotenv

    text = """
# a comment
HF_TOKEN=                 # empty: left out
WANDB_MODE=offline        # online | offline | disabled
export BAYESLORA_DATA_DIR=/data/bench
QUOTED="a # not a comment"
SINGLE='x y'
not an assignment
"""
    assert parse_dotenv(text) == {
        "WANDB_MODE": "offline",
        "BAYESLORA_DATA_DIR": "/data/bench",
        "QUOTED": "a # not a comment",
        "SINGLE": "x y",
    }


def test_load_dotenv_never_overrides_the_environment(tmp_path, monkeypatch):
    from bayeslora.utils.env import load_dotenv

    (tmp_path / ".env").write_text("BAYESLORA_TEST_A=from-file\nBAYESLORA_TEST_B=from-file\n")
    monkeypatch.setenv("BAYESLORA_TEST_A", "from-env")
    monkeypatch.delenv("BAYESLORA_TEST_B", raising=False)
    assert load_dotenv(tmp_path / ".env") == {"BAYESLORA_TEST_B": "from-file"}
    assert os.environ["BAYESLORA_TEST_A"] == "from-env" and os.environ["BAYESLORA_TEST_B"] == "from-file"
    monkeypatch.delenv("BAYESLORA_TEST_B")
    assert load_dotenv(tmp_path / "missing.env") == {}


@pytest.mark.slow
def test_the_cli_reads_dotenv_in_the_working_directory(tmp_path):
    (tmp_path / ".env").write_text(f"BAYESLORA_MODELS_DIR={tmp_path}/my-models\n")
    out = _python(
        ["-m", "bayeslora.train", "--cfg", "job", "--resolve", "model=llama2_7b_random"], cwd=tmp_path
    )
    assert out.returncode == 0, out.stderr
    assert f"tokenizer_path: {tmp_path}/my-models/llama2-tokenizer" in out.stdout


def test_example_env_file_lists_what_the_package_reads():
    names = set(re.findall(r"^([A-Z_]+)=", (REPO / ".env.example").read_text(), re.M))
    assert {"BAYESLORA_DATA_DIR", "BAYESLORA_MODELS_DIR", "BAYESLORA_REQUIRE_DATA", "HF_TOKEN"} <= names


# ---------------------------------------------------------------------------------------------
# Tests' data: skipped where absent, failed where expected (BAYESLORA_REQUIRE_DATA=1, set by .ci/run)
# ---------------------------------------------------------------------------------------------


def test_require_skips_or_fails(monkeypatch, tmp_path):
    monkeypatch.setattr(conftest, "REQUIRE_DATA", False)
    with pytest.raises(pytest.skip.Exception, match="set BAYESLORA_DATA_DIR"):
        conftest.require(tmp_path / "absent", "BAYESLORA_DATA_DIR")
    monkeypatch.setattr(conftest, "REQUIRE_DATA", True)
    with pytest.raises(pytest.fail.Exception, match="BAYESLORA_REQUIRE_DATA=1 but"):
        conftest.require(tmp_path / "absent", "BAYESLORA_DATA_DIR")
    conftest.require(tmp_path, "BAYESLORA_DATA_DIR")  # present: nothing happens


def test_ci_sets_the_data_variables():
    ci = (REPO / ".ci/run").read_text()
    for name in ("BAYESLORA_DATA_DIR", "BAYESLORA_MODELS_DIR", "BAYESLORA_REQUIRE_DATA=1"):
        assert f"export {name}" in ci


# ---------------------------------------------------------------------------------------------
# A refused secret never reaches the disk
# ---------------------------------------------------------------------------------------------

SECRET = "hf_SENTINELabcdefghijklmnopqrstuv"


def _files_containing(root: Path, text: str) -> list[str]:
    return [str(p) for p in root.rglob("*") if p.is_file() and text in p.read_text(errors="ignore")]


@pytest.mark.parametrize(
    "args",
    [
        ["+hf_token={s}"],
        ["-m", "seed=1,2", "+hf_token={s}"],
        ["-m", "launcher=submitit_local", "seed=1,2", "+wandb.api_key={s}"],
        ["+my_password={s}"],
        ["exp_name={s}"],  # an innocuous key with a token-shaped value
    ],
    ids=["run", "sweep", "submitit-sweep", "password", "token-value"],
)
@pytest.mark.slow
def test_refused_secret_is_written_nowhere(tmp_path, args):
    args = [a.format(s=SECRET) for a in args]
    out = _python(
        [
            "-m",
            "bayeslora.train",
            "model=tiny",
            "dataset=synthetic",
            "debug=fast",
            *args,
            f"paths.root={tmp_path}",
        ],
        cwd=tmp_path,  # Hydra's default outputs/ and multirun/ would land here
    )
    assert out.returncode == 2
    line = _one_error_line(out, "bayeslora: error: override ")
    assert "carries a secret" in line and SECRET not in out.stderr + out.stdout
    assert _files_containing(tmp_path, SECRET) == []
    assert not any((tmp_path / d).exists() for d in ("results", "outputs", "multirun"))


@pytest.mark.slow
def test_secret_from_the_environment_is_refused_as_a_value(tmp_path, monkeypatch):
    env_secret = "wandb-key-0123456789abcdef"
    monkeypatch.setenv("WANDB_API_KEY", env_secret)
    out = _python(
        ["-m", "bayeslora.train", f"exp_name=x{env_secret}", f"paths.root={tmp_path}"], cwd=tmp_path
    )
    assert out.returncode == 2 and "carries a secret" in _one_error_line(out, "bayeslora: error:")
    assert _files_containing(tmp_path, env_secret) == []


def test_secret_overrides_matcher():
    from bayeslora.utils.secrets import refuse_secret_overrides

    refuse_secret_overrides(["model.loader.tokenizer_path=/x", "model=tiny", "~logger", "seed=1,2"])
    for bad in ["+hf_token=abc", "++logger.wandb.api_key=abc", "+db.password=x", f"+note={SECRET}"]:
        with pytest.raises(ConfigError, match="carries a secret"):
            refuse_secret_overrides([bad])
