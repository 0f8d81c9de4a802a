"""Value checks: each setting's range is declared once, by the constructor that takes it.

A constructor calls :func:`check_settings` with ``name -> (value, check)``; a bad value raises
:class:`SettingError` naming the setting, the value and what is expected. The config check
(:func:`bayeslora.schema.validate`) builds every object of a run and prefixes the setting with its
place in the config (``invalid method.lr=0: expected a number > 0``); :data:`bayeslora.schema.FIXED`
uses the same checks for the keys no constructor takes.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from omegaconf import DictConfig, OmegaConf

from bayeslora.errors import ConfigError

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
