"""BLoB: the KL term, the sampling paths, the KL reweighting, the predictives, resume, end to end."""

from __future__ import annotations

import io
import math
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch

from bayeslora.data import eval_batches
from bayeslora.errors import ConfigError
from bayeslora.methods.blob import BLoBMethod, kl_cycle_length, kl_weight
from bayeslora.predictives.sampling import set_dropout
from bayeslora.runner import run, setup
from bayeslora.utils.instantiate import instantiate

from .conftest import assert_chunked_equals_sequential

# The tiny runs here: 10 steps planned (the learning-rate schedule's length), short prompts, 16
# evaluation rows, no periodic validation.
SIZES = ["trainer.max_steps=10", "trainer.max_length=64", "eval.max_examples=16", "trainer.eval_every=0"]


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny-model ops: two intra-op threads on a busy 2-core machine spin-wait for seconds."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _blob(compose, tiny_overrides, steps: int = 2, extra=(), train=True, seed=None):
    """A tiny BLoB run as the runner sets it up (:func:`runner.setup`), trained ``steps`` optimizer
    steps: the run, and its training batch stream (the next batches, for per-step checks)."""
    seeded = [] if seed is None else [f"seed={seed}"]
    r = setup(compose([*tiny_overrides, *SIZES, "method=blob", *seeded, *extra]))
    tr = r.cfg.trainer
    batches = r.method.batches(r.task.train, tr.batch_size, r.cfg.seed, r.task.pad_id, tr.pad_to_multiple_of)
    for _ in range(steps if train else 0):
        r.model.train()
        r.method.train_step(r.model, next(batches))
    return r, batches


def _perturb_std(method, lo=0.3, hi=0.6, seed=0):
    """Give σ = g² visible, varied values (σ in [0.09, 0.36])."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in method.std_parameters():
            p.copy_(torch.empty(p.shape).uniform_(lo, hi, generator=gen))


# -- the variational parameters ---------------------------------------------------------------------
def test_setup_parameterisation_and_optimizer_split(compose, tiny_overrides):
    r, _ = _blob(compose, tiny_overrides, train=False)
    cfg, model, method = r.cfg, r.model, r.method
    assert isinstance(method, BLoBMethod) and method.kl_cycle == 128  # N = 64, batch 4
    assert len(method.sites) == 4  # q_proj, v_proj x 2 layers
    # the run's LoRA dropout is BLoB's (method.lora_dropout = 0), not the model config's 0.1
    assert cfg.model.lora.dropout == 0.1 and cfg.method.lora_dropout == 0.0
    assert set_dropout(model, False) == 0, "no LoRA dropout module"
    for s in method.sites:
        assert s.g.shape == s.mean.shape == (8, 64) and s.g.requires_grad
        # g ~ U(eps/sqrt(2), eps), sigma = g^2
        assert 0.05 / math.sqrt(2) <= s.g.min() and s.g.max() <= 0.05
        torch.testing.assert_close(s.std, s.g**2)
        assert len(s.lora_A._forward_hooks) == 1
    # g lives in the model (trainable, named like a LoRA tensor) and is saved with the adapter
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    assert sum("lora_A_sqrt_std" in n for n in names) == 4
    adam = {id(p) for g in method.optimizer.param_groups for p in g["params"]}
    sgd = {id(p) for g in method.kl_optimizer.param_groups for p in g["params"]}
    stds = {id(p) for p in method.std_parameters()}
    a_means = {id(s.mean) for s in method.sites}
    assert stds.isdisjoint(adam) and stds <= sgd and a_means <= adam and a_means <= sgd
    assert len(adam) == 8 and len(sgd) == 8  # B only in AdamW
    assert method.kl_optimizer.param_groups[0]["lr"] == cfg.method.kl_lr == 0.01
    # a second setup on the same model (the method alone, on purpose) replaces the hooks instead of
    # stacking them
    again = instantiate(cfg.method)
    again.setup(model, method.class_ids, 10, 64, cfg.seed)
    assert all(len(s.lora_A._forward_hooks) == 1 for s in again.sites)


def test_kl_matches_the_closed_form(compose, tiny_overrides):
    method = _blob(compose, tiny_overrides, steps=1)[0].method
    _perturb_std(method)
    beta = method.prior_std
    expected = 0.0
    for s in method.sites:
        mu = s.lora_A.weight.detach().double().numpy()
        sigma = s.g.detach().double().numpy() ** 2
        expected += np.sum(np.log(beta / sigma) + (sigma**2 + mu**2) / (2 * beta**2) - 0.5)
    assert method.kl_divergence().item() == pytest.approx(expected, rel=1e-5)
    # the same against torch.distributions
    ref = sum(
        torch.distributions.kl_divergence(
            torch.distributions.Normal(s.mean.detach().double(), s.std.detach().double()),
            torch.distributions.Normal(0.0, beta),
        ).sum()
        for s in method.sites
    )
    assert method.kl_divergence().item() == pytest.approx(ref.item(), rel=1e-5)


def _effective_A(site, x):
    """lora_A(x) for one-hot rows x is the (per-row) weight actually applied: [..., in, r] -> A."""
    return site.lora_A(x).transpose(-1, -2)


def test_weight_samples_have_the_variational_mean_and_std(compose, tiny_overrides):
    method = _blob(compose, tiny_overrides, train=False)[0].method
    _perturb_std(method)
    site = method.sites[1]
    mu, sigma = site.mean.detach(), site.std.detach()
    eye = torch.eye(mu.shape[1])
    n = 4000
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        draws = []
        for _ in range(n):
            with method.sampled(gen):
                draws.append(_effective_A(site, eye))
        draws = torch.stack(draws)
        assert torch.equal(_effective_A(site, eye), mu), "outside the context A is at its mean"
    z = (draws.mean(0) - mu) / (sigma / math.sqrt(n))
    assert z.abs().max() < 5
    torch.testing.assert_close(draws.std(0) / sigma, torch.ones_like(sigma), rtol=0, atol=0.08)


@pytest.mark.parametrize("flipout", ["token", "example"])
def test_flipout_noise_has_the_variational_mean_and_std(compose, tiny_overrides, flipout):
    method = _blob(compose, tiny_overrides, train=False, extra=[f"method.flipout={flipout}"])[0].method
    _perturb_std(method, seed=1)
    site = method.sites[2]
    mu, sigma = site.mean.detach(), site.std.detach()
    x = torch.eye(mu.shape[1]).expand(2, -1, -1)  # 2 sequences of one-hot tokens
    torch.manual_seed(0)
    with torch.no_grad(), method.flipout():
        draws = torch.cat([_effective_A(site, x) for _ in range(2000)])
    # a repeated token sees the same weight within a sequence only with per-example signs
    twice = torch.eye(mu.shape[1])[[0, 0]].unsqueeze(0)
    with torch.no_grad(), method.flipout():
        out = site.lora_A(twice)
    assert torch.equal(out[0, 0], out[0, 1]) == (flipout == "example")
    n = draws.shape[0]
    z = (draws.mean(0) - mu) / (sigma / math.sqrt(n))
    assert z.abs().max() < 5
    torch.testing.assert_close(draws.std(0) / sigma, torch.ones_like(sigma), rtol=0, atol=0.08)
    # the noise reaches g: a flipout forward has a gradient on every g
    out = site.lora_A(x)
    assert torch.equal(out, x @ mu.T)
    with method.flipout():
        site.lora_A(x).square().sum().backward()
    assert site.g.grad is not None and site.g.grad.abs().sum() > 0


# -- KL reweighting ------------------------------------------------------------------------------
def test_kl_cycle_length_dataset_rescaling():
    # M = int(100 * N^(pi/gamma) / batch): WG-S, N = 640, batch 4, gamma 8 -> 316
    assert kl_cycle_length(640, 4, 8.0, True) == 316
    assert kl_cycle_length(9427, 4, 8.0, True) == 909
    assert kl_cycle_length(640, 8, 8.0, True) == 158
    assert kl_cycle_length(640, 4, 8.0, False) == 160  # batches per epoch
    assert kl_cycle_length(3, 4, 8.0, False) == 1


def test_kl_weight_schedule():
    m = 5
    exact = [Fraction(2**i, 2 ** (m + 1) - 1) for i in range(1, m + 1)]
    got = [kl_weight(step, m, True) for step in range(1, 2 * m + 1)]
    assert got[:m] == pytest.approx([float(f) for f in exact], rel=1e-12)
    assert got[m:] == got[:m], "the schedule restarts every M steps"
    assert sum(got[:m]) == pytest.approx(float(sum(exact))) and sum(exact) == Fraction(62, 63)
    assert kl_weight(7, m, False) == 1 / m
    # a long cycle neither overflows nor loses the last (largest) weights
    big = [kl_weight(s, 5000, True) for s in (1, 4999, 5000)]
    assert big[0] == 0.0 and big[1] == pytest.approx(0.25) and big[2] == pytest.approx(0.5)


def test_train_step_weights_the_kl_and_only_sgd_moves_g(compose, tiny_overrides):
    r, batches = _blob(compose, tiny_overrides, train=False, extra=["method.kl_lr=0"])
    model, method = r.model, r.method
    assert method.kl_cycle == kl_cycle_length(64, 4, 8.0, True) == 128
    g0 = [p.detach().clone() for p in method.std_parameters()]
    a0 = [s.mean.detach().clone() for s in method.sites]
    loss = method.train_step(model, next(batches))
    assert np.isfinite(loss) and method.kl_step == 2
    assert method.last_kl_weight == kl_weight(1, 128, True)
    assert all(torch.equal(a, b) for a, b in zip(g0, method.std_parameters())), "kl_lr=0: g stays"
    b = [p for n, p in model.named_parameters() if "lora_B" in n]
    assert all(s.mean.equal(a) for a, s in zip(a0, method.sites)), "B = 0 at step 1: no NLL gradient on A"
    assert all(p.abs().sum() > 0 for p in b), "AdamW moves B"
    # with the SGD step on, g moves: at step 2 (B != 0) by its NLL gradient plus π·∇KL
    r, batches = _blob(compose, tiny_overrides, steps=1)
    model, method = r.model, r.method
    g0 = [p.detach().clone() for p in method.std_parameters()]
    method.train_step(model, next(batches))
    assert not any(torch.equal(a, b) for a, b in zip(g0, method.std_parameters()))


# -- predictives ----------------------------------------------------------------------------------
def _ctx(compose, tiny_overrides, steps=2, extra=()):
    """The run's evaluation context (the config's ``eval.sample_chunk``), its bound predictives and
    one validation batch of 8."""
    r, _ = _blob(compose, tiny_overrides, steps=steps, extra=extra)
    _, batch = next(eval_batches(r.task.evals["validation"], 8, r.task.pad_id))
    return r.cfg, r.ctx, r.predictives, batch


def test_blob_mean_is_deterministic_and_blob_samples_differ(compose, tiny_overrides):
    _, ctx, preds, batch = _ctx(compose, tiny_overrides)
    _perturb_std(ctx.method, 0.2, 0.3)
    a, b = preds["blob_mean"].predict(ctx, batch), preds["blob_mean"].predict(ctx, batch)
    assert a.shape == (1, 8, 4)
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    s1, s2 = preds["blob"].predict(ctx, batch), preds["blob"].predict(ctx, batch)
    assert s1.shape == (10, 8, 4)
    assert not torch.allclose(s1[0], s1[1]), "weight samples must differ"
    torch.testing.assert_close(s1, s2, rtol=0, atol=0)  # seeded by (run seed, sample index)
    torch.testing.assert_close(s1.exp().sum(-1), torch.ones(10, 8), rtol=0, atol=1e-5)
    assert not torch.allclose(s1.mean(0), a[0])
    # sampling leaves the adapter at its mean
    torch.testing.assert_close(preds["blob_mean"].predict(ctx, batch), a, rtol=0, atol=0)


@pytest.mark.parametrize("quant", ["none", "8bit"])
def test_batched_samples_equal_sequential_passes(compose, tiny_overrides, quant):
    _, ctx, preds, batch = _ctx(compose, tiny_overrides, extra=[f"model.quantization={quant}"])
    _perturb_std(ctx.method, 0.2, 0.3)
    assert_chunked_equals_sequential(preds["blob"], ctx, batch)


@pytest.mark.parametrize("name", ["blob", "blob_mean"])
def test_blob_predictives_refuse_other_runs(compose, tiny_overrides, name):
    cfg = compose([*tiny_overrides, *SIZES, "method=adamw", f"predictive=[map,{name}]"])
    with pytest.raises(ConfigError, match="needs variational LoRA weights .*method=adamw does not have"):
        setup(cfg)


def test_blob_settings_are_checked(compose):
    with pytest.raises(ConfigError, match="flipout"):
        instantiate(compose(["method=blob", "method.flipout=layer"]).method)
    with pytest.raises(ConfigError, match="invalid prior_std=0: expected a number > 0"):
        instantiate(compose(["method=blob", "method.prior_std=0"]).method)


# -- resume -------------------------------------------------------------------------------------
def test_state_dict_round_trip_resumes_bit_identically(compose, tiny_overrides):
    r, batches = _blob(compose, tiny_overrides, steps=3)
    model, method = r.model, r.method
    buf = io.BytesIO()  # serialised, as a checkpoint is (state_dict() shares live optimizer tensors)
    torch.save(method.state_dict(), buf)
    state = torch.load(io.BytesIO(buf.getvalue()), weights_only=False)
    trainable = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    assert state["kl_step"] == 4 and set(state["sqrt_std"]) == {s.name for s in method.sites}
    nxt = next(batches)

    other = _blob(compose, tiny_overrides, train=False, seed=r.cfg.seed + 1)[0]  # other init
    fresh_model, fresh = other.model, other.method
    with torch.no_grad():  # the checkpoint restores the trainable tensors (g included) ...
        for n, p in fresh_model.named_parameters():
            if p.requires_grad and "lora_A_sqrt_std" not in n:
                p.copy_(trainable[n])
    fresh.load_state_dict(state)  # ... and the method state (g also held here)
    assert fresh.kl_step == 4 and fresh.current_lr() == method.current_lr()
    assert fresh.kl_scheduler.get_last_lr() == method.kl_scheduler.get_last_lr()
    for a, b in zip(method.std_parameters(), fresh.std_parameters()):
        assert torch.equal(a, b)

    torch.manual_seed(7)
    l1 = method.train_step(model, nxt)
    torch.manual_seed(7)
    l2 = fresh.train_step(fresh_model, nxt)
    assert l1 == l2
    after = dict(fresh_model.named_parameters())
    for n, p in model.named_parameters():
        if p.requires_grad:
            assert torch.equal(p, after[n]), n


def test_interrupted_run_resumes_bit_identically(compose, tiny_overrides, monkeypatch):
    common = tiny_overrides + [
        "method=blob",
        "trainer.num_threads=1",
        "trainer.max_steps=12",
        "trainer.checkpoint_every=3",  # resumes from step 6, mid-way through a KL cycle
        "trainer.eval_every=0",
        "method.dataset_rescaling=false",  # M = 64 // 16 = 4: the KL weight reaches 1/2 every 4 steps
        "method.batch_size=16",
    ]
    reference = compose(common + ["exp_name=reference"])
    run(reference)
    interrupted = compose(common + ["exp_name=interrupted"])
    original, calls = BLoBMethod.train_step, {"n": 0}

    def train_step(self, model, batch):
        calls["n"] += 1
        if calls["n"] == 10:
            raise KeyboardInterrupt("simulated preemption at step 10")
        return original(self, model, batch)

    with monkeypatch.context() as m:
        m.setattr(BLoBMethod, "train_step", train_step)
        with pytest.raises(KeyboardInterrupt):
            run(interrupted)
    assert (Path(interrupted.run_dir) / "checkpoint.pt").exists()
    run(interrupted)
    a, b = np.load(Path(reference.run_dir) / "preds.npz"), np.load(Path(interrupted.run_dir) / "preds.npz")
    assert sorted(a.files) == sorted(b.files)
    for k in a.files:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


# -- end to end ----------------------------------------------------------------------------------
@pytest.mark.parametrize("quantization", ["none", "8bit"])
def test_blob_runs_end_to_end(compose, tiny_overrides, quantization):
    overrides = ["method=blob", f"model.quantization={quantization}", "trainer.num_threads=1"]
    cfg = compose(tiny_overrides + overrides)
    assert cfg.method.lr == 3e-3  # conf/method_dataset/blob_synthetic.yaml
    if quantization == "8bit":
        import bitsandbytes as bnb

        model = setup(cfg).model
        assert isinstance(
            model.get_base_model().model.layers[0].self_attn.q_proj.base_layer, bnb.nn.Linear8bitLt
        )
    rec = run(cfg)
    assert rec["status"] == "success"
    assert set(rec["metrics"]) == {"blob", "blob_mean"} == set(rec["splits"]["shifted"])
    assert rec["labels"] == {"blob_mean": "BLoB@mean", "blob": "BLoB"}
    assert rec["table_rows"] == ["blob_mean", "blob"]
    for m in rec["metrics"].values():
        assert 0 <= m["acc"] <= 1 and np.isfinite(m["nll"])
    preds = np.load(Path(cfg.run_dir) / "preds.npz")
    assert not np.array_equal(preds["validation/blob"], preds["validation/blob_mean"])
    # the adapter keeps g next to A and B (one per LoRA layer)
    from safetensors.torch import load_file

    keys = load_file(str(Path(cfg.run_dir) / "adapter" / "adapter_model.safetensors")).keys()
    assert sum(k.endswith("lora_A_sqrt_std") for k in keys) == 4
