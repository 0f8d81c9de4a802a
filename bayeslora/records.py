"""Run records: one self-describing ``metrics.json`` per run, written atomically.

The aggregator reads only these files. ``config_hash`` covers the resolved config minus the seed and
the settings that do not change what is computed (:data:`NOT_HASHED`), and minus the predictives the
run does not evaluate, so every seed of one configuration shares one hash.
"""

from __future__ import annotations

import hashlib
import json
import platform
import subprocess
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from bayeslora.errors import RecordClashError
from bayeslora.utils.atomic import atomic_write_text

RECORD_FILE = "metrics.json"
# the per-step scalars of a run (step, key, value), beside its record
HISTORY_FILE = "history.csv"
# Settings that do not change what a run computes, by section ("" = top level, "predictive.*" = each
# predictive): naming, paths (also the data folder, so a run relaunched on another machine keeps its
# hash), logging and launch; how it is shown (labels, row order, progress,
# log cadence); and speed or storage only (threads, samples per batched forward, checkpoint cadence,
# whether preds.npz is kept). Changing one of them keeps the config hash, so a seed rerun with a
# smaller eval.sample_chunk (for memory) still aggregates with the others.
# ``lookup`` holds per-dataset tables (e.g. IVON's ess per dataset for one model): the values a run
# looks up land in the sections it hashes (method.ess, trainer.max_steps), so another dataset's new
# entry leaves every existing run's hash as it was.
NOT_HASHED: dict[str, tuple[str, ...]] = {
    "": ("seed", "paths", "logger", "overwrite", "run_dir", "exp_name", "hydra", "launcher", "lookup"),
    "trainer": ("progress_bar", "num_threads", "log_every", "checkpoint_every", "keep_checkpoint"),
    "eval": ("sample_chunk", "save_predictions"),
    "dataset": ("label",),
    # the hub ids a model option stands for (which adapters it accepts), not what it loads
    "model": ("hub_ids",),
    # where the benchmark copies are read from (the rows read are in the record's data_sources)
    "dataset.source": ("data_dir",),
    "predictive.*": ("label", "table_rank"),
}
PACKAGES = ("torch", "transformers", "peft", "bitsandbytes", "datasets", "hydra-core", "ivon-opt", "wandb")
SCHEMA_VERSION = 1


def _without(section: Any, keys: tuple[str, ...]) -> Any:
    return {k: v for k, v in section.items() if k not in keys} if isinstance(section, dict) else section


def hashed_config(cfg: DictConfig) -> dict[str, Any]:
    """The resolved config minus :data:`NOT_HASHED` and minus the predictives the run does not use."""
    c = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)
    out = _without(c, NOT_HASHED[""])
    for section in ("trainer", "eval", "dataset", "model"):
        if section in out:
            out[section] = _without(out[section], NOT_HASHED[section])
    datasets = [out.get("dataset"), *((out.get("eval") or {}).get("ood") or {}).values()]
    for ds in datasets:  # the run's dataset and its OOD sets
        if isinstance(ds, dict) and isinstance(ds.get("source"), dict):
            ds["source"] = _without(ds["source"], NOT_HASHED["dataset.source"])
    if "predictive" in out and "method" in out:
        used = set(out["method"].get("predictives", [])) | {out["method"].get("val_predictive")}
        out["predictive"] = {
            k: _without(v, NOT_HASHED["predictive.*"]) for k, v in out["predictive"].items() if k in used
        }
    return out


def config_hash(cfg: DictConfig) -> str:
    blob = json.dumps(hashed_config(cfg), sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def git_info() -> dict[str, Any]:
    here = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(
            ["git", "-C", str(here), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        dirty = bool(
            subprocess.run(
                ["git", "-C", str(here), "status", "--porcelain", "--untracked-files=no"],
                capture_output=True,
                text=True,
                timeout=10,
                check=True,
            ).stdout.strip()
        )
        return {"git_commit": commit, "git_dirty": dirty}
    except (OSError, subprocess.SubprocessError):
        return {"git_commit": None, "git_dirty": None}


def package_versions() -> dict[str, str | None]:
    out = {"python": platform.python_version()}
    for pkg in PACKAGES:
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = None
    return out


@dataclass
class RunRecord:
    status: str  # running | success | failed | canceled
    exp_name: str
    dataset: str
    model: str
    method: str
    seed: int
    config_hash: str
    # metrics[predictive][acc|nll|ece|brier] on the dataset's first evaluation split
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    # split -> predictive -> metric, for every evaluation split
    splits: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)
    eval_split: str | None = None
    # the dataset's column label (conf/dataset/<name>.yaml ``label``, e.g. "WG-S")
    dataset_label: str | None = None
    # predictive -> human label of its table row (e.g. "AdamW", "+ SWAG")
    labels: dict[str, str] = field(default_factory=dict)
    # predictives that are rows of the main table (the others, e.g. the τ grid, feed figures)
    table_rows: list[str] = field(default_factory=list)
    # predictive -> its row order in tables and figures (conf/predictive/<name>.yaml ``table_rank``)
    ranks: dict[str, int] = field(default_factory=dict)
    # per predictive: scalars it reports (e.g. Laplace's tuned prior precision and fit time)
    predictive_info: dict[str, dict[str, Any]] = field(default_factory=dict)
    n_train: int | None = None
    n_eval: dict[str, int] = field(default_factory=dict)
    # split -> where its rows came from (source, and for BoolQ which passage form: titled or untitled)
    data_sources: dict[str, dict[str, Any]] = field(default_factory=dict)
    # "split/predictive" -> seconds its evaluation took
    eval_seconds: dict[str, float] = field(default_factory=dict)
    # predictive -> seconds its post-fit work took (Laplace: the curvature pass, paid by the first
    # Laplace row when both share it, and the prior tuning)
    post_fit_seconds: dict[str, float] = field(default_factory=dict)
    # bayeslora.evaluate only: the adapter evaluated (path or hub id, sha256 of its weights, LoRA
    # settings, base model) and the IVON posterior used, if any; None for a training run
    adapter: dict[str, Any] | None = None
    steps: int = 0
    error: str | None = None
    traceback: str | None = None
    provenance: dict[str, Any] = field(default_factory=dict)
    schema_version: int = SCHEMA_VERSION

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def write_record(run_dir: Path, record: RunRecord) -> Path:
    path = Path(run_dir) / RECORD_FILE
    atomic_write_text(path, json.dumps(record.to_dict(), indent=2, sort_keys=False) + "\n")
    return path


def read_record(run_dir: Path) -> dict[str, Any] | None:
    path = Path(run_dir) / RECORD_FILE
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError:
        return None


def should_skip(run_dir: Path, chash: str, overwrite: bool) -> dict[str, Any] | None:
    """The existing successful record to reuse, or None to (re)run.

    A successful record with another config hash in the same place is an error unless ``overwrite``.
    Failed or unreadable records are simply re-run.
    """
    old = read_record(run_dir)
    if old is None or old.get("status") != "success":
        return None
    if old.get("config_hash") == chash:
        return None if overwrite else old
    if overwrite:
        return None
    raise RecordClashError(
        f"{Path(run_dir) / RECORD_FILE} holds a finished run with config hash {old.get('config_hash')}, "
        f"this config hashes to {chash}; give the variant its own name (e.g. method.name=...), "
        f"another exp_name, or pass overwrite=true"
    )
