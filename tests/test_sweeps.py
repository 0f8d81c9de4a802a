"""Sweeps: submitit multirun, a failing job among others, relaunch skipping, presets, OOD, secrets."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from bayeslora.errors import ConfigError, DataError
from bayeslora.runner import run
from bayeslora.schema import validate

from .conftest import DATA_DIR, needs_data

FAST = ["model=tiny", "debug=fast", "trainer.num_threads=1", "method.predictives=[map]"]


def _train(args, tmp_path, timeout=600):
    env = dict(os.environ, WANDB_MODE="disabled", HF_HUB_OFFLINE="1")
    return subprocess.run(
        [sys.executable, "-m", "bayeslora.train", *args, f"paths.root={tmp_path}"],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


def _records(root: Path) -> dict[str, dict]:
    return {str(p.parent.relative_to(root)): json.loads(p.read_text()) for p in root.rglob("metrics.json")}


@pytest.mark.slow
def test_submitit_local_two_job_multirun(tmp_path):
    out = _train(["-m", "launcher=submitit_local", *FAST, "dataset=synthetic", "seed=21,42"], tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    recs = _records(tmp_path / "results/runs/debug")
    assert set(recs) == {"synthetic/tiny/adamw/seed=21", "synthetic/tiny/adamw/seed=42"}
    assert all(r["status"] == "success" for r in recs.values())
    assert recs["synthetic/tiny/adamw/seed=21"]["metrics"] != recs["synthetic/tiny/adamw/seed=42"]["metrics"]
    assert list((tmp_path / "results/runs/debug/.submitit").iterdir()), "submitit ran the jobs"


@pytest.mark.slow
def test_failing_job_does_not_stop_the_sweep_and_relaunch_redoes_nothing_finished(tmp_path):
    # ARC-C's files exist (a missing folder is refused before the sweep starts) but hold no row:
    # a failure only the job can find
    data = tmp_path / "data"
    (data / "ai2_arc/ARC-Challenge").mkdir(parents=True)
    for split in ("train", "validation"):
        (data / "ai2_arc/ARC-Challenge" / f"{split}.jsonl").write_text("")
    args = ["-m", *FAST, "dataset=synthetic,arc_c", f"paths.data_dir={data}"]
    first = _train(args, tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    root = tmp_path / "results/runs/debug"
    recs = _records(root)
    assert recs["synthetic/tiny/adamw/seed=21"]["status"] == "success"
    failed = recs["arc_c/tiny/adamw/seed=21"]
    assert failed["status"] == "failed" and "is empty" in failed["error"] and failed["metrics"] == {}
    assert "1 failed, 1 success" in first.stderr + first.stdout
    done = root / "synthetic/tiny/adamw/seed=21/metrics.json"
    mtime = done.stat().st_mtime_ns
    second = _train(args, tmp_path)
    assert second.returncode == 0
    assert done.stat().st_mtime_ns == mtime, "a finished job is not redone"
    assert "skipping" in second.stderr + second.stdout


@pytest.mark.slow
def test_table1_preset_is_a_72_job_slurm_array():
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "bayeslora.train",
            "-m",
            "experiment=table1",
            "launcher=slurm",
            "--cfg",
            "hydra",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert "SlurmLauncher" in out.stdout and "max_num_timeout: 20" in out.stdout
    assert "# sweep: 72 jobs" in out.stdout
    params = {}
    for key, value in re.findall(r"^\s+(dataset|method|seed): (.+)$", out.stdout, re.M):
        params.setdefault(key, value)  # the sweeper's params come first (later: runtime choices)
    sizes = {k: len(v.split(",")) for k, v in params.items()}
    assert sizes == {"dataset": 6, "method": 4, "seed": 3}
    assert sizes["dataset"] * sizes["method"] * sizes["seed"] == 72
    assert params["seed"] == "21,42,87"


def test_experiment_headers_give_the_command():
    from bayeslora.config import CONF_DIR

    for path in (CONF_DIR / "experiment").glob("*.yaml"):
        text = path.read_text()
        assert text.startswith("# @package _global_"), path
        assert "python -m bayeslora.train" in text, f"{path.name} must say the command that runs it"


def test_ood_preset_composes(compose):
    cfg = compose(["experiment=ood"])
    assert cfg.dataset.name == "obqa"
    assert sorted(cfg.eval.ood) == ["arc_c", "arc_e"] and cfg.eval.ood.arc_c.source.config == "ARC-Challenge"


@needs_data
def test_ood_evaluation_on_real_arc(compose, tiny_base):
    cfg = compose(
        tiny_base
        + [
            f"paths.data_dir={DATA_DIR}",
            "+dataset@eval.ood.arc_c=arc_c",
            "eval.max_examples=20",
            "method.predictives=[map,mc_dropout]",
        ]
    )
    rec = run(cfg)
    assert set(rec["splits"]) == {"validation", "shifted", "arc_c:validation"}
    assert set(rec["splits"]["arc_c:validation"]) == {"map", "mc_dropout"}
    assert rec["n_eval"]["arc_c:validation"] == 20


def test_ood_with_other_classes_is_refused(compose, tiny_base, tmp_path):
    cfg = compose(tiny_base + ["+dataset@eval.ood.boolq=boolq", f"paths.data_dir={tmp_path}"])
    with pytest.raises(ConfigError, match="must match"):
        run(cfg)


def test_secrets_never_reach_the_record(compose, tiny_base, tmp_path, monkeypatch):
    secret = "hf_SENTINELsecret123456"
    monkeypatch.setenv("HF_TOKEN", secret)
    cfg = compose(tiny_base + ["dataset=arc_c", f"paths.data_dir={tmp_path}/{secret}"])
    with pytest.raises(DataError):
        run(cfg)
    text = (Path(cfg.run_dir) / "metrics.json").read_text()
    assert secret not in text and "***" in text
    with pytest.raises(ConfigError, match="looks like a secret"):  # the config check every entry runs
        validate(compose(tiny_base + [f"+hf_token={secret}"]))
    from bayeslora.utils.secrets import refuse_secret_keys

    refuse_secret_keys({"model": {"tokenizer_path": "/some/where", "key_order": "x"}})  # not secrets
