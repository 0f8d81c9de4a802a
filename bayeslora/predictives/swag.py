"""SWA and SWAG over the LoRA parameters (Maddox et al., 2019; SWAG-LoRA, Onal et al., 2024).

During training, every ``interval`` steps from ``start_step`` on, the LoRA weights θ are folded into
running first and second moments, and the deviation θ − θ̄ (θ̄ the running mean after the update) is
kept for the last ``rank`` snapshots. ``swa`` predicts at θ̄; ``swag`` averages the softmax over
samples

    θ = θ̄ + sqrt(scale) · ( Σ_diag^½ z₁ / √2 + D z₂ / √(2(K−1)) ),   z₁ ~ N(0, I_d), z₂ ~ N(0, I_K)

with Σ_diag = max(mean(θ²) − θ̄², 0) and D the d × K deviation matrix (K = number of columns kept).
Both predictives share one collector per (start_step, interval, rank), so listing both costs one
collection. The collection is a few vector operations every ``interval`` steps.
"""

from __future__ import annotations

import math

import torch

from bayeslora.errors import ConfigError
from bayeslora.predictives.base import EvalContext, Predictive
from bayeslora.predictives.sampling import average_over_samples, lora_vector


class SWAGCollector:
    """Running moments and the last ``rank`` deviations of a stream of parameter vectors."""

    def __init__(self, rank: int):
        self.rank = rank
        self.n = 0
        self.mean: torch.Tensor | None = None
        self.sq_mean: torch.Tensor | None = None
        self.deviations: list[torch.Tensor] = []
        self.last_step = -1

    @torch.no_grad()
    def update(self, theta: torch.Tensor) -> None:
        theta = theta.detach().float()
        if self.mean is None:
            self.mean = torch.zeros_like(theta)
            self.sq_mean = torch.zeros_like(theta)
        self.n += 1
        self.mean += (theta - self.mean) / self.n
        self.sq_mean += (theta * theta - self.sq_mean) / self.n
        if self.rank > 0:
            self.deviations.append(theta - self.mean)
            if len(self.deviations) > self.rank:
                self.deviations.pop(0)

    def variance(self) -> torch.Tensor:
        return (self.sq_mean - self.mean * self.mean).clamp_min(0.0)

    def deviation_matrix(self) -> torch.Tensor:
        """D with the kept deviations as columns, ``[d, K]``."""
        return torch.stack(self.deviations, dim=1)

    def sample(self, scale: float, generator: torch.Generator, low_rank: bool = True) -> torch.Tensor:
        z1 = torch.randn(self.mean.shape, generator=generator, device=self.mean.device)
        diag = self.variance().sqrt() * z1
        if not low_rank or len(self.deviations) < 2:
            return self.mean + math.sqrt(scale) * diag
        k = len(self.deviations)
        z2 = torch.randn(k, generator=generator, device=self.mean.device)
        low = self.deviation_matrix() @ z2
        return self.mean + math.sqrt(scale) * (diag / math.sqrt(2.0) + low / math.sqrt(2.0 * (k - 1)))


class SWAGPredictive(Predictive):
    """``n_samples`` SWAG samples (``mean_only``: one pass at the SWA mean)."""

    def __init__(
        self,
        label: str = "+ SWAG",
        n_samples: int = 10,
        scale: float = 1.0,
        rank: int = 5,
        start_step: int = 5000,
        interval: int = 100,
        mean_only: bool = False,
    ):
        super().__init__(label, 1 if mean_only else n_samples)
        if start_step < 1 or interval < 1:
            raise ConfigError(f"SWAG start_step and interval must be >= 1, got {start_step}, {interval}")
        if rank < 0 or scale < 0:
            raise ConfigError(f"SWAG rank and scale must be >= 0, got {rank}, {scale}")
        self.scale, self.rank, self.start_step, self.interval = scale, rank, start_step, interval
        self.mean_only = mean_only
        self.key = f"swag:{start_step}:{interval}:{rank}"

    def bind(self, ctx: EvalContext) -> None:
        total = getattr(ctx.method, "total_steps", None)
        if total is not None and self.start_step > total:
            raise ConfigError(
                f"{self.label}: start_step={self.start_step} is after the last step ({total}); "
                f"set predictive.swag.start_step (and .interval) for this run length"
            )

    def collector(self, ctx: EvalContext) -> SWAGCollector:
        return ctx.shared.setdefault(self.key, SWAGCollector(self.rank))

    def on_train_step(self, ctx: EvalContext, step: int) -> None:
        c = self.collector(ctx)
        if step >= self.start_step and (step - self.start_step) % self.interval == 0 and c.last_step != step:
            c.update(lora_vector(ctx.model))
            c.last_step = step

    def post_fit(self, ctx: EvalContext, train_batches) -> None:
        if self.collector(ctx).n == 0:
            raise ConfigError(
                f"{self.label}: no snapshot collected (start_step={self.start_step} is after the "
                f"last step); lower predictive.swag.start_step"
            )

    @torch.no_grad()
    def predict(self, ctx: EvalContext, batch) -> torch.Tensor:
        c = self.collector(ctx)
        if self.mean_only:
            return average_over_samples(ctx, batch, lambda s: c.mean, 1)
        return average_over_samples(
            ctx, batch, lambda s: c.sample(self.scale, ctx.generator("swag", self.scale, s)), self.n_samples
        )
