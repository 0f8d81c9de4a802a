"""Methods and predictives: exact math against direct computations, and the shared contract."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from bayeslora.data import eval_batches
from bayeslora.errors import ConfigError
from bayeslora.predictives.sampling import lora_vector, set_dropout
from bayeslora.predictives.swag import SWAGCollector
from bayeslora.runner import build_predictives, fit, post_fit, run, setup

from .conftest import METHODS, assert_chunked_equals_sequential


# -- SWAG -------------------------------------------------------------------------------------
def test_swag_moments_and_deviations_match_numpy():
    rng = np.random.default_rng(0)
    stream = rng.normal(size=(9, 6)) * rng.uniform(0.1, 2.0, size=6)
    c = SWAGCollector(rank=4)
    for theta in stream:
        c.update(torch.tensor(theta, dtype=torch.float32))
    mean = stream.mean(0)
    np.testing.assert_allclose(c.mean.numpy(), mean, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(c.sq_mean.numpy(), (stream**2).mean(0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(c.variance().numpy(), stream.var(0), rtol=1e-4, atol=1e-6)
    # deviation i = theta_i - (running mean after theta_i); the last K are kept, oldest first
    running = np.cumsum(stream, 0) / np.arange(1, 10)[:, None]
    expected_d = (stream - running)[-4:].T
    np.testing.assert_allclose(c.deviation_matrix().numpy(), expected_d, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("convention,half", [("swag_lora", 1.0), ("maddox", 0.5)])
def test_swag_sample_formula_and_covariance(convention, half):
    rng = np.random.default_rng(1)
    stream = rng.normal(size=(12, 3))
    c = SWAGCollector(rank=5)
    for theta in stream:
        c.update(torch.tensor(theta, dtype=torch.float32))
    scale = 0.7
    g = torch.Generator().manual_seed(3)
    sample = c.sample(scale, g, convention=convention).numpy()
    g = torch.Generator().manual_seed(3)
    z1, z2 = torch.randn(3, generator=g).numpy(), torch.randn(5, generator=g).numpy()
    # the deviations of the last 5 snapshots, computed here from the stream (not from the collector)
    running = np.cumsum(stream, 0) / np.arange(1, 13)[:, None]
    d = (stream - running)[-5:].T
    var = stream.var(0)
    expected = stream.mean(0) + np.sqrt(scale * half) * (np.sqrt(var) * z1 + d @ z2 / np.sqrt(4))
    np.testing.assert_allclose(sample, expected, rtol=1e-4, atol=1e-5)
    # empirical covariance of many draws: swag-lora's scale·(diag(var) + D Dᵀ/(K−1)), half of it for
    # the original SWAG paper's convention; without the low-rank term the draws would miss D Dᵀ
    g = torch.Generator().manual_seed(4)
    draws = np.stack([c.sample(scale, g, convention=convention).numpy() for _ in range(20000)])
    cov = scale * half * (np.diag(var) + d @ d.T / 4)
    low_rank_part = scale * half * d @ d.T / 4
    assert np.abs(low_rank_part).max() > 0.3 * np.abs(cov).max(), "the test needs a visible low-rank term"
    np.testing.assert_allclose(np.cov(draws.T), cov, atol=0.05 * np.abs(cov).max())
    np.testing.assert_allclose(draws.mean(0), stream.mean(0), atol=0.05)


def test_swag_spread_keeps_deviations_from_the_whole_window():
    rng = np.random.default_rng(2)
    stream = rng.normal(size=(11, 4))
    from bayeslora.predictives.swag import spread_indices

    keep = spread_indices(len(stream), 5)
    assert keep == [1, 3, 6, 8, 10]  # round(linspace(1, 10, 5))
    c = SWAGCollector(rank=5, keep_indices=keep)
    for i, theta in enumerate(stream):
        c.update(torch.tensor(theta, dtype=torch.float32), step=100 + 10 * i)
    running = np.cumsum(stream, 0) / np.arange(1, 12)[:, None]
    np.testing.assert_allclose(c.deviation_matrix().numpy(), (stream - running)[keep].T, rtol=1e-4, atol=1e-6)
    assert c.deviation_steps == [100 + 10 * i for i in keep]
    assert c.steps == [100 + 10 * i for i in range(11)]


# -- helpers: a tiny run through the runner's own setup and step loop --------------------------
# The sizes of these runs (no periodic validation: nothing here reads it)
SIZES = ["trainer.max_length=64", "eval.max_examples=16", "trainer.eval_every=0"]
SWAG_EARLY = ("predictive.swag.start_step=1", "predictive.swag.interval=1")


def _context(compose, tiny_overrides, method: str, steps: int = 3, extra=(), swag_early=False):
    """A tiny ``method`` run as the runner builds it (:func:`runner.setup`), trained ``steps`` steps
    by :func:`runner.fit`, its predictives' post-fit work done, and one validation batch of 8.
    ``swag_early``: SWAG collects from step 1 at every step (where the method has a SWAG row)."""
    overrides = [*tiny_overrides, *SIZES, f"method={method}", f"trainer.max_steps={steps}"]
    if swag_early and "swag" in compose(overrides).method.predictives:
        overrides += SWAG_EARLY
    r = setup(compose([*overrides, *extra]))
    fit(r, loggers=[])
    post_fit(r)
    _, batch = next(eval_batches(r.task.evals["validation"], 8, r.task.pad_id))
    return r, batch


@pytest.mark.parametrize("method", METHODS)
def test_every_predictive_returns_normalised_samples(compose, tiny_overrides, method):
    r, batch = _context(compose, tiny_overrides, method, swag_early=True)
    ctx = r.ctx
    assert ctx.sample_chunk == r.cfg.eval.sample_chunk == 10  # the config's, as in a run
    for name, p in r.predictives.items():
        probs = p.predict(ctx, batch).exp()  # predictives return log-probabilities
        s = len(ctx.method.members) if name == "ensemble" else p.n_samples
        assert probs.shape == (s, 8, 4), name
        assert torch.all(probs >= 0)
        torch.testing.assert_close(probs.sum(-1), torch.ones(s, 8), atol=1e-5, rtol=0)


@pytest.mark.parametrize("name", ["ivon", "ivon_tau", "ensemble"])
def test_predictives_refuse_the_wrong_run(compose, tiny_overrides, name):
    cfg = compose([*tiny_overrides, *SIZES, "method=adamw", f"predictive=[map,{name}]"])
    with pytest.raises(ConfigError, match="predictive '.*' needs .*method=adamw does not have"):
        setup(cfg)


def test_swag_start_after_last_step_is_refused_before_training(compose, tiny_overrides):
    with pytest.raises(ConfigError, match="start_step=50 is after the last step"):
        setup(compose([*tiny_overrides, *SIZES, "trainer.max_steps=3", "predictive.swag.start_step=50"]))


# -- batched sampling ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "method,name,quant",
    [
        ("ivon", "ivon", "none"),
        ("ivon", "ivon_tau", "none"),
        ("adamw", "swag", "none"),
        ("ivon", "ivon", "8bit"),
    ],
)
def test_batched_samples_equal_sequential_passes(compose, tiny_overrides, method, name, quant):
    r, batch = _context(
        compose, tiny_overrides, method, extra=(f"model.quantization={quant}",), swag_early=True
    )
    ctx = r.ctx
    # (τ = 0 draws the mean every time)
    chosen = [
        p
        for n, p in r.predictives.items()
        if n.startswith(name) and p.n_samples > 1 and getattr(p, "tau", 1) > 0
    ]
    assert chosen
    for p in chosen:
        assert_chunked_equals_sequential(p, ctx, batch)


def test_batched_mc_dropout_has_the_same_distribution(compose, tiny_overrides):
    r, batch = _context(compose, tiny_overrides, "adamw", swag_early=True)
    ctx, p = r.ctx, r.predictives["mc_dropout"]
    p.n_samples = 200
    ctx.sample_chunk = 1
    sequential = p.predict(ctx, batch).exp()
    ctx.sample_chunk = 50
    batched = p.predict(ctx, batch).exp()
    assert batched.shape == sequential.shape == (200, 8, 4)
    torch.testing.assert_close(batched.mean(0), sequential.mean(0), atol=0.03, rtol=0)
    torch.testing.assert_close(batched.std(0), sequential.std(0), atol=0.03, rtol=0)


# -- MC dropout -----------------------------------------------------------------------------------
def test_mc_dropout_samples_differ_and_map_is_deterministic(compose, tiny_overrides):
    r, batch = _context(compose, tiny_overrides, "adamw", swag_early=True)
    ctx, preds = r.ctx, r.predictives
    mc = preds["mc_dropout"].predict(ctx, batch)
    assert not torch.allclose(mc[0], mc[1]), "dropout samples must differ"
    a, b = preds["map"].predict(ctx, batch), preds["map"].predict(ctx, batch)
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    # the LoRA dropout is off again after MC dropout; nothing else was switched to train mode
    assert all(not m.training for m in ctx.model.modules())
    assert set_dropout(ctx.model, False) == 4  # q_proj, v_proj x 2 layers


# -- IVON -----------------------------------------------------------------------------------------
def test_ivon_variance_is_the_optimizers_sampling_variance(compose, tiny_overrides):
    ctx = _context(compose, tiny_overrides, "ivon", steps=3)[0].ctx
    opt, method = ctx.method.optimizer, ctx.method
    group = opt.param_groups[0]
    v = method.posterior_variance()
    torch.testing.assert_close(v, 1.0 / (group["ess"] * (group["hess"] + group["weight_decay"])))
    assert not torch.allclose(group["hess"], torch.full_like(group["hess"], method.hess_init)), "hess moved"
    mean = lora_vector(ctx.model)
    torch.testing.assert_close(method.posterior_mean(), mean)
    torch.manual_seed(123)
    with opt.sampled_params(train=False):
        noise = lora_vector(ctx.model) - mean
    torch.manual_seed(123)
    eps = torch.randn(mean.numel())
    torch.testing.assert_close(noise, eps * v.sqrt(), rtol=1e-4, atol=1e-7)
    torch.testing.assert_close(lora_vector(ctx.model), mean, rtol=0, atol=0)


def test_ivon_state_dict_keeps_the_step_counter(compose, tiny_overrides):
    r = _context(compose, tiny_overrides, "ivon", steps=3)[0]
    state = r.method.state_dict()
    assert state["ivon_current_step"] == 3 == r.method.optimizer.current_step
    fresh = setup(r.cfg).method  # the same run, set up again and not trained
    assert fresh.optimizer.current_step == 0
    fresh.load_state_dict(state)
    assert fresh.optimizer.current_step == 3
    torch.testing.assert_close(fresh.posterior_variance(), r.method.posterior_variance())


@pytest.mark.parametrize(
    "dataset,ess,hess",
    [
        ("winogrande_s", 1e7, 3e-4),
        ("winogrande_m", 1e8, 3e-4),
        ("arc_c", 1e6, 1e-3),
        ("arc_e", 1e6, 1e-3),
        ("obqa", 1e6, 1e-3),
        ("boolq", 1e7, 3e-4),
    ],
)
def test_ivon_ess_per_dataset_from_table2(compose, dataset, ess, hess):
    cfg = compose(["method=ivon", f"dataset={dataset}"])
    assert (cfg.method.ess, cfg.method.hess_init) == (ess, hess)
    assert (cfg.method.lr, cfg.method.beta1, cfg.method.beta2, cfg.method.clip_radius) == (
        0.03,
        0.9,
        0.99999,
        1e-3,
    )
    assert cfg.method.weight_decay == 0 and cfg.method.rescale_lr is False and cfg.method.mc_samples == 1
    assert "ess" not in compose(["method=adamw", f"dataset={dataset}"]).method


def test_ivon_run_tau_zero_is_exactly_the_mean(compose, tiny_overrides):
    cfg = compose(tiny_overrides + ["method=ivon"])
    rec = run(cfg)
    expected = {"ivon_mean", "ivon", "ivon_tau0", "ivon_tau0.25", "ivon_tau0.5", "ivon_tau0.75", "ivon_tau1"}
    assert set(rec["metrics"]) == expected
    assert rec["table_rows"] == ["ivon_mean", "ivon"]
    assert rec["labels"]["ivon_mean"] == "IVON@mean" and rec["labels"]["ivon"] == "IVON"
    preds = np.load(Path(cfg.run_dir) / "preds.npz")
    np.testing.assert_array_equal(preds["validation/ivon_tau0"], preds["validation/ivon_mean"])
    assert not np.array_equal(preds["validation/ivon_tau1"], preds["validation/ivon_mean"])
    # ... at the cost of one pass
    r, batch = _context(compose, tiny_overrides, "ivon")
    calls = []
    logits = r.ctx.logits
    r.ctx.logits = lambda b: calls.append(1) or logits(b)
    zero = r.predictives["ivon_tau0"]
    out = zero.predict(r.ctx, batch)
    assert len(calls) == 1 and out.shape[0] == zero.n_samples == 10
    # τ = 1 with the same draws is the `ivon` predictive
    np.testing.assert_array_equal(preds["validation/ivon_tau1"], preds["validation/ivon"])
    # the posterior is saved for analysis: v = 1 / (ess (hess + wd))
    post = torch.load(Path(cfg.run_dir) / "ivon_posterior.pt")
    torch.testing.assert_close(post["variance"], 1.0 / (post["ess"] * (post["hess"] + post["weight_decay"])))
    assert post["mean"].numel() == rec["provenance"]["n_lora_params"] == post["variance"].numel()


# -- ensembles ------------------------------------------------------------------------------------
def test_ensemble_of_identical_members_equals_the_member(compose, tiny_overrides):
    r, batch = _context(compose, tiny_overrides, "ensemble", steps=2)
    ctx, preds, model, method = r.ctx, r.predictives, r.model, r.method
    assert method.seeds == [21000, 21001, 21002]
    with method.member(model, "member0"):
        a0 = lora_vector(model)
    with method.member(model, "member1"):
        assert not torch.equal(lora_vector(model), a0), "members are trained independently"
    sd = {k: v for k, v in model.state_dict().items() if ".member0." in k}
    with torch.no_grad():
        for m in ("member1", "member2"):
            model.load_state_dict({k.replace(".member0.", f".{m}."): v for k, v in sd.items()}, strict=False)
    probs = preds["ensemble"].predict(ctx, batch)
    torch.testing.assert_close(probs[1], probs[0], rtol=0, atol=0)
    torch.testing.assert_close(probs.mean(0), probs[0], rtol=1e-6, atol=1e-7)


def test_posthoc_ensemble_from_saved_probabilities(compose, tiny_overrides, tmp_path):
    from bayeslora.metrics import classification_metrics
    from bayeslora.results.posthoc_ensemble import posthoc_ensemble

    dirs = []
    for seed in (21, 42):
        cfg = compose(tiny_overrides + [f"seed={seed}", "method.predictives=[map]"])
        run(cfg)
        dirs.append(Path(cfg.run_dir))
    rec = posthoc_ensemble(dirs, tmp_path / "ens")
    p = [np.load(d / "preds.npz") for d in dirs]
    mean = (p[0]["validation/map"].astype(np.float64) + p[1]["validation/map"]) / 2
    expected = classification_metrics(mean, p[0]["validation/labels"])
    for k, v in expected.items():
        assert rec["metrics"]["ensemble"][k] == pytest.approx(v, abs=1e-6)
    same = posthoc_ensemble([dirs[0], dirs[0]], tmp_path / "same")
    member = json.loads((dirs[0] / "metrics.json").read_text())["metrics"]["map"]
    for k, v in member.items():
        assert same["metrics"]["ensemble"][k] == pytest.approx(v, abs=1e-6)


# -- every method end to end -------------------------------------------------------------------
@pytest.mark.parametrize("method", METHODS)
def test_every_method_runs_end_to_end_and_writes_its_rows(compose, tiny_overrides, method):
    cfg = compose(tiny_overrides + [f"method={method}"])
    rec = run(cfg)
    assert rec["status"] == "success"
    expected = set(build_predictives(cfg, list(cfg.method.predictives)))
    assert set(rec["metrics"]) == expected and set(rec["splits"]["shifted"]) == expected
    for m in rec["metrics"].values():
        assert 0 <= m["acc"] <= 1 and np.isfinite(m["nll"]) and 0 <= m["ece"] <= 1 and 0 <= m["brier"] <= 2


# -- mutation guards: each predictive's draws against the posterior they should come from ----------
def test_ivon_predictive_draws_have_the_posterior_moments(compose, tiny_overrides, monkeypatch):
    """The weights the IVON predictive averages over are N(m, τ·v): mean m and variance τ·v, checked
    on the draws themselves (a std of τ·v instead of √(τ·v) is off by orders of magnitude)."""
    import bayeslora.predictives.ivon as ivon_mod

    r, batch = _context(compose, tiny_overrides, "ivon", steps=3)
    ctx = r.ctx
    draws = []

    def record(ctx_, batch_, weights, n):
        draws.extend(weights(s) for s in range(n))
        return torch.zeros(n, batch_["input_ids"].shape[0], 4)

    monkeypatch.setattr(ivon_mod, "weight_sample_log_probs", record)
    tau = 0.5
    ivon_mod.IVONPosterior("IVON", n_samples=4000, tau=tau).predict(ctx, batch)
    w = torch.stack(draws).double()
    group = ctx.method.optimizer.param_groups[0]
    v = (1.0 / (group["ess"] * (group["hess"] + group["weight_decay"]))).double()
    mean = lora_vector(ctx.model).double()
    z = (w - mean) / (tau * v).sqrt()  # standardised: N(0, 1) in every coordinate
    assert z.mean().abs() < 0.01
    assert abs(float(z.var()) - 1.0) < 0.02
    per_coord_var = z.var(dim=0)
    assert float(per_coord_var.min()) > 0.85 and float(per_coord_var.max()) < 1.15


def test_trained_ensemble_uses_each_member_adapter(compose, tiny_overrides):
    """Row k of the ensemble predictive is a forward with adapter k active (set here through peft)."""
    r, batch = _context(compose, tiny_overrides, "ensemble", steps=2)
    ctx = r.ctx
    out = r.predictives["ensemble"].predict(ctx, batch)
    model = ctx.model
    previous = model.active_adapter
    for k in range(3):
        model.set_adapter(f"member{k}")
        model.eval()
        with torch.no_grad():
            expected = torch.log_softmax(ctx.method.logits(model, batch).float(), -1)
        torch.testing.assert_close(out[k], expected, rtol=1e-5, atol=1e-6)
    model.set_adapter(previous)
    assert not torch.allclose(out[0], out[1]) and not torch.allclose(out[1], out[2])


def test_swag_snapshots_follow_the_schedule_of_a_real_run(compose, tiny_overrides):
    """Snapshots at start_step, start_step + interval, ...; the SWA mean is the mean of the LoRA
    weights at exactly those steps (recorded here at every step), and D's columns are the spread ones."""
    cfg = compose(
        tiny_overrides
        + SIZES
        + [
            "method=adamw",
            "method.predictives=[swa,swag]",
            "trainer.max_steps=12",
            "predictive.swag.start_step=2",
            "predictive.swag.interval=3",
            "predictive.swag.rank=2",
        ]
    )
    r = setup(cfg)
    ctx, preds = r.ctx, r.predictives
    seen = {}  # the LoRA weights after every optimizer step of the runner's loop
    train_step = r.method.train_step

    def recording_step(model, batch):
        loss = train_step(model, batch)
        seen[len(seen) + 1] = lora_vector(model).clone()
        return loss

    r.method.train_step = recording_step
    assert fit(r, loggers=[]) == 12 and sorted(seen) == list(range(1, 13))
    post_fit(r)
    c = preds["swag"].collector(ctx)
    assert c is preds["swa"].collector(ctx), "swa and swag share one collection"
    assert c.steps == [2, 5, 8, 11]
    stacked = torch.stack([seen[s] for s in (2, 5, 8, 11)])
    torch.testing.assert_close(c.mean, stacked.mean(0), rtol=1e-5, atol=1e-7)
    # rank 2 spread over 4 snapshots: indices 1 and 3 (steps 5 and 11)
    assert c.deviation_steps == [5, 11]
    torch.testing.assert_close(c.deviation_matrix()[:, 1], seen[11] - stacked.mean(0), rtol=1e-4, atol=1e-7)
    info = preds["swag"].info()
    assert info["n_snapshots"] == 4 and info["deviation_steps"] == [5, 11]
    assert 0 < info["deviation_singular_values_rel"][1] <= 1


class _History:
    """A logger keeping what :func:`runner.fit` logs: {key: {step: value}}."""

    def __init__(self):
        self.scalars: dict[str, dict[int, float]] = {}

    def log(self, scalars: dict[str, float], step: int) -> None:
        for k, v in scalars.items():
            self.scalars.setdefault(k, {})[step] = v


@pytest.mark.parametrize(
    "extra,lrs",
    [
        # linear decay to 0 over 5 steps from lr 3e-3 (conf/method_dataset/adamw_synthetic.yaml)
        ((), [2.4e-3, 1.8e-3, 1.2e-3, 0.6e-3, 0.0]),
        # swag-lora's constant-LR phase: every step after S = round(0.4 · 5) = 2 runs at 7e-4
        (("method.constant_lr=7e-4", "method.constant_lr_from=0.4"), [2.4e-3, 7e-4, 7e-4, 7e-4, 7e-4]),
    ],
)
def test_swag_constant_lr_holds_the_learning_rate_from_the_first_snapshot(
    compose, tiny_overrides, extra, lrs
):
    """``method.constant_lr`` (a training setting) with ``constant_lr_from`` = SWAG's ``start_frac``:
    the steps after SWAG's first snapshot run at the constant rate. ``train/lr`` as the runner logs
    it after each optimizer step (the next step's rate)."""
    cfg = compose(
        [*tiny_overrides, *SIZES, "method.predictives=[map,swag]", "predictive.swag.start_frac=0.4"]
        + ["predictive.swag.interval=1", "trainer.max_steps=5", "trainer.log_every=1", *extra]
    )
    r, history = setup(cfg), _History()
    assert r.predictives["swag"].plan == [2, 3, 4, 5]  # the first snapshot after step 2
    fit(r, loggers=[history])
    assert list(history.scalars["train/lr"]) == [1, 2, 3, 4, 5]
    assert list(history.scalars["train/lr"].values()) == pytest.approx(lrs, rel=1e-9, abs=1e-12)
