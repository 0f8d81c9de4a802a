"""MC dropout ("+ MC Drop"): LoRA dropout kept active at test time, one sample per dropout mask.

Only the LoRA dropout modules sample; the base model stays in eval mode.
"""

from __future__ import annotations

import torch

from bayeslora.errors import ConfigError
from bayeslora.predictives.base import EvalContext, Predictive
from bayeslora.predictives.sampling import chunked_log_probs, set_dropout


class MCDropoutPredictive(Predictive):
    needs_lora_dropout = True

    def __init__(self, label: str = "+ MC Drop", n_samples: int = 10):
        super().__init__(label, n_samples)

    def bind(self, ctx: EvalContext) -> None:
        super().bind(ctx)
        ctx.model.eval()
        n = set_dropout(ctx.model, False)
        if n == 0:
            raise ConfigError(
                "mc_dropout needs LoRA dropout > 0 (model.lora.dropout; for bayeslora.evaluate, the "
                "adapter's lora_dropout in its adapter_config.json)"
            )

    @torch.no_grad()
    def predict(self, ctx: EvalContext, batch) -> torch.Tensor:
        ctx.model.eval()
        set_dropout(ctx.model, True)
        try:  # every copy of a repeated batch draws its own dropout mask
            return chunked_log_probs(ctx, batch, self.n_samples, lambda idx, b: ctx.logits(b))
        finally:
            set_dropout(ctx.model, False)
