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
