"""The point-estimate predictive: one deterministic pass, dropout off."""

from __future__ import annotations

import torch

from bayeslora.predictives.base import EvalContext, OnePassPredictive


class MapPredictive(OnePassPredictive):
    @torch.no_grad()
    def predict(self, ctx: EvalContext, batch) -> torch.Tensor:
        return ctx.one_pass(batch)
