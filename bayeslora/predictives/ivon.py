"""Predictives of an IVON run: posterior samples N(m, τ·v), and a τ grid (the paper's Figure 1).

``ivon`` averages the softmax over ``n_samples`` weight samples (τ = 1, dropout off); ``ivon_mean``
is the one-pass :class:`~bayeslora.predictives.map.MapPredictive` at the mean m; ``ivon_tau`` expands
into one row per τ (``ivon_tau0.5`` ...). τ = 0 reproduces ``ivon_mean`` exactly.
"""

from __future__ import annotations

import torch

from bayeslora.checks import NON_NEGATIVE, check_settings, is_number
from bayeslora.contracts import GaussianPosterior
from bayeslora.predictives.base import EvalContext, Predictive
from bayeslora.predictives.sampling import weight_sample_log_probs

# the τ grid: a non-empty list of numbers >= 0
TAUS = (
    lambda v: isinstance(v, (list, tuple)) and len(v) > 0 and all(is_number(x) and x >= 0 for x in v),
    "a non-empty list of numbers >= 0 (the τ grid)",
)


class IVONPosterior(Predictive):
    """Average of the softmax over weight samples from N(m, τ·v)."""

    requires = GaussianPosterior

    def __init__(self, label: str = "IVON", n_samples: int = 10, tau: float = 1.0):
        super().__init__(label, n_samples)
        check_settings({"tau": (tau, NON_NEGATIVE)})
        self.tau = float(tau)

    @torch.no_grad()
    def predict(self, ctx: EvalContext, batch) -> torch.Tensor:
        mean = ctx.method.posterior_mean()
        if self.tau == 0:  # every sample is the mean: one pass, repeated (the τ grid's τ = 0 is cheap)
            one = weight_sample_log_probs(ctx, batch, lambda s: mean, 1)
            return one.expand(self.n_samples, *one.shape[1:])
        std = (self.tau * ctx.method.posterior_variance()).sqrt()

        def sample(s: int) -> torch.Tensor:
            eps = torch.randn(
                mean.shape, generator=ctx.generator("ivon", self.tau, s), device=mean.device, dtype=mean.dtype
            )
            return mean + std * eps

        return weight_sample_log_probs(ctx, batch, sample, self.n_samples)


class IVONTauGrid(Predictive):
    """One :class:`IVONPosterior` row per τ in ``taus``."""

    requires = GaussianPosterior

    def __init__(self, taus: list[float], n_samples: int = 10, label: str = "IVON τ"):
        super().__init__(label, n_samples)
        check_settings({"taus": (taus, TAUS)})
        self.taus = [float(t) for t in taus]

    def expand(self, name: str) -> dict[str, Predictive]:
        rows = {f"{name}{t:g}": IVONPosterior(f"{self.label}={t:g}", self.n_samples, t) for t in self.taus}
        for p in rows.values():
            p.in_table = False
        return rows
