"""LoRA ensembles: M independently seeded AdamW members trained in one run, probabilities averaged.

Each member is its own LoRA adapter (peft multi-adapter) on the shared frozen base, with its own
initialisation, data order and AdamW state, all from its member seed ``seed * 1000 + m``. A step
trains every member on its own batch, so a run costs M AdamW runs. An ensemble of finished AdamW
runs (no training) is built from their saved probabilities by ``bayeslora-ensemble``.
"""

from __future__ import annotations

import warnings
from contextlib import contextmanager
from typing import Any

import torch

from bayeslora.checks import check_settings, integer
from bayeslora.data import train_batches
from bayeslora.methods.adamw import AdamWMethod
from bayeslora.models import lora_parameters


def member_seeds(seed: int, n_members: int) -> list[int]:
    return [seed * 1000 + m for m in range(n_members)]


class EnsembleMethod(AdamWMethod):
    def __init__(
        self,
        name: str,
        predictives: list[str],
        n_members: int = 3,
        val_predictive: str = "ensemble",
        **adamw,
    ):
        # adamw: every member's AdamW settings (lr, weight_decay, betas, eps, warmup_steps), taken
        # and checked once by AdamWMethod, which refuses any other key.
        super().__init__(name, predictives, val_predictive=val_predictive, **adamw)
        check_settings({"n_members": (n_members, integer(1))})
        self.n_members = n_members
        self.members: list[str] = []
        self.optimizers: list[torch.optim.Optimizer] = []
        self.schedulers: list = []

    def setup(self, model, class_ids, total_steps, train_size, seed) -> None:
        self.class_ids, self.train_size, self.total_steps = list(class_ids), train_size, total_steps
        self.seeds = member_seeds(seed, self.n_members)
        config = model.peft_config[model.active_adapter]
        for m, s in enumerate(self.seeds):
            name = f"member{m}"
            torch.manual_seed(s)
            model.add_adapter(name, config)
            self.members.append(name)
        with warnings.catch_warnings():  # "Adapter default was active which is now deleted"
            warnings.simplefilter("ignore", UserWarning)
            model.delete_adapter("default")
        for name in self.members:
            model.set_adapter(name)
            params = [p for _, p in lora_parameters(model)]
            opt = self.build_optimizer(params)
            self.optimizers.append(opt)
            self.schedulers.append(self.schedule(opt, total_steps))
        self.optimizer, self.scheduler = self.optimizers[0], self.schedulers[0]
        model.set_adapter(self.members[0])

    @contextmanager
    def member(self, model, name: str):
        """Make ``name`` the active (and only trainable) adapter; restore the previous one after."""
        previous = model.active_adapter
        model.set_adapter(name)
        try:
            yield
        finally:
            model.set_adapter(previous)

    def batches(self, split, batch_size, seed, pad_id, multiple, start_step=0):
        streams = [train_batches(split, batch_size, s, pad_id, multiple, start_step) for s in self.seeds]
        while True:
            yield [next(s) for s in streams]

    def train_step(self, model, batches) -> float:
        total = 0.0
        for name, opt, sched, batch in zip(self.members, self.optimizers, self.schedulers, batches):
            with self.member(model, name):
                opt.zero_grad(set_to_none=True)
                loss = self.loss(model, batch)
                loss.backward()
                opt.step()
                sched.step()
            total += loss.detach().item()
        return total / len(self.members)

    def state_dict(self) -> dict[str, Any]:
        return {
            "optimizers": [o.state_dict() for o in self.optimizers],
            "schedulers": [s.state_dict() for s in self.schedulers],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for o, s in zip(self.optimizers, state["optimizers"]):
            o.load_state_dict(s)
        for o, s in zip(self.schedulers, state["schedulers"]):
            o.load_state_dict(s)
