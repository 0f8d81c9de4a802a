"""Predictives of a BLoB run: weight samples of A ~ q(A) = N(M, σ²), and A at its mean M.

``blob`` averages the softmax over ``n_samples`` draws A_s = M + σ ∘ E_s (B at its trained value,
dropout off); each draw is seeded by the run seed and its index, so it is one model applied to the
whole split, and ``ctx.sample_chunk`` draws share one forward on the batch repeated per draw (the
same draws as sequential passes). The authors evaluate with Flipout noise on every forward pass;
per input its distribution is the same N(M, σ²). ``blob_mean`` is one deterministic pass at M.
"""

from __future__ import annotations

import torch

from bayeslora.errors import ConfigError
from bayeslora.methods.blob import BLoBMethod
from bayeslora.predictives.base import EvalContext, Predictive
from bayeslora.predictives.sampling import repeat_batch


def _require_blob(ctx: EvalContext, label: str) -> None:
    if not isinstance(ctx.method, BLoBMethod) or not ctx.method.sites:
        raise ConfigError(
            f"predictive {label!r} needs a BLoB run (method=blob), not method={ctx.method.name}"
        )


class BLoBPredictive(Predictive):
    """Average of the softmax over ``n_samples`` samples of the variational A."""

    def __init__(self, label: str = "BLoB", n_samples: int = 10):
        super().__init__(label, n_samples)

    def bind(self, ctx: EvalContext) -> None:
        _require_blob(ctx, self.label)

    @torch.no_grad()
    def predict(self, ctx: EvalContext, batch) -> torch.Tensor:
        ctx.model.eval()
        chunk = max(1, int(getattr(ctx, "sample_chunk", 1)))
        bsz = batch["input_ids"].shape[0]
        out = []
        for first in range(0, self.n_samples, chunk):
            gens = [ctx.generator("blob", s) for s in range(first, min(first + chunk, self.n_samples))]
            if len(gens) == 1:
                with ctx.method.sampled(gens[0]):
                    out.append(torch.softmax(ctx.logits(batch), dim=-1).unsqueeze(0))
                continue
            with ctx.method.sampled(gens):  # one forward on the batch repeated per sample
                logits = ctx.logits(repeat_batch(batch, len(gens)))
            out.append(torch.softmax(logits, dim=-1).view(len(gens), bsz, -1))
        return torch.cat(out)


class BLoBMeanPredictive(Predictive):
    """One deterministic pass with A at its mean M."""

    def __init__(self, label: str = "BLoB@mean"):
        super().__init__(label, n_samples=1)

    def bind(self, ctx: EvalContext) -> None:
        _require_blob(ctx, self.label)

    @torch.no_grad()
    def predict(self, ctx: EvalContext, batch) -> torch.Tensor:
        ctx.model.eval()
        with ctx.method.mean():
            return torch.softmax(ctx.logits(batch), dim=-1).unsqueeze(0)
