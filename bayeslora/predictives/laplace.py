"""Laplace-LoRA (Yang et al., ICLR 2024): a post-hoc Laplace approximation over all LoRA weights.

After AdamW training, with the model in eval mode, one pass over the whole training split collects
the curvature of the class-restricted softmax (GGN = Fisher for softmax cross-entropy) w.r.t. every
LoRA matrix (A and B of every adapted layer). With the pseudo-outputs ``l_kᵀ f`` where
``H_n = Σ_k l_k l_kᵀ`` (l_k = √p_k (e_k − p)), g̃ the output gradient of a pseudo-output and a the
module input at one position:

- ``kfac``: per LoRA matrix W (out × in), ``GGN_W ≈ G ⊗ A`` for row-major ``vec(W)``, with
  ``G = Σ_{n,t,k} g̃ g̃ᵀ`` (every position a pseudo-example) and, by ``kfac_normalisation``:

  - ``examples`` (default, the reference): ``A = Σ_{n,t} a aᵀ / N`` over *every* position of the
    padded batches, pad positions included, divided by the number of examples N. This is what
    laplace-lora computes: ASDL flattens ``[B, T, in]`` to ``[B·T, in]`` and sums ``a aᵀ`` and
    ``g gᵀ`` over all rows (no mask), and laplace's ``_rescale_kron_factors`` divides A by
    ``N = len(train_loader.dataset)``. With left padding the pad positions still carry hidden
    states, so they add to A (their output gradients are 0, so they add nothing to G). How much
    padding there is depends on the batches, so the fit re-batches the training split as the
    reference does (``fit_batch_size``: shuffled batches of 4 padded to their longest).
  - ``tokens``: KFAC-expand normalised per token: pads masked out, ``A = Σ_{non-pad} a aᵀ / N_tokens``
    (A smaller than the reference's by about the mean padded length).

  Both are exact for N copies of an example of one token.
- ``diag``, by ``diag_form``:

  - ``per_token`` (default, the reference): ``Σ_{n,t,k} (g̃_t a_tᵀ)²``, each position a pseudo-example,
    no cross-position terms (ASDL's ``cov_diag_weight`` on the flattened ``[B·T, ·]`` rows).
  - ``exact``: the exact diagonal of the GGN, ``Σ_{n,k} (Σ_t g̃_t a_tᵀ)²`` (what laplace-torch's
    GGN backends compute from full per-example Jacobians).

Everything uses plain autograd per class on hooked module inputs/outputs (no functorch), so it
works with bitsandbytes 8-bit base layers. The factors are kept whole and eigendecomposed: for
Llama-2-7B (64 LoRA modules on q/v) the 4096 × 4096 factors take 64 × 2 × 64 MiB ≈ 8.6 GB in fp32.

A scalar prior precision λ (prior N(0, λ⁻¹ I)) is tuned by maximising the Laplace marginal
likelihood ``log p(D|θ*) − ½ λ‖θ*‖² + ½ P log λ − ½ log det(GGN + λ I)`` with Adam on log λ.
The predictive is the linearised (GLM) one: logits ~ N(f(x; θ*), J Σ Jᵀ), with J the exact
per-example Jacobian of the class logits, and the probabilities are averaged over ``n_samples``
Monte Carlo draws of the logits.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import torch
from tqdm.auto import tqdm

from bayeslora.checks import POSITIVE, check_settings, integer, one_of
from bayeslora.errors import ConfigError
from bayeslora.predictives.base import EvalContext, Predictive
from bayeslora.predictives.sampling import NormalDraws, gaussian_logit_log_probs

STRUCTURES = ("kfac", "diag")
KFAC_NORMALISATIONS = ("examples", "tokens")
DIAG_FORMS = ("per_token", "exact")


# -- capturing per-example Jacobian pieces ----------------------------------------------------
def lora_modules(model) -> list[tuple[str, torch.nn.Linear]]:
    """The trainable LoRA matrices as ``nn.Linear`` modules (lora_A and lora_B of every layer)."""
    out = []
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Linear) and (".lora_A." in name or ".lora_B." in name):
            if module.weight.requires_grad:
                out.append((name, module))
    if not out:
        raise ConfigError("Laplace needs trainable LoRA modules (lora_A / lora_B)")
    return out


@dataclass
class Capture:
    """One batch: class logits ``[B, C]``, and per LoRA module its inputs ``[B, T, in]`` and the
    gradients of each class logit w.r.t. its outputs ``[C, B, T, out]``."""

    logits: torch.Tensor
    acts: dict[str, torch.Tensor] = field(default_factory=dict)
    grads: dict[str, torch.Tensor] = field(default_factory=dict)


def capture(ctx: EvalContext, modules: list[tuple[str, torch.nn.Module]], batch) -> Capture:
    acts, outs, handles = {}, {}, []

    def hook(name):
        def fn(module, inputs, output):
            acts[name] = inputs[0].detach().float()
            outs[name] = output

        return fn

    for name, module in modules:
        handles.append(module.register_forward_hook(hook(name)))
    try:
        with torch.enable_grad():
            logits = ctx.logits(batch)
            names = [n for n, _ in modules]
            per_class = []
            for c in range(logits.shape[1]):
                g = torch.autograd.grad(logits[:, c].sum(), [outs[n] for n in names], retain_graph=True)
                per_class.append(g)
    finally:
        for h in handles:
            h.remove()
    grads = {
        n: torch.stack([per_class[c][i].float() for c in range(len(per_class))]) for i, n in enumerate(names)
    }
    return Capture(logits.detach().float(), acts, grads)


def ggn_sqrt(probs: torch.Tensor) -> torch.Tensor:
    """``L`` with ``L[b] @ L[b].T = diag(p_b) − p_b p_bᵀ``; column k is √p_k (e_k − p). ``[B, C, C]``."""
    eye = torch.eye(probs.shape[1], device=probs.device, dtype=probs.dtype)
    return (eye.unsqueeze(0) - probs.unsqueeze(2)) * probs.sqrt().unsqueeze(1)


def per_example_jacobian(grads_c: torch.Tensor, acts: torch.Tensor) -> torch.Tensor:
    """∂(output-weighted scalar)/∂W per example: ``Σ_t g_t a_tᵀ`` → ``[..., B, out, in]``."""
    return torch.einsum("...bto,bti->...boi", grads_c, acts)


# -- curvature ---------------------------------------------------------------------------------
class Curvature:
    """KFAC factors and both GGN diagonals of every LoRA matrix, accumulated over batches.

    ``mask_pads``: leave pad positions out of the input factor A (``tokens``); else A sums over every
    position of the padded batches, as the reference does (``examples``).
    """

    def __init__(self, modules: list[tuple[str, torch.nn.Module]], mask_pads: bool = False):
        self.names = [n for n, _ in modules]
        self.weights = {n: m.weight for n, m in modules}
        self.mask_pads = mask_pads
        self.A: dict[str, torch.Tensor] = {}
        self.G: dict[str, torch.Tensor] = {}
        self.diag: dict[str, torch.Tensor] = {}  # exact per-example diagonal
        self.diag_token: dict[str, torch.Tensor] = {}  # per-token diagonal, no cross-position terms
        self.n_tokens = 0
        self.n_positions = 0
        self.n_examples = 0
        self.loglik = 0.0
        self.seconds = 0.0

    def update(self, cap: Capture, labels: torch.Tensor, mask: torch.Tensor) -> None:
        probs = torch.softmax(cap.logits, dim=-1)
        self.loglik += torch.log_softmax(cap.logits, -1).gather(1, labels[:, None]).sum().item()
        L = ggn_sqrt(probs)  # [B, C, K]
        m = mask.float()
        self.n_tokens += int(m.sum().item())
        self.n_positions += m.numel()
        self.n_examples += len(labels)
        for n in self.names:
            a = cap.acts[n] * m[..., None] if self.mask_pads else cap.acts[n]  # [B, T, in]
            g = torch.einsum("bck,cbto->kbto", L, cap.grads[n])  # pseudo-output gradients [K, B, T, out]
            A = torch.einsum("bti,btj->ij", a, a)
            G = torch.einsum("kbto,kbtp->op", g, g)
            D = per_example_jacobian(g, cap.acts[n]).square().sum(dim=(0, 1))  # [out, in]
            Dt = torch.einsum("kbto,bti->oi", g.square(), cap.acts[n].square())
            for store, value in ((self.A, A), (self.G, G), (self.diag, D), (self.diag_token, Dt)):
                store[n] = store[n] + value if n in store else value

    def theta_sq(self) -> float:
        return float(sum(self.weights[n].detach().float().square().sum() for n in self.names))

    def n_params(self) -> int:
        return sum(self.weights[n].numel() for n in self.names)


def fit_curvature(ctx: EvalContext, batches: Iterable[dict], mask_pads: bool = False) -> Curvature:
    ctx.model.eval()
    modules = lora_modules(ctx.model)
    curv = Curvature(modules, mask_pads)
    t0 = time.perf_counter()
    total = len(batches) if hasattr(batches, "__len__") else None
    bar = tqdm(batches, total=total, desc="Laplace curvature", disable=not ctx.progress)
    for batch in bar:
        curv.update(capture(ctx, modules, batch), batch["labels"], batch["attention_mask"])
    curv.seconds = time.perf_counter() - t0
    return curv


def rebatch(
    batches: Iterable[dict], batch_size: int, pad_id: int, generator: torch.Generator | None = None
) -> list[dict[str, torch.Tensor]]:
    """The examples of ``batches`` in a shuffled order, in batches of ``batch_size`` left-padded
    with ``pad_id`` (the task's) to their longest (the reference's DataLoader(shuffle=True) +
    DataCollatorWithPadding)."""
    seqs, labels = [], []
    for batch in batches:
        ids, mask = batch["input_ids"].cpu(), batch["attention_mask"].cpu().bool()
        for i in range(len(ids)):
            seqs.append(ids[i][mask[i]])
            labels.append(int(batch["labels"][i]))
    device = batch["input_ids"].device
    gen_device = generator.device if generator is not None else "cpu"
    order = torch.randperm(len(seqs), generator=generator, device=gen_device).tolist()
    out = []
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        length = max(len(seqs[i]) for i in idx)
        ids = torch.full((len(idx), length), pad_id, dtype=torch.long)
        mask = torch.zeros((len(idx), length), dtype=torch.long)
        for row, i in enumerate(idx):
            ids[row, length - len(seqs[i]) :] = seqs[i]
            mask[row, length - len(seqs[i]) :] = 1
        out.append(
            {
                "input_ids": ids.to(device),
                "attention_mask": mask.to(device),
                "labels": torch.tensor([labels[i] for i in idx], device=device),
            }
        )
    return out


class Posterior:
    """The Laplace posterior of one structure, in eigen-coordinates, for a given prior precision."""

    def __init__(self, curv: Curvature, structure: str, diag_form: str = "per_token"):
        if structure not in STRUCTURES:
            raise ConfigError(f"Laplace structure must be one of {STRUCTURES}, not {structure!r}")
        if diag_form not in DIAG_FORMS:
            raise ConfigError(f"Laplace diag_form must be one of {DIAG_FORMS}, not {diag_form!r}")
        self.structure = structure
        self.curv = curv
        self.names = curv.names
        self.eig: dict[str, tuple] = {}
        for n in self.names:
            if structure == "kfac":
                A = self.input_factor(n)
                sA, UA = torch.linalg.eigh(A.double())
                sG, UG = torch.linalg.eigh(curv.G[n].double())
                self.eig[n] = (sG.clamp_min(0).float(), UG.float(), sA.clamp_min(0).float(), UA.float())
            else:
                self.eig[n] = (curv.diag[n] if diag_form == "exact" else curv.diag_token[n],)
        self.prior_precision = 1.0

    def input_factor(self, n: str) -> torch.Tensor:
        """The normalised KFAC input factor A of matrix ``n``: ``/ N_tokens`` when the curvature masked
        pads (``tokens``), else ``/ N_examples`` (``examples``, the reference)."""
        count = self.curv.n_tokens if self.curv.mask_pads else self.curv.n_examples
        return self.curv.A[n] / max(count, 1)

    def curvature_eigenvalues(self, n: str) -> torch.Tensor:
        """Eigenvalues of the GGN block of matrix ``n`` (``[out, in]``, same layout as the weight)."""
        if self.structure == "kfac":
            sG, _, sA, _ = self.eig[n]
            return sG[:, None] * sA[None, :]
        return self.eig[n][0]

    def log_marginal_likelihood(self, prior_precision: torch.Tensor) -> torch.Tensor:
        """log p(D|θ*) − ½ λ‖θ*‖² + ½ P log λ − ½ Σ log(eig + λ)."""
        lam = prior_precision
        logdet = sum(torch.log(self.curvature_eigenvalues(n).double() + lam).sum() for n in self.names)
        return (
            self.curv.loglik
            - 0.5 * lam * self.curv.theta_sq()
            + 0.5 * self.curv.n_params() * torch.log(lam)
            - 0.5 * logdet
        )

    def tune_prior(self, init: float = 1.0, lr: float = 0.1, steps: int = 100) -> list[float]:
        """Adam on log λ maximising the marginal likelihood; returns the λ trajectory."""
        log_lam = torch.tensor(math.log(init), dtype=torch.float64, requires_grad=True)
        opt = torch.optim.Adam([log_lam], lr=lr)
        path = [init]
        for _ in range(steps):
            opt.zero_grad()
            (-self.log_marginal_likelihood(log_lam.exp())).backward()
            opt.step()
            path.append(float(log_lam.detach().exp()))
        self.prior_precision = path[-1]
        return path

    def logit_covariance(self, cap: Capture) -> torch.Tensor:
        """``J Σ Jᵀ`` per example, ``[B, C, C]``."""
        lam = self.prior_precision
        cov = None
        for n in self.names:
            J = per_example_jacobian(cap.grads[n], cap.acts[n])  # [C, B, out, in]
            if self.structure == "kfac":
                sG, UG, sA, UA = self.eig[n]
                Jt = torch.einsum("op,cbpi,ij->cboj", UG.T, J, UA)
                w = 1.0 / (sG[:, None] * sA[None, :] + lam)
            else:
                Jt = J
                w = 1.0 / (self.eig[n][0] + lam)
            part = torch.einsum("cboi,dboi,oi->bcd", Jt, Jt, w)
            cov = part if cov is None else cov + part
        return cov


ROWS_KEY = "laplace:posteriors"
PENDING_KEY = "laplace:pending"


def batch_key(batch: dict[str, torch.Tensor]) -> tuple:
    """Identity of an evaluation batch by content (the runner gives every row the same batches)."""
    ids, mask = batch["input_ids"], batch["attention_mask"]
    return (tuple(ids.shape), hash(ids.cpu().numpy().tobytes()), hash(mask.cpu().numpy().tobytes()))


def shared_logit_covariances(
    ctx: EvalContext, batch: dict[str, torch.Tensor], row: str, posterior: Posterior
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(f(x; θ*) [B, C], J Σ Jᵀ [B, C, C])`` of table row ``row``'s posterior on ``batch``.

    The Jacobians (one backward pass per class) are the cost of a Laplace row's evaluation; the
    first Laplace row to see a batch computes them once and the covariances of every other Laplace
    row of the run with them, which those rows then take from ``ctx.shared`` instead of recomputing.
    Rows are told apart by their table row name (unique in a run), not by their display label.
    """
    key = batch_key(batch)
    pending = ctx.shared.setdefault(PENDING_KEY, {})
    if (row, key) in pending:
        return pending.pop((row, key))
    ctx.model.eval()
    cap = capture(ctx, lora_modules(ctx.model), batch)
    logits = cap.logits.detach()
    for other, post in ctx.shared.get(ROWS_KEY, {}).items():
        if other != row:
            pending[(other, key)] = (logits, post.logit_covariance(cap))
    return logits, posterior.logit_covariance(cap)


class LaplacePredictive(Predictive):
    """Linearised Laplace predictive of an AdamW run (``structure``: kfac or diag).

    ``kfac_normalisation`` (``examples`` | ``tokens``) and ``diag_form`` (``per_token`` | ``exact``)
    choose the curvature convention (module docstring); ``fit_batch_size`` re-batches the training
    split for the curvature pass (shuffled, padded to each batch's longest; it decides how many pad
    positions enter A under ``examples``); ``None`` keeps the runner's batches.
    """

    def __init__(
        self,
        label: str,
        structure: str = "kfac",
        n_samples: int = 100000,
        prior_precision: float = 1.0,
        tune_prior: bool = True,
        tune_lr: float = 0.1,
        tune_steps: int = 100,
        jitter: float = 1e-6,
        kfac_normalisation: str = "examples",
        diag_form: str = "per_token",
        fit_batch_size: int | None = 4,
    ):
        super().__init__(label, n_samples)
        check_settings(
            {
                "structure": (structure, one_of(*STRUCTURES)),
                "prior_precision": (prior_precision, POSITIVE),
                "kfac_normalisation": (kfac_normalisation, one_of(*KFAC_NORMALISATIONS)),
                "diag_form": (diag_form, one_of(*DIAG_FORMS)),
                "fit_batch_size": (fit_batch_size, integer(1, optional=True)),
            }
        )
        self.structure = structure
        self.prior_init, self.tune, self.tune_lr, self.tune_steps = (
            prior_precision,
            tune_prior,
            tune_lr,
            tune_steps,
        )
        self.jitter = jitter
        self.kfac_normalisation, self.diag_form, self.fit_batch_size = (
            kfac_normalisation,
            diag_form,
            fit_batch_size,
        )
        self.posterior: Posterior | None = None
        self.summary: dict[str, Any] = {}
        self.draws = NormalDraws()

    def bind(self, ctx: EvalContext) -> None:
        lora_modules(ctx.model)

    def post_fit(self, ctx: EvalContext, train_batches: Callable[[], Iterable[dict]]) -> None:
        if self.row is None:
            raise RuntimeError(f"{self.label}: no table row name (build it with runner.build_predictives)")
        mask_pads = self.kfac_normalisation == "tokens"
        key = ("laplace:curvature", mask_pads, self.fit_batch_size)
        curv = ctx.shared.get(key)
        if curv is None:  # one pass serves both structures when their fit settings agree
            batches = train_batches()
            if self.fit_batch_size is not None:
                batches = rebatch(batches, self.fit_batch_size, ctx.pad_id, ctx.generator("laplace", "fit"))
            curv = ctx.shared[key] = fit_curvature(ctx, batches, mask_pads)
        t0 = time.perf_counter()
        self.posterior = Posterior(curv, self.structure, self.diag_form)
        # every Laplace row of the run, so one Jacobian pass per evaluation batch serves them all
        ctx.shared.setdefault(ROWS_KEY, {})[self.row] = self.posterior
        self.posterior.prior_precision = self.prior_init
        if self.tune:
            self.posterior.tune_prior(self.prior_init, self.tune_lr, self.tune_steps)
        factors = (
            list(curv.A.values()) + list(curv.G.values())
            if self.structure == "kfac"
            else [self.posterior.eig[n][0] for n in curv.names]
        )
        self.summary = {
            "prior_precision": self.posterior.prior_precision,
            "curvature_fit_s": curv.seconds,
            "curvature_mb": sum(t.numel() * t.element_size() for t in factors) / 2**20,
            "posterior_s": time.perf_counter() - t0,
            "n_examples": curv.n_examples,
            "n_tokens": curv.n_tokens,
            "n_positions": curv.n_positions,
            "log_marginal_likelihood": float(
                self.posterior.log_marginal_likelihood(
                    torch.tensor(self.posterior.prior_precision, dtype=torch.float64)
                )
            ),
        }

    def info(self) -> dict[str, Any]:
        return dict(self.summary)

    @torch.no_grad()
    def predict(self, ctx: EvalContext, batch) -> torch.Tensor:
        if self.posterior is None:
            raise RuntimeError(f"{self.label}: post_fit has not run")
        logits, cov = shared_logit_covariances(ctx, batch, self.row, self.posterior)
        eye = torch.eye(cov.shape[-1], device=cov.device)
        chol = torch.linalg.cholesky(cov + self.jitter * eye)
        z = self.draws(ctx.generator("laplace", self.structure), (self.n_samples, *logits.shape))
        return gaussian_logit_log_probs(logits, chol, z)
