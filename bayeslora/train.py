"""Hydra entry point: ``python -m bayeslora.train [overrides]`` (or ``bayeslora-train``).

Only composes the config and calls :func:`bayeslora.runner.run`; user errors become one line on
stderr and a non-zero exit.
"""

from __future__ import annotations

import logging
import sys

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from bayeslora.errors import BayesLoraError

log = logging.getLogger("bayeslora")


@hydra.main(version_base="1.3", config_path="../conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    from bayeslora.runner import run

    try:
        record = run(cfg)
    except BayesLoraError as e:
        if HydraConfig.get().mode == RunMode.MULTIRUN:
            # One failed job must not stop the sweep: its record says why.
            log.error("job failed: %s", e)
            return None
        print(f"bayeslora: error: {e}", file=sys.stderr)
        sys.exit(1)
    metrics = record.get("metrics") or {}
    first = next(iter(metrics.values()), {})
    return first.get("acc")


if __name__ == "__main__":
    main()
