"""Checkpoints: kill a real run and resume it bit-identically; corrupt, partial and disk-full cases."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from bayeslora import checkpoint
from bayeslora.checkpoint import CheckpointError
from bayeslora.runner import run


def _preds(cfg):
    return dict(np.load(Path(cfg.run_dir) / "preds.npz"))


def _assert_same_run(a_cfg, b_cfg):
    a = json.loads((Path(a_cfg.run_dir) / "metrics.json").read_text())
    b = json.loads((Path(b_cfg.run_dir) / "metrics.json").read_text())
    assert a["status"] == b["status"] == "success" and a["config_hash"] == b["config_hash"]
    assert a["splits"] == b["splits"], "resumed metrics must equal the uninterrupted run's exactly"
    pa, pb = _preds(a_cfg), _preds(b_cfg)
    assert pa.keys() == pb.keys()
    for k in pa:
        np.testing.assert_array_equal(pa[k], pb[k])


@pytest.mark.slow
def test_killed_subprocess_resumes_bit_identically(compose, tiny_overrides, tmp_path):
    common = tiny_overrides + [
        "trainer.max_steps=400",
        "trainer.checkpoint_every=25",
        "trainer.eval_every=100",
        "predictive.swag.start_step=50",
        "predictive.swag.interval=10",
        "predictive.laplace_kfac.n_samples=200",
        "dataset.source.n_train=200",
    ]
    reference = compose(common + ["exp_name=reference"])
    run(reference)

    resumed = compose(common + ["exp_name=killed"])
    run_dir = Path(resumed.run_dir)
    cmd = [sys.executable, "-m", "bayeslora.train", *common, "exp_name=killed"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=dict(os.environ))
    killed_at = None
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        meta = run_dir / "checkpoint.json"
        if meta.exists():
            try:
                step = json.loads(meta.read_text())["step"]
            except (json.JSONDecodeError, KeyError):
                step = 0
            if step >= 100:
                proc.send_signal(signal.SIGKILL)
                killed_at = step
                break
        time.sleep(0.02)
    proc.wait(timeout=60)
    assert killed_at is not None, f"the run finished before it could be killed: {proc.stderr.read()[-2000:]}"
    assert killed_at < 400
    assert not (run_dir / "metrics.json").exists(), "a killed run leaves no record"
    history_before = (run_dir / "history.csv").read_text()

    rec = run(resumed)  # relaunching the same config resumes from the checkpoint
    assert rec["status"] == "success" and rec["steps"] == 400
    _assert_same_run(reference, resumed)
    assert not (run_dir / "checkpoint.pt").exists(), "the checkpoint is removed after success"
    # history: no step is logged twice
    import pandas as pd

    hist = pd.read_csv(run_dir / "history.csv")
    assert not hist.duplicated(["step", "key"]).any()
    assert history_before  # it existed before the resume


class _Interrupt(Exception):
    pass


def _interrupt_at(monkeypatch, method_cls, step: int):
    original = method_cls.train_step
    calls = {"n": 0}

    def train_step(self, model, batch):
        calls["n"] += 1
        if calls["n"] == step:
            raise _Interrupt(f"simulated preemption at step {step}")
        return original(self, model, batch)

    monkeypatch.setattr(method_cls, "train_step", train_step)


@pytest.mark.slow
def test_ivon_resume_keeps_step_counter_and_hessian(compose, tiny_overrides, monkeypatch):
    from bayeslora.methods.ivon import IVONMethod

    common = tiny_overrides + [
        "method=ivon",
        "trainer.max_steps=30",
        "trainer.checkpoint_every=10",
        "trainer.eval_every=0",
        "predictive.ivon_tau.n_samples=2",
    ]
    reference = compose(common + ["exp_name=reference"])
    run(reference)
    interrupted = compose(common + ["exp_name=interrupted"])
    with monkeypatch.context() as m:
        _interrupt_at(m, IVONMethod, 25)
        with pytest.raises(_Interrupt):
            run(interrupted)
    state = checkpoint.load(
        Path(interrupted.run_dir),
        json.loads((Path(interrupted.run_dir) / "metrics.json").read_text())["config_hash"],
    )
    assert state["step"] == 20 and state["method"]["ivon_current_step"] == 20
    assert json.loads((Path(interrupted.run_dir) / "metrics.json").read_text())["status"] == "failed"
    run(interrupted)
    _assert_same_run(reference, interrupted)


@pytest.fixture
def interrupted_run(compose, tiny_overrides, monkeypatch):
    from bayeslora.methods.adamw import AdamWMethod

    cfg = compose(
        tiny_overrides
        + [
            "trainer.max_steps=12",
            "trainer.checkpoint_every=4",
            "trainer.eval_every=0",
            "predictive.laplace_kfac.n_samples=100",
        ]
    )
    with monkeypatch.context() as m:
        _interrupt_at(m, AdamWMethod, 10)
        with pytest.raises(_Interrupt):
            run(cfg)
    return cfg, Path(cfg.run_dir)


def test_corrupt_checkpoint_is_refused(interrupted_run):
    cfg, run_dir = interrupted_run
    data = bytearray((run_dir / "checkpoint.pt").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (run_dir / "checkpoint.pt").write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="corrupt"):
        run(cfg)
    assert json.loads((run_dir / "metrics.json").read_text())["status"] == "failed"


def test_partial_checkpoint_is_refused(interrupted_run):
    cfg, run_dir = interrupted_run
    data = (run_dir / "checkpoint.pt").read_bytes()
    (run_dir / "checkpoint.pt").write_bytes(data[: len(data) // 3])
    with pytest.raises(CheckpointError, match="partial or damaged"):
        run(cfg)
    (run_dir / "checkpoint.json").unlink()
    with pytest.raises(CheckpointError, match="incomplete"):
        run(cfg)


def test_disk_full_keeps_the_previous_checkpoint(interrupted_run, monkeypatch):
    _, run_dir = interrupted_run
    before = json.loads((run_dir / "checkpoint.json").read_text())
    assert before["step"] == 8
    real_fsync = os.fsync

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(OSError, match="No space left"):
        checkpoint.save(run_dir, {"x": 1}, 12, before["config_hash"])
    monkeypatch.setattr(os, "fsync", real_fsync)
    assert json.loads((run_dir / "checkpoint.json").read_text()) == before
    state = checkpoint.load(run_dir, before["config_hash"])
    assert state["step"] == 8
    assert not [p for p in run_dir.iterdir() if p.name.endswith(".tmp")], "no temporary files left behind"


def test_checkpoint_of_another_config_is_refused(interrupted_run, compose, tiny_overrides):
    cfg, run_dir = interrupted_run
    meta = json.loads((run_dir / "checkpoint.json").read_text())
    with pytest.raises(CheckpointError, match="belongs to config hash"):
        checkpoint.load(run_dir, "0" * 16)
    assert meta["config_hash"] != "0" * 16


def test_a_resumed_record_says_so_and_sums_its_training_time(interrupted_run, compose, tiny_overrides):
    cfg, run_dir = interrupted_run
    before = checkpoint.load(run_dir, json.loads((run_dir / "metrics.json").read_text())["config_hash"])
    assert before["step"] == 8 and before["loop"]["train_s"] > 0
    prov = run(cfg)["provenance"]
    assert prov["resumed_from_step"] == 8
    # the training seconds of the killed process are carried over, the wall time is this process's
    assert prov["train_s"] > before["loop"]["train_s"] and prov["wall_s"] > 0
    fresh = run(compose(tiny_overrides + ["trainer.max_steps=4", "trainer.eval_every=0", "exp_name=fresh"]))
    assert "resumed_from_step" not in fresh["provenance"] and fresh["provenance"]["train_s"] > 0
