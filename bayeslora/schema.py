"""Types and ranges of a composed config, checked before anything loads: one line per bad value.

:func:`validate` runs in two passes and raises :class:`~bayeslora.errors.ConfigError` naming the key,
the value and what is expected:

1. the fixed keys of ``train.yaml`` and the trainer, eval, model and dataset groups, against
   :data:`FIXED` (no heavy imports: ``seed=abc`` fails in about a second);
2. every object built from a ``_target_`` (the method, the predictives it uses, the model loader, the
   dataset source, the loggers): its settings against the type hints of the target's constructor.
   Then the method, its predictives and the model loader are built once: the ranges of their
   settings live in their constructors (:mod:`bayeslora.checks`), so a bad value (and a missing
   model or tokenizer folder, or ``trainer.device=cuda`` without CUDA) fails here too.
"""

from __future__ import annotations

import importlib
import inspect
import types
import typing
from collections.abc import Callable
from typing import Any

from omegaconf import DictConfig, OmegaConf

from bayeslora.checks import (
    BOOL,
    MAPPING,
    NAMES,
    TEXT,
    Check,
    SettingError,
    integer,
    is_int,
    is_number,
    number,
    one_of,
)
from bayeslora.errors import ConfigError

# Keys every run config has (present in conf/); where a group option leaves one out, it is skipped.
FIXED: dict[str, Check] = {
    "seed": integer(0),
    "exp_name": TEXT,
    "overwrite": BOOL,
    # 0 = no training: the predictives see the untrained adapter (B = 0), i.e. the zero-shot rows
    "trainer.max_steps": integer(0),
    "trainer.batch_size": integer(1),
    "trainer.eval_every": integer(0),
    "trainer.eval_batch_size": integer(1),
    "trainer.eval_max_examples": integer(1, optional=True),
    "trainer.max_train_examples": integer(1, optional=True),
    "trainer.log_every": integer(1),
    "trainer.max_length": integer(1),
    "trainer.pad_to_multiple_of": integer(1),
    "trainer.checkpoint_every": integer(0),
    "trainer.keep_checkpoint": BOOL,
    "trainer.num_threads": integer(1, optional=True),
    "trainer.progress_bar": BOOL,
    "trainer.gradient_checkpointing": BOOL,
    "trainer.device": one_of("auto", "cpu", "cuda", pattern=r"cuda:\d+"),
    "eval.ece_bins": integer(1),
    "eval.save_predictions": BOOL,
    "eval.sample_chunk": integer(1),
    "eval.max_examples": integer(1, optional=True),
    "eval.ood": MAPPING,
    "model.name": TEXT,
    "model.quantization": one_of("8bit", "4bit", "none"),
    "model.dtype": one_of("float32", "float16", "bfloat16", "auto"),
    "model.head_dtype": (lambda v: v in (None, "float32"), "float32 or null"),
    "model.attn_implementation": (lambda v: v in (None, "eager", "sdpa"), "eager, sdpa or null"),
    "model.lora.r": integer(1),
    "model.lora.alpha": number(lo=0),
    "model.lora.dropout": number(lo=0, hi=1, hi_open=True),
    "model.lora.target_modules": NAMES,
    "dataset.name": TEXT,
    # a built-in template's name, or a template written in the YAML (bayeslora.data.templates)
    "dataset.template": (
        lambda v: (isinstance(v, str) and v != "") or isinstance(v, dict),
        "a template name or a mapping (prompt, label, ...)",
    ),
    "dataset.classes": NAMES,
    "dataset.train_split": TEXT,
    "dataset.eval_splits": NAMES,
    "method.name": TEXT,
    "method.predictives": NAMES,
    "method.val_predictive": TEXT,
}

_MISSING = object()


def _bad(key: str, value: Any, expected: str) -> ConfigError:
    return SettingError(key, value, expected)


def _get(cfg: DictConfig, key: str) -> Any:
    node: Any = cfg
    for part in key.split("."):
        if not isinstance(node, DictConfig) or part not in node:
            return _MISSING
        node = node[part]
    return node


def _resolved(cfg: DictConfig, key: str) -> Any:
    try:
        value = OmegaConf.select(cfg, key, throw_on_missing=True)
    except Exception as e:  # a failing interpolation or a missing (???) value
        raise ConfigError(f"cannot resolve {key}: {' '.join(str(e).split())[:200]}") from None
    if OmegaConf.is_config(value):
        return OmegaConf.to_container(value, resolve=True)
    return value


def check_fixed(cfg: DictConfig) -> None:
    """Pass 1: the keys of :data:`FIXED` and the predictive names the method lists."""
    for key, (ok, expected) in FIXED.items():
        if _get(cfg, key) is _MISSING:
            continue
        value = _resolved(cfg, key)
        if not ok(value):
            raise _bad(key, value, expected)
    from bayeslora.config import require_composed

    used = list(dict.fromkeys([*cfg.method.predictives, cfg.method.val_predictive]))
    require_composed(cfg, used, "invalid method.predictives entry")


# -- pass 2: settings of _target_ objects against their constructors' type hints -----------------


def _target(path: str):
    module, _, name = path.rpartition(".")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError):
        return None  # instantiate() reports it


def constructor_hints(cls) -> tuple[dict[str, Any], bool]:
    """Parameter -> type hint of ``cls(...)``, following ``**kwargs`` to the base classes (e.g.
    BLoB's ``**adamw``); the flag says whether the constructor still takes any keyword."""
    hints: dict[str, Any] = {}
    for klass in inspect.getmro(cls) if inspect.isclass(cls) else [cls]:
        init = klass.__init__ if inspect.isclass(klass) else klass
        if init is object.__init__:
            break
        try:
            params = inspect.signature(init).parameters
            types_ = typing.get_type_hints(init)
        except (TypeError, ValueError, NameError):
            return hints, True
        for p in params.values():
            if p.name != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL):
                # unannotated: the type of a scalar default (hidden_size=64 -> int)
                default = type(p.default) if isinstance(p.default, (bool, int, float, str)) else Any
                hints.setdefault(p.name, types_.get(p.name, default))
        if not any(p.kind == p.VAR_KEYWORD for p in params.values()):
            return hints, False
    return hints, True


def matches(value: Any, hint: Any) -> bool:
    """Whether a resolved config value fits a type hint (int, float, bool, str, None, unions, lists,
    tuples, dicts, Literal); unknown hints accept anything."""
    if hint is Any or hint is inspect.Parameter.empty:
        return True
    if hint is type(None) or hint is None:
        return value is None
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return any(matches(value, a) for a in args)
    if origin is typing.Literal:
        return value in args
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return is_int(value)
    if hint is float:
        return is_number(value)
    if hint is str:
        return isinstance(value, str)
    if origin in (list, tuple, set) or hint in (list, tuple, set):
        if not isinstance(value, (list, tuple)):
            return False
        if origin is tuple and args and args[-1] is not Ellipsis:
            return len(value) == len(args) and all(matches(v, a) for v, a in zip(value, args))
        inner = args[0] if args else Any
        return all(matches(v, inner) for v in value)
    if origin is dict or hint is dict:
        return isinstance(value, dict)
    return True


def describe(hint: Any) -> str:
    if typing.get_origin(hint) is typing.Literal:
        return "one of " + ", ".join(map(str, typing.get_args(hint)))
    names = {int: "an integer", float: "a number", bool: "true or false", str: "a string", type(None): "null"}
    if hint in names:
        return names[hint]
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return " or ".join(describe(a) for a in typing.get_args(hint))
    return str(hint).replace("typing.", "")


def check_target(cfg: DictConfig, key: str, skip: tuple[str, ...] = ()) -> None:
    """Each setting of the ``_target_`` node at ``key`` (but ``skip``) fits its constructor's type hint."""
    node = _get(cfg, key)
    if not isinstance(node, DictConfig) or "_target_" not in node:
        return
    target = _target(str(node._target_))
    if target is None:
        raise ConfigError(f"invalid {key}._target_={node._target_!r}: expected an importable class")
    hints, open_kwargs = constructor_hints(target)
    for name in node:
        if (name.startswith("_") and name.endswith("_")) or name in skip:
            continue
        if name not in hints:
            if open_kwargs:
                continue
            raise ConfigError(
                f"invalid {key}.{name}: {target.__name__} takes no such setting "
                f"(it takes {', '.join(sorted(hints))})"
            )
        value = _resolved(cfg, f"{key}.{name}")
        if not matches(value, hints[name]):
            raise _bad(f"{key}.{name}", value, describe(hints[name]))


def target_keys(cfg: DictConfig) -> list[str]:
    names = dict.fromkeys([*cfg.method.predictives, cfg.method.val_predictive])
    keys = ["method", "model.loader", "dataset.source", *(f"predictive.{n}" for n in names)]
    logger = cfg.get("logger") or {}
    keys += [f"logger.{k}" for k, v in logger.items() if isinstance(v, DictConfig)]
    return keys


def _built(key: str, build: Callable[[Any], Any], node: Any) -> Any:
    """``build(node)``, a bad setting named by its place in the config (``invalid method.lr=0: ...``)."""
    try:
        return build(node)
    except SettingError as e:
        raise e.at(key) from None


def validate(cfg: DictConfig) -> None:
    """Check ``cfg`` before any model or data loads; raise ConfigError (one line) on the first bad value.
    The one check of a run's config: it also refuses secret-looking keys (secrets belong in the
    environment; the config is written to disk and W&B)."""
    from bayeslora.utils.secrets import refuse_secret_keys

    refuse_secret_keys(OmegaConf.to_container(cfg, resolve=False))
    check_fixed(cfg)
    from bayeslora.predictives import TABLE_KEYS, build_predictive

    for key in target_keys(cfg):
        check_target(cfg, key, TABLE_KEYS if key.startswith("predictive.") else ())

    from bayeslora.data.templates import get_template
    from bayeslora.utils.device import resolve_device
    from bayeslora.utils.instantiate import instantiate

    get_template(cfg.dataset.template, cfg.dataset.name, list(cfg.dataset.classes))
    resolve_device(cfg.trainer.device)
    # the ranges of the method's and the predictives' settings live in their constructors
    _built("method", instantiate, cfg.method)
    for name in dict.fromkeys([*cfg.method.predictives, cfg.method.val_predictive]):
        p = _built(f"predictive.{name}", build_predictive, cfg.predictive[name])
        if cfg.trainer.max_steps == 0 and name in cfg.method.predictives and p.needs_training:
            raise ConfigError(
                f"invalid method.predictives entry {name!r} with trainer.max_steps=0: {p.label} needs the "
                f"training trajectory ({p.needs_training}) and 0 steps take none; drop it from "
                f"method.predictives"
            )
    instantiate(cfg.model.loader)  # a missing local model or tokenizer folder
