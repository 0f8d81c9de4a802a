"""The predictive contract.

Lifecycle in a run: ``bind`` (once, after the method is set up; refuse a method you cannot serve),
``on_train_step`` (after every optimizer step; e.g. SWAG collects moments), ``post_fit`` (after
training; e.g. Laplace fits curvature), then ``predict`` per evaluation batch. Predictives return
probabilities only; metrics are computed in :mod:`bayeslora.metrics`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch


@dataclass
class EvalContext:
    """What a predictive may use: the model, the method that trained it, and the class token ids."""

    model: Any
    method: Any
    class_ids: list[int]

    def logits(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.method.logits(self.model, batch)


class Predictive:
    def __init__(self, label: str, n_samples: int = 1):
        if n_samples < 1:
            raise ValueError(f"n_samples must be >= 1, got {n_samples}")
        self.label = label
        self.n_samples = n_samples

    def bind(self, ctx: EvalContext) -> None:
        """Check the run can serve this predictive (raise ConfigError if not)."""

    def on_train_step(self, ctx: EvalContext, step: int) -> None:
        """Called after optimizer step ``step`` (1-based)."""

    def post_fit(self, ctx: EvalContext, train_batches) -> None:
        """Called once after training, before evaluation."""

    @torch.no_grad()
    def predict(self, ctx: EvalContext, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass
