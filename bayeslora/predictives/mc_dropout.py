"""MC dropout ("+ MC Drop"): LoRA dropout kept active at test time, softmax averaged over samples.

Only the LoRA dropout modules sample; the base model stays in eval mode.
"""

from __future__ import annotations

import torch

from bayeslora.errors import ConfigError
from bayeslora.predictives.base import EvalContext, Predictive
from bayeslora.predictives.sampling import set_dropout


class MCDropoutPredictive(Predictive):
    def __init__(self, label: str = "+ MC Drop", n_samples: int = 10):
        super().__init__(label, n_samples)

    def bind(self, ctx: EvalContext) -> None:
        ctx.model.eval()
        n = set_dropout(ctx.model, False)
        if n == 0:
            raise ConfigError("mc_dropout needs LoRA dropout > 0 (model.lora.dropout)")

    @torch.no_grad()
    def predict(self, ctx: EvalContext, batch) -> torch.Tensor:
        ctx.model.eval()
        set_dropout(ctx.model, True)
        try:
            out = [torch.softmax(ctx.logits(batch), dim=-1) for _ in range(self.n_samples)]
        finally:
            set_dropout(ctx.model, False)
        return torch.stack(out)
