"""Value checks: each setting's range is declared once, by the constructor that takes it.

A constructor calls :func:`check_settings` with ``name -> (value, check)``; a bad value raises
:class:`SettingError` naming the setting, the value and what is expected. The config check
(:func:`bayeslora.schema.validate`) builds every object of a run and prefixes the setting with its
place in the config (``invalid method.lr=0: expected a number > 0``); :data:`bayeslora.schema.FIXED`
uses the same checks for the keys no constructor takes.

:func:`preflight` is the whole check of a run's config before anything loads or is written: that
check, then what else the config alone decides (data files and folders, local model paths, a GGUF
model's quantization, the predictives the method can serve, SWA/SWAG collection against the run
length). A value that an auto-selected file set (``conf/method_dataset/<method>_<dataset>.yaml``,
``conf/method_model/<method>_<model>.yaml``) is named with that file (:func:`where`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from bayeslora.errors import BayesLoraError, ConfigError

Check = tuple[Callable[[Any], bool], str]


def is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def integer(lo: int | None = None, optional: bool = False) -> Check:
    def ok(v):
        return (optional and v is None) or (is_int(v) and (lo is None or v >= lo))

    what = "an integer" + (f" >= {lo}" if lo is not None else "")
    return ok, what + (" or null" if optional else "")


def number(
    lo: float | None = None,
    hi: float | None = None,
    lo_open: bool = False,
    hi_open: bool = False,
    optional: bool = False,
) -> Check:
    def ok(v):
        if optional and v is None:
            return True
        if not is_number(v) or (lo is not None and (v <= lo if lo_open else v < lo)):
            return False
        return hi is None or (v < hi if hi_open else v <= hi)

    bounds = [
        (f"> {lo}" if lo_open else f">= {lo}") if lo is not None else "",
        (f"< {hi}" if hi_open else f"<= {hi}") if hi is not None else "",
    ]
    what = " ".join(["a number", " and ".join(b for b in bounds if b)]).strip()
    return ok, what + (" or null" if optional else "")


def one_of(*choices: str, pattern: str | None = None) -> Check:
    def ok(v):
        return isinstance(v, str) and (v in choices or (pattern is not None and re.fullmatch(pattern, v)))

    return ok, "one of " + ", ".join(choices) + (f" or {pattern}" if pattern else "")


BOOL: Check = (lambda v: isinstance(v, bool), "true or false")
TEXT: Check = (lambda v: isinstance(v, str) and v != "", "a non-empty string")
NAMES: Check = (
    lambda v: isinstance(v, list) and len(v) > 0 and all(isinstance(x, str) and x for x in v),
    "a non-empty list of strings",
)
MAPPING: Check = (lambda v: isinstance(v, dict), "a mapping")


def show(value: Any) -> str:
    """A value as one short line, for an error message."""
    text = (
        repr(value)
        if isinstance(value, str)
        else OmegaConf.to_yaml(value).strip()
        if isinstance(value, (DictConfig, dict, list, tuple))
        else str(value)
    )
    text = " ".join(text.split())
    return text if len(text) <= 80 else text[:77] + "..."


class SettingError(ConfigError):
    """A setting outside its range: ``invalid <name>=<value>: expected <what>``."""

    def __init__(self, name: str, value: Any, expected: str):
        self.name, self.value, self.expected = name, value, expected
        super().__init__(f"invalid {name}={show(value)}: expected {expected}")

    def at(self, prefix: str) -> SettingError:
        """The same error, the setting named by its place in the config (``method.lr``)."""
        return SettingError(f"{prefix}.{self.name}", self.value, self.expected)


def check_settings(settings: dict[str, tuple[Any, Check]]) -> None:
    """Raise :class:`SettingError` for the first ``name -> (value, check)`` that fails its check."""
    for name, (value, (ok, expected)) in settings.items():
        if not ok(value):
            raise SettingError(name, value, expected)


POSITIVE = number(0, lo_open=True)
NON_NEGATIVE = number(0)
UNIT = number(0, 1)


# -- the config-time check of a run -------------------------------------------------------------

# Groups chosen automatically from two others (conf/train.yaml: `optional method_dataset: ...`).
AUTO_SELECTED = {"method_dataset": ("method", "dataset"), "method_model": ("method", "model")}
# Model loaders that read a GGUF file (dequantised to float32 at load: no bitsandbytes quantization).
GGUF_LOADERS = ("GGUFPackageModel", "GGUFChunks", "GGUFFile")
# Loader settings that name a model or tokenizer: a local path or (the *_id ones) a hub id.
PATH_KEYS = ("model_id", "tokenizer_id", "tokenizer_path", "path", "gguf_file")
HUB_KEYS = ("model_id", "tokenizer_id")
_UNSET = object()


def conf_dirs(config_dir: str | None = None) -> list[Path]:
    """The config folders a run composes from, the user's (``--config-dir``) first."""
    from bayeslora import config

    dirs = [Path(config_dir).expanduser()] if config_dir else []
    try:
        from hydra.core.hydra_config import HydraConfig

        if HydraConfig.initialized():
            dirs += [Path(s.path) for s in HydraConfig.get().runtime.config_sources if s.schema == "file"]
    except Exception:  # no Hydra runtime: the project's conf/ alone
        pass
    dirs.append(Path(config.CONF_DIR))
    return list(dict.fromkeys(d.resolve() for d in dirs))


def auto_selected(cfg: DictConfig, config_dir: str | None = None) -> list[Path]:
    """The files of the automatically chosen groups this run composed (e.g. ``adamw_synthetic.yaml``)."""
    choices: dict[str, Any] = {}
    try:
        from hydra.core.hydra_config import HydraConfig

        if HydraConfig.initialized():
            choices = dict(HydraConfig.get().runtime.choices)
    except Exception:
        pass
    out = []
    for group, (a, b) in AUTO_SELECTED.items():
        stem = (
            choices.get(group) or f"{OmegaConf.select(cfg, f'{a}.name')}_{OmegaConf.select(cfg, f'{b}.name')}"
        )
        found = (d / group / f"{stem}.yaml" for d in conf_dirs(config_dir))
        out += [f for f in found if f.is_file()][:1]
    return out


def shown_path(file: Path) -> str:
    """``conf/<group>/<file>`` for the project's files, else the path as it is."""
    from bayeslora import config

    root = Path(config.CONF_DIR).resolve().parent
    return str(file.relative_to(root)) if file.is_relative_to(root) else str(file)


def where(cfg: DictConfig, key: str, config_dir: str | None = None) -> str | None:
    """The auto-selected file that set ``key`` to the value the run has (None: not set by one)."""
    value = OmegaConf.select(cfg, key, default=_UNSET, throw_on_resolution_failure=False)
    if value is _UNSET:
        return None
    for file in auto_selected(cfg, config_dir):
        if "@package _global_" not in file.read_text(encoding="utf-8"):
            continue  # a group-packaged file sets keys under its group, never a run's key
        try:
            raw = OmegaConf.select(OmegaConf.load(file), key, default=_UNSET)
        except Exception:  # an interpolation that only resolves in the composed config
            continue
        if raw is not _UNSET and raw == value:
            return shown_path(file)
    return None


def _named(cfg: DictConfig, key: str, config_dir: str | None) -> str:
    """`` (set in <file>)`` when an auto-selected file set ``key``, else nothing."""
    origin = where(cfg, key, config_dir)
    return f" (set in {origin})" if origin else ""


def preflight(cfg: DictConfig, config_dir: str | None = None) -> None:
    """Everything the config alone decides, before any model or data loads: one ConfigError line."""
    from bayeslora.schema import validate

    try:
        validate(cfg)
    except SettingError as e:
        origin = _named(cfg, e.name, config_dir)
        if origin:
            raise ConfigError(f"{e}{origin}") from None
        raise
    try:
        check_predictives(cfg, config_dir)
        swag_schedules(cfg, config_dir)
        check_model(cfg, config_dir)
        check_data(cfg)
    except ConfigError:
        raise
    except BayesLoraError as e:  # e.g. a DataError found up front: still a config mistake (exit 2)
        raise ConfigError(str(e)) from None


def check_predictives(cfg: DictConfig, config_dir: str | None = None) -> None:
    """Each predictive of the run can be served by its method (the protocol the predictive requires,
    LoRA dropout for dropout sampling), as ``bind`` checks again on the real run."""
    from bayeslora.contracts import DESCRIPTIONS
    from bayeslora.predictives import build_predictive
    from bayeslora.utils.instantiate import instantiate

    method = instantiate(cfg.method)
    dropout_key = (
        "method.lora_dropout" if cfg.method.get("lora_dropout") is not None else "model.lora.dropout"
    )
    dropout = OmegaConf.select(cfg, dropout_key)
    for name in dict.fromkeys([*cfg.method.predictives, cfg.method.val_predictive]):
        p = build_predictive(cfg.predictive[name])
        if p.needs_lora_dropout and not dropout > 0:
            raise ConfigError(
                f"predictive {name!r} ({p.label}) samples LoRA dropout masks and needs LoRA dropout > 0, "
                f"but {dropout_key}={dropout}{_named(cfg, dropout_key, config_dir)}"
            )
        if p.requires is None:
            continue
        names = sorted({*p.requires.__annotations__, *(n for n in vars(p.requires) if not n.startswith("_"))})
        lacking = [n for n in names if not hasattr(method, n)]
        if lacking:
            what, example = DESCRIPTIONS.get(p.requires, (p.requires.__name__, "a method that implements it"))
            raise ConfigError(
                f"predictive {p.label!r} needs {what} ({example}; {p.requires.__name__}: {', '.join(lacking)}), "
                f"which method={cfg.method.name} does not have"
            )


def _source_key(cfg: DictConfig, key: str) -> str:
    """The key a value is read from: ``key`` itself, or the key its ``${oc.select:other,...}`` or
    ``${other}`` interpolation names (``predictive.swa.start_step`` -> ``predictive.swag.start_step``)."""
    parent, _, leaf = key.rpartition(".")
    node = OmegaConf.select(cfg, parent)
    raw = node._get_node(leaf)._value() if isinstance(node, DictConfig) and leaf in node else None
    m = re.fullmatch(r"\$\{(?:oc\.select:)?([\w.]+)(?:,.*)?\}", raw) if isinstance(raw, str) else None
    return m.group(1) if m and OmegaConf.select(cfg, m.group(1), default=_UNSET) is not _UNSET else key


def swag_schedules(cfg: DictConfig, config_dir: str | None = None) -> tuple[dict[str, int], list[str]]:
    """SWA/SWAG collection against the run length: a ``start_step`` after the last step that an
    auto-selected file set (e.g. the 600-step demo's 300 in ``adamw_synthetic.yaml``, on a 20-step
    run) is derived from the run length instead (``start_frac`` of the run, and an interval that
    leaves ``rank`` + 1 snapshots); one set elsewhere (the command line) is refused. Returns the
    derived settings (key -> value) and one line per derivation saying what was derived."""
    total = int(cfg.trainer.max_steps)
    patch: dict[str, int] = {}
    notes: list[str] = []
    if total == 0:
        return patch, notes
    for name in dict.fromkeys([*cfg.method.predictives, cfg.method.val_predictive]):
        node = cfg.predictive.get(name)
        if node is None or not str(node.get("_target_", "")).endswith("SWAGPredictive"):
            continue
        start = node.get("start_step")
        if start is None or start <= total:
            continue
        key = _source_key(cfg, f"predictive.{name}.start_step")
        if key in patch:
            continue
        origin = where(cfg, key, config_dir)
        if origin is None:
            raise ConfigError(
                f"{key}={start} is after the last step (trainer.max_steps={total}); lower it, or set it "
                f"to null to start at start_frac of the run"
            )
        frac, rank, interval = float(node.start_frac), max(1, int(node.rank)), int(node.interval)
        new_start = max(1, int(round(frac * total)))
        new_interval = min(interval, max(1, (total - new_start) // rank))
        patch[key] = new_start
        patch[_source_key(cfg, f"predictive.{name}.interval")] = new_interval
        notes.append(
            f"{key}={start} ({origin}) is after the last step (trainer.max_steps={total}); derived from "
            f"the run length: "
            f"start_step={new_start} (start_frac {frac:g}), interval={new_interval}"
        )
    return patch, notes


def _hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in ("1", "ON", "YES", "TRUE")


def _in_hub_cache(repo_id: str, revision: str | None, filename: str) -> bool:
    try:
        from huggingface_hub import try_to_load_from_cache

        found = try_to_load_from_cache(
            repo_id, filename, cache_dir=os.environ.get("HF_HUB_CACHE") or None, revision=revision
        )
    except Exception:  # not a valid repo id: the loader says so
        return True
    return isinstance(found, str)


def check_model(cfg: DictConfig, config_dir: str | None = None) -> None:
    """A GGUF loader with ``model.quantization`` other than none; a local model or tokenizer path
    that does not exist; offline (``HF_HUB_OFFLINE=1``), a hub id that is not in the hub cache."""
    from bayeslora.models import is_local_path

    loader = cfg.model.get("loader")
    if not isinstance(loader, DictConfig):
        return
    target = str(loader.get("_target_", "")).rsplit(".", 1)[-1]
    quantization = cfg.model.get("quantization")
    if target in GGUF_LOADERS and quantization not in (None, "none"):
        raise ConfigError(
            f"invalid model.quantization={quantization!r}{_named(cfg, 'model.quantization', config_dir)}: "
            f"model={cfg.model.name} is a GGUF model, dequantised to float32 at load; use model.quantization=none"
        )
    for key in PATH_KEYS:
        value = loader.get(key)
        if not isinstance(value, str) or not value:
            continue
        if is_local_path(value):  # the loaders' rule: a path with a slash is local, never a hub id
            if not Path(value).expanduser().exists():
                raise ConfigError(
                    f"model.loader.{key}={value!r}: no such local file or folder (here: {Path.cwd()}); "
                    f"a path with a slash that starts with a local folder is read as local, never as a hub id"
                )
        elif key in HUB_KEYS and "/" in value and _hub_offline():
            filename = "config.json" if key == "model_id" else "tokenizer_config.json"
            if not _in_hub_cache(value, loader.get("revision"), filename):
                raise ConfigError(
                    f"model.loader.{key}={value!r}: not a local folder, and not in the hub cache "
                    f"(HF_HUB_OFFLINE=1); give a local path (./{value}) or download it first"
                )


def check_data(cfg: DictConfig) -> None:
    """The data source of the dataset and of each OOD set builds (e.g. a file type it reads), and
    its local folder and the file of each split the run reads exist (sources with ``check``)."""
    from bayeslora.utils.instantiate import instantiate

    sets = [("dataset", cfg.dataset, [cfg.dataset.train_split, *cfg.dataset.eval_splits])]
    for name, ocfg in (cfg.eval.get("ood") or {}).items():
        sets.append((f"eval.ood.{name}", ocfg, [ocfg.eval_splits[0]]))
    for where_, dataset, splits in sets:
        try:
            source = instantiate(dataset.source)
            if hasattr(source, "check"):
                source.check([str(s) for s in splits])
        except SettingError as e:
            raise e.at(f"{where_}.source") from None
        except BayesLoraError as e:
            raise ConfigError(f"{where_}.source: {e}") from None
