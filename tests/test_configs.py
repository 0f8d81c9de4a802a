"""Every option of every config group composes; paper defaults; Hydra refuses unknown keys/options."""

from __future__ import annotations

import subprocess
import sys

import pytest
from hydra.errors import ConfigCompositionException, MissingConfigException
from omegaconf.errors import ConfigKeyError

from bayeslora.config import CONF_DIR, composed_predictives
from bayeslora.predictives import build_predictive
from bayeslora.records import config_hash
from bayeslora.utils.instantiate import instantiate

GROUPS = [
    "model",
    "dataset",
    "method",
    "trainer",
    "eval",
    "logger",
    "paths",
    "launcher",
    "experiment",
    "debug",
]


def _options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))


@pytest.mark.parametrize("group,option", [(g, o) for g in GROUPS for o in _options(g)])
def test_every_option_composes(compose, group, option):
    cfg = compose([f"{group}={option}"])
    node = cfg.get(group)
    if isinstance(node, dict) or hasattr(node, "keys"):
        if "name" in node:
            assert node.name == option, f"{group}/{option}.yaml must set name: {option}"


@pytest.mark.parametrize("option", _options("dataset"))
def test_every_dataset_source_instantiates(compose, option):
    cfg = compose([f"dataset={option}"])
    source = instantiate(cfg.dataset.source)
    assert callable(source.rows) and callable(source.describe)
    template = cfg.dataset.template
    assert template in ("arc", "obqa", "winogrande", "boolq") or {"prompt", "label"} <= set(template)


@pytest.mark.parametrize("option", _options("method"))
def test_every_method_instantiates_and_lists_known_predictives(compose, option):
    cfg = compose([f"method={option}"])
    method = instantiate(cfg.method)
    assert method.name == option
    assert method.predictives == composed_predictives(_root_=cfg)
    for name in [*method.predictives, method.val_predictive]:
        assert "_target_" in cfg.predictive[name], f"{option}: predictive {name!r} is not composed"


def test_every_predictive_builds_with_a_label_and_a_distinct_table_rank(compose):
    files = _options("predictive")
    cfg = compose([f"predictive=[{','.join(files)}]"])  # predictive=[...] replaces the method's rows
    assert list(cfg.method.predictives) == files
    built = {name: build_predictive(cfg.predictive[name]) for name in files}
    for name, p in built.items():
        assert isinstance(p.label, str) and p.label and isinstance(p.table_rank, int), name
    ranks = [p.table_rank for p in built.values()]
    assert len(set(ranks)) == len(ranks), dict(zip(files, ranks))


def test_every_predictive_is_a_row_of_some_method(compose):
    # the rows of a trainer.max_steps=0 run (any method; `make mini`): the untrained model, the class prior
    used = {"zero_shot", "prior"}
    for method in _options("method"):
        used |= set(compose([f"method={method}"]).method.predictives)
    assert used == set(_options("predictive"))


def test_paper_defaults(compose):
    cfg = compose([])
    assert cfg.seed == 21 and isinstance(cfg.seed, int)
    assert (cfg.trainer.batch_size, cfg.trainer.max_steps, cfg.trainer.eval_every) == (4, 10000, 1000)
    assert cfg.trainer.max_length == 320
    assert cfg.model.name == "llama2_7b" and cfg.model.quantization == "8bit"
    assert cfg.model.loader.model_id == "meta-llama/Llama-2-7b-hf"
    lora = cfg.model.lora
    assert (lora.r, lora.alpha, lora.dropout, list(lora.target_modules)) == (8, 16, 0.1, ["q_proj", "v_proj"])
    assert cfg.method.name == "adamw" and cfg.method.lr == 5e-5 and cfg.method.weight_decay == 0.0
    assert cfg.method.warmup_steps == 0
    assert cfg.run_dir.endswith("/runs/default/winogrande_s/llama2_7b/adamw/seed=21")


def test_data_dir_from_environment(compose, monkeypatch, tmp_path):
    monkeypatch.setenv("BAYESLORA_DATA_DIR", str(tmp_path))
    assert compose(["dataset=arc_c"]).dataset.source.data_dir == str(tmp_path)
    monkeypatch.delenv("BAYESLORA_DATA_DIR")
    assert compose(["dataset=arc_c"]).dataset.source.data_dir is None


def test_unknown_key_fails_at_compose(compose):
    with pytest.raises((ConfigCompositionException, ConfigKeyError)):
        compose(["trainer.max_stepz=3"])


@pytest.mark.parametrize("override", ["dataset=nope", "model=gpt5", "method=no_such_method"])
def test_unknown_option_fails_at_compose(compose, override):
    with pytest.raises(MissingConfigException):
        compose([override])


@pytest.mark.slow
def test_cli_cfg_job_and_unknown_option():
    out = subprocess.run(
        [sys.executable, "-m", "bayeslora.train", "--cfg", "job", "model=tiny"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert "batch_size: 4" in out.stdout and "max_steps: 10000" in out.stdout and "name: tiny" in out.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "bayeslora.train", "dataset=nope"], capture_output=True, text=True, timeout=120
    )
    assert bad.returncode != 0
    assert "Could not find 'dataset/nope'" in bad.stderr


SPEED_OR_DISPLAY = [
    "eval.sample_chunk=1",
    "eval.save_predictions=false",
    "trainer.checkpoint_every=7",
    "trainer.keep_checkpoint=true",
    "trainer.num_threads=1",
    "trainer.progress_bar=true",
    "predictive.swag.label=Other",
    "predictive.map.table_rank=99",
    "paths.data_dir=/elsewhere/data",  # the same benchmark copies on another machine
]
COMPUTED = ["eval.ece_bins=15", "predictive.swag.n_samples=20", "method.lr=1e-4", "trainer.max_steps=9"]


def test_speed_and_display_settings_leave_the_config_hash(compose):
    base = compose(["model=tiny"])
    assert base.eval.sample_chunk != 1  # the override below changes it
    h = config_hash(base)
    for override in SPEED_OR_DISPLAY:
        assert config_hash(compose(["model=tiny", override])) == h, override
    for override in COMPUTED:
        assert config_hash(compose(["model=tiny", override])) != h, override
