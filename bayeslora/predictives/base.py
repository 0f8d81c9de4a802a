"""The predictive contract.

State a predictive accumulates during training (e.g. SWAG moments) lives in ``ctx.shared``, which
checkpoints save and restore.

What a predictive needs from the method is declared, not probed: ``requires`` names a protocol of
:mod:`bayeslora.contracts` (e.g. a Gaussian posterior), checked by ``bind``.

Lifecycle in a run: ``bind`` (once, after the method is set up; refuse a method you cannot serve),
``on_train_step`` (after every optimizer step; e.g. SWAG collects moments), ``post_fit`` (after
training; e.g. Laplace fits curvature), then ``predict`` per evaluation batch. Predictives return
probabilities only; metrics are computed in :mod:`bayeslora.metrics`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import torch
from omegaconf import OmegaConf

from bayeslora.checks import check_settings, integer
from bayeslora.contracts import require
from bayeslora.utils.instantiate import instantiate

# Keys of a conf/predictive/<name>.yaml that belong to the tables, not to the predictive's constructor.
TABLE_KEYS = ("table_rank",)


@dataclass
class EvalContext:
    """What a predictive may use: the model, the method that trained it, and the class token ids."""

    model: Any
    method: Any
    class_ids: list[int]
    # The task's pad token id (``TaskData.pad_id``), for predictives that re-batch examples.
    pad_id: int
    seed: int = 0
    # Optimizer steps the run takes (trainer.max_steps; 0: no training, e.g. a zero-shot run).
    total_steps: int = 0
    # How many weight samples share one batched forward (the batch repeated per sample); 1 = sequential.
    sample_chunk: int = 1
    # State shared between predictives of one run (e.g. one SWAG collector for `swa` and `swag`).
    shared: dict[str, Any] = field(default_factory=dict)
    # Show progress bars for long post-fit passes (e.g. Laplace's curvature pass); trainer.progress_bar.
    progress: bool = False

    def logits(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.method.logits(self.model, batch)

    @torch.no_grad()
    def one_pass(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Log-probabilities ``[1, batch, classes]`` of one pass of the model as it is set up now,
        in eval mode (dropout off)."""
        self.model.eval()
        return torch.log_softmax(self.logits(batch).float(), dim=-1).unsqueeze(0)

    def generator(self, *key: int | str) -> torch.Generator:
        """A generator on the model's device, seeded by the run seed and ``key``: the same draws
        for every evaluation batch, so each weight sample is one model applied to the whole split."""
        device = next(p.device for p in self.model.parameters())
        digest = hashlib.sha256(repr((self.seed, *key)).encode()).digest()
        mixed = int.from_bytes(digest[:8], "little") % (2**63)
        return torch.Generator(device=device).manual_seed(mixed)


class Predictive:
    # False for analysis-only rows (e.g. the IVON τ grid): recorded, but not in the main table.
    in_table: bool = True
    # The table row this predictive is (``laplace_kfac``, ``ivon_tau0.5``): the record's key for its
    # metrics, and so what keys its state in ``EvalContext.shared``; set by ``runner.build_predictives``.
    row: str | None = None
    # Row order in tables and figures (``table_rank`` of conf/predictive/<name>.yaml; set when built).
    table_rank: int | None = None
    # What the predictive needs beyond a trained adapter, checked before anything loads (by the
    # config check of a ``trainer.max_steps=0`` run and by ``bayeslora.evaluate``); ``bind`` checks
    # them again on the real run.
    # Why it needs the training trajectory (e.g. SWAG's snapshots); None = it does not.
    needs_training: str | None = None
    # Whether it samples the LoRA dropout masks (needs LoRA dropout > 0).
    needs_lora_dropout: bool = False
    # The protocol of bayeslora.contracts the method must implement (None: any method will do).
    requires: type | None = None

    def __init__(self, label: str, n_samples: int = 1):
        check_settings({"n_samples": (n_samples, integer(1))})
        self.label = label
        self.n_samples = n_samples

    def expand(self, name: str) -> dict[str, Predictive]:
        """The table rows this config produces (a grid predictive returns one per grid point)."""
        return {name: self}

    def bind(self, ctx: EvalContext) -> None:
        """Check the run can serve this predictive (raise ConfigError if not): by default, that the
        method implements :attr:`requires`. Subclasses that check more call ``super().bind(ctx)``."""
        require(ctx.method, self.requires, self.label)

    def on_train_step(self, ctx: EvalContext, step: int) -> None:
        """Called after optimizer step ``step`` (1-based)."""

    def post_fit(self, ctx: EvalContext, train_batches) -> None:
        """Called once after training, before evaluation."""

    @torch.no_grad()
    def predict(self, ctx: EvalContext, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        raise NotImplementedError

    def info(self) -> dict[str, Any]:
        """Scalars worth keeping in the record (e.g. a tuned prior precision, a fit time)."""
        return {}


class OnePassPredictive(Predictive):
    """A predictive of one deterministic pass (or one per ensemble member): no ``n_samples``."""

    def __init__(self, label: str):
        super().__init__(label, n_samples=1)


def build_predictive(node: Any) -> Predictive:
    """A predictive from its config node (``predictive.<name>``), with its ``table_rank`` set."""
    conf = OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else dict(node)
    rank = conf.pop("table_rank", None)
    predictive = instantiate(conf)
    predictive.table_rank = rank
    return predictive
