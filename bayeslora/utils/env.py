"""What every entry point does first: read ``.env`` and quiet known-harmless library chatter.

Nothing here runs at import time; ``python -m bayeslora.train``, ``bayeslora-prompts`` and
``scripts/bench.py`` call :func:`setup_entry_point` before anything else.
"""

from __future__ import annotations

import logging
import os
import re
import warnings
from pathlib import Path

_LINE = re.compile(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*?)\s*$")


def parse_dotenv(text: str) -> dict[str, str]:
    """``KEY=value`` lines (optional ``export``, quotes, ``# comments``); empty values are left out,
    so an unfilled line of ``.env.example`` never sets a variable to the empty string."""
    out = {}
    for line in text.splitlines():
        m = _LINE.match(line)
        if not m:
            continue  # blank line, comment or not an assignment
        key, value = m.groups()
        if value[:1] in ("'", '"'):
            end = value.find(value[0], 1)
            value = value[1:end] if end > 0 else value[1:]
        else:
            value = re.split(r"\s+#", value, maxsplit=1)[0].strip()
            if value.startswith("#"):
                value = ""
        if value:
            out[key] = value
    return out


def load_dotenv(path: str | Path = ".env") -> dict[str, str]:
    """Set the variables of ``path`` (default: ``.env`` in the working directory) that the
    environment does not set already (the environment wins). Returns what was set."""
    path = Path(path)
    if not path.is_file():
        return {}
    new = {k: v for k, v in parse_dotenv(path.read_text()).items() if k not in os.environ}
    os.environ.update(new)
    return new


def quiet_libraries() -> None:
    """Silence library messages that are known to be harmless here."""
    # on every step or save
    warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*is deprecated")
    warnings.filterwarnings("ignore", message="MatMul8bitLt: inputs will be cast")
    warnings.filterwarnings(
        "ignore", message="Could not find a config file in .* will assume that the vocabulary"
    )
    # bitsandbytes warns on every CPU import that an optional 4-bit kernel package is absent (unused)
    logging.getLogger("bitsandbytes.backends.cpu.ops").setLevel(logging.ERROR)


def setup_entry_point() -> None:
    load_dotenv()
    quiet_libraries()
