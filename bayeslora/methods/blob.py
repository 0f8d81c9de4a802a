"""BLoB (Wang et al., NeurIPS 2024): Bayesian Low-Rank Adaptation by Backpropagation.

A mean-field Gaussian q(A) = N(M, σ²) over every LoRA ``A`` matrix (``B`` stays deterministic),
trained jointly with the mean by backpropagation, against the prior N(0, β²) on A. Facts from the
authors' code (github.com/Wang-ML-Lab/bayesian-peft, ``modelwrappers/blob.py``):

- The std is σ = g² with a free parameter g per entry of A, initialised g ~ U(ε/√2, ε), ε = 0.05
  (``bayes_eps``), i.e. σ starts in [ε²/2, ε²] = [1.25e-3, 2.5e-3].
- Training noise is Flipout: lora_A(x) + ((x ∘ r) (σ ∘ E)ᵀ) ∘ s with one E ~ N(0, I) per step and
  random signs r, s; the authors draw the signs per token (``flipout: token``, which keeps x ∘ r,
  one [batch, length, in] tensor per layer, for backward); ``flipout: example`` draws them per
  sequence (the same weight for every token of a sequence; no extra activation). One sample per step.
- Two optimizers per step: AdamW on the NLL gradient of M and B; then SGD (``kl_lr``, 0.01 in the
  authors' scripts, same linear schedule) on the KL gradient of M and the NLL + KL gradient of g (the
  authors' AdamW is built before g exists, so g only moves with the SGD step).
- KL reweighting: the KL of step i is weighted π_i = 2^i / (2^(M+1) − 1), i cycling 1..M, and with
  dataset rescaling M = ⌊100 · N^(π/γ) / batch⌋ (N the training-set size, γ = 8); without
  reweighting π = 1/M; without rescaling M is the number of batches per epoch, ⌊N / batch⌋.

For this project the mean follows the common protocol (AdamW with the method's lr, linear decay,
q_proj/v_proj). The noise is added by a forward hook on each peft ``lora_A`` module, so it works the
same over float and bitsandbytes base layers; outside :meth:`BLoBMethod.flipout` and
:meth:`BLoBMethod.sampled` the adapter is at its mean (deterministic). The parameters g are model
parameters (``<layer>.lora_A_sqrt_std.<adapter>``, trainable, saved with the adapter) created in
:meth:`setup`; :meth:`state_dict` holds them too, with both optimizers, both schedules and the step
of the KL cycle.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from bayeslora.checks import NON_NEGATIVE, POSITIVE, check_settings, integer, number, one_of
from bayeslora.errors import ConfigError
from bayeslora.methods.adamw import AdamWMethod
from bayeslora.methods.base import linear_decay
from bayeslora.models import lora_parameters

STD_PARAM = "lora_A_sqrt_std"  # the ParameterDict added to each peft LoRA layer (σ = g²)
FLIPOUT = ("token", "example")


def kl_cycle_length(train_size: int, batch_size: int, gamma: float, dataset_rescaling: bool) -> int:
    """M, the number of steps in one KL-reweighting cycle (the authors' ``self.M``)."""
    if dataset_rescaling:
        m = int(100 * train_size ** (math.pi / gamma) / batch_size)
    else:
        m = train_size // batch_size  # batches per epoch (the authors' loader drops the last one)
    return max(1, m)


def kl_weight(step: int, cycle: int, reweighting: bool) -> float:
    """π for the 1-based training ``step``: 2^i / (2^(M+1) − 1) with i = step mod M in 1..M, or 1/M."""
    if not reweighting:
        return 1.0 / cycle
    i = step % cycle or cycle
    # = 2**i / (2**(M+1) - 1), written so that a large M neither overflows nor needs big integers
    return 2.0 ** (i - cycle - 1) / (1.0 - 2.0 ** -(cycle + 1))


def gaussian_kl(mean: torch.Tensor, std: torch.Tensor, prior_std: float) -> torch.Tensor:
    """Σ KL(N(mean, std²) ‖ N(0, prior_std²)) over all entries, in float32 (or wider)."""
    mean = mean.float() if mean.dtype in (torch.float16, torch.bfloat16) else mean
    std = std.to(mean.dtype)
    var_ratio = (std / prior_std).square()
    return 0.5 * (var_ratio + (mean / prior_std).square() - 1.0 - var_ratio.log()).sum()


def _signs(shape, like: torch.Tensor) -> torch.Tensor:
    return torch.randint(0, 2, shape, device=like.device, dtype=like.dtype).mul_(2).sub_(1)  # ±1


@dataclass
class _Site:
    """One variational A: the peft ``lora_A`` Linear (its weight is the mean) and g (σ = g²)."""

    name: str
    lora_A: nn.Linear
    g: nn.Parameter

    @property
    def mean(self) -> torch.Tensor:
        return self.lora_A.weight

    @property
    def std(self) -> torch.Tensor:
        return self.g.square()


class BLoBMethod(AdamWMethod):
    def __init__(
        self,
        name: str,
        predictives: list[str],
        sqrt_std_init: float = 0.05,
        prior_std: float = 0.2,
        kl_lr: float = 0.01,
        gamma: float = 8.0,
        kl_reweighting: bool = True,
        dataset_rescaling: bool = True,
        batch_size: int = 4,
        train_samples: int = 1,
        flipout: str = "token",
        val_predictive: str = "blob_mean",
        lora_dropout: float | None = None,
        **adamw,
    ):
        # adamw: the mean's AdamW settings (lr, weight_decay, betas, eps, warmup_steps), taken and
        # checked once by AdamWMethod, which refuses any other key.
        super().__init__(name, predictives, val_predictive=val_predictive, **adamw)
        check_settings(
            {
                "sqrt_std_init": (sqrt_std_init, POSITIVE),
                "prior_std": (prior_std, POSITIVE),
                "kl_lr": (kl_lr, NON_NEGATIVE),
                "gamma": (gamma, POSITIVE),
                "batch_size": (batch_size, integer(1)),
                "train_samples": (train_samples, integer(1)),
                "lora_dropout": (lora_dropout, number(0, 1, hi_open=True, optional=True)),
                "flipout": (flipout, one_of(*FLIPOUT)),
            }
        )
        self.lora_dropout = lora_dropout  # applied by the runner when it builds the model
        self.sqrt_std_init, self.prior_std, self.kl_lr = float(sqrt_std_init), float(prior_std), kl_lr
        self.gamma, self.kl_reweighting, self.dataset_rescaling = (
            float(gamma),
            kl_reweighting,
            dataset_rescaling,
        )
        self.batch_size, self.train_samples, self.flipout_per = batch_size, train_samples, flipout
        self.sites: list[_Site] = []
        self.kl_optimizer: torch.optim.Optimizer | None = None
        self.kl_scheduler = None
        self.kl_step = 1  # the authors' `self.i`: 1-based step within the KL-reweighting schedule
        self._mode = "mean"  # mean | flipout | sample | samples
        self._noise: list[torch.Tensor] = []

    # -- the variational A ------------------------------------------------------------------------
    def _attach(self, model, seed: int) -> None:
        """Add g to every LoRA layer of the active adapter and hook its lora_A (idempotent)."""
        from peft.tuners.lora import LoraLayer

        adapter = model.active_adapter
        gen = torch.Generator().manual_seed(int(seed))
        lo, hi = self.sqrt_std_init / math.sqrt(2), self.sqrt_std_init
        self.sites = []
        for name, layer in model.named_modules():
            if not isinstance(layer, LoraLayer) or adapter not in layer.lora_A:
                continue
            lora_A = layer.lora_A[adapter]
            if not isinstance(lora_A, nn.Linear) or adapter in getattr(layer, "lora_variant", {}):
                raise ConfigError(f"BLoB supports plain LoRA on linear layers only ({name})")
            w = lora_A.weight
            g = torch.empty(w.shape, dtype=torch.float32).uniform_(lo, hi, generator=gen)
            if not hasattr(layer, STD_PARAM):
                layer.register_module(STD_PARAM, nn.ParameterDict())
            getattr(layer, STD_PARAM)[adapter] = nn.Parameter(g.to(device=w.device, dtype=w.dtype))
            site = _Site(f"{name}.lora_A.{adapter}", lora_A, getattr(layer, STD_PARAM)[adapter])
            old = getattr(lora_A, "_blob_hook", None)
            if old is not None:  # a previous setup on this model: its hook must not add noise twice
                old.remove()
            lora_A._blob_hook = lora_A.register_forward_hook(self._hook(len(self.sites)))
            self.sites.append(site)
        if not self.sites:
            raise ConfigError("BLoB found no LoRA layers in the model")

    def _hook(self, index: int):
        def hook(module, args, out):
            if self._mode == "mean":
                return None
            x, site = args[0], self.sites[index]
            if self._mode == "sample":
                return out + F.linear(x, self._noise[index].to(x.dtype))
            if self._mode == "samples":  # S draws [S, r, in]; the batch holds S copies, sample-major
                w = self._noise[index].to(x.dtype)
                xs = x.reshape(w.shape[0], -1, x.shape[-1])
                return out + torch.bmm(xs, w.transpose(1, 2)).view_as(out)
            noise = (site.std * torch.randn_like(site.g)).to(x.dtype)  # one E per step, for the batch
            if self.flipout_per == "token" or x.dim() == 2:
                s = _signs((*x.shape[:-1], out.shape[-1]), out)
                return out + F.linear(x * _signs(x.shape, x), noise) * s
            # one pair of sign vectors (r, s) per sequence: r folded into a per-sequence weight, so
            # autograd keeps only x (already kept by lora_A) and the small [batch, r, in] weights
            b = x.shape[0]
            weights = noise.unsqueeze(0) * _signs((b, 1, x.shape[-1]), x)
            z = torch.bmm(x.reshape(b, -1, x.shape[-1]), weights.transpose(1, 2)).view_as(out)
            return out + z * _signs((b, *(1,) * (out.dim() - 2), out.shape[-1]), out)

        return hook

    @contextmanager
    def _with_mode(self, mode: str, noise: list[torch.Tensor] | None = None) -> Iterator[None]:
        previous, saved = self._mode, self._noise
        self._mode, self._noise = mode, noise or []
        try:
            yield
        finally:
            self._mode, self._noise = previous, saved

    def flipout(self):
        """Inside: every forward pass draws fresh Flipout noise on A (training)."""
        return self._with_mode("flipout")

    def mean(self):
        """Inside: A at its mean M (the default outside any context)."""
        return self._with_mode("mean")

    def sample_noise(self, generator: torch.Generator | None = None) -> list[torch.Tensor]:
        """One draw σ ∘ E per site, E ~ N(0, I) from ``generator``, sites in model order."""
        out = []
        with torch.no_grad():
            for site in self.sites:
                e = torch.randn(site.g.shape, generator=generator, device=site.g.device, dtype=site.g.dtype)
                out.append(site.std.detach() * e)
        return out

    def sampled(self, generator: torch.Generator | list[torch.Generator] | None = None):
        """Inside: A = M + σ ∘ E, one draw for all inputs (test-time weight sample). With a list of
        S generators, S draws at once: the batch must be S copies of a batch, sample-major (copy s
        uses the draw of ``generator[s]``, the same draw a single-generator call gives)."""
        if not isinstance(generator, (list, tuple)):
            return self._with_mode("sample", self.sample_noise(generator))
        draws = [self.sample_noise(g) for g in generator]
        return self._with_mode("samples", [torch.stack(per_site) for per_site in zip(*draws)])

    def std_parameters(self) -> list[nn.Parameter]:
        return [s.g for s in self.sites]

    def kl_divergence(self) -> torch.Tensor:
        """KL(q(A) ‖ N(0, β²)) summed over every entry of every A."""
        return sum(gaussian_kl(s.mean, s.std, self.prior_std) for s in self.sites)

    # -- setup and training -------------------------------------------------------------------------
    def setup(self, model, class_ids, total_steps, train_size, seed) -> None:
        self.class_ids, self.train_size, self.total_steps = list(class_ids), train_size, total_steps
        self._attach(model, seed)
        stds = {id(p) for p in self.std_parameters()}
        self.mean_params = [p for _, p in lora_parameters(model) if id(p) not in stds]
        a_means = [s.mean for s in self.sites]
        self.optimizer = self.build_optimizer(self.mean_params)  # AdamW on M and B
        self.kl_optimizer = torch.optim.SGD([*a_means, *self.std_parameters()], lr=self.kl_lr)
        self.scheduler = self.schedule(self.optimizer, total_steps)
        self.kl_scheduler = linear_decay(self.kl_optimizer, total_steps, self.warmup_steps)
        self.kl_cycle = kl_cycle_length(train_size, self.batch_size, self.gamma, self.dataset_rescaling)
        self.kl_step = 1
        self._mode = "mean"

    def loss(self, model, batch) -> torch.Tensor:
        """The data term: cross-entropy of the logits averaged over ``train_samples`` Flipout draws."""
        with self.flipout():
            logits = torch.stack([self.logits(model, batch) for _ in range(self.train_samples)]).mean(0)
        return F.cross_entropy(logits, batch["labels"])

    def train_step(self, model, batch) -> float:
        """One BLoB step; returns the NLL (the KL and its weight are kept in ``last_kl*``)."""
        self.optimizer.zero_grad(set_to_none=True)
        self.kl_optimizer.zero_grad(set_to_none=True)
        with self.flipout():  # also through backward, should activations be recomputed there
            nll = self.loss(model, batch)
            nll.backward()
        self.optimizer.step()  # AdamW: M and B on the NLL gradient
        for p in self.mean_params:  # g keeps its NLL gradient for the SGD step
            p.grad = None
        weight = kl_weight(self.kl_step, self.kl_cycle, self.kl_reweighting)
        kl = self.kl_divergence()
        (weight * kl).backward()
        self.kl_optimizer.step()  # SGD: M on π·∇KL, g on ∇NLL + π·∇KL
        self.kl_optimizer.zero_grad(set_to_none=True)
        self.scheduler.step()
        self.kl_scheduler.step()
        self.kl_step += 1
        self.last_kl, self.last_kl_weight = kl.detach().item(), weight
        return nll.detach().item()

    # -- checkpoints ------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return super().state_dict() | {
            "kl_optimizer": self.kl_optimizer.state_dict(),
            "kl_scheduler": self.kl_scheduler.state_dict(),
            "kl_step": self.kl_step,
            "sqrt_std": {s.name: s.g.detach().clone() for s in self.sites},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        names = [s.name for s in self.sites]
        if sorted(state["sqrt_std"]) != sorted(names):
            raise ConfigError("the BLoB state does not match this model's LoRA layers")
        super().load_state_dict(state)
        self.kl_optimizer.load_state_dict(state["kl_optimizer"])
        self.kl_scheduler.load_state_dict(state["kl_scheduler"])
        self.kl_step = int(state["kl_step"])
        with torch.no_grad():
            for s in self.sites:
                s.g.copy_(state["sqrt_std"][s.name])
