"""Resumable training state, written atomically and verified on load.

A checkpoint is ``checkpoint.pt`` (torch.save of the state) plus ``checkpoint.json`` (step, config
hash, size and SHA-256 of the ``.pt`` file). Both are written to a temporary file in the same folder,
fsynced and renamed, the ``.pt`` first and the ``.json`` last, so a crash or a full disk at any
moment leaves the previous complete pair in place. On load the size and hash must match and the
config hash must be the run's; anything else is refused with a clear error, never used silently.

The state holds the LoRA (and any other trainable) weights, the method's state (optimizer incl.
IVON's Hessian and step counter, scheduler), state shared by predictives (SWAG moments), the RNG
states (python, numpy, torch, CUDA), the loop position (the data order is a pure function of
(seed, step)) and the loop's running sums, so a resumed run ends bit-identical on CPU.
"""

from __future__ import annotations

import hashlib
import io
import json
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bayeslora.errors import BayesLoraError
from bayeslora.utils.atomic import atomic_write_bytes, atomic_write_text

CKPT = "checkpoint.pt"
META = "checkpoint.json"
FORMAT = 1


class CheckpointError(BayesLoraError):
    pass


def trainable_state(model) -> dict[str, torch.Tensor]:
    """Every LoRA tensor (of every adapter) and anything else trainable."""
    return {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad or "lora_" in n}


def load_trainable_state(model, state: dict[str, torch.Tensor]) -> None:
    params = dict(model.named_parameters())
    missing = [n for n in state if n not in params]
    if missing:
        raise CheckpointError(f"checkpoint has parameters the model lacks: {missing[:3]}")
    with torch.no_grad():
        for n, t in state.items():
            params[n].copy_(t)


def rng_state() -> dict[str, Any]:
    out = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        out["cuda"] = torch.cuda.get_rng_state_all()
    return out


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"].cpu())
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])


def save(run_dir: Path, state: dict[str, Any], step: int, config_hash: str) -> None:
    buf = io.BytesIO()
    torch.save({"format": FORMAT, "step": step, "config_hash": config_hash, **state}, buf)
    data = buf.getvalue()
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(run_dir / CKPT, data)
    meta = {
        "format": FORMAT,
        "step": step,
        "config_hash": config_hash,
        "bytes": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
    }
    atomic_write_text(run_dir / META, json.dumps(meta, indent=2) + "\n")


def load(run_dir: Path, config_hash: str, device: torch.device | str = "cpu") -> dict[str, Any] | None:
    """The verified checkpoint of ``run_dir``, or None if there is none."""
    run_dir = Path(run_dir)
    ckpt, meta_path = run_dir / CKPT, run_dir / META
    if not ckpt.exists() and not meta_path.exists():
        return None
    where = f"checkpoint in {run_dir}"
    if not ckpt.exists() or not meta_path.exists():
        raise CheckpointError(
            f"incomplete {where} ({CKPT} and {META} must both exist); delete both to restart"
        )
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError:
        raise CheckpointError(
            f"corrupt {where}: {META} is not valid JSON; delete both files to restart"
        ) from None
    data = ckpt.read_bytes()
    if len(data) != meta.get("bytes") or hashlib.sha256(data).hexdigest() != meta.get("sha256"):
        raise CheckpointError(
            f"corrupt {where}: {CKPT} does not match the size/SHA-256 in {META} (partial or damaged write); "
            f"delete both files to restart from scratch"
        )
    if meta.get("config_hash") != config_hash:
        raise CheckpointError(
            f"{where} belongs to config hash {meta.get('config_hash')}, this run is {config_hash}; "
            f"use overwrite=true to discard it"
        )
    state = torch.load(io.BytesIO(data), map_location=device, weights_only=False)
    if state.get("format") != FORMAT:
        raise CheckpointError(f"{where} has format {state.get('format')}, expected {FORMAT}")
    return state


def remove(run_dir: Path) -> None:
    for name in (CKPT, META):
        (Path(run_dir) / name).unlink(missing_ok=True)
