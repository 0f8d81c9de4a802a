"""The loggers (bayeslora/loggers.py): every split's final metrics reach the history (CSV and W&B),
W&B files land under the scratch folder (training and ``bayeslora-table --wandb``), and the docs say
where and how to sync them."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pandas as pd
import pytest

from bayeslora.loggers import CSVLogger, WandbLogger, flatten, wandb_dir
from bayeslora.results.aggregate import main as table_main
from bayeslora.runner import run

from .conftest import REPO
from .test_aggregate import m, write_record

SPLITS = {
    "validation": {"map": {"acc": 0.5, "nll": 0.7}},
    "shifted": {"map": {"acc": 0.4, "nll": 0.9}},
}


class FakeRun:
    """What WandbLogger uses of a wandb run: log, summary, finish."""

    def __init__(self):
        self.logged: list[tuple[dict, int]] = []
        self.summary: dict = {}

    def log(self, metrics, step):
        self.logged.append((dict(metrics), step))

    def finish(self, exit_code=0):
        self.exit_code = exit_code


def _final(loggers, step: int) -> None:
    """The runner's end of a run (bayeslora/runner.py): the summary of every split, then the log of
    the first split's final metrics at the last step."""
    for lg in loggers:
        lg.summary(flatten({"final": SPLITS}))
        lg.log(flatten({"final": SPLITS["validation"]}), step)
        lg.close(True)


def test_every_splits_final_metrics_reach_the_history(tmp_path, monkeypatch):
    """history.csv and the W&B history hold the final metrics of every split (the shifted one too),
    at the last step, besides the first split's ``final/<predictive>/<metric>``."""
    import wandb

    fake = FakeRun()
    monkeypatch.setattr(wandb, "init", lambda **kw: fake)
    csv = CSVLogger(tmp_path)
    csv.log({"train/loss": 1.0}, 7)
    wb = WandbLogger("p", None, "offline", "g", "r", "adamw", [], str(tmp_path / "wb"))
    _final([csv, wb], 8)
    expected = {"final/map/acc", "final/map/nll"} | {
        f"final/{split}/map/{k}" for split in SPLITS for k in ("acc", "nll")
    }
    hist = pd.read_csv(tmp_path / "history.csv")
    final = hist[hist.key.str.startswith("final/")]
    assert set(final.key) == expected and set(final.step) == {8}
    assert final.set_index("key").value["final/shifted/map/nll"] == 0.9
    logged = {k: step for metrics, step in fake.logged for k in metrics}
    assert {k for k in logged if k.startswith("final/")} == expected and {logged[k] for k in expected} == {8}
    assert fake.summary["final/shifted/map/acc"] == 0.4


def test_a_run_logs_its_shifted_splits_final_metrics(compose, tiny_overrides):
    """End to end on the tiny model (validation and shifted splits): history.csv has every split's
    final metrics, equal to the record's."""
    cfg = compose(tiny_overrides)
    rec = run(cfg)
    hist = pd.read_csv(Path(cfg.run_dir) / "history.csv").set_index("key")
    for split, rows in rec["splits"].items():
        for pred, metrics in rows.items():
            for k, v in metrics.items():
                assert hist.value[f"final/{split}/{pred}/{k}"] == pytest.approx(v), (split, pred, k)
    assert hist.step["final/shifted/map/acc"] == rec["steps"]


def test_table_wandb_writes_under_the_scratch_folder(tmp_path, monkeypatch):
    """``bayeslora-table --wandb`` without WANDB_DIR writes where the training runs' W&B files go,
    ``<scratch>/wandb`` (conf/paths/default.yaml: $BAYESLORA_SCRATCH, else <root>/scratch), never
    ./wandb."""
    res = tmp_path / "results"
    for seed in (21, 42, 87):
        write_record(res, "arc_c", "adamw", seed, {"map": m(0.5, 0.1, 0.7, 0.4)})
    monkeypatch.delenv("WANDB_DIR")
    monkeypatch.delenv("BAYESLORA_SCRATCH", raising=False)
    monkeypatch.delenv("BAYESLORA_ROOT", raising=False)
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.chdir(tmp_path)
    assert table_main(["t1", "--results-dir", str(res), "--wandb", "--seeds", ""]) == 0
    assert list((tmp_path / "scratch" / "wandb" / "wandb").glob("offline-run-*"))
    assert not (tmp_path / "wandb").exists()
    monkeypatch.setenv("BAYESLORA_SCRATCH", str(tmp_path / "elsewhere"))
    assert table_main(["t1", "--results-dir", str(res), "--wandb", "--seeds", ""]) == 0
    assert list((tmp_path / "elsewhere" / "wandb" / "wandb").glob("offline-run-*"))


@pytest.mark.parametrize(
    "env",
    [
        {},
        {"BAYESLORA_ROOT": "/r"},
        {"BAYESLORA_SCRATCH": "/s"},
        {"BAYESLORA_ROOT": "/r", "BAYESLORA_SCRATCH": "/s"},
    ],
)
def test_wandb_dir_is_the_training_loggers(compose, monkeypatch, env):
    """The table command's folder is the one conf/logger/wandb.yaml gives the training runs."""
    for k in ("BAYESLORA_ROOT", "BAYESLORA_SCRATCH"):
        monkeypatch.delenv(k, raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    cfg = compose(["logger=wandb"])
    assert wandb_dir() == Path(cfg.logger.wandb.dir)


def test_docs_say_where_offline_runs_land_and_how_to_sync_them(
    compose, tiny_overrides, tmp_path, monkeypatch
):
    """docs/outputs.md names the folder an offline training run really lands in and the one
    ``wandb sync`` command for it."""
    monkeypatch.chdir(tmp_path)
    cfg = compose(tiny_overrides + ["logger=wandb", "logger.wandb.mode=offline", "paths.root=."])
    assert run(cfg)["status"] == "success"
    runs = list(Path(".").glob("scratch/wandb/wandb/offline-run-*"))
    assert len(runs) == 1
    docs = (REPO / "docs" / "outputs.md").read_text()
    assert "scratch/wandb/wandb/offline-run-<date>_<time>-<id>/" in docs
    assert re.search(r"^wandb sync scratch/wandb/wandb/offline-run-\*$", docs, re.M)
    assert "$BAYESLORA_SCRATCH/wandb/wandb/" in docs
    assert os.path.relpath(runs[0].parent, ".") == "scratch/wandb/wandb"
