"""Helpers for predictives that average over weight samples of the LoRA parameters."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch

from bayeslora.models import lora_parameters


def lora_params(model) -> list[torch.nn.Parameter]:
    return [p for _, p in lora_parameters(model)]


def lora_vector(model) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in lora_params(model)])


@contextmanager
def lora_weights(model, vector: torch.Tensor) -> Iterator[None]:
    """Temporarily set the LoRA parameters to the flat ``vector`` (restored on exit)."""
    params = lora_params(model)
    saved = [p.detach().clone() for p in params]
    try:
        offset = 0
        with torch.no_grad():
            for p in params:
                n = p.numel()
                p.copy_(vector[offset : offset + n].view_as(p).to(p.dtype))
                offset += n
        if offset != vector.numel():
            raise ValueError(f"weight vector has {vector.numel()} entries, the LoRA parameters {offset}")
        yield
    finally:
        with torch.no_grad():
            for p, s in zip(params, saved):
                p.copy_(s)


def set_dropout(model, train: bool) -> int:
    """Switch only the LoRA dropout modules to train (sampling) or eval mode; returns how many."""
    n = 0
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Dropout) and ".lora_dropout." in f".{name}.":
            module.train(train)
            n += 1
    return n


@torch.no_grad()
def average_over_samples(ctx, batch, weights: Callable[[int], torch.Tensor], n_samples: int) -> torch.Tensor:
    """Softmax probabilities ``[n_samples, batch, classes]``, one pass per weight sample (dropout off)."""
    ctx.model.eval()
    out = []
    for s in range(n_samples):
        with lora_weights(ctx.model, weights(s)):
            out.append(torch.softmax(ctx.logits(batch), dim=-1))
    return torch.stack(out)
