from __future__ import annotations

import torch

from bayeslora.errors import ConfigError


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"trainer.device={name} but CUDA is not available; use trainer.device=cpu")
    if name not in ("cpu",) and not name.startswith("cuda"):
        raise ConfigError(f"trainer.device must be auto, cpu or cuda[:k], not {name!r}")
    return torch.device(name)


def peak_memory_mb(device: torch.device) -> dict[str, float]:
    import resource
    import sys

    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    rss_mb = rss / 1024 / 1024 if sys.platform == "darwin" else rss / 1024
    out = {"cpu_peak_rss_mb": round(rss_mb, 1)}
    if device.type == "cuda":
        out["cuda_max_allocated_mb"] = round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
    return out
