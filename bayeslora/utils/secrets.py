"""Keep secrets (HF_TOKEN, W&B keys, ...) out of records, config dumps and logs."""

from __future__ import annotations

import logging
import os
import re

from bayeslora.errors import ConfigError

SECRET_ENV = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HUGGINGFACE_TOKEN", "WANDB_API_KEY")
# whole words of a key: hf_token, WANDB_API_KEY, db_password; not tokenizer_path
_SECRET_NAME = re.compile(r"(^|_)(token|secret|password|passwd|api_key|apikey)($|_)", re.I)
REDACTED = "***"


def secret_values() -> list[str]:
    """Values of the environment's secret variables (known names, or names that look secret)."""
    vals = {os.environ.get(k, "") for k in SECRET_ENV}
    vals |= {v for k, v in os.environ.items() if _SECRET_NAME.search(k)}
    return sorted((v for v in vals if len(v) >= 8), key=len, reverse=True)


def scrub(text: str | None) -> str | None:
    if not text:
        return text
    for v in secret_values():
        text = text.replace(v, REDACTED)
    return text


def refuse_secret_keys(container, path: str = "") -> None:
    """Config keys that look like secrets are refused: secrets belong in the environment."""
    if isinstance(container, dict):
        for k, v in container.items():
            key = f"{path}.{k}" if path else str(k)
            if _SECRET_NAME.search(str(k)) and isinstance(v, str) and v:
                raise ConfigError(
                    f"config key {key!r} looks like a secret; pass secrets through the environment "
                    f"(HF_TOKEN, WANDB_API_KEY), never the config (it is written to disk and W&B)"
                )
            refuse_secret_keys(v, key)
    elif isinstance(container, list):
        for i, v in enumerate(container):
            refuse_secret_keys(v, f"{path}[{i}]")


# Values that are tokens whatever their key: Hugging Face user tokens.
_SECRET_VALUE = re.compile(r"\bhf_[A-Za-z0-9]{20,}\b")


def refuse_secret_overrides(overrides: list[str]) -> None:
    """Refuse command-line overrides that carry a secret (by key, by a token-shaped value, or by the
    value of a secret environment variable), before Hydra writes them into the run folder."""
    known = secret_values()
    for o in overrides:
        key, sep, value = o.partition("=")
        key = key.lstrip("+~")
        parts = re.split(r"[./]", key)
        secret_key = any(_SECRET_NAME.search(p) for p in parts)
        if sep and value and (secret_key or _SECRET_VALUE.search(value) or any(v in value for v in known)):
            raise ConfigError(
                f"override {key!r} carries a secret; pass secrets through the environment (HF_TOKEN, "
                f"WANDB_API_KEY, or a .env file), never the command line (Hydra writes it to disk)"
            )


class ScrubFilter(logging.Filter):
    """Redacts secret values from every log record that passes through a handler."""

    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        clean = scrub(msg)
        if clean != msg:
            record.msg, record.args = clean, ()
        return True


def install_log_filter() -> None:
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, ScrubFilter) for f in handler.filters):
            handler.addFilter(ScrubFilter())
