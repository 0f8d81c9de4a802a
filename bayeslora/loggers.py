"""Metric loggers: local CSV history (always on) and an optional W&B mirror.

Both implement ``log(metrics, step)``, ``summary(metrics)`` and ``close(ok)``. ``summary`` gets the
run's final metrics of every evaluation split (``final/<split>/<predictive>/<metric>``, from the
runner); besides the W&B summary, they go into the history with the next ``log`` call's step (the
runner's final log, at the last step) or, if none comes, at ``close``: so the history holds every
split's final metrics, the shifted and OOD splits too, not only the first split's
``final/<predictive>/<metric>``.

W&B files go under ``<scratch>/wandb`` (``conf/logger/wandb.yaml``: ``${paths.scratch_dir}/wandb``;
W&B adds a ``wandb/`` folder of its own), for the training runs and for ``bayeslora-table --wandb``
alike (:func:`wandb_dir`); docs/outputs.md says how to sync offline runs.
"""

from __future__ import annotations

import csv
import logging
import os
import re
from pathlib import Path
from typing import Any, Literal

from bayeslora.errors import BayesLoraError
from bayeslora.records import HISTORY_FILE

log = logging.getLogger(__name__)


def wandb_dir() -> Path:
    """``<scratch>/wandb``, the scratch folder resolved as ``conf/paths/default.yaml`` does
    ($BAYESLORA_SCRATCH, else $BAYESLORA_ROOT/scratch, else ./scratch): where the training runs'
    W&B files go (``conf/logger/wandb.yaml``) and so where ``bayeslora-table --wandb`` puts its own."""
    scratch = os.environ.get("BAYESLORA_SCRATCH") or str(
        Path(os.environ.get("BAYESLORA_ROOT") or ".") / "scratch"
    )
    return Path(scratch) / "wandb"


class _FinalInHistory:
    """``summary`` numbers held until the next ``log`` (logged with its step) or ``close``."""

    _pending: dict[str, Any] | None = None
    _step: int = 0

    def _with_pending(self, metrics: dict[str, Any], step: int) -> dict[str, Any]:
        self._step = step
        if not self._pending:
            return dict(metrics)
        merged, self._pending = {**self._pending, **metrics}, None
        return merged

    def _hold(self, metrics: dict[str, Any]) -> None:
        self._pending = {**(self._pending or {}), **metrics}

    def _flush(self) -> None:
        if self._pending:
            self.log({}, self._step)


class CSVLogger(_FinalInHistory):
    """Appends one row per ``log`` call to ``history.csv`` (long form: step, key, value); the
    ``summary`` (every split's final metrics) joins the next ``log`` call's rows."""

    def __init__(self, run_dir: Path, resume_step: int | None = None):
        self._step = int(resume_step or 0)
        self.path = Path(run_dir) / HISTORY_FILE
        self.path.parent.mkdir(parents=True, exist_ok=True)
        kept = []
        if resume_step is not None and self.path.exists():  # drop rows logged after the checkpoint
            with self.path.open(newline="") as fh:
                kept = [r for r in csv.reader(fh)][1:]
            kept = [r for r in kept if r and int(r[0]) <= resume_step]
        with self.path.open("w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["step", "key", "value"])
            w.writerows(kept)

    def log(self, metrics: dict[str, float], step: int) -> None:
        with self.path.open("a", newline="") as fh:
            w = csv.writer(fh)
            for k, v in self._with_pending(metrics, step).items():
                w.writerow([step, k, repr(float(v))])

    def summary(self, metrics: dict[str, Any]) -> None:
        self._hold(metrics)

    def close(self, ok: bool) -> None:
        self._flush()


class WandbLogger(_FinalInHistory):
    """One W&B run per training run; all seeds of one config share ``group``. The ``summary``
    (every split's final metrics) is the run's W&B summary and joins the next ``log`` call."""

    def __init__(
        self,
        project: str,
        entity: str | None,
        mode: Literal["online", "offline", "disabled"],
        group: str,
        run_name: str,
        job_type: str,
        tags: list[str],
        dir: str,
        config: dict[str, Any] | None = None,
        run_id: str | None = None,
    ):
        import wandb

        if mode not in ("online", "offline", "disabled"):
            from bayeslora.errors import ConfigError

            raise ConfigError(f"logger.wandb.mode must be online, offline or disabled, not {mode!r}")
        Path(dir).mkdir(parents=True, exist_ok=True)
        self.run = wandb.init(
            project=project,
            entity=entity,
            mode=mode,
            group=group,
            name=run_name,
            job_type=job_type,
            config=config,
            tags=list(tags),
            dir=dir,
            reinit="finish_previous",
            id=run_id,
            resume="allow" if run_id else None,
        )

    def log(self, metrics: dict[str, float], step: int) -> None:
        self.run.log(self._with_pending(metrics, step), step=step)

    def summary(self, metrics: dict[str, Any]) -> None:
        for k, v in metrics.items():
            self.run.summary[k] = v
        self._hold(metrics)

    def close(self, ok: bool) -> None:
        try:
            self._flush()
        finally:
            self.run.finish(exit_code=0 if ok else 1)


def instantiate_loggers(logger_cfg, config: dict[str, Any], run_id: str) -> list:
    """Every entry of the ``logger`` config with a ``_target_`` (lightning-hydra-template's
    ``instantiate_loggers``), given the run's resolved ``config`` and a stable ``run_id``."""
    from omegaconf import DictConfig

    from bayeslora.errors import ConfigError
    from bayeslora.utils.instantiate import instantiate

    loggers = []
    for key, node in (logger_cfg or {}).items():
        if key == "name":
            continue
        if not isinstance(node, DictConfig) or "_target_" not in node:
            raise ConfigError(f"unknown logger entry logger.{key}: expected a mapping with a _target_")
        # partial: the run's config holds _target_ nodes of its own, which must stay plain data
        loggers.append(instantiate(node, _partial_=True)(config=config, run_id=run_id))
    return loggers


def flatten(d: dict[str, Any], prefix: str = "", sep: str = "/") -> dict[str, Any]:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{sep}{k}" if prefix else str(k)
        if isinstance(v, dict):
            out.update(flatten(v, key, sep))
        else:
            out[key] = v
    return out


class WandbUploadError(BayesLoraError):
    pass


def upload_to_wandb(
    files: dict[str, Path],
    figures: dict[str, Path],
    exp: str,
    project: str,
    entity: str | None = None,
    config: dict | None = None,
) -> None:
    """Tables (and figures) of ``bayeslora-table`` as W&B artifacts; the mode comes from
    ``WANDB_MODE`` (online, offline, disabled), the folder from ``WANDB_DIR``, else
    :func:`wandb_dir`. The run is always finished."""
    try:
        import wandb
    except ImportError:
        raise WandbUploadError("--wandb needs the wandb package (pip install wandb)") from None
    mode = os.environ.get("WANDB_MODE") or None
    if mode == "dryrun":
        mode = "offline"
    if mode not in (None, "online", "offline", "disabled"):
        raise WandbUploadError(f"WANDB_MODE must be online, offline or disabled, not {mode!r}")
    run, ok = None, False
    try:
        # mode and folder are read from the environment now: wandb ignores later changes to it
        # once a session has started in this process. The folder: $WANDB_DIR, else the training
        # runs' (<scratch>/wandb), never ./wandb
        folder = Path(os.environ.get("WANDB_DIR") or wandb_dir())
        folder.mkdir(parents=True, exist_ok=True)
        run = wandb.init(
            mode=mode,
            dir=str(folder),
            project=project,
            entity=entity,
            job_type="aggregate",
            name=f"tables/{exp}",
            config=config or {},
            reinit="finish_previous",
        )
        for kind, group in (("tables", files), ("figures", figures)):
            if not group:
                continue
            name = re.sub(r"[^A-Za-z0-9._-]", "-", f"{exp}-{kind}")
            art = wandb.Artifact(name, type=kind)
            for fname, path in group.items():
                art.add_file(str(path), name=fname)
            run.log_artifact(art)
        ok = True
    except Exception as e:
        raise WandbUploadError(f"uploading to W&B failed: {type(e).__name__}: {e}") from e
    finally:
        if run is not None:
            run.finish(exit_code=0 if ok else 1)
