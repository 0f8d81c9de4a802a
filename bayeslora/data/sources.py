"""Where rows come from: the Hugging Face hub, a local folder laid out like the hub, or named files.

Local layout (``BAYESLORA_DATA_DIR`` or ``paths.data_dir``): ``<data_dir>/<local_dir>/<split>.jsonl``
(or ``<split>.csv``), e.g. ``ai2_arc/ARC-Challenge/validation.jsonl``. ``local_dir`` may be a list of folders: each split
is read from the first folder that holds it (BoolQ: the titled SuperGLUE form where it exists,
else the untitled google/boolq form). ``forms`` names what each location holds (e.g. the BoolQ
passage form), and :meth:`HubSource.provenance` reports it for every split a run read.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

from bayeslora.errors import DataError

# Local file formats, in the order a folder is searched for ``<split>.<ext>``.
EXTENSIONS = (".jsonl", ".csv")


def read_rows(file: Path) -> list[dict]:
    """The rows of a JSONL file (one JSON object per line) or a CSV file with a header row (every
    value a string)."""
    rows = []
    if file.suffix == ".csv":
        with file.open(encoding="utf-8", newline="") as fh:
            reader = csv.DictReader(fh)
            for lineno, row in enumerate(reader, 2):
                if None in row or any(v is None for v in row.values()):
                    raise DataError(f"{file}:{lineno}: the row has another number of fields than the header")
                rows.append(dict(row))
        return rows
    with file.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if line.strip():
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as e:
                    raise DataError(f"{file}:{lineno}: not valid JSON ({e.msg})") from None
                if not isinstance(row, dict):
                    raise DataError(f"{file}:{lineno}: not a JSON object")
                rows.append(row)
    return rows


class HubSource:
    """Rows of one benchmark config, from a local JSONL folder when ``data_dir`` is set, else the hub."""

    def __init__(
        self,
        path: str,
        config: str | None,
        local_dir: str | list[str],
        data_dir: str | None = None,
        forms: dict[str, str] | None = None,
    ):
        self.path = path
        self.config = config
        self.local_dirs = [local_dir] if isinstance(local_dir, str) else [str(d) for d in local_dir]
        if not self.local_dirs:
            raise DataError(f"{path}: local_dir is empty")
        self.local_dir = self.local_dirs[0]
        self.data_dir = data_dir
        self.forms = dict(forms or {})

    def _local_file(self, split: str) -> Path:
        """``<split>.jsonl`` (or ``.csv``) in the first of the local folders that holds ``split``
        (``<split>.jsonl`` in the first folder if none does)."""
        files = [Path(self.data_dir) / d / f"{split}{ext}" for d in self.local_dirs for ext in EXTENSIONS]
        return next((f for f in files if f.is_file()), files[0])

    def _location(self, split: str) -> str:
        if self.data_dir is None:
            return self.path
        return str(self._local_file(split).parent.relative_to(Path(self.data_dir)))

    def describe(self, split: str) -> str:
        if self.data_dir is not None:
            return str(self._local_file(split))
        return f"{self.path}" + (f" ({self.config})" if self.config else "") + f" split {split!r}"

    def provenance(self, split: str) -> dict[str, str]:
        """Where ``split`` is read from, and the form that location holds (when ``forms`` says)."""
        out = {"source": self.describe(split)}
        form = self.forms.get(self._location(split))
        if form is not None:
            out["form"] = form
        return out

    def rows(self, split: str) -> list[dict]:
        rows = self._local(split) if self.data_dir is not None else self._hub(split)
        if not rows:
            raise DataError(f"split {split!r} of {self.describe(split)} is empty")
        return rows

    def check(self, splits: list[str]) -> None:
        """Without reading a row: the local folder and the file of each split exist (from the hub:
        nothing to check before loading)."""
        if self.data_dir is None:
            return
        root = Path(self.data_dir)
        if not root.is_dir():
            raise DataError(f"data folder {root} does not exist (set BAYESLORA_DATA_DIR or paths.data_dir)")
        for split in splits:
            file = self._local_file(split)
            if not file.is_file():
                raise DataError(f"missing data file {file} (split {split!r})")

    def _local(self, split: str) -> list[dict]:
        self.check([split])
        return read_rows(self._local_file(split))

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


class FileSource:
    """Rows from named local files, one per split (``.jsonl`` or ``.csv``), e.g. in a dataset YAML
    ``source: {_target_: bayeslora.data.sources.FileSource, files: {train: my/train.csv, validation:
    my/dev.jsonl}, data_dir: ${paths.data_dir}}``. Relative paths are under ``data_dir`` (null: the
    working directory)."""

    def __init__(self, files: dict[str, str], data_dir: str | None = None):
        if not isinstance(files, dict) or not files:
            raise DataError("FileSource needs files: a mapping split -> .jsonl or .csv file")
        bad = [f for f in files.values() if Path(str(f)).suffix not in EXTENSIONS]
        if bad:
            raise DataError(f"FileSource reads {' and '.join(EXTENSIONS)} files, not {bad[0]}")
        self.files = {str(k): str(v) for k, v in files.items()}
        self.data_dir = data_dir

    def _file(self, split: str) -> Path:
        if split not in self.files:
            raise DataError(f"FileSource has no file for split {split!r} (it has {sorted(self.files)})")
        path = Path(self.files[split]).expanduser()
        return path if path.is_absolute() or self.data_dir is None else Path(self.data_dir) / path

    def describe(self, split: str) -> str:
        return str(self._file(split)) if split in self.files else f"FileSource split {split!r}"

    def check(self, splits: list[str]) -> None:
        """Without reading a row: each split has a file, and it exists."""
        for split in splits:
            file = self._file(split)
            if not file.is_file():
                raise DataError(f"missing data file {file} (split {split!r})")

    def rows(self, split: str) -> list[dict]:
        self.check([split])
        file = self._file(split)
        rows = read_rows(file)
        if not rows:
            raise DataError(f"split {split!r} of {file} is empty")
        return rows
