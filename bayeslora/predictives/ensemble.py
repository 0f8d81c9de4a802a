"""The ensemble predictive: one pass per member adapter, log-probabilities ``[members, batch, classes]``."""

from __future__ import annotations

import torch

from bayeslora.contracts import Members
from bayeslora.predictives.base import EvalContext, OnePassPredictive


class EnsemblePredictive(OnePassPredictive):
    requires = Members

    @torch.no_grad()
    def predict(self, ctx: EvalContext, batch) -> torch.Tensor:
        out = []
        for name in ctx.method.members:
            with ctx.method.member(ctx.model, name):
                out.append(ctx.one_pass(batch))
        return torch.cat(out)
