"""AdamW-LoRA (the paper's baseline and the run behind MC dropout, Laplace, SWA and SWAG rows)."""

from __future__ import annotations

import torch

from bayeslora.checks import NON_NEGATIVE, POSITIVE, check_settings
from bayeslora.methods.base import Method


class AdamWMethod(Method):
    def __init__(
        self,
        name: str,
        predictives: list[str],
        lr: float = 5e-5,
        weight_decay: float = 0.0,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        warmup_steps: int = 0,
        val_predictive: str = "map",
        constant_lr: float | None = None,
        constant_lr_from: float = 0.25,
    ):
        super().__init__(name, predictives, val_predictive, warmup_steps, constant_lr, constant_lr_from)
        check_settings(
            {"lr": (lr, POSITIVE), "weight_decay": (weight_decay, NON_NEGATIVE), "eps": (eps, POSITIVE)}
        )
        self.lr, self.weight_decay, self.betas, self.eps = lr, weight_decay, tuple(betas), eps

    def build_optimizer(self, params):
        return torch.optim.AdamW(
            params, lr=self.lr, betas=self.betas, eps=self.eps, weight_decay=self.weight_decay
        )
