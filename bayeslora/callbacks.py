"""Hydra callbacks."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from bayeslora.records import RECORD_FILE, read_record

log = logging.getLogger("bayeslora")


class SweepSummary(Callback):
    """After a multirun, count the records of the sweep by status and list the failed ones."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        root = Path(config.hydra.sweep.dir)
        counts: dict[str, int] = {}
        failed = []
        for path in sorted(root.rglob(RECORD_FILE)):
            try:
                rec = read_record(path.parent) or {"status": "unreadable"}
            except (OSError, ValueError):
                rec = {"status": "unreadable"}
            status = rec.get("status", "?")
            counts[status] = counts.get(status, 0) + 1
            if status != "success":
                failed.append(f"  {path.parent}: {rec.get('error')}")
        log.info(
            "sweep %s: %s", root, ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "no records"
        )
        for line in failed:
            log.info("%s", line)
