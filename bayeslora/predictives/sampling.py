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


def repeat_batch(batch: dict[str, torch.Tensor], times: int) -> dict[str, torch.Tensor]:
    """The batch stacked ``times`` times along the batch axis (sample-major)."""
    return {k: v.repeat(times, *([1] * (v.dim() - 1))) for k, v in batch.items()}


@contextmanager
def per_sample_lora(model, vectors: torch.Tensor) -> Iterator[None]:
    """Make a forward on a batch repeated ``S = len(vectors)`` times use LoRA weights ``vectors[s]``
    for the ``s``-th copy: forward hooks recompute every LoRA matrix's output with its per-sample
    weights (one batched forward instead of S passes)."""
    offsets, offset = {}, 0
    for _, p in lora_parameters(model):
        offsets[id(p)] = (offset, p.shape)
        offset += p.numel()
    if offset != vectors.shape[1]:
        raise ValueError(f"weight vectors have {vectors.shape[1]} entries, the LoRA parameters {offset}")
    n = vectors.shape[0]
    handles = []

    def hook(module, inputs, output):
        start, shape = offsets[id(module.weight)]
        w = vectors[:, start : start + shape.numel()].view(n, *shape).to(inputs[0].dtype)
        x = inputs[0].reshape(n, -1, *inputs[0].shape[1:])  # [S, B, ..., in]
        y = torch.einsum("sb...i,soi->sb...o", x, w)
        return y.reshape(output.shape)

    for name, module in model.named_modules():
        w = getattr(module, "weight", None)
        if isinstance(module, torch.nn.Linear) and w is not None and id(w) in offsets:
            if module.bias is not None:
                raise ValueError(f"{name}: LoRA matrices with a bias are not supported")
            handles.append(module.register_forward_hook(hook))
    try:
        yield
    finally:
        for h in handles:
            h.remove()


@torch.no_grad()
def chunked_log_probs(
    ctx, batch, n_samples: int, forward: Callable[[range, dict[str, torch.Tensor]], torch.Tensor]
) -> torch.Tensor:
    """Log-softmax ``[n_samples, batch, classes]`` of ``n_samples`` stochastic forwards, run in chunks
    of ``ctx.sample_chunk`` samples. ``forward(samples, b)`` returns the class logits of the samples
    ``samples`` (a range) on ``b``: the batch itself for one sample, else the batch repeated once per
    sample (sample-major), so one forward serves the whole chunk. ``sample_chunk=1`` runs one pass
    per sample."""
    chunk = max(1, int(ctx.sample_chunk))
    bsz = batch["input_ids"].shape[0]
    out = []
    for first in range(0, n_samples, chunk):
        idx = range(first, min(first + chunk, n_samples))
        logits = forward(idx, batch if len(idx) == 1 else repeat_batch(batch, len(idx)))
        out.append(torch.log_softmax(logits.float(), dim=-1).view(len(idx), bsz, -1))
    return torch.cat(out)


@torch.no_grad()
def weight_sample_log_probs(
    ctx, batch, weights: Callable[[int], torch.Tensor], n_samples: int
) -> torch.Tensor:
    """Log-probabilities ``[n_samples, batch, classes]`` for the LoRA weight samples
    ``weights(0..n_samples-1)``, dropout off (see :func:`chunked_log_probs` for the chunking)."""
    ctx.model.eval()

    def forward(idx: range, b: dict[str, torch.Tensor]) -> torch.Tensor:
        if len(idx) == 1:
            with lora_weights(ctx.model, weights(idx[0])):
                return ctx.logits(b)
        with per_sample_lora(ctx.model, torch.stack([weights(s) for s in idx])):
            return ctx.logits(b)

    return chunked_log_probs(ctx, batch, n_samples, forward)


class NormalDraws:
    """Standard normal draws ``z`` of shape ``[S, B, C]`` from a freshly seeded generator, returned
    class-major: as ``[B, C, S]`` (``z[s, b, c]`` at ``[b, c, s]``). The same seed and shape give the
    same draws, so they are kept for the last ``keep`` shapes: every full evaluation batch of a row
    draws the same z (seeded per batch), and a split's last, shorter batch draws its own."""

    def __init__(self, keep: int = 2):
        self.keep = keep
        self.cache: dict[tuple, torch.Tensor] = {}

    def __call__(self, generator: torch.Generator, shape: tuple[int, ...]) -> torch.Tensor:
        key = (generator.initial_seed(), str(generator.device), tuple(shape))
        if key not in self.cache:
            z = torch.randn(shape, generator=generator, device=generator.device)
            if len(self.cache) >= self.keep:
                self.cache.pop(next(iter(self.cache)))
            self.cache[key] = z.view(shape[0], -1).t().contiguous().view(*shape[1:], shape[0])
        return self.cache[key]


def gaussian_logit_log_probs(mean: torch.Tensor, chol: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """Log-softmax ``[S, B, C]`` of the logit draws ``mean + chol z`` (``mean [B, C]``, ``chol
    [B, C, C]``, ``z`` class-major ``[B, C, S]`` from :class:`NormalDraws`). Computed class-major and
    returned as a view: a log-softmax over a size-C innermost dimension is several times slower than
    over a strided one, and the average over samples then reads contiguous memory."""
    f = torch.baddbmm(mean.unsqueeze(2), chol, z)  # [B, C, S]
    return torch.log_softmax(f, dim=1).permute(2, 0, 1)
