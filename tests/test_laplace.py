"""Laplace-LoRA against brute force: GGN from explicit per-example Jacobians on the tiny model."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from bayeslora.data import build_task, eval_batches
from bayeslora.models import build_model
from bayeslora.predictives import EvalContext
from bayeslora.predictives.laplace import (
    Curvature,
    LaplacePredictive,
    Posterior,
    capture,
    fit_curvature,
    ggn_sqrt,
    lora_modules,
)
from bayeslora.runner import run
from bayeslora.utils.instantiate import instantiate


@pytest.fixture
def trained(compose, tiny_overrides):
    """A tiny AdamW-trained model (so LoRA B != 0) in eval mode, with a few evaluation batches."""
    cfg = compose(tiny_overrides + ["method.lr=1e-2"])
    model, tok = build_model(cfg.model, torch.device("cpu"), cfg.seed)
    task = build_task(cfg.dataset, tok, 64, 16)
    method = instantiate(cfg.method)
    method.setup(model, task.class_ids, 20, len(task.train), cfg.seed)
    batches = method.batches(task.train, 4, cfg.seed, task.pad_id, 8)
    for _ in range(20):
        model.train()
        method.train_step(model, next(batches))
    model.eval()
    ctx = EvalContext(model, method, task.class_ids, seed=cfg.seed)
    evals = [b for _, b in eval_batches(task.evals["validation"], 3, task.pad_id)][:2]
    return ctx, evals


def _jacobian(ctx, batch, params):
    """Explicit per-example Jacobians of the class logits w.r.t. all LoRA weights: [B, C, P]."""
    logits = ctx.logits(batch)
    rows = []
    for b in range(logits.shape[0]):
        per_c = []
        for c in range(logits.shape[1]):
            g = torch.autograd.grad(logits[b, c], params, retain_graph=True)
            per_c.append(torch.cat([x.flatten() for x in g]))
        rows.append(torch.stack(per_c))
    return logits.detach(), torch.stack(rows)


def _brute_ggn(ctx, batches, params):
    total = 0
    for batch in batches:
        logits, J = _jacobian(ctx, batch, params)
        p = torch.softmax(logits, -1)
        H = torch.diag_embed(p) - p[:, :, None] * p[:, None, :]
        total = total + torch.einsum("bcp,bcd,bdq->pq", J, H, J)
    return total


def test_ggn_sqrt():
    p = torch.tensor([[0.7, 0.2, 0.1], [0.25, 0.25, 0.5]])
    L = ggn_sqrt(p)
    H = torch.diag_embed(p) - p[:, :, None] * p[:, None, :]
    torch.testing.assert_close(L @ L.transpose(1, 2), H)


def test_diagonal_equals_brute_force_ggn_diagonal(trained):
    ctx, batches = trained
    modules = lora_modules(ctx.model)
    assert len(modules) == 8  # lora_A and lora_B of q_proj and v_proj in 2 layers
    params = [m.weight for _, m in modules]
    curv = fit_curvature(ctx, batches)
    ggn = _brute_ggn(ctx, batches, params)
    diag = torch.cat([curv.diag[n].flatten() for n, _ in modules])
    torch.testing.assert_close(diag, torch.diagonal(ggn), rtol=1e-4, atol=1e-7)
    for n, _ in modules:  # both A (needs B != 0 after training) and B have curvature
        assert curv.diag[n].abs().sum() > 0, n
    assert curv.n_examples == 6 and curv.n_tokens == int(sum(b["attention_mask"].sum() for b in batches))


def test_kfac_is_exact_for_one_example_of_one_token(trained):
    ctx, _ = trained
    batch = {
        "input_ids": torch.tensor([[7]]),
        "attention_mask": torch.tensor([[1]]),
        "labels": torch.tensor([2]),
    }
    modules = lora_modules(ctx.model)
    params = [m.weight for _, m in modules]
    curv = fit_curvature(ctx, [batch])
    ggn = _brute_ggn(ctx, [batch], params)
    offset = 0
    for n, m in modules:
        k = m.weight.numel()
        block = ggn[offset : offset + k, offset : offset + k]
        torch.testing.assert_close(
            torch.kron(curv.G[n], curv.A[n] / curv.n_tokens), block, rtol=1e-4, atol=1e-8
        )
        offset += k


def test_kfac_factors_are_the_token_sums(trained):
    ctx, batches = trained
    modules = lora_modules(ctx.model)
    curv = fit_curvature(ctx, batches)
    name = modules[0][0]
    a_sum, g_sum = 0, 0
    for batch in batches:
        cap = capture(ctx, modules, batch)
        m = batch["attention_mask"].float()[..., None]
        a = cap.acts[name] * m
        a_sum = a_sum + torch.einsum("bti,btj->ij", a, a)
        L = ggn_sqrt(torch.softmax(cap.logits, -1))
        for k in range(L.shape[2]):
            gk = sum(L[:, c, k][:, None, None] * cap.grads[name][c] for c in range(L.shape[1]))
            g_sum = g_sum + torch.einsum("bto,btp->op", gk, gk)
    torch.testing.assert_close(curv.A[name], a_sum)
    torch.testing.assert_close(curv.G[name], g_sum, rtol=1e-5, atol=1e-10)


def _toy_curvature(h, loglik, theta):
    w = torch.nn.Parameter(torch.tensor(theta, dtype=torch.float32).reshape(1, -1))
    curv = Curvature([("w", type("M", (), {"weight": w})())])
    curv.diag["w"] = torch.tensor(h, dtype=torch.float32).reshape(1, -1)
    curv.loglik = loglik
    return curv


def test_marginal_likelihood_closed_form_and_prior_tuning():
    h, theta, loglik = [4.0, 0.5, 2.0, 0.0], [0.3, -1.2, 0.7, 0.1], -12.5
    post = Posterior(_toy_curvature(h, loglik, theta), "diag")
    for lam in (0.1, 1.0, 7.0):
        expected = (
            loglik
            - 0.5 * lam * sum(t * t for t in theta)
            + 0.5 * 4 * math.log(lam)
            - 0.5 * sum(math.log(x + lam) for x in h)
        )
        got = float(post.log_marginal_likelihood(torch.tensor(lam, dtype=torch.float64)))
        assert got == pytest.approx(expected, rel=1e-6)
    grid = np.exp(np.linspace(-5, 5, 4001))
    values = [float(post.log_marginal_likelihood(torch.tensor(g, dtype=torch.float64))) for g in grid]
    best = grid[int(np.argmax(values))]
    path = post.tune_prior(init=1.0, lr=0.1, steps=100)
    assert abs(math.log(path[-1]) - math.log(best)) < 0.05
    assert abs(math.log(path[-1]) - math.log(best)) < abs(math.log(path[0]) - math.log(best))


def test_kfac_log_determinant_against_dense(trained):
    ctx, batches = trained
    curv = fit_curvature(ctx, batches)
    post = Posterior(curv, "kfac")
    lam = 0.7
    dense = 0.0
    for n in curv.names:
        M = torch.kron(curv.G[n].double(), curv.A[n].double() / curv.n_tokens)
        dense += torch.linalg.slogdet(M + lam * torch.eye(M.shape[0], dtype=torch.float64))[1].item()
    ours = sum(torch.log(post.curvature_eigenvalues(n).double() + lam).sum().item() for n in curv.names)
    assert ours == pytest.approx(dense, rel=1e-5)


@pytest.mark.parametrize("structure", ["kfac", "diag"])
def test_linearised_covariance_against_explicit_jacobians(trained, structure):
    ctx, batches = trained
    modules = lora_modules(ctx.model)
    params = [m.weight for _, m in modules]
    curv = fit_curvature(ctx, batches)
    post = Posterior(curv, structure)
    post.prior_precision = 0.5
    blocks = []
    for n in curv.names:
        if structure == "kfac":
            P = torch.kron(curv.G[n].double(), curv.A[n].double() / curv.n_tokens)
        else:
            P = torch.diag(curv.diag[n].flatten().double())
        blocks.append(torch.linalg.inv(P + 0.5 * torch.eye(P.shape[0], dtype=torch.float64)))
    sigma = torch.block_diag(*blocks)
    batch = batches[0]
    logits, J = _jacobian(ctx, batch, params)
    expected = torch.einsum("bcp,pq,bdq->bcd", J.double(), sigma, J.double())
    cap = capture(ctx, modules, batch)
    torch.testing.assert_close(cap.logits, logits)
    torch.testing.assert_close(post.logit_covariance(cap).double(), expected, rtol=2e-3, atol=1e-6)


def test_predictive_samples_have_the_linearised_moments(trained):
    ctx, batches = trained
    pred = LaplacePredictive("LA", "diag", n_samples=20000, tune_prior=False, prior_precision=2.0)
    pred.post_fit(ctx, lambda: iter(batches))
    probs = pred.predict(ctx, batches[0]).exp()
    assert probs.shape == (20000, 3, 4)
    torch.testing.assert_close(probs.sum(-1), torch.ones(20000, 3))
    # the sampled logits have mean f(θ*) and covariance J Σ Jᵀ: check via log-probabilities' sample mean
    cap = capture(ctx, lora_modules(ctx.model), batches[0])
    cov = pred.posterior.logit_covariance(cap)
    assert torch.all(torch.diagonal(cov, dim1=1, dim2=2) > 0)
    again = pred.predict(ctx, batches[0]).exp()
    torch.testing.assert_close(probs, again)  # seeded: the same draws each call


def test_laplace_rows_end_to_end_in_8bit(compose, tiny_overrides):
    cfg = compose(
        tiny_overrides
        + [
            "model.quantization=8bit",
            "method.predictives=[map,laplace_kfac,laplace_diag]",
            "predictive.laplace_kfac.n_samples=500",
        ]
    )
    rec = run(cfg)
    assert set(rec["metrics"]) == {"map", "laplace_kfac", "laplace_diag"}
    assert rec["labels"]["laplace_kfac"] == "+ LA (KFAC)" and rec["labels"]["laplace_diag"] == "+ LA (diag)"
    info = rec["predictive_info"]["laplace_kfac"]
    assert info["n_examples"] == 64 and info["prior_precision"] > 0 and info["curvature_fit_s"] > 0
    for m in rec["metrics"].values():
        assert np.isfinite(m["nll"])
