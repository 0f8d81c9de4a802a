"""Tests pinning the survivors of the mutation round over claims.py, paper_table.py, evaluate.py, adapters.py and data/templates.py; each names the mutant it kills."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from bayeslora.adapters import read_adapter
from bayeslora.errors import ConfigError
from bayeslora.results import claims as C
from bayeslora.results import paper_table as PT
from bayeslora.results.layout import DATASET_ORDER, METRIC_KEYS, metric_info
from bayeslora.results.runs import load_records
from bayeslora.results.summary import summarize

from .test_adapters import _read_back, ivon_run  # noqa: F401  (ivon_run: a fixture)
from .test_aggregate import write_record
from .test_evaluate import edit_config, evaluation, make_adapter, tiny_model  # noqa: F401
from .test_paper import SEEDS, fixture_paper

# ------------------------------------------------------------------------------ claims.py


def test_resampling_reaches_the_last_example():
    """Kills resample_indices drawing from 0..n-2 (``integers(0, n - 1)``): every example, the last
    included, is drawn, and two rows that differ on the last example alone get a bootstrap variance."""
    idx = C.resample_indices(5, 200)
    assert set(np.unique(idx).tolist()) == {0, 1, 2, 3, 4}
    n = 40
    y = np.zeros(n, dtype=np.int64)
    right = np.tile([0.7, 0.1, 0.1, 0.1], (n, 1))
    wrong = right.copy()
    wrong[-1] = [0.1, 0.7, 0.1, 0.1]  # only the last example differs
    est = C.paired_bootstrap([right, right], [wrong, wrong], y, "acc", n_boot=500)
    assert est.diff == pytest.approx(1 / n)
    assert est.terms[0][0] > 0  # 0 if the last example were never resampled
    lo, hi = est.interval()
    assert lo < est.diff < hi


# ------------------------------------------------------------------------------ paper_table.py


def _write_paper_equal(res, paper, datasets, seeds, model="llama2_7b", override=None):
    """AdamW's map row equal to ``paper`` on ``datasets`` (every seed the same value), raw units;
    ``override`` maps a metric to a raw value on every dataset."""
    ref = paper.set_index(["predictive", "dataset", "metric"])["mean"]
    for d in datasets:
        m = {k: ref[("map", d, k)] / metric_info(k)[1] for k in METRIC_KEYS} | (override or {})
        for seed in seeds:
            write_record(res, d, "adamw", seed, {"map": m}, table_rows=["map"], model=model)


def test_no_comparable_average_for_two_of_the_six_datasets(tmp_path):
    """Kills compare's ``run_datasets <= set(DATASET_ORDER)`` (for ``==``): a run of ARC-E and ARC-C
    only has an Average of two columns, which is not the paper's six-column Average."""
    paper = PT.load_paper_table()
    res = tmp_path / "results"
    _write_paper_equal(res, paper, ["arc_e", "arc_c"], SEEDS)
    cells, lacking = PT.compare(summarize(load_records(res / "runs" / "t1"), expected_seeds=SEEDS), paper)
    assert set(cells.dataset) == {"arc_e", "arc_c"}
    avg = lacking[(lacking.dataset == "average") & (lacking.predictive == "map")]
    assert len(avg) == 4
    assert set(avg.reason) == {
        "no comparable Average (the run does not cover exactly the paper's six datasets)"
    }


def test_rank_ties_share_the_lower_rank():
    """Kills _rank's ``method="max"`` (for ``"min"``): tied rows share the better (lower) rank."""
    assert PT._rank(pd.Series([80.0, 80.0, 70.0]), "acc").tolist() == [1, 1, 3]
    assert PT._rank(pd.Series([5.0, 9.0, 5.0]), "ece").tolist() == [1, 3, 1]


def test_printed_change_tolerates_three_half_units():
    """Kills paper_change_mismatches' tolerance of two half units (for three): a printed change 0.12
    off the difference of two printed ACC means (three half units: 0.15) is rounding; 0.20 is not."""
    paper = pd.DataFrame(
        dict(
            predictive=["map", "ivon", "ivon_mean"],
            dataset="arc_e",
            metric="acc",
            mean=[70.0, 71.0, 71.0],
            change=[np.nan, 1.12, 1.20],
        )
    )
    out = PT.paper_change_mismatches(paper)
    assert out.predictive.tolist() == ["ivon_mean"]
    assert out.derived.iloc[0] == pytest.approx(1.0) and out.printed.iloc[0] == pytest.approx(1.2)


def test_rounding_rule_includes_exactly_half_a_unit(tmp_path):
    """Kills compare's ``diff.abs() < half`` (for ``<= half + 1e-9``): one seed at 0.7405 against a
    printed 74.0 is 74.05000000000001 − 74.0 in floats, half a unit: it agrees."""
    paper = fixture_paper()
    d = DATASET_ORDER[0]
    at = (paper.predictive == "map") & (paper.dataset == d) & (paper.metric == "acc")
    paper.loc[at, "mean"] = 74.0
    res = tmp_path / "results"
    _write_paper_equal(res, paper, [d], [21], override={"acc": 0.7405})
    cells, _ = PT.compare(summarize(load_records(res / "runs" / "t1")), paper)
    c = cells[(cells.predictive == "map") & (cells.dataset == d) & (cells.metric == "acc")].iloc[0]
    assert c.basis == "rounding"
    assert c["diff"] > 0.05 and c["diff"] == pytest.approx(0.05, abs=1e-12)
    assert bool(c.within_noise)


# ------------------------------------------------------------------------------ evaluate.py


def test_negative_max_steps_is_refused_as_training(compose, tiny_base):
    """Kills check's ``max_steps > 0`` (for ``!= 0``): -1 gets the evaluation's own refusal, not the
    schema's."""
    from bayeslora.evaluate import check

    cfg = evaluation(compose, [*tiny_base, "adapter=null", "trainer.max_steps=-1"])
    with pytest.raises(
        ConfigError, match=r"^an adapter evaluation trains nothing: trainer.max_steps must be 0, not -1$"
    ):
        check(cfg)


def test_cli_cfg_as_the_last_argument_prints_the_job_config(tmp_path, capsys):
    """Kills main's ``i + 1 <= len(args)`` (for ``<``): ``--cfg`` last is ``--cfg job``, no IndexError."""
    from bayeslora.evaluate import main

    assert main(["model=tiny", "adapter=null", f"paths.root={tmp_path}", "--cfg"]) == 0
    assert "\nmodel:\n  name: tiny\n" in capsys.readouterr().out
    assert not (tmp_path / "results").exists()


# ------------------------------------------------------------------------------ adapters.py


def _adapter(folder, **changes):
    """An adapter folder read_adapter accepts (the weights file is only hashed), with ``changes``."""
    folder.mkdir(parents=True)
    acfg = dict(
        peft_type="LORA",
        r=4,
        lora_alpha=8,
        lora_dropout=0.1,
        target_modules=["v_proj", "q_proj"],
        bias="none",
        base_model_name_or_path=None,
    )
    (folder / "adapter_config.json").write_text(json.dumps(acfg | changes))
    (folder / "adapter_model.safetensors").write_bytes(b"not read, only hashed")
    return folder


def test_a_plain_adapter_config_is_read(tmp_path):
    """The accepted baseline of the refusals below (a single module name is a one-item list)."""
    spec = read_adapter(str(_adapter(tmp_path / "ok")))
    assert (spec.r, spec.alpha, spec.dropout, spec.target_modules) == (4, 8.0, 0.1, ["q_proj", "v_proj"])
    assert read_adapter(str(_adapter(tmp_path / "one", target_modules="q_proj"))).target_modules == ["q_proj"]


@pytest.mark.parametrize(
    "mutant, changes, match",
    [
        ("A1: the bias refusal removed", dict(bias="all"), r"uses bias='all' \(adapter_config.json\)"),
        ("A2: r < 0 (for r < 1)", dict(r=0), r"r=0, lora_dropout=0.1 \(need r >= 1"),
        (
            "A3: dropout <= 1 (for < 1)",
            dict(lora_dropout=1.0),
            r"lora_dropout=1.0 \(need .*0 <= dropout < 1\)",
        ),
        (
            "A4: use_rslora dropped from UNSUPPORTED",
            dict(use_rslora=True),
            r"uses use_rslora \(adapter_config",
        ),
        (
            "A5: the regex target_modules refusal removed",
            dict(target_modules=".*proj"),
            r"is the pattern '\.\*proj'",
        ),
        (
            "A9: empty module names accepted",
            dict(target_modules=["q_proj", ""]),
            r"has no target_modules list",
        ),
    ],
)
def test_read_adapter_refuses(tmp_path, mutant, changes, match):
    """Kills the mutant named in ``mutant``: read_adapter refuses the setting in one line."""
    with pytest.raises(ConfigError, match=match) as e:
        read_adapter(str(_adapter(tmp_path / "bad", **changes)))
    assert "\n" not in str(e.value)


def test_a_zero_posterior_variance_is_refused(ivon_run, tmp_path):  # noqa: F811
    """Kills FixedAdapterPosterior.setup's ``variance >= 0`` (for ``> 0``): a zero variance is refused."""
    r, state = ivon_run
    state["variance"] = state["variance"].clone()
    state["variance"][3] = 0.0
    with pytest.raises(ConfigError, match=r"its variance is not positive everywhere$"):
        _read_back(r, state, tmp_path / "zero.pt")
    assert math.isfinite(float(state["variance"].sum()))


def test_adapter_model_checks_the_base_model_by_default(compose, tiny_base, tiny_model, tmp_path):  # noqa: F811
    """Kills adapter_model's ``cfg.get("check_base_model", False)`` (for ``True``): a config without
    the key (a training run's, as scripts/precision_probe.py passes) still refuses another base model."""
    import torch

    from bayeslora.adapters import adapter_model

    cfg = compose(tiny_base)
    assert "check_base_model" not in cfg
    folder = edit_config(
        make_adapter(tiny_model, tmp_path / "llama"), base_model_name_or_path="meta-llama/Llama-2-7b-hf"
    )
    with pytest.raises(ConfigError, match=r"trained on base model 'meta-llama/Llama-2-7b-hf'"):
        adapter_model(cfg, torch.device("cpu"), read_adapter(str(folder)))


# ------------------------------------------------------------------------------ data/templates.py


def test_an_integer_label_of_the_class_count_is_refused():
    """Kills YamlTemplate._label's ``0 <= value <= n`` (for ``< n``): with two classes, 2 is no class
    index; 0 and 1 are."""
    from bayeslora.data.templates import YamlTemplate
    from bayeslora.errors import DataError

    t = YamlTemplate({"prompt": "Q: {q}", "label": "y"}, "d", ["no", "yes"])
    assert t({"q": "a", "y": 1}) == ("Q: a", 1)
    assert t({"q": "a", "y": 0}) == ("Q: a", 0)
    with pytest.raises(DataError, match=r"has value 2: neither a class index 0\.\.1"):
        t({"q": "a", "y": 2})


def test_boolq_refuses_a_label_other_than_0_or_1():
    """Kills boolq without its ``label not in (0, 1)`` refusal: SuperGLUE's unlabelled -1 (its test
    split) or a 2 is an error, not class -1 or 2."""
    from bayeslora.data.templates import boolq
    from bayeslora.errors import DataError

    row = {"question": "is it", "passage": "P"}
    prompt = "Answer the question with only True or False: is it Context: P"
    assert boolq(row | {"label": 1}) == (prompt, 1)
    assert boolq(row | {"answer": False}) == (prompt, 0)
    for bad in (-1, 2):
        with pytest.raises(DataError, match=rf"BoolQ label must be 0 or 1, got {bad}"):
            boolq(row | {"label": bad})


def test_a_boolean_label_needs_a_label_map():
    """Kills YamlTemplate._label accepting a bool as a class index (``isinstance(value, int)`` without
    ``not isinstance(value, bool)``): True is no class index; with a label_map it is mapped."""
    from bayeslora.data.templates import YamlTemplate
    from bayeslora.errors import DataError

    plain = YamlTemplate({"prompt": "Q: {q}", "label": "y"}, "d", ["no", "yes"])
    with pytest.raises(DataError, match=r"has value True: neither a class index 0\.\.1 .*add a label_map"):
        plain({"q": "a", "y": True})
    mapped = YamlTemplate(
        {"prompt": "Q: {q}", "label": "y", "label_map": {True: 0, False: 1}}, "d", ["no", "yes"]
    )
    assert mapped({"q": "a", "y": True}) == ("Q: a", 0)
