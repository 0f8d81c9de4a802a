"""The point-estimate predictive: one deterministic pass, dropout off."""

from __future__ import annotations

import torch

from bayeslora.predictives.base import EvalContext, Predictive


class MapPredictive(Predictive):
    def __init__(self, label: str = "AdamW"):
        super().__init__(label, n_samples=1)

    @torch.no_grad()
    def predict(self, ctx: EvalContext, batch) -> torch.Tensor:
        return ctx.one_pass(batch)
