"""SWA and SWAG over the LoRA parameters (Maddox et al., 2019; SWAG-LoRA, Onal et al., 2024).

During training, every ``interval`` steps from the first snapshot step on (``start_step``, or
``start_frac`` of the run), the LoRA weights θ are folded into running first and second moments;
at selected snapshots the deviation θ − θ̄ (θ̄ the running mean after the update) becomes a column
of the deviation matrix D (at most ``rank`` columns). ``swa`` predicts at θ̄; ``swag`` averages over
samples of

* ``convention: swag_lora`` (default; fortuinlab/swag-lora ``SWAG.sample_fullrank``, scale 1):
  θ = θ̄ + √s · ( Σ_diag^½ z₁ + D z₂ / √(K−1) )
* ``convention: maddox`` (the original SWAG paper): θ = θ̄ + √s · ( Σ_diag^½ z₁/√2 + D z₂/√(2(K−1)) )

with z₁ ~ N(0, I_d), z₂ ~ N(0, I_K), Σ_diag = max(mean(θ²) − θ̄², 0) and K the number of columns of D.

Which deviations form D (``keep``): ``last`` keeps the last ``rank`` snapshots (SWAG's rolling
buffer); ``spread`` (default) keeps ``rank`` snapshots spread evenly over the whole collection window
(the schedule is known when the run starts). Under the paper's linearly decaying learning rate the
last snapshots of a run barely move, so their deviations from the running mean all point along the
same drift and D is close to rank 1; snapshots spread over the window span distinct directions.

swag-lora's constant learning rate during collection is a training setting, not this predictive's:
``method.constant_lr`` (with ``method.constant_lr_from`` = ``start_frac``) holds it from the first
snapshot on; it changes the AdamW run every row of it shares, so it is off by default.

Both predictives share one collector per collection schedule, so listing both costs one collection.
The collection is a few vector operations every ``interval`` steps.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from bayeslora.checks import NON_NEGATIVE, check_settings, integer, number, one_of
from bayeslora.errors import ConfigError
from bayeslora.predictives.base import EvalContext, Predictive
from bayeslora.predictives.sampling import lora_vector, weight_sample_log_probs

CONVENTIONS = ("swag_lora", "maddox")
KEEP = ("spread", "last")


def snapshot_steps(start_step: int, interval: int, total_steps: int) -> list[int]:
    """The steps at which snapshots are taken: ``start_step, start_step + interval, ... <= total``."""
    return list(range(start_step, total_steps + 1, interval))


def spread_indices(n_snapshots: int, rank: int) -> list[int]:
    """``rank`` snapshot indices spread evenly over ``1 .. n_snapshots − 1`` (the first deviation is 0)."""
    if n_snapshots < 2 or rank < 1:
        return []
    idx = np.unique(np.round(np.linspace(1, n_snapshots - 1, min(rank, n_snapshots - 1))).astype(int))
    return [int(i) for i in idx]


class SWAGCollector:
    """Running moments of a stream of parameter vectors and a deviation matrix of at most ``rank``
    columns: the snapshots whose 0-based index is in ``keep_indices``, or the last ``rank``."""

    def __init__(self, rank: int, keep_indices: list[int] | None = None):
        self.rank = rank
        self.keep_indices = None if keep_indices is None else set(keep_indices)
        self.n = 0
        self.mean: torch.Tensor | None = None
        self.sq_mean: torch.Tensor | None = None
        self.deviations: list[torch.Tensor] = []
        self.steps: list[int] = []  # the step of every snapshot
        self.deviation_steps: list[int] = []  # the step of every column of D
        self.last_step = -1

    @torch.no_grad()
    def update(self, theta: torch.Tensor, step: int = -1) -> None:
        theta = theta.detach().float()
        if self.mean is None:
            self.mean = torch.zeros_like(theta)
            self.sq_mean = torch.zeros_like(theta)
        index = self.n
        self.n += 1
        self.steps.append(step)
        self.mean += (theta - self.mean) / self.n
        self.sq_mean += (theta * theta - self.sq_mean) / self.n
        if self.rank < 1 or (self.keep_indices is not None and index not in self.keep_indices):
            return
        self.deviations.append(theta - self.mean)
        self.deviation_steps.append(step)
        if len(self.deviations) > self.rank:
            self.deviations.pop(0)
            self.deviation_steps.pop(0)

    def variance(self) -> torch.Tensor:
        return (self.sq_mean - self.mean * self.mean).clamp_min(0.0)

    def deviation_matrix(self) -> torch.Tensor:
        """D with the kept deviations as columns, ``[d, K]``."""
        return torch.stack(self.deviations, dim=1)

    def sample(
        self,
        scale: float,
        generator: torch.Generator,
        low_rank: bool = True,
        convention: str = "swag_lora",
    ) -> torch.Tensor:
        z1 = torch.randn(self.mean.shape, generator=generator, device=self.mean.device)
        diag = self.variance().sqrt() * z1
        half = 1.0 / math.sqrt(2.0) if convention == "maddox" else 1.0
        k = len(self.deviations)
        if not low_rank or k < 2:
            return self.mean + math.sqrt(scale) * half * diag
        z2 = torch.randn(k, generator=generator, device=self.mean.device)
        low = self.deviation_matrix() @ z2 / math.sqrt(k - 1)
        return self.mean + math.sqrt(scale) * half * (diag + low)

    def deviation_spectrum(self) -> dict[str, Any]:
        """How many directions D spans: its singular values relative to the largest, and the largest
        |cosine| between two of its columns (1 = collinear)."""
        if len(self.deviations) < 2:
            return {}
        d = self.deviation_matrix().double()
        s = torch.linalg.svdvals(d)
        unit = d / d.norm(dim=0, keepdim=True).clamp_min(1e-30)
        cos = (unit.T @ unit).abs() - torch.eye(d.shape[1], dtype=d.dtype)
        return {
            "deviation_singular_values_rel": [round(float(v), 6) for v in s / s[0].clamp_min(1e-30)],
            "deviation_max_abs_cosine": round(float(cos.max()), 6),
        }


class SWAGPredictive(Predictive):
    """``n_samples`` SWAG samples (``mean_only``: one pass at the SWA mean)."""

    needs_training = "it averages snapshots of the LoRA weights taken during training"

    def __init__(
        self,
        label: str = "+ SWAG",
        n_samples: int = 10,
        scale: float = 1.0,
        rank: int = 5,
        start_step: int | None = None,
        start_frac: float = 0.25,
        interval: int = 250,
        keep: str = "spread",
        convention: str = "swag_lora",
        mean_only: bool = False,
    ):
        super().__init__(label, 1 if mean_only else n_samples)
        check_settings(
            {
                "start_step": (start_step, integer(1, optional=True)),
                "start_frac": (start_frac, number(0, 1, hi_open=True)),
                "interval": (interval, integer(1)),
                "rank": (rank, integer(0)),
                "scale": (scale, NON_NEGATIVE),
                "keep": (keep, one_of(*KEEP)),
                "convention": (convention, one_of(*CONVENTIONS)),
            }
        )
        self.scale, self.rank, self.interval = scale, rank, interval
        self.start_step_cfg, self.start_frac = start_step, start_frac
        self.start_step = start_step or 1
        self.keep, self.convention = keep, convention
        self.mean_only = mean_only
        self.plan: list[int] | None = None
        self.summary: dict[str, Any] = {}

    @property
    def key(self) -> str:
        return f"swag:{self.start_step}:{self.interval}:{self.rank}:{self.keep}"

    def bind(self, ctx: EvalContext) -> None:
        super().bind(ctx)
        total = ctx.total_steps
        if self.start_step_cfg is None:
            self.start_step = max(1, int(round(self.start_frac * total)))
        if total == 0:
            raise ConfigError(
                f"{self.label} needs the training trajectory ({self.needs_training}), and this run "
                f"takes no training step"
            )
        if self.start_step > total:
            raise ConfigError(
                f"{self.label}: start_step={self.start_step} is after the last step ({total}); "
                f"set predictive.swag.start_step (and .interval) for this run length"
            )
        self.plan = snapshot_steps(self.start_step, self.interval, total)

    def collector(self, ctx: EvalContext) -> SWAGCollector:
        keep = None
        if self.keep == "spread" and self.plan is not None:
            keep = spread_indices(len(self.plan), self.rank)
        return ctx.shared.setdefault(self.key, SWAGCollector(self.rank, keep))

    def on_train_step(self, ctx: EvalContext, step: int) -> None:
        if step < self.start_step or (step - self.start_step) % self.interval:
            return
        c = self.collector(ctx)
        if c.last_step != step:
            c.update(lora_vector(ctx.model), step)
            c.last_step = step

    def post_fit(self, ctx: EvalContext, train_batches) -> None:
        c = self.collector(ctx)
        if c.n == 0:
            raise ConfigError(
                f"{self.label}: no snapshot collected (start_step={self.start_step} is after the "
                f"last step); lower predictive.swag.start_step"
            )
        self.summary = {
            "start_step": self.start_step,
            "interval": self.interval,
            "n_snapshots": c.n,
            "first_snapshot_step": c.steps[0],
            "last_snapshot_step": c.steps[-1],
            "keep": self.keep,
            "deviation_steps": list(c.deviation_steps),
            "convention": self.convention,
            **({} if self.mean_only else c.deviation_spectrum()),
        }

    def info(self) -> dict[str, Any]:
        return dict(self.summary)

    @torch.no_grad()
    def predict(self, ctx: EvalContext, batch) -> torch.Tensor:
        c = self.collector(ctx)
        if self.mean_only:
            return weight_sample_log_probs(ctx, batch, lambda s: c.mean, 1)
        return weight_sample_log_probs(
            ctx,
            batch,
            lambda s: c.sample(self.scale, ctx.generator("swag", self.scale, s), convention=self.convention),
            self.n_samples,
        )
