"""Predictives of a BLoB run: weight samples of A ~ q(A) = N(M, σ²), and A at its mean M.

``blob`` averages over ``n_samples`` draws A_s = M + σ ∘ E_s (B at its trained value, dropout off);
each draw is seeded by the run seed and its index, so it is one model applied to the whole split,
and ``ctx.sample_chunk`` draws share one forward on the batch repeated per draw (the same draws as
sequential passes). The authors evaluate with Flipout noise on every forward pass; per input its
distribution is the same N(M, σ²). ``blob_mean`` is one deterministic pass at M.

A run serves these predictives when its method implements
:class:`~bayeslora.contracts.VariationalSites` (the BLoB method); nothing here imports a method.
"""

from __future__ import annotations

import torch

from bayeslora.contracts import VariationalSites
from bayeslora.predictives.base import EvalContext, OnePassPredictive, Predictive
from bayeslora.predictives.sampling import chunked_log_probs


class BLoBPredictive(Predictive):
    """Log-probabilities under ``n_samples`` samples of the variational A."""

    requires = VariationalSites

    def __init__(self, label: str = "BLoB", n_samples: int = 10):
        super().__init__(label, n_samples)

    @torch.no_grad()
    def predict(self, ctx: EvalContext, batch) -> torch.Tensor:
        ctx.model.eval()

        def forward(idx: range, b):
            gens = [ctx.generator("blob", s) for s in idx]
            with ctx.method.sampled(gens[0] if len(gens) == 1 else gens):
                return ctx.logits(b)

        return chunked_log_probs(ctx, batch, self.n_samples, forward)


class BLoBMeanPredictive(OnePassPredictive):
    """One deterministic pass with A at its mean M."""

    requires = VariationalSites

    @torch.no_grad()
    def predict(self, ctx: EvalContext, batch) -> torch.Tensor:
        with ctx.method.mean():
            return ctx.one_pass(batch)
