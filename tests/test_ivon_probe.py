"""scripts/ivon_probe.py: the criterion judges ess and h₀ against an AdamW reference run on the same
batches (training-loss gap) and the posterior's noise against the LoRA weights' scale; the old
Hessian-drift criterion, which read 0.000 at every grid point, is gone."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
import ivon_probe  # noqa: E402


def row(ess, h0, last, finite=True):
    return {
        "ess": ess,
        "hess_init": h0,
        "noise": (ess * h0) ** -0.5,
        "loss_first_quarter": 1.4,
        "loss_last_quarter": last,
        "finite": finite,
    }


REF = {"loss_last_quarter": 1.00, "finite": True, "lora_rms_end": 0.02}


def test_the_choice_is_the_widest_posterior_that_trains_as_adamw_does():
    rows = ivon_probe.mark(
        [
            row(1e6, 1e-3, 1.40),  # noise 0.032 > the weights' RMS: too wide, and it does not fit
            row(1e7, 1e-3, 1.30),  # noise 0.010: does not fit (gap 0.30)
            row(1e9, 1e-5, 1.03),  # noise 0.010: fits
            row(1e10, 1e-5, 1.01),  # noise 0.0032: fits, less noise
            row(1e5, 1e-2, 0.99),  # noise 0.032: fits but wider than the weights
        ],
        REF,
        gap_tol=0.05,
    )
    assert [r["fits"] for r in rows] == [False, False, True, True, True]
    assert [round(r["noise_ratio"], 2) for r in rows] == [1.58, 0.5, 0.5, 0.16, 1.58]
    chosen = ivon_probe.choose(rows)
    assert (chosen["ess"], chosen["hess_init"]) == (1e9, 1e-5)
    # nothing fits: no choice (the table says so), never a fallback
    none = ivon_probe.mark([row(1e6, 1e-3, 1.4), row(1e7, 1e-3, 1.3, finite=False)], REF, 0.05)
    assert ivon_probe.choose(none) is None
    md = ivon_probe.to_markdown(
        none,
        {**REF, "lr": 5e-4},
        None,
        {"model": "m", "dataset": "d", "steps": 8, "seed": 1, "device": "cpu", "gap_tol": 0.05},
    )
    assert "none of the grid fits" in md and "drift" not in md


@pytest.mark.slow
def test_probe_one_runs_the_reference_and_a_grid_point_on_the_tiny_model():
    common = (6, 0.05, 21, "cpu", 1, 16)
    ref = ivon_probe.probe_one(("tiny", "synthetic", None, None, *common))
    point = ivon_probe.probe_one(("tiny", "synthetic", 1e6, 1e-3, *common))
    assert ref["finite"] and point["finite"] and ref["ess"] is None
    assert ref["lora_rms_end"] > 0 and point["noise"] == pytest.approx(1 / (1e6 * 1e-3) ** 0.5)
    assert point["clip_radius"] == 0.05 and ref["clip_radius"] is None
    assert "hess_mean_end" in point and "drift" not in point
    assert 0.0 <= point["clipped"] <= 1.0 and "clipped" not in ref


def test_clipped_share_reads_the_optimizer_s_last_step():
    """Gradients c on weights at 0, h₀ = 1: after one step m / debias = c and h ≈ 1, so the weights
    with |c| >= the radius 0.5 were clipped: two of four."""
    import ivon
    import torch

    torch.manual_seed(0)
    w = torch.nn.Parameter(torch.zeros(4))
    opt = ivon.IVON([w], lr=0.1, ess=1e6, hess_init=1.0, clip_radius=0.5, beta1=0.9)
    c = torch.tensor([10.0, 0.1, -10.0, 0.01])
    with opt.sampled_params(train=True):
        (w * c).sum().backward()
    opt.step()
    assert ivon_probe.clipped_share(opt) == 0.5
    # the clipped ones moved lr·radius, the others lr·c/h (h within 1 % of 1 after one step)
    assert w.detach().abs().tolist() == pytest.approx([0.05, 0.01, 0.05, 0.001], rel=1e-2)


def test_the_clip_radius_is_a_grid_axis_and_the_choice_writes_it(tmp_path):
    rows = ivon_probe.mark(
        [
            {**row(1e10, 1e-5, 1.39), "clip_radius": 0.0167, "lora_rms_end": 0.06, "clipped": 1.0},
            {**row(1e10, 1e-5, 1.02), "clip_radius": 0.004, "lora_rms_end": 0.02, "clipped": 0.99},
        ],
        REF,
        gap_tol=0.05,
    )
    assert [r["fits"] for r in rows] == [False, True]
    assert [round(r["rms_vs_adamw"], 2) for r in rows] == [3.0, 1.0]  # the random walk shows as 3x
    chosen = ivon_probe.choose(rows)
    assert chosen["clip_radius"] == 0.004
    md = ivon_probe.to_markdown(
        rows,
        {**REF, "lr": 5e-4},
        chosen,
        {"model": "m", "dataset": "d", "steps": 8, "seed": 1, "device": "cpu", "gap_tol": 0.05},
    )
    assert "| 1e+10 | 1e-05 | 0.004 |" in md and "| 3.00 | no |" in md
    assert "clip_radius = 0.004" in md
    cfg = tmp_path / "ivon_m.yaml"
    ivon_probe.write_config(cfg, "m", "arc_e", chosen, tmp_path / "probe.json")
    from omegaconf import OmegaConf

    loaded = OmegaConf.to_container(OmegaConf.load(cfg), resolve=False)
    assert loaded["lookup"]["ivon_m"]["arc_e"]["clip_radius"] == 0.004
    assert loaded["method"]["clip_radius"] == "${lookup.ivon_m.${dataset.name}.clip_radius}"


def test_at_ess_1e10_ivon_s_hessian_grows_by_half_the_squared_gradient_per_step():
    """docs/ivon_settings.md's premise, against ivon-opt itself: with beta2 = 1 - 1e-5 the Hessian's
    third term adds about ½·(1-beta2)²·ess·ε²·g² per step, ½·g² at ess 1e10 (h leaves h₀), 5e-5·g²
    at the paper's 1e6 (h stays at h₀)."""
    import ivon
    import torch

    g, steps, h0 = 0.01, 20, 1e-5
    grown = {}
    for ess in (1e10, 1e6):
        torch.manual_seed(0)
        w = torch.nn.Parameter(torch.zeros(20_000))
        opt = ivon.IVON([w], lr=1e-6, ess=ess, hess_init=h0, beta2=1 - 1e-5)
        for _ in range(steps):
            with opt.sampled_params(train=True):
                opt.zero_grad()
                (w * g).sum().backward()
            opt.step()
        grown[ess] = float(opt.param_groups[0]["hess"].mean()) - h0
    assert grown[1e10] == pytest.approx(0.5 * steps * g**2, rel=0.05)
    assert grown[1e6] < 1e-3 * h0 * steps
