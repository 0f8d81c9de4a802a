"""LoRA adapters trained elsewhere: read and check a PEFT adapter, load it onto the base model, and
the no-training "method" that ``bayeslora.evaluate`` evaluates it with.

* :func:`read_adapter` checks that a folder (or a hub id, fetched once) holds a plain PEFT LoRA
  adapter and returns its settings (:class:`AdapterSpec`); anything this package would evaluate
  differently from PEFT (DoRA, rsLoRA, biases, ``modules_to_save``, per-layer ranks, regex targets)
  is refused, so that the rows are those of the adapter as PEFT runs it.
* :func:`adapter_model` builds the model exactly as a training run does (:func:`bayeslora.models.
  build_model`, with the adapter's rank, alpha, dropout and target modules in place of the model
  config's) and loads the adapter's weights into it, checking the base model and every weight's
  name and shape first.
* :class:`FixedAdapter` is the method of such a run: no optimizer and no step; with an IVON run's
  ``ivon_posterior.pt`` (:class:`FixedAdapterPosterior`) it also serves the IVON rows.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from bayeslora.errors import ConfigError
from bayeslora.methods.base import Method
from bayeslora.models import build_model, is_local_path, lora_parameters

CONFIG_FILE = "adapter_config.json"
WEIGHT_FILES = ("adapter_model.safetensors", "adapter_model.bin")
# adapter_config.json settings that change what the adapter computes and that attach_lora does not
# reproduce: each must be off (false, null or empty).
UNSUPPORTED = (
    "use_dora",
    "use_rslora",
    "fan_in_fan_out",
    "modules_to_save",
    "rank_pattern",
    "alpha_pattern",
    "layers_to_transform",
    "exclude_modules",
    "lora_bias",
    "trainable_token_indices",
    "target_parameters",
    "layer_replication",
    "use_qalora",
    "alora_invocation_tokens",
    "use_bdlora",
)


@dataclass
class AdapterSpec:
    """A checked PEFT LoRA adapter: where it is and what its adapter_config.json says."""

    source: str  # as given: a folder or a hub id
    folder: Path
    weights: Path
    r: int
    alpha: float
    dropout: float
    target_modules: list[str]
    base_model: str | None
    sha256: str  # of the weights file
    extra: dict[str, Any] = field(default_factory=dict)

    def lora_config(self) -> dict[str, Any]:
        """The ``model.lora`` settings of this adapter."""
        return {
            "r": self.r,
            "alpha": self.alpha,
            "dropout": self.dropout,
            "target_modules": self.target_modules,
        }

    def info(self) -> dict[str, Any]:
        """What the run record keeps about the adapter."""
        return {
            "source": self.source,
            "folder": str(self.folder),
            "weights_file": self.weights.name,
            "weights_sha256": self.sha256,
            "r": self.r,
            "lora_alpha": self.alpha,
            "lora_dropout": self.dropout,
            "target_modules": list(self.target_modules),
            "base_model_name_or_path": self.base_model,
            **self.extra,
        }


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _fetch(hub_id: str) -> Path:
    """The local snapshot of the adapter files of a hub repository (downloaded once, then cached)."""
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(hub_id, allow_patterns=[CONFIG_FILE, *WEIGHT_FILES]))
    except Exception as e:  # offline, unknown repository, gated: one line
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ConfigError(
            f"adapter={hub_id}: no such local folder, and it cannot be fetched from the Hugging Face "
            f"hub ({type(e).__name__}: {reason[:160]}); pass the adapter's folder"
        ) from None


def read_adapter(source: str) -> AdapterSpec:
    """Check that ``source`` (a folder, or a hub id) is a plain PEFT LoRA adapter; its settings."""
    source = str(source)
    path = Path(source).expanduser()
    if path.exists() or is_local_path(source):
        if not path.is_dir():
            raise ConfigError(f"adapter={source}: no such folder")
        folder = path
    else:
        folder = _fetch(source)
    where = f"adapter={source}"
    cfg_file = folder / CONFIG_FILE
    if not cfg_file.is_file():
        raise ConfigError(
            f"{where} is not a PEFT adapter: no {CONFIG_FILE} in {folder} "
            f"(save one with PeftModel.save_pretrained)"
        )
    try:
        acfg = json.loads(cfg_file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"{where}: {cfg_file} is not valid JSON ({e})") from None
    if not isinstance(acfg, dict):
        raise ConfigError(f"{where}: {cfg_file} is not a JSON object")
    if acfg.get("peft_type") != "LORA":
        raise ConfigError(
            f"{where} is not a LoRA adapter: {CONFIG_FILE} has peft_type {acfg.get('peft_type')!r}, not 'LORA'"
        )
    weights = next((folder / f for f in WEIGHT_FILES if (folder / f).is_file()), None)
    if weights is None:
        raise ConfigError(f"{where} has no weights: neither of {', '.join(WEIGHT_FILES)} in {folder}")
    on = [k for k in UNSUPPORTED if acfg.get(k)]
    if acfg.get("bias", "none") != "none":
        on.insert(0, f"bias={acfg['bias']!r}")
    if on:
        raise ConfigError(
            f"{where} uses {', '.join(on)} ({CONFIG_FILE}); only plain LoRA adapters (no DoRA, rsLoRA, "
            f"biases, modules_to_save or per-layer ranks) are evaluated"
        )
    targets = acfg.get("target_modules")
    if isinstance(targets, str):
        if not re.fullmatch(r"[A-Za-z0-9_]+", targets):
            raise ConfigError(
                f"{where}: target_modules is the pattern {targets!r}; only a list of module names is supported"
            )
        targets = [targets]
    if not (isinstance(targets, list) and targets and all(isinstance(t, str) and t for t in targets)):
        raise ConfigError(f"{where}: {CONFIG_FILE} has no target_modules list")
    try:
        r, alpha, dropout = int(acfg["r"]), float(acfg["lora_alpha"]), float(acfg.get("lora_dropout") or 0.0)
    except (KeyError, TypeError, ValueError):
        raise ConfigError(f"{where}: {CONFIG_FILE} needs integer r and numeric lora_alpha") from None
    if r < 1 or not 0.0 <= dropout < 1.0:
        raise ConfigError(f"{where}: r={r}, lora_dropout={dropout} (need r >= 1 and 0 <= dropout < 1)")
    return AdapterSpec(
        source=source,
        folder=folder,
        weights=weights,
        r=r,
        alpha=alpha,
        dropout=dropout,
        target_modules=sorted(targets),
        base_model=acfg.get("base_model_name_or_path") or None,
        sha256=file_sha256(weights),
    )


def _load_weights(path: Path) -> dict[str, torch.Tensor]:
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    return torch.load(path, map_location="cpu", weights_only=True)


def model_names(cfg: DictConfig, model) -> list[str]:
    """The names a base model answers to, as given: its file, folder or hub id, the loader's ids, the
    config name and the hub ids the model option stands for (``model.hub_ids``: SmolLM2's option
    answers to ``HuggingFaceTB/SmolLM2-135M-Instruct``)."""
    loader = cfg.model.loader
    raw = [
        getattr(model.get_base_model(), "name_or_path", None),
        loader.get("model_id"),
        loader.get("path"),
        loader.get("package"),
        cfg.model.name,
        *(cfg.model.get("hub_ids") or []),
    ]
    return sorted({str(n) for n in raw if n})


def _name_key(name: str) -> str:
    """A hub id or an option name compares whole; a local path by its last part (a virtual
    environment's site-packages differs from machine to machine), lower-case."""
    p = Path(name)
    local = p.is_absolute() or name.startswith((".", "~")) or p.suffix == ".gguf" or p.exists()
    return (p.name if local else name).lower()


def answers_to(base: str, names: list[str]) -> bool:
    """Whether an adapter's recorded ``base`` is one of the model's ``names``. An adapter trained
    on a GGUF model before its base was recorded as the file recorded the file's folder: a folder
    here that holds one GGUF file, the one the model loads, still names it."""
    if _name_key(base) in {_name_key(n) for n in names}:
        return True
    folder = Path(base)
    ggufs = list(folder.glob("*.gguf")) if folder.is_absolute() and folder.is_dir() else []
    loaded = {Path(n).resolve() for n in names if Path(n).suffix == ".gguf"}
    return len(ggufs) == 1 and ggufs[0].resolve() in loaded


def adapter_model(cfg: DictConfig, device: torch.device, spec: AdapterSpec):
    """The base model of ``cfg.model`` with ``spec``'s adapter, built as a training run builds its
    model (:func:`bayeslora.models.build_model`) and then given the adapter's weights."""
    from peft import get_peft_model_state_dict, set_peft_model_state_dict

    model_cfg = OmegaConf.create(OmegaConf.to_container(cfg.model, resolve=True))
    model_cfg.lora = spec.lora_config()
    try:
        model, tok = build_model(model_cfg, device, cfg.seed)
    except ConfigError as e:
        raise ConfigError(
            f"adapter={spec.source} does not fit model={cfg.model.name}: {e} (target_modules "
            f"{spec.target_modules} from its {CONFIG_FILE})"
        ) from None
    names = model_names(cfg, model)
    if cfg.get("check_base_model", True) and spec.base_model and not answers_to(spec.base_model, names):
        raise ConfigError(
            f"adapter={spec.source} was trained on base model {spec.base_model!r} ({CONFIG_FILE}), "
            f"but model={cfg.model.name} loads {names}; pick the matching model=..., or pass "
            f"check_base_model=false if they are the same weights"
        )
    state = _load_weights(spec.weights)
    expected = get_peft_model_state_dict(model)
    missing = sorted(set(expected) - set(state))
    extra = sorted(set(state) - set(expected))
    if missing or extra:
        first = (extra or missing)[0]
        raise ConfigError(
            f"adapter={spec.source} does not fit model={cfg.model.name}: "
            f"{len(extra)} of its weights are not in the model, {len(missing)} of the model's LoRA weights "
            f"are not in the adapter (e.g. {first})"
        )
    for k, v in state.items():
        if tuple(v.shape) != tuple(expected[k].shape):
            raise ConfigError(
                f"adapter={spec.source} does not fit model={cfg.model.name}: {k} has shape "
                f"{tuple(v.shape)} in the adapter, {tuple(expected[k].shape)} in the model"
            )
    set_peft_model_state_dict(model, state)
    loaded = get_peft_model_state_dict(model)
    if not all(torch.equal(loaded[k].cpu(), state[k].to(loaded[k].dtype)) for k in state):
        raise ConfigError(f"adapter={spec.source}: its weights did not load into the model")
    return model, tok


class FixedAdapter(Method):
    """The method of an evaluation run: an adapter trained elsewhere, no optimizer, no training step."""

    def __init__(self, name: str, predictives: list[str], val_predictive: str = "map"):
        super().__init__(name, predictives, val_predictive)

    def setup(self, model, class_ids, total_steps, train_size, seed) -> None:
        if total_steps != 0:
            raise ConfigError(
                f"an adapter evaluation trains nothing: trainer.max_steps must be 0, not {total_steps}"
            )
        self.class_ids, self.train_size, self.total_steps = list(class_ids), train_size, 0
        self.model = model

    def train_step(self, model, batch) -> float:
        raise RuntimeError("FixedAdapter does not train")

    def current_lr(self) -> float:
        return 0.0

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass


class FixedAdapterPosterior(FixedAdapter):
    """A :class:`FixedAdapter` with an IVON run's Gaussian posterior N(m, v) over its LoRA weights
    (``ivon_posterior.pt``); m must be the adapter's weights."""

    def __init__(self, name: str, predictives: list[str], posterior: str, val_predictive: str = "map"):
        super().__init__(name, predictives, val_predictive)
        self.posterior_path = Path(posterior).expanduser()
        if not self.posterior_path.is_file():
            raise ConfigError(f"ivon_posterior={posterior}: no such file")

    def setup(self, model, class_ids, total_steps, train_size, seed) -> None:
        super().setup(model, class_ids, total_steps, train_size, seed)
        where = f"ivon_posterior={self.posterior_path}"
        try:
            state = torch.load(self.posterior_path, map_location="cpu", weights_only=True)
        except Exception as e:
            raise ConfigError(f"{where}: not a saved IVON posterior ({type(e).__name__})") from None
        if not isinstance(state, dict) or not {"mean", "variance", "shapes"} <= set(state):
            raise ConfigError(f"{where}: not an IVON run's ivon_posterior.pt (needs mean, variance, shapes)")
        params = [p for _, p in lora_parameters(model)]
        shapes = [tuple(p.shape) for p in params]
        if [tuple(s) for s in state["shapes"]] != shapes:
            raise ConfigError(
                f"{where}: its LoRA shapes ({len(state['shapes'])} matrices) are not the adapter's "
                f"({len(shapes)} matrices); was it saved by the run that saved this adapter?"
            )
        current = torch.cat([p.detach().flatten().float().cpu() for p in params])
        if not torch.allclose(state["mean"].float(), current, rtol=1e-5, atol=1e-7):
            raise ConfigError(
                f"{where}: its mean is not the adapter's weights; was it saved by the run that saved this adapter?"
            )
        if not torch.all(torch.isfinite(state["variance"])):
            raise ConfigError(f"{where}: its variance is not finite everywhere (NaN or inf)")
        if not torch.all(state["variance"] > 0):
            raise ConfigError(f"{where}: its variance is not positive everywhere")
        device = params[0].device
        self._variance = state["variance"].float().to(device)

    def posterior_mean(self) -> torch.Tensor:
        return torch.cat([p.detach().flatten() for _, p in lora_parameters(self.model)])

    def posterior_variance(self) -> torch.Tensor:
        return self._variance


def adapter_method_class(posterior: str | None) -> type[FixedAdapter]:
    """The class :func:`adapter_method` builds for ``posterior`` (what the evaluation's contracts
    are checked against before the model loads)."""
    return FixedAdapter if posterior is None else FixedAdapterPosterior


def adapter_method(
    name: str, predictives: list[str], val_predictive: str = "map", posterior: str | None = None
) -> FixedAdapter:
    """The method of an evaluation: :class:`FixedAdapter`, or with ``posterior`` (an IVON run's
    ``ivon_posterior.pt``) :class:`FixedAdapterPosterior`."""
    cls = adapter_method_class(posterior)
    if posterior is None:
        return cls(name, predictives, val_predictive)
    return cls(name, predictives, posterior, val_predictive)
