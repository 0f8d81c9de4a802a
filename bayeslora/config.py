"""Compose the project's Hydra config outside ``@hydra.main`` (CLIs and tests)."""

from __future__ import annotations

import os
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig

CONF_DIR = Path(os.environ.get("BAYESLORA_CONF_DIR", Path(__file__).resolve().parent.parent / "conf"))


def compose_config(
    overrides: list[str] | None = None, config_name: str = "train", return_hydra_config: bool = False
) -> DictConfig:
    """The config ``python -m bayeslora.train <overrides>`` would run (without Hydra's runtime)."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(
            config_name=config_name, overrides=list(overrides or []), return_hydra_config=return_hydra_config
        )
