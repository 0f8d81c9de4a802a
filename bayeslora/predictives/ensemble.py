"""The ensemble predictive: one pass per member adapter, log-probabilities ``[members, batch, classes]``."""

from __future__ import annotations

import torch

from bayeslora.errors import ConfigError
from bayeslora.predictives.base import EvalContext, Predictive


class EnsemblePredictive(Predictive):
    def __init__(self, label: str = "Ensemble"):
        super().__init__(label, n_samples=1)

    def bind(self, ctx: EvalContext) -> None:
        if not getattr(ctx.method, "members", None) or not hasattr(ctx.method, "member"):
            raise ConfigError(f"predictive {self.label!r} needs an ensemble run (method=ensemble)")

    @torch.no_grad()
    def predict(self, ctx: EvalContext, batch) -> torch.Tensor:
        ctx.model.eval()
        out = []
        for name in ctx.method.members:
            with ctx.method.member(ctx.model, name):
                out.append(torch.log_softmax(ctx.logits(batch).float(), dim=-1))
        return torch.stack(out)
