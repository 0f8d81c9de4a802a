"""The contract every training procedure implements.

A :class:`Method` owns the optimizer, the learning-rate schedule and the loss; the runner only calls
``setup`` once, ``train_step`` per step and ``state_dict``/``load_state_dict`` for checkpoints.
Which predictives a run evaluates is data (``predictives`` in the YAML), so the runner never needs
to know which method it runs. Override:

- ``build_optimizer`` for another optimizer (IVON),
- ``loss`` for another objective (BLoB's KL term),
- ``train_step`` when the forward/backward must happen inside a context (IVON's sampling),
- ``setup``/``batches`` when the run trains several adapters (ensembles).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from bayeslora.checks import check_settings, integer, number
from bayeslora.data import train_batches
from bayeslora.errors import ConfigError
from bayeslora.models import class_logits, lora_parameters


def linear_decay(optimizer, total_steps: int, warmup_steps: int = 0, hold: tuple[int, float] | None = None):
    """Linear warm-up over ``warmup_steps``, then linear decay to 0 at ``total_steps``; with
    ``hold = (step, lr)``, every optimizer step after optimizer step ``step`` runs at ``lr``."""
    base_lr = optimizer.param_groups[0]["lr"]

    def factor(step: int) -> float:
        if hold is not None and step >= hold[0]:
            return hold[1] / base_lr
        if warmup_steps and step < warmup_steps:
            return (step + 1) / warmup_steps
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup_steps))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


class Method:
    """Base training procedure: cross-entropy over the class logits, one optimizer step per batch."""

    # Appended to the error when the loss becomes NaN/inf.
    divergence_hint = "lower the learning rate"

    def __init__(
        self,
        name: str,
        predictives: list[str],
        val_predictive: str = "map",
        warmup_steps: int = 0,
        constant_lr: float | None = None,
        constant_lr_from: float = 0.25,
    ):
        if not predictives:
            raise ConfigError(f"method {name!r} lists no predictives")
        if len(set(predictives)) != len(predictives):
            raise ConfigError(f"method {name!r} lists a predictive twice: {predictives}")
        check_settings(
            {
                "warmup_steps": (warmup_steps, integer(0)),
                "constant_lr": (constant_lr, number(0, lo_open=True, optional=True)),
                "constant_lr_from": (constant_lr_from, number(0, 1, hi_open=True)),
            }
        )
        self.name = name
        self.predictives = list(predictives)
        self.val_predictive = val_predictive
        self.warmup_steps = warmup_steps
        self.constant_lr, self.constant_lr_from = constant_lr, constant_lr_from
        self.optimizer: torch.optim.Optimizer | None = None
        self.scheduler = None
        self.class_ids: list[int] = []

    # -- setup -------------------------------------------------------------------------------
    def build_optimizer(self, params: list[torch.nn.Parameter]) -> torch.optim.Optimizer:
        raise NotImplementedError

    def setup(self, model, class_ids: list[int], total_steps: int, train_size: int, seed: int) -> None:
        self.class_ids = list(class_ids)
        self.train_size = train_size
        self.total_steps = total_steps
        params = [p for _, p in lora_parameters(model)]
        if not params:
            raise ConfigError("the model has no trainable (LoRA) parameters")
        self.optimizer = self.build_optimizer(params)
        self.scheduler = self.schedule(self.optimizer, total_steps)

    def schedule(self, optimizer: torch.optim.Optimizer, total_steps: int):
        """The learning-rate schedule: :func:`linear_decay`; with ``constant_lr`` set, every step after
        step ``S = round(constant_lr_from * total_steps)`` runs at ``constant_lr`` (swag-lora's
        constant-LR phase: SWAG with ``start_frac`` = ``constant_lr_from`` takes its first snapshot
        at step S)."""
        hold = None
        if self.constant_lr is not None:
            hold = (max(1, int(round(self.constant_lr_from * total_steps))), float(self.constant_lr))
        return linear_decay(optimizer, total_steps, self.warmup_steps, hold)

    # -- training ----------------------------------------------------------------------------
    def batches(self, split, batch_size: int, seed: int, pad_id: int, multiple: int, start_step: int = 0):
        """The training stream: shuffled by the run seed (ensembles override: one stream per member)."""
        return train_batches(split, batch_size, seed, pad_id, multiple, start_step)

    def logits(self, model, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return class_logits(model, batch, self.class_ids)

    def loss(self, model, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return F.cross_entropy(self.logits(model, batch), batch["labels"])

    def train_step(self, model, batch: dict[str, torch.Tensor]) -> float:
        self.optimizer.zero_grad(set_to_none=True)
        loss = self.loss(model, batch)
        loss.backward()
        self.optimizer.step()
        self.scheduler.step()
        return loss.detach().item()

    def current_lr(self) -> float:
        return self.optimizer.param_groups[0]["lr"]

    def save_artifacts(self, run_dir) -> None:
        """Write method-specific results beside the record (e.g. IVON's posterior); default: none."""

    # -- checkpoints ---------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
