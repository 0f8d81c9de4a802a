"""MC dropout ("+ MC Drop"): LoRA dropout kept active at test time, softmax averaged over samples.

Only the LoRA dropout modules sample; the base model stays in eval mode.
"""

from __future__ import annotations

import torch

from bayeslora.errors import ConfigError
from bayeslora.predictives.base import EvalContext, Predictive
from bayeslora.predictives.sampling import repeat_batch, set_dropout


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
        bsz = batch["input_ids"].shape[0]
        chunk = max(1, int(ctx.sample_chunk))
        out = []
        try:  # every copy of a repeated batch draws its own dropout mask
            for first in range(0, self.n_samples, chunk):
                k = min(chunk, self.n_samples - first)
                logits = ctx.logits(repeat_batch(batch, k) if k > 1 else batch)
                out.append(torch.softmax(logits, dim=-1).view(k, bsz, -1))
        finally:
            set_dropout(ctx.model, False)
        return torch.cat(out)
