"""Where rows come from: the Hugging Face hub, or a local folder laid out like the hub.

Local layout (``BAYESLORA_DATA_DIR`` or ``paths.data_dir``): ``<data_dir>/<local_dir>/<split>.jsonl``,
e.g. ``ai2_arc/ARC-Challenge/validation.jsonl``.
"""

from __future__ import annotations

import json
from pathlib import Path

from bayeslora.errors import DataError


class HubSource:
    """Rows of one benchmark config, from a local JSONL folder when ``data_dir`` is set, else the hub."""

    def __init__(self, path: str, config: str | None, local_dir: str, data_dir: str | None = None):
        self.path = path
        self.config = config
        self.local_dir = local_dir
        self.data_dir = data_dir

    def describe(self, split: str) -> str:
        if self.data_dir is not None:
            return str(Path(self.data_dir) / self.local_dir / f"{split}.jsonl")
        return f"{self.path}" + (f" ({self.config})" if self.config else "") + f" split {split!r}"

    def rows(self, split: str) -> list[dict]:
        rows = self._local(split) if self.data_dir is not None else self._hub(split)
        if not rows:
            raise DataError(f"split {split!r} of {self.describe(split)} is empty")
        return rows

    def _local(self, split: str) -> list[dict]:
        root = Path(self.data_dir)
        if not root.is_dir():
            raise DataError(f"data folder {root} does not exist (set BAYESLORA_DATA_DIR or paths.data_dir)")
        file = root / self.local_dir / f"{split}.jsonl"
        if not file.is_file():
            raise DataError(f"missing data file {file}")
        rows = []
        with file.open(encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, 1):
                if line.strip():
                    try:
                        rows.append(json.loads(line))
                    except json.JSONDecodeError as e:
                        raise DataError(f"{file}:{lineno}: not valid JSON ({e.msg})") from None
        return rows

    def _hub(self, split: str) -> list[dict]:
        import datasets

        try:
            ds = datasets.load_dataset(self.path, self.config, split=split)
        except Exception as e:  # network, gating, unknown split: one clear line
            raise DataError(
                f"cannot load {self.describe(split)} from the Hugging Face hub ({type(e).__name__}: "
                f"{str(e).splitlines()[0] if str(e) else ''}); set BAYESLORA_DATA_DIR to a local copy"
            ) from None
        return [dict(r) for r in ds]
