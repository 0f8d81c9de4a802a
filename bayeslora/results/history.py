"""Reading a run's ``history.csv`` (``step,key,value``: the per-step scalars the runner logs).

The one reader of that file: the training curves, Figure 2, the cost claim and the scripts'
per-run summaries all take it from here.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from bayeslora.errors import HistoryError
from bayeslora.records import HISTORY_FILE
from bayeslora.results.runs import run_dir_of


def history_path(record: dict) -> Path:
    return run_dir_of(record) / HISTORY_FILE


def history_table(path: Path, keys: list[str]) -> pd.DataFrame:
    """``history.csv`` (step, key, value) -> one row per step (``step`` + one column per key of ``keys``
    the file has; the last value of a key at a step wins)."""
    try:
        h = pd.read_csv(path)
    except (OSError, ValueError, pd.errors.ParserError) as e:
        raise HistoryError(f"{path}: unreadable ({e})") from None
    if not {"step", "key", "value"} <= set(h.columns):
        raise HistoryError(f"{path}: expected columns step,key,value, got {','.join(map(str, h.columns))}")
    h = h[h.key.isin(keys)]
    if h.empty:
        return pd.DataFrame(columns=["step"])
    wide = h.pivot_table(index="step", columns="key", values="value", aggfunc="last").reset_index()
    wide["step"] = wide.step.astype(int)
    return wide


def seed_histories(records: list[dict], keys: list[str]) -> pd.DataFrame | None:
    """:func:`history_table` of every record's run folder that has a ``history.csv``, with a ``seed``
    column, concatenated; None when no record has one."""
    per_seed = [
        history_table(history_path(r), keys).assign(seed=r["seed"])
        for r in records
        if history_path(r).is_file()
    ]
    return pd.concat(per_seed, ignore_index=True) if per_seed else None


def train_seconds(record: dict) -> float | None:
    """The run's total training seconds: the last ``time/train_s`` of its history (None without one)."""
    if not history_path(record).is_file():
        return None
    t = history_table(history_path(record), ["time/train_s"])
    t = t["time/train_s"].dropna() if "time/train_s" in t else t.step.iloc[:0]
    return float(t.iloc[-1]) if len(t) else None


def median_step_seconds(record: dict) -> float | None:
    """Median seconds per training step between consecutive ``time/train_s`` rows of ``history.csv``
    (the median skips the intervals that include a validation pass)."""
    if not history_path(record).is_file():
        return None
    t = history_table(history_path(record), ["time/train_s"])
    if "time/train_s" not in t:
        return None
    t = t.dropna(subset=["time/train_s"]).astype(float).sort_values("step")
    steps = np.concatenate([[0.0], t.step.to_numpy()])
    secs = np.concatenate([[0.0], t["time/train_s"].to_numpy()])
    per = np.diff(secs) / np.diff(steps)
    per = per[np.isfinite(per) & (per > 0)]
    return float(np.median(per)) if len(per) else None
