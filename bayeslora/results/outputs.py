"""Staged outputs: every file of one command is written to a staging folder and renamed into place
only when everything has been computed, so bad input never leaves partial tables or figures."""

from __future__ import annotations

import argparse
import os
import re
import shutil
import tempfile
from pathlib import Path


class StagedOutputs:
    """Files are written under a staging folder and renamed into ``root`` only by :meth:`commit`.

    With ``root=None`` (``--no-write``) the staging folder is a temporary one that is discarded."""

    def __init__(self, root: Path | None):
        self.root = None if root is None else Path(root)
        base = self.root if self.root is not None and self.root.is_dir() else None
        self.dir = Path(tempfile.mkdtemp(prefix=".bayeslora-staging-", dir=base))
        self.files: list[str] = []
        self.removed: list[str] = []

    def path(self, rel: str | Path) -> Path:
        p = self.dir / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        if str(rel) not in self.files:
            self.files.append(str(rel))
        return p

    def write_text(self, rel: str | Path, text: str) -> Path:
        p = self.path(rel)
        p.write_text(text, encoding="utf-8")
        return p

    def add_dir(self, rel: str | Path) -> Path:
        """A staged folder whose files (written later by someone else) are committed too."""
        p = self.dir / rel
        p.mkdir(parents=True, exist_ok=True)
        return p

    def remove_dir(self, rel: str | Path) -> None:
        """A folder under ``root`` that :meth:`commit` deletes once the new files are in place."""
        self.removed.append(str(rel))

    def remove(self, rel: str | Path) -> None:
        """A file (or folder) under ``root`` that :meth:`commit` deletes, if there, once the new
        files are in place (an output this run no longer makes, e.g. a figure of nothing)."""
        self.removed.append(str(rel))

    def all_files(self) -> list[str]:
        found = [str(p.relative_to(self.dir)) for p in sorted(self.dir.rglob("*")) if p.is_file()]
        return self.files + [f for f in found if f not in self.files]

    def commit(self) -> list[Path]:
        if self.root is None:
            return []
        done = []
        for rel in self.all_files():
            dst = self.root / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            os.replace(self.dir / rel, dst)
            done.append(dst)
        for rel in self.removed:
            path = self.root / rel
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            elif path.exists() or path.is_symlink():
                path.unlink()
        return done

    def cleanup(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


def safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._+=-]", "-", name)


class OneLineParser(argparse.ArgumentParser):
    """argparse that reports bad arguments as one ``<prog>: error: ...`` line (exit 2)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message}\n")
