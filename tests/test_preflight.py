"""Config-knowable mistakes cost nothing (issue 29): what the config alone decides is checked before
anything loads or is written (exit 2, one line, no run folder); a value from an auto-selected file
(``conf/method_dataset/``, ``conf/method_model/``) is named with that file; the first short run of
the tiny model works (SWA/SWAG collection derived from the run length)."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bayeslora.errors import ConfigError

from .conftest import REPO

TXT_SOURCE = [
    "~dataset.source",
    "+dataset.source={_target_:bayeslora.data.sources.FileSource,files:{train:rows.txt,validation:v.jsonl}}",
    "dataset.eval_splits=[validation]",
]
# a short run of the tiny model on a small synthetic task, without debug=fast (whose SWAG settings
# would hide the auto-selected conf/method_dataset/adamw_synthetic.yaml)
SHORT = [
    "model=tiny",
    "dataset=synthetic",
    "trainer.max_steps=20",
    "trainer.eval_every=0",
    "trainer.num_threads=1",
    "trainer.progress_bar=false",
    "dataset.source.n_train=64",
    "dataset.source.n_validation=16",
    "dataset.source.n_shifted=16",
    "method.predictives=[map,swa,swag]",
]


def preflight(cfg):
    from bayeslora.checks import preflight

    preflight(cfg)


def where(cfg, key):
    from bayeslora.checks import where

    return where(cfg, key)


def _python(args: list[str], cwd: Path, timeout: int = 180) -> subprocess.CompletedProcess:
    env = dict(os.environ, WANDB_MODE="disabled", HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return subprocess.run(
        [sys.executable, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env
    )


# -- each check, in process --------------------------------------------------------------------


def test_a_txt_data_file_is_refused_up_front(compose, tiny_overrides):
    with pytest.raises(
        ConfigError, match=r"dataset.source: FileSource reads .jsonl and .csv files, not rows.txt"
    ):
        preflight(compose(tiny_overrides + TXT_SOURCE))


def test_a_missing_data_folder_or_file_is_refused_up_front(compose, tmp_path):
    base = ["dataset=arc_e_yaml", "model=tiny", "trainer.device=cpu", f"paths.root={tmp_path}"]
    with pytest.raises(ConfigError, match=r"data folder .*nope does not exist"):
        preflight(compose(base + [f"paths.data_dir={tmp_path / 'nope'}"]))
    (tmp_path / "data").mkdir()
    with pytest.raises(ConfigError, match=r"missing data file .*ai2_arc/ARC-Easy/train.jsonl"):
        preflight(compose(base + [f"paths.data_dir={tmp_path / 'data'}"]))


def test_a_gguf_model_with_8bit_is_refused_up_front(compose):
    with pytest.raises(ConfigError) as e:
        preflight(compose(["model=smollm2_135m", "model.quantization=8bit", "trainer.device=cpu"]))
    assert "model.quantization='8bit'" in str(e.value) and "GGUF" in str(e.value)
    assert "model.quantization=none" in str(e.value)


def test_a_relative_model_path_is_local_never_a_hub_id(compose, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "models" / "my_llama_hf").mkdir(parents=True)
    base = ["model=hf", "trainer.device=cpu", "dataset=synthetic"]
    for typo in ("models/my_lama_hf", "./my_llama_hf"):
        with pytest.raises(ConfigError) as e:
            preflight(compose(base + [f"model.loader.model_id={typo}"]))
        assert typo in str(e.value) and "HF_TOKEN" not in str(e.value) and "gated" not in str(e.value)
    # offline, a hub id that is not in the hub cache cannot load either: said before anything loads
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub-cache"))
    with pytest.raises(ConfigError, match=r"'nobody/no-such-model'.*not in the hub cache.*HF_HUB_OFFLINE"):
        preflight(compose(base + ["model.loader.model_id=nobody/no-such-model"]))


def test_predictives_the_method_cannot_serve_are_refused_up_front(compose, tiny_overrides):
    with pytest.raises(ConfigError, match=r"'IVON' needs a Gaussian posterior .*method=adamw does not"):
        preflight(compose(tiny_overrides + ["predictive=[map,ivon]"]))
    with pytest.raises(ConfigError, match=r"mc_dropout.*needs LoRA dropout > 0.*model.lora.dropout=0"):
        preflight(compose(tiny_overrides + ["model.lora.dropout=0", "method.predictives=[map,mc_dropout]"]))
    for method in ("ivon", "ensemble", "blob"):  # each shipped method serves its own rows
        preflight(compose(tiny_overrides + [f"method={method}"]))


def test_a_swag_start_set_on_the_command_line_after_the_last_step_is_refused(compose, tiny_overrides):
    cfg = compose(tiny_overrides + ["trainer.max_steps=3", "predictive.swag.start_step=50"])
    with pytest.raises(
        ConfigError, match=r"predictive.swag.start_step=50 is after the last step \(trainer.max_steps=3\)"
    ):
        preflight(cfg)


# -- values from auto-selected files --------------------------------------------------------------


def test_where_names_the_auto_selected_file_that_set_a_value(compose):
    cfg = compose(["model=tiny", "dataset=synthetic", "method=ivon"])
    assert where(cfg, "method.clip_radius") == "conf/method_dataset/ivon_synthetic.yaml"
    assert where(cfg, "trainer.max_steps") is None
    cfg = compose(["model=tiny", "dataset=synthetic", "method=ivon", "method.clip_radius=0.2"])
    assert where(cfg, "method.clip_radius") is None, "the command line set it, not the file"


def test_a_bad_value_from_an_auto_selected_file_is_named_with_the_file(compose, tmp_path, monkeypatch):
    import bayeslora.config

    conf = tmp_path / "conf"
    shutil.copytree(REPO / "conf", conf)
    pair = conf / "method_dataset" / "ivon_synthetic.yaml"
    pair.write_text(pair.read_text().replace("clip_radius: 0.1", "clip_radius: -0.1"))
    monkeypatch.setattr(bayeslora.config, "CONF_DIR", conf)
    with pytest.raises(ConfigError) as e:
        preflight(compose(["model=tiny", "dataset=synthetic", "method=ivon", "trainer.device=cpu"]))
    assert "method.clip_radius=-0.1" in str(e.value)
    assert "conf/method_dataset/ivon_synthetic.yaml" in str(e.value)


@pytest.mark.slow
def test_a_bad_value_from_an_auto_selected_file_in_config_dir_is_named_with_it(tmp_path):
    conf = tmp_path / "my_conf"
    (conf / "method_model").mkdir(parents=True)  # a pair conf/ does not ship: ivon_tiny
    (conf / "method_model" / "ivon_tiny.yaml").write_text("# @package _global_\nmethod:\n  ess: 0\n")
    args = ["--config-dir", str(conf), "model=tiny", "dataset=synthetic", "method=ivon", "debug=fast"]
    out = _python(["-m", "bayeslora.train", *args], cwd=tmp_path)
    assert out.returncode == 2, out.stderr[-2000:]
    line = out.stderr.strip()
    assert "invalid method.ess=0" in line and f"(set in {conf / 'method_model' / 'ivon_tiny.yaml'})" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["my_conf"]


# -- the first short run --------------------------------------------------------------------------


def test_the_first_short_run_derives_swag_collection_from_its_length(compose, tmp_path, caplog):
    from bayeslora.runner import run

    cfg = compose(SHORT + [f"paths.root={tmp_path}"])
    assert cfg.predictive.swag.start_step == 300  # conf/method_dataset/adamw_synthetic.yaml
    preflight(cfg)  # derived at run time, not refused
    with caplog.at_level(logging.INFO):
        record = run(cfg)
    assert record["status"] == "success"
    info = record["predictive_info"]["swag"]
    assert info["start_step"] == 5 and info["last_snapshot_step"] <= 20 and info["n_snapshots"] >= 2
    line = next(r.getMessage() for r in caplog.records if "start_step=300" in r.getMessage())
    assert (
        "conf/method_dataset/adamw_synthetic.yaml" in line
        and "after the last step (trainer.max_steps=20)" in line
    )
    assert "start_step=5" in line


# -- the command line: exit 2, one line, nothing written -------------------------------------------

CLI_MISTAKES = {
    "txt data file": TXT_SOURCE,
    "missing data folder": ["dataset=arc_e_yaml", "paths.data_dir=./no-data-here"],
    "gguf 8bit": ["model=smollm2_135m", "model.quantization=8bit"],
    "model path typo": ["model=hf", "model.loader.model_id=models/my_lama_hf"],
    "hub id offline, not cached": ["model=hf", "model.loader.model_id=nobody/no-such-model"],
}


@pytest.mark.slow
@pytest.mark.parametrize("overrides", CLI_MISTAKES.values(), ids=CLI_MISTAKES.keys())
def test_cli_config_mistakes_exit_2_in_one_line_and_write_nothing(tmp_path, overrides):
    (tmp_path / "models" / "my_llama_hf").mkdir(parents=True)
    out = _python(["-m", "bayeslora.train", "model=tiny", "dataset=synthetic", *overrides], cwd=tmp_path)
    lines = [ln for ln in out.stderr.splitlines() if ln.strip()]
    assert out.returncode == 2, out.stderr[-2000:]
    assert len(lines) == 1 and lines[0].startswith("bayeslora: error: "), out.stderr[-2000:]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["models"], "no run or record folder"


@pytest.mark.slow
def test_cli_first_short_run_of_the_tiny_model_works(tmp_path):
    args = [a for a in SHORT if not a.startswith("method.predictives")]
    out = _python(["-m", "bayeslora.train", *args, f"paths.root={tmp_path}"], cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    run_dir = tmp_path / "results/runs/default/synthetic/tiny/adamw/seed=21"
    record = json.loads((run_dir / "metrics.json").read_text())
    assert record["status"] == "success" and record["predictive_info"]["swag"]["start_step"] == 5
