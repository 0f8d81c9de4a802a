"""Laplace-LoRA against brute force (GGN from explicit per-example Jacobians on the tiny model) and
against laplace-torch (KFAC and diagonal Laplace with its Curvlinops GGN backend)."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from bayeslora.data import eval_batches
from bayeslora.data.pipeline import collate
from bayeslora.predictives.laplace import (
    Curvature,
    LaplacePredictive,
    Posterior,
    capture,
    fit_curvature,
    ggn_sqrt,
    lora_modules,
    rebatch,
)
from bayeslora.runner import fit, run, setup

# A tiny AdamW run of 20 steps at a high learning rate (so LoRA B != 0 and A has curvature)
TRAINED = [
    "method.lr=1e-2",
    "method.predictives=[map]",
    "trainer.max_steps=20",
    "trainer.eval_every=0",
    "trainer.max_length=64",
    "eval.max_examples=16",
]


@pytest.fixture
def trained(compose, tiny_overrides):
    """The evaluation context of a tiny AdamW run trained by the runner (:func:`runner.setup`,
    :func:`runner.fit`), the model in eval mode, and two evaluation batches of 3."""
    r = setup(compose(tiny_overrides + TRAINED))
    assert fit(r, loggers=[]) == 20
    r.model.eval()
    evals = [b for _, b in eval_batches(r.task.evals["validation"], 3, r.task.pad_id)][:2]
    return r.ctx, evals


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
    diag = torch.cat([curv.diag[n].flatten() for n, _ in modules])  # diag_form="exact"
    torch.testing.assert_close(diag, torch.diagonal(ggn), rtol=1e-4, atol=1e-7)
    for n, _ in modules:  # both A (needs B != 0 after training) and B have curvature
        assert curv.diag[n].abs().sum() > 0, n
    assert curv.n_examples == 6 and curv.n_tokens == int(sum(b["attention_mask"].sum() for b in batches))


@pytest.mark.parametrize("normalisation", ["examples", "tokens"])
@pytest.mark.parametrize("copies", [1, 5])
def test_kfac_is_exact_for_copies_of_one_example_of_one_token(trained, normalisation, copies):
    """N copies of a one-token example: the GGN is N · G₁ ⊗ A₁ exactly, and the 1/N of A is visible
    (a missing or doubled normalisation is off by a factor N)."""
    ctx, _ = trained
    batch = {
        "input_ids": torch.full((copies, 1), 7),
        "attention_mask": torch.ones((copies, 1), dtype=torch.long),
        "labels": torch.full((copies,), 2),
    }
    modules = lora_modules(ctx.model)
    params = [m.weight for _, m in modules]
    curv = fit_curvature(ctx, [batch], mask_pads=normalisation == "tokens")
    post = Posterior(curv, "kfac")
    ggn = _brute_ggn(ctx, [batch], params)
    one = _brute_ggn(ctx, [{k: v[:1] for k, v in batch.items()}], params)
    torch.testing.assert_close(ggn, copies * one, rtol=1e-4, atol=1e-6)
    offset = 0
    for n, m in modules:
        k = m.weight.numel()
        block = ggn[offset : offset + k, offset : offset + k]
        torch.testing.assert_close(torch.kron(curv.G[n], post.input_factor(n)), block, rtol=1e-4, atol=1e-6)
        offset += k


@pytest.mark.parametrize("normalisation", ["examples", "tokens"])
def test_kfac_factors_are_the_token_sums(trained, normalisation):
    """``examples`` (the reference) sums a aᵀ over every position, pads included, and divides by the
    number of examples; ``tokens`` masks pads and divides by the number of tokens."""
    ctx, batches = trained
    assert any((b["attention_mask"] == 0).any() for b in batches)  # the batches have pads
    modules = lora_modules(ctx.model)
    mask_pads = normalisation == "tokens"
    curv = fit_curvature(ctx, batches, mask_pads=mask_pads)
    name = modules[0][0]
    a_sum, a_pads, g_sum = 0, 0, 0
    for batch in batches:
        cap = capture(ctx, modules, batch)
        m = batch["attention_mask"].float()[..., None]
        a = cap.acts[name] * m if mask_pads else cap.acts[name]
        a_sum = a_sum + torch.einsum("bti,btj->ij", a, a)
        pads = cap.acts[name] * (1 - m)
        a_pads = a_pads + torch.einsum("bti,btj->ij", pads, pads)
        L = ggn_sqrt(torch.softmax(cap.logits, -1))
        for k in range(L.shape[2]):
            gk = sum(L[:, c, k][:, None, None] * cap.grads[name][c] for c in range(L.shape[1]))
            g_sum = g_sum + torch.einsum("bto,btp->op", gk, gk)
            # pad positions do not reach the last position: no output gradient there
            assert float((gk * (1 - m)).abs().max()) == 0.0
    assert float(torch.trace(a_pads)) > 0  # left-padded positions still carry hidden states
    torch.testing.assert_close(curv.A[name], a_sum)
    torch.testing.assert_close(curv.G[name], g_sum, rtol=1e-5, atol=1e-10)
    n_tok = int(sum(b["attention_mask"].sum() for b in batches))
    count = n_tok if mask_pads else 6
    torch.testing.assert_close(Posterior(curv, "kfac").input_factor(name), a_sum / count)


def _per_position_jacobians(ctx, batch):
    """∂ f_{b,c} / ∂W through position t alone, for every LoRA matrix: ``{name: [C, B, T, out, in]}``.

    Independent of :func:`capture`: a zero perturbation ``Δ[b, t]`` is added to each LoRA matrix at
    each position (output += Δ[b, t] a_t), and autograd gives ∂f_{b,c}/∂Δ[b, t] = g_{b,t,c} a_tᵀ."""
    modules = lora_modules(ctx.model)
    B, T = batch["input_ids"].shape
    deltas = {
        n: torch.zeros(B, T, m.weight.shape[0], m.weight.shape[1], requires_grad=True) for n, m in modules
    }

    def hook(name):
        def fn(module, inputs, output):
            return output + torch.einsum("bti,btoi->bto", inputs[0], deltas[name])

        return fn

    handles = [m.register_forward_hook(hook(n)) for n, m in modules]
    try:
        with torch.enable_grad():
            logits = ctx.logits(batch)
            out = {n: [] for n in deltas}
            for c in range(logits.shape[1]):
                grads = torch.autograd.grad(logits[:, c].sum(), list(deltas.values()), retain_graph=True)
                for n, g in zip(deltas, grads):
                    out[n].append(g)
    finally:
        for h in handles:
            h.remove()
    return logits.detach(), {n: torch.stack(v) for n, v in out.items()}


def test_per_token_diagonal_against_per_position_jacobians(trained):
    """``per_token`` (the reference's ASDL diagonal) is Σ_{n,t,k} (g̃_t a_tᵀ)², without the cross-position
    terms that ``exact`` keeps; both from per-position Jacobians taken by autograd."""
    ctx, batches = trained
    curv = fit_curvature(ctx, batches)
    per_token, exact = {}, {}
    for batch in batches:
        logits, J = _per_position_jacobians(ctx, batch)
        L = ggn_sqrt(torch.softmax(logits, -1))  # [B, C, K]
        for n, Jn in J.items():
            Jk = torch.einsum("bck,cbtoi->kbtoi", L, Jn)
            per_token[n] = per_token.get(n, 0) + Jk.square().sum(dim=(0, 1, 2))
            exact[n] = exact.get(n, 0) + Jk.sum(dim=2).square().sum(dim=(0, 1))
    differs = False
    for n in curv.names:
        torch.testing.assert_close(curv.diag_token[n], per_token[n], rtol=1e-4, atol=1e-8)
        torch.testing.assert_close(curv.diag[n], exact[n], rtol=1e-4, atol=1e-8)
        differs |= not torch.allclose(curv.diag_token[n], curv.diag[n], rtol=1e-2)
    assert differs  # the two forms are not the same quantity on sequences
    post = Posterior(curv, "diag")
    assert post.eig[curv.names[0]][0] is curv.diag_token[curv.names[0]]  # per_token is the default
    assert Posterior(curv, "diag", "exact").eig[curv.names[0]][0] is curv.diag[curv.names[0]]


def test_rebatch_keeps_every_example_and_pads_to_each_batch_longest(trained):
    ctx, batches = trained
    before = sorted(
        (tuple(b["input_ids"][i][b["attention_mask"][i].bool()].tolist()), int(b["labels"][i]))
        for b in batches
        for i in range(len(b["labels"]))
    )
    out = rebatch(batches, 4, ctx.pad_id, torch.Generator().manual_seed(0))
    assert [len(b["labels"]) for b in out] == [4, 2]
    after = []
    for b in out:
        mask = b["attention_mask"].bool()
        assert mask[:, -1].all() and mask.sum(1).max() == mask.shape[1]  # left-padded to the longest
        for i in range(len(b["labels"])):
            after.append((tuple(b["input_ids"][i][mask[i]].tolist()), int(b["labels"][i])))
    assert sorted(after) == before


def test_rebatch_pads_with_the_tasks_pad_id_when_no_batch_had_padding(trained):
    """Batches of one example have no pad to read the pad id off: the re-batched examples are padded
    with the task's pad id (not token 0), so they are the batches re-batched from padded batches of
    the same examples, and Laplace's curvature (pads enter A under ``examples``) is the same."""
    ctx, evals = trained
    assert ctx.pad_id != 0  # the tiny tokenizer pads with BOS, so a 0 would be a different token
    # six examples of three lengths (the synthetic prompts have one length: drop 0, 1 or 2 tokens)
    seqs, labels = [], []
    for b in evals:
        for i in range(len(b["labels"])):
            ids = b["input_ids"][i][b["attention_mask"][i].bool()].tolist()
            seqs.append(ids[len(seqs) % 3 :])
            labels.append(b["labels"][i : i + 1])
    assert len({len(x) for x in seqs}) == 3

    def batch(idx):
        return collate([seqs[i] for i in idx], ctx.pad_id, 1) | {
            "labels": torch.cat([labels[i] for i in idx])
        }

    batches = [batch([0, 1, 2]), batch([3, 4, 5])]
    singles = [batch([i]) for i in range(len(seqs))]
    assert all((b["attention_mask"] == 0).any() for b in batches)
    assert all(b["attention_mask"].all() for b in singles)
    padded = rebatch(batches, 4, ctx.pad_id, torch.Generator().manual_seed(0))
    unpadded = rebatch(singles, 4, ctx.pad_id, torch.Generator().manual_seed(0))
    n_pads = 0
    for a, b in zip(padded, unpadded, strict=True):
        for k in a:
            torch.testing.assert_close(a[k], b[k], rtol=0, atol=0)
        pads = b["attention_mask"] == 0
        assert (b["input_ids"][pads] == ctx.pad_id).all()
        n_pads += int(pads.sum())
    assert n_pads > 0  # the examples differ in length: the re-batched ones have pads

    def kfac_input_factors(train):
        p = LaplacePredictive("LA", "kfac", tune_prior=False)
        p.row = "laplace_kfac"
        p.post_fit(dataclasses.replace(ctx, shared={}), lambda: iter(train))
        return p.posterior.curv.A

    from_padded, from_singles = kfac_input_factors(batches), kfac_input_factors(singles)
    for n, A in from_padded.items():
        torch.testing.assert_close(from_singles[n], A, rtol=0, atol=0)


def _toy_curvature(h, loglik, theta):
    w = torch.nn.Parameter(torch.tensor(theta, dtype=torch.float32).reshape(1, -1))
    curv = Curvature([("w", type("M", (), {"weight": w})())])
    curv.diag["w"] = curv.diag_token["w"] = torch.tensor(h, dtype=torch.float32).reshape(1, -1)
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
        M = torch.kron(curv.G[n].double(), curv.A[n].double() / curv.n_examples)
        dense += torch.linalg.slogdet(M + lam * torch.eye(M.shape[0], dtype=torch.float64))[1].item()
    ours = sum(torch.log(post.curvature_eigenvalues(n).double() + lam).sum().item() for n in curv.names)
    assert ours == pytest.approx(dense, rel=1e-5)


def _explicit_sigma(curv, post, lam):
    """The posterior covariance as a dense block-diagonal matrix, inverted explicitly."""
    blocks = []
    for n in curv.names:
        if post.structure == "kfac":
            P = torch.kron(curv.G[n].double(), post.input_factor(n).double())
        else:
            P = torch.diag(post.eig[n][0].flatten().double())
        blocks.append(torch.linalg.inv(P + lam * torch.eye(P.shape[0], dtype=torch.float64)))
    return torch.block_diag(*blocks)


@pytest.mark.parametrize("structure", ["kfac", "diag"])
def test_linearised_covariance_against_explicit_jacobians(trained, structure):
    ctx, batches = trained
    modules = lora_modules(ctx.model)
    params = [m.weight for _, m in modules]
    curv = fit_curvature(ctx, batches)
    post = Posterior(curv, structure)
    post.prior_precision = 0.5
    sigma = _explicit_sigma(curv, post, 0.5)
    batch = batches[0]
    logits, J = _jacobian(ctx, batch, params)
    expected = torch.einsum("bcp,pq,bdq->bcd", J.double(), sigma, J.double())
    cap = capture(ctx, modules, batch)
    torch.testing.assert_close(cap.logits, logits)
    torch.testing.assert_close(post.logit_covariance(cap).double(), expected, rtol=2e-3, atol=1e-6)


@pytest.mark.parametrize("structure", ["kfac", "diag"])
def test_predictive_samples_have_the_linearised_moments(trained, structure):
    """The draws behind ``predict`` have covariance J Σ Jᵀ, with J and Σ computed independently
    (explicit Jacobians, a dense inverse). Logit differences f_c − f_0 = log p_c − log p_0 are read
    off the returned probabilities. Sampling with the transposed Cholesky factor (covariance LᵀL
    instead of LLᵀ) fails this test: the covariances here are far from diagonal."""
    ctx, batches = trained
    lam, S = 5.0, 40000
    pred = LaplacePredictive("LA", structure, n_samples=S, tune_prior=False, prior_precision=lam)
    pred.row = f"laplace_{structure}"
    pred.post_fit(ctx, lambda: iter(batches))
    batch = batches[0]
    probs = pred.predict(ctx, batch).exp()  # predictives return log-probabilities
    assert probs.shape == (S, 3, 4)
    torch.testing.assert_close(probs.sum(-1), torch.ones(S, 3))
    torch.testing.assert_close(probs, pred.predict(ctx, batch).exp())  # seeded: the same draws each call

    params = [m.weight for _, m in lora_modules(ctx.model)]
    logits, J = _jacobian(ctx, batch, params)
    cov = torch.einsum(
        "bcp,pq,bdq->bcd", J.double(), _explicit_sigma(pred.posterior.curv, pred.posterior, lam), J.double()
    )
    M = torch.cat([-torch.ones(3, 1), torch.eye(3)], dim=1).double()  # f_c − f_0, c = 1..3
    expected_cov = M @ cov @ M.T
    d = torch.log(probs.double())
    d = d[..., 1:] - d[..., :1]  # [S, B, 3]
    expected_mean = logits.double() @ M.T
    torch.testing.assert_close(
        d.mean(0),
        expected_mean,
        rtol=0,
        atol=0.05 * float(expected_cov.diagonal(dim1=1, dim2=2).max().sqrt()),
    )
    centred = d - d.mean(0)
    emp = torch.einsum("sbc,sbd->bcd", centred, centred) / (S - 1)
    # whitened by the expected covariance, the sample covariance is I up to O(1/√S) ≈ 0.005
    for b in range(3):
        W = torch.linalg.inv(torch.linalg.cholesky(expected_cov[b]))
        eye = torch.eye(3, dtype=torch.float64)
        err = float((W @ emp[b] @ W.T - eye).abs().max())
        assert err < 0.04, (b, err)
        # the check has power: the sampling covariance with the factor transposed is far off
        chol = torch.linalg.cholesky(cov[b] + 1e-6 * torch.eye(4, dtype=torch.float64))
        wrong = M @ (chol.T @ chol) @ M.T
        assert float((W @ wrong @ W.T - eye).abs().max()) > 0.1


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


class _Classifier(torch.nn.Module):
    """The class logits ``[B, C]`` of a run as a plain module (what laplace-torch wraps)."""

    def __init__(self, ctx):
        super().__init__()
        self.net, self._ctx = ctx.model, ctx

    def forward(self, batch):
        return self._ctx.logits(batch)


class _Loader:
    def __init__(self, batches):
        self.batches = batches
        self.dataset = range(sum(len(b["labels"]) for b in batches))

    def __iter__(self):
        return iter(self.batches)


def test_against_laplace_torch_kfac_and_diag(trained):
    """The project's Laplace against laplace-torch's KronLaplace and DiagLaplace (Curvlinops GGN
    backend) on the same fp32 LoRA model: 6 examples of 5 tokens in 2 batches, no padding.

    Matching conventions: laplace-torch's KFAC is KFAC-expand with A = Σ a aᵀ / (N·T), which is our
    ``tokens`` normalisation without pads; our default ``examples`` (the laplace-lora reference) is T
    times that. laplace-torch's diagonal is the exact one (full per-example Jacobians): our ``exact``."""
    laplace = pytest.importorskip("laplace")
    from laplace.curvature import CurvlinopsGGN

    ctx, _ = trained
    g = torch.Generator().manual_seed(0)
    N, T = 6, 5
    ids = torch.randint(3, 100, (N, T), generator=g)
    labels = torch.randint(0, len(ctx.class_ids), (N,), generator=g)
    data = [
        {
            "input_ids": ids[i : i + 3],
            "attention_mask": torch.ones(3, T, dtype=torch.long),
            "labels": labels[i : i + 3],
        }
        for i in (0, 3)
    ]
    net = _Classifier(ctx).eval()
    names = [n for n, _ in lora_modules(ctx.model)]
    lam = torch.tensor(0.7, dtype=torch.float64)

    def close(a, b, rtol):  # relative to the larger entry: the factors span many orders of magnitude
        assert float((a - b).abs().max()) <= rtol * float(b.abs().max()), float((a - b).abs().max())

    def reference(structure):
        la = laplace.Laplace(
            net,
            "classification",
            subset_of_weights="all",
            hessian_structure=structure,
            backend=CurvlinopsGGN,
            prior_precision=1.0,
        )
        la.fit(_Loader(data))
        return la

    def same_prior(post, la):  # the marginal likelihood at λ and the tuned prior precision
        assert float(post.log_marginal_likelihood(lam)) == pytest.approx(
            float(la.log_marginal_likelihood(prior_precision=lam.float())), rel=1e-5
        )
        la.prior_precision = 1.0
        la.optimize_prior_precision(pred_type="glm", method="marglik", n_steps=100, lr=0.1)
        assert post.tune_prior(1.0, 0.1, 100)[-1] == pytest.approx(float(la.prior_precision), rel=1e-4)

    cap = capture(ctx, lora_modules(ctx.model), data[0])

    # -- KFAC
    la = reference("kron")
    kfacs = la.H_facs.kfacs
    assert len(kfacs) == len(names)
    tokens = Posterior(fit_curvature(ctx, data, mask_pads=True), "kfac")
    examples = Posterior(fit_curvature(ctx, data), "kfac")
    for n, (G_lib, A_lib) in zip(names, kfacs):
        close(tokens.curv.G[n], G_lib, 1e-5)
        close(tokens.input_factor(n), A_lib, 1e-5)
        close(examples.input_factor(n), T * A_lib, 1e-5)  # the reference's scale: T times KFAC-expand's
        close(torch.kron(tokens.curv.G[n], tokens.input_factor(n)), torch.kron(G_lib, A_lib), 1e-5)
    same_prior(tokens, la)
    f_mu, f_var = la._glm_predictive_distribution(data[0])
    torch.testing.assert_close(cap.logits, f_mu.detach(), rtol=1e-5, atol=1e-5)
    close(tokens.logit_covariance(cap), f_var.detach(), 1e-5)

    # -- diagonal
    la = reference("diag")
    exact = Posterior(tokens.curv, "diag", "exact")
    close(torch.cat([tokens.curv.diag[n].flatten() for n in names]), la.H, 1e-5)
    same_prior(exact, la)
    _, f_var = la._glm_predictive_distribution(data[0])
    close(exact.logit_covariance(cap), f_var.detach(), 1e-5)


def test_both_laplace_rows_share_one_jacobian_pass_per_batch(trained, monkeypatch):
    """The Jacobians of an evaluation batch (one backward pass per class) are computed once for both
    Laplace rows of a run, and each row's probabilities equal those of the row evaluated alone."""
    import bayeslora.predictives.laplace as laplace

    ctx, batches = trained
    calls = []
    real_capture = laplace.capture
    monkeypatch.setattr(laplace, "capture", lambda *a: calls.append(1) or real_capture(*a))

    def rows(c, structures):
        preds = [LaplacePredictive(f"LA {s}", s, n_samples=500) for s in structures]
        for p in preds:
            p.row = f"laplace_{p.structure}"
            p.post_fit(c, lambda: iter(batches))
        return preds

    both = rows(ctx, ["kfac", "diag"])
    calls.clear()  # the curvature fit's passes (one, shared) are not evaluation passes
    together = {p.structure: [p.predict(ctx, b) for b in batches] for p in both}  # row by row, as the runner
    assert len(calls) == len(batches)  # not 2 x len(batches)
    assert not ctx.shared[laplace.PENDING_KEY]  # every covariance handed over was used
    for structure in ("kfac", "diag"):
        alone_ctx = dataclasses.replace(ctx, shared={})  # the same run, nothing shared yet
        (p,) = rows(alone_ctx, [structure])
        calls.clear()
        alone = [p.predict(alone_ctx, b) for b in batches]
        assert len(calls) == len(batches)
        for x, y in zip(together[structure], alone):
            torch.testing.assert_close(x, y)
    # the two rows differ, so a mixed-up hand-over would have been visible
    assert not torch.allclose(together["kfac"][0], together["diag"][0])


def test_laplace_rows_with_one_label_keep_their_own_covariances(compose, tiny_overrides):
    """The shared Jacobian pass hands each Laplace row its own covariance by table row name: with
    ``laplace_kfac`` and ``laplace_diag`` given one display label, and a third row evaluated first
    (so it computes the pass for both), each row's probabilities are those of a run with the default
    labels. Keyed by label, ``laplace_kfac`` would be handed ``laplace_diag``'s covariance."""
    rows = ["predictive=[map,laplace_kfac,laplace_diag]", "predictive.laplace_kfac.n_samples=500"]
    third = (
        "+predictive.laplace_other={_target_:bayeslora.predictives.laplace.LaplacePredictive,"
        "label:other,structure:diag,tune_prior:false,prior_precision:3.0,n_samples:500}"
    )
    one_label = compose(
        tiny_overrides
        + rows
        + [
            "exp_name=one_label",
            "predictive.laplace_diag.label='+ LA'",
            "predictive.laplace_kfac.label='+ LA'",
            third,
            "method.predictives=[laplace_other,laplace_kfac,laplace_diag]",
        ]
    )
    default = compose(tiny_overrides + rows + ["exp_name=default"])
    rec = run(one_label)
    assert rec["labels"] == {"laplace_other": "other", "laplace_kfac": "+ LA", "laplace_diag": "+ LA"}
    ref = run(default)
    assert rec["config_hash"] != ref["config_hash"]  # a different row set; the labels are not hashed
    with np.load(f"{one_label.run_dir}/preds.npz") as got, np.load(f"{default.run_dir}/preds.npz") as want:
        for split in ("validation", "shifted"):
            kfac, diag = got[f"{split}/laplace_kfac"], got[f"{split}/laplace_diag"]
            np.testing.assert_allclose(kfac, want[f"{split}/laplace_kfac"], rtol=1e-5, atol=1e-7)
            np.testing.assert_allclose(diag, want[f"{split}/laplace_diag"], rtol=1e-5, atol=1e-7)
            assert np.abs(kfac - diag).max() > 1e-3  # the two rows differ: a mix-up would show
