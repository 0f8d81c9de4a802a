"""IVON-LoRA (Cong et al., 2024): variational learning of the LoRA weights with the IVON optimizer.

Uses the IVON authors' optimizer (``ivon-opt``). Each step draws ``mc_samples`` weight samples, and
the forward and backward passes run inside ``sampled_params(train=True)``; LoRA dropout stays on.
The posterior is N(m, v) with m the parameters and v = 1 / (ess * (hess + weight_decay)).
"""

from __future__ import annotations

from typing import Any

import torch

from bayeslora.checks import NON_NEGATIVE, POSITIVE, UNIT, check_settings, integer
from bayeslora.errors import ConfigError
from bayeslora.methods.base import Method

# this method's settings that ivon.IVON takes, by the same names
OPTIMIZER_SETTINGS = (
    "lr",
    "ess",
    "hess_init",
    "beta1",
    "beta2",
    "weight_decay",
    "mc_samples",
    "clip_radius",
    "rescale_lr",
)


class IVONMethod(Method):
    divergence_hint = "IVON diverges when ess is too small: raise method.ess, or lower the learning rate"

    def __init__(
        self,
        name: str,
        predictives: list[str],
        ess: float,
        hess_init: float,
        lr: float = 0.03,
        beta1: float = 0.9,
        beta2: float = 0.99999,
        weight_decay: float = 0.0,
        clip_radius: float = 1e-3,
        mc_samples: int = 1,
        rescale_lr: bool = False,
        warmup_steps: int = 0,
        val_predictive: str = "ivon_mean",
    ):
        super().__init__(name, predictives, val_predictive, warmup_steps)
        check_settings(
            {
                "lr": (lr, POSITIVE),
                "ess": (ess, POSITIVE),
                "hess_init": (hess_init, POSITIVE),
                "weight_decay": (weight_decay, NON_NEGATIVE),
                "clip_radius": (clip_radius, POSITIVE),
                "mc_samples": (mc_samples, integer(1)),
                "beta1": (beta1, UNIT),
                "beta2": (beta2, UNIT),
            }
        )
        self.lr, self.ess, self.hess_init = lr, float(ess), float(hess_init)
        self.beta1, self.beta2, self.weight_decay = beta1, beta2, weight_decay
        self.clip_radius, self.mc_samples, self.rescale_lr = clip_radius, mc_samples, rescale_lr

    def build_optimizer(self, params):
        import ivon

        dtypes = {p.dtype for p in params}
        if len(dtypes) > 1:
            raise ConfigError(f"IVON needs one dtype for all LoRA parameters, got {sorted(map(str, dtypes))}")
        return ivon.IVON(params, **{k: getattr(self, k) for k in OPTIMIZER_SETTINGS})

    def train_step(self, model, batch) -> float:
        total = 0.0
        for _ in range(self.mc_samples):
            with self.optimizer.sampled_params(train=True):
                self.optimizer.zero_grad(set_to_none=True)
                loss = self.loss(model, batch)
                loss.backward()
            total += loss.detach().item()
        self.optimizer.step()
        self.scheduler.step()
        return total / self.mc_samples

    # -- the posterior ----------------------------------------------------------------------
    def posterior_mean(self) -> torch.Tensor:
        return torch.cat([p.detach().flatten() for g in self.optimizer.param_groups for p in g["params"]])

    def posterior_variance(self) -> torch.Tensor:
        """v = 1 / (ess * (hess + weight_decay)), flat, in the order of the LoRA parameters."""
        return torch.cat(
            [1.0 / (g["ess"] * (g["hess"] + g["weight_decay"])) for g in self.optimizer.param_groups]
        )

    def posterior_state(self) -> dict[str, torch.Tensor]:
        """Mean, variance and Hessian estimate, flat (for saving and analysis)."""
        hess = torch.cat([g["hess"] for g in self.optimizer.param_groups])
        return {
            "mean": self.posterior_mean().cpu(),
            "variance": self.posterior_variance().cpu(),
            "hess": hess.detach().cpu(),
        }

    def save_artifacts(self, run_dir) -> None:
        """``ivon_posterior.pt``: flat mean, variance and Hessian of the LoRA weights (and their shapes)."""
        from pathlib import Path

        state = self.posterior_state()
        state["ess"], state["weight_decay"] = self.ess, self.weight_decay
        state["shapes"] = [tuple(p.shape) for g in self.optimizer.param_groups for p in g["params"]]
        torch.save(state, Path(run_dir) / "ivon_posterior.pt")

    def state_dict(self) -> dict[str, Any]:
        # ivon-opt keeps its step counter (used for debiasing) outside state_dict: save it here.
        return super().state_dict() | {"ivon_current_step": self.optimizer.current_step}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.optimizer.current_step = int(state["ivon_current_step"])
