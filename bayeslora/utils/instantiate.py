"""The one place objects are built from configs (add Hydra 1.4's target allow-list here)."""

from __future__ import annotations

from typing import Any

import hydra.utils
from hydra.errors import InstantiationException

from bayeslora.errors import BayesLoraError, ConfigError


def instantiate(cfg, *args, **kwargs) -> Any:
    try:
        return hydra.utils.instantiate(cfg, *args, _convert_="all", **kwargs)
    except InstantiationException as e:
        cause = e.__cause__
        if isinstance(cause, BayesLoraError):
            raise cause from None
        target = cfg.get("_target_", "?") if hasattr(cfg, "get") else "?"
        msg = str(cause) if cause is not None else str(e)
        raise ConfigError(f"cannot build {target}: {msg.splitlines()[0] if msg else type(e).__name__}") from e
