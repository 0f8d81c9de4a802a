"""The class-prior row (beyond the paper): every example gets the training examples' class frequencies.

It needs no model pass: it is the floor a useful row must beat on NLL and Brier (on a balanced task
it is the uniform distribution). Frequencies are counted over the training examples the run sees
(``trainer.max_train_examples`` included), with ``pseudo_count`` added to every class so that a
class absent from a small training subset keeps a finite NLL.
"""

from __future__ import annotations

from typing import Any

import torch

from bayeslora.checks import check_settings, number
from bayeslora.predictives.base import EvalContext, OnePassPredictive


class PriorPredictive(OnePassPredictive):
    def __init__(self, label: str, pseudo_count: float = 1.0):
        check_settings({"pseudo_count": (pseudo_count, number(0.0))})
        super().__init__(label)
        self.pseudo_count = float(pseudo_count)
        self.log_prior: torch.Tensor | None = None
        self.counts: list[int] = []

    def post_fit(self, ctx: EvalContext, train_batches) -> None:
        counts = torch.zeros(len(ctx.class_ids), dtype=torch.float64)
        for batch in train_batches():
            counts += torch.bincount(batch["labels"].cpu(), minlength=len(ctx.class_ids)).double()
        self.counts = [int(c) for c in counts]
        smoothed = counts + self.pseudo_count
        if smoothed.sum() <= 0:
            raise ValueError(f"{self.label}: no training labels to count and pseudo_count=0")
        self.log_prior = torch.log(smoothed / smoothed.sum())

    @torch.no_grad()
    def predict(self, ctx: EvalContext, batch) -> torch.Tensor:
        if self.log_prior is None:
            raise RuntimeError(f"{self.label}: post_fit has not run")
        n = batch["input_ids"].shape[0]
        return self.log_prior.to(torch.float32).expand(1, n, -1).clone()

    def info(self) -> dict[str, Any]:
        return {"class_counts": self.counts, "pseudo_count": self.pseudo_count}
