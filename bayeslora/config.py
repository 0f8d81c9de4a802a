"""Compose the project's Hydra config outside ``@hydra.main`` (CLIs and tests), and the project's
OmegaConf resolvers."""

from __future__ import annotations

import os
import re
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig, ListConfig, OmegaConf

CONF_DIR = Path(os.environ.get("BAYESLORA_CONF_DIR", Path(__file__).resolve().parent.parent / "conf"))


def adapter_name(adapter: str | None) -> str:
    """The default name of an evaluated adapter (the method level of its run folder): ``zero_shot``
    for none, else the folder's (or hub repository's) name; a folder called ``adapter`` (a training
    run's) takes the names of the two folders above it, e.g. ``adamw_seed=21``."""
    if adapter is None:
        return "zero_shot"
    parts = [p for p in re.split(r"[/\\]+", str(adapter).rstrip("/\\")) if p]
    if not parts:
        return "adapter"
    name = "_".join(parts[-3:-1]) if parts[-1] == "adapter" and len(parts) >= 3 else parts[-1]
    return re.sub(r"[^A-Za-z0-9._+=-]", "-", name)


def composed_predictives(*, _root_: DictConfig) -> ListConfig:
    """The names of the predictive configs a run composed (``predictive.<name>`` with a ``_target_``),
    in the order of the defaults lists: a method's rows (``method.predictives`` defaults to them).
    Fragments that only tune a predictive the method does not compose (e.g. an experiment's
    ``predictive.swag.interval`` in an IVON run) are not rows."""
    node = _root_.get("predictive") or {}
    names = [
        k for k, sub in node.items_ex(resolve=False) if isinstance(sub, DictConfig) and "_target_" in sub
    ]
    return ListConfig(names)


def require_composed(cfg: DictConfig, names, what: str) -> None:
    """Raise ConfigError (``<what> '<name>': ...``) for the first of ``names`` the run does not compose."""
    from bayeslora.errors import ConfigError

    known = list(composed_predictives(_root_=cfg))
    for name in names:
        if name not in known:
            raise ConfigError(
                f"{what} {name!r}: this run composes {', '.join(known) or 'none'}; add its config with "
                f"predictive=[...,{name}] (each is a conf/predictive/<name>.yaml)"
            )


OmegaConf.register_new_resolver("bayeslora.adapter_name", adapter_name, replace=True)
OmegaConf.register_new_resolver("bayeslora.predictives", composed_predictives, replace=True)


def compose_config(
    overrides: list[str] | None = None, config_name: str = "train", return_hydra_config: bool = False
) -> DictConfig:
    """The config ``python -m bayeslora.train <overrides>`` would run (without Hydra's runtime);
    ``config_name="evaluate"``: the one ``python -m bayeslora.evaluate <overrides>`` runs."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(
            config_name=config_name, overrides=list(overrides or []), return_hydra_config=return_hydra_config
        )
