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


def model_name(path: str | None, default: str = "unset") -> str:
    """The default name of a model option that loads a user's file or folder (``model=gguf``,
    ``model=hf``): the file's stem or the folder's (hub repository's) last part, e.g.
    ``/m/Qwen2.5-0.5B.Q8_0.gguf`` -> ``qwen2.5-0.5b.q8_0``; ``default`` (the option's name) when no
    path is given."""
    if not path:
        return default
    last = [p for p in re.split(r"[/\\]+", str(path).rstrip("/\\")) if p][-1]
    stem = last[: -len(".gguf")] if last.lower().endswith(".gguf") else last
    return re.sub(r"[^A-Za-z0-9._+=-]", "-", stem).lower()


def split_config_dir(args: list[str]) -> tuple[str | None, list[str]]:
    """Take ``--config-dir DIR`` / ``--config-dir=DIR`` / ``-cd DIR`` out of a command line: the
    user's own conf folder, searched before the project's (as ``bayeslora.train`` does through Hydra)."""
    from bayeslora.errors import ConfigError

    config_dir, rest, it = None, [], iter(args)
    for a in it:
        if a in ("--config-dir", "-cd"):
            config_dir = next(it, None)
            if config_dir is None:
                raise ConfigError(f"{a} needs a folder")
        elif a.startswith("--config-dir="):
            config_dir = a.split("=", 1)[1]
        else:
            rest.append(a)
    if config_dir is not None and not Path(config_dir).expanduser().is_dir():
        raise ConfigError(f"--config-dir {config_dir}: no such folder")
    return config_dir, rest


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
OmegaConf.register_new_resolver("bayeslora.model_name", model_name, replace=True)


def compose_config(
    overrides: list[str] | None = None,
    config_name: str = "train",
    return_hydra_config: bool = False,
    config_dir: str | None = None,
) -> DictConfig:
    """The config ``python -m bayeslora.train <overrides>`` would run (without Hydra's runtime);
    ``config_name="evaluate"``: the one ``python -m bayeslora.evaluate <overrides>`` runs.
    ``config_dir``: a user's conf folder (``--config-dir``), added to the config search path."""
    overrides = list(overrides or [])
    if config_dir is not None:
        user = Path(config_dir).expanduser().resolve()
        overrides.append(f"hydra.searchpath=[file://{user}]")
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name=config_name, overrides=overrides, return_hydra_config=return_hydra_config)
