"""Reliability diagrams: one panel per table row (predictive), from each seed's ``preds.npz``.

The seeds' predictions are **pooled** (concatenated as if they were more examples of the same
split), binned into equal-width confidence bins (lo, hi] as in :mod:`bayeslora.metrics`; bars are
each bin's accuracy with its number of examples at its foot, the dots its mean confidence, the
dashed diagonal perfect calibration (a legend under the panels says so); the title's ECE is
:func:`bayeslora.metrics.classification_metrics` of the pooled set. Drawn by ``bayeslora-figures`` /
``--figures`` as ``reliability_<dataset>_<model>.{png,pdf,csv}``.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

from bayeslora import metrics as M
from bayeslora.errors import FigureError
from bayeslora.results.draw import new_figure
from bayeslora.results.layout import DATASET_LABELS, DEFAULT_ECE_BINS, POSTHOC_SUFFIX
from bayeslora.results.runs import group_records, run_dir_of
from bayeslora.results.summary import summarize


def _load_preds(path: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path) as z:
            return {k: z[k] for k in z.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise FigureError(f"{path}: unreadable ({e})") from None


def reliability_bins(probs: np.ndarray, labels: np.ndarray, n_bins: int) -> pd.DataFrame:
    """Per confidence bin (lo, hi]: count, accuracy and mean confidence, from
    :func:`bayeslora.metrics.calibration_bins` (the binning of the ECE)."""
    b = M.calibration_bins(probs, labels, n_bins)
    return pd.DataFrame({"bin": np.arange(len(b["count"])), **b}).astype({"count": int})


def reliability_data(
    records: list[dict], split: str | None = None, n_bins: int = DEFAULT_ECE_BINS
) -> dict[str, pd.DataFrame]:
    """``reliability_<dataset>_<model>`` -> bins of every table-row predictive, seeds pooled."""
    s = summarize(records, split, None, all_rows=False)
    if s.empty:
        return {}
    groups = group_records(records)
    out: dict[str, list[pd.DataFrame]] = {}
    keys = s[["dataset", "model", "method", "predictive", "label", "rank"]].drop_duplicates(
        ["dataset", "model", "method", "predictive"]
    )
    preds_cache: dict[str, dict[str, np.ndarray] | None] = {}
    for k in keys.itertuples(index=False):
        probs, labels, seeds = [], [], []
        for r in groups[(k.dataset, k.model, k.method)]:
            sp = split or r.get("eval_split")
            path = run_dir_of(r) / "preds.npz"
            if str(path) not in preds_cache:
                preds_cache[str(path)] = _load_preds(path) if path.is_file() else None
            arrays = preds_cache[str(path)]
            if arrays is None or f"{sp}/{k.predictive}" not in arrays or f"{sp}/labels" not in arrays:
                continue
            probs.append(arrays[f"{sp}/{k.predictive}"])
            labels.append(arrays[f"{sp}/labels"])
            seeds.append(r["seed"])
        if not probs:
            continue
        try:
            pooled = np.concatenate([M.mean_probs(p) for p in probs])
            y = np.concatenate(labels)
            ece = M.classification_metrics(pooled, y, n_bins)["ece"]
        except ValueError as e:
            raise FigureError(f"{k.dataset}/{k.model}/{k.method}/{k.predictive}: {e}") from None
        bins = reliability_bins(pooled, y, n_bins)
        bins.insert(0, "order", int(k.rank))
        bins.insert(1, "posthoc", k.method.endswith(POSTHOC_SUFFIX))
        for i, (col, val) in enumerate(
            [
                ("dataset", k.dataset),
                ("model", k.model),
                ("method", k.method),
                ("predictive", k.predictive),
                ("label", k.label),
                ("split", split or groups[(k.dataset, k.model, k.method)][0].get("eval_split") or ""),
                ("n_seeds", len(seeds)),
                ("seeds", " ".join(map(str, sorted(seeds)))),
                ("n_examples", len(y)),
                ("ece", ece),
            ]
        ):
            bins.insert(i, col, val)
        name = f"reliability_{k.dataset}_{k.model}"
        out.setdefault(name, []).append(bins)
    result = {}
    for name in sorted(out):
        df = pd.concat(out[name], ignore_index=True)
        df = df.sort_values(["order", "posthoc", "method", "predictive", "bin"], kind="stable")
        df = df.drop(columns=["order", "posthoc"])
        result[name] = df.reset_index(drop=True)
    return result


def plot_reliability(df: pd.DataFrame):
    """One panel per row: bars = each bin's accuracy, with its number of examples at its foot; dots
    = each bin's mean confidence; the dashed diagonal = perfect calibration (a figure legend says so)."""
    keys = df[["method", "predictive", "label", "ece", "n_seeds"]].drop_duplicates(["method", "predictive"])
    fig, axes = new_figure(len(keys), width=3.2, height=3.2)
    handles = []
    for ax, k in zip(axes, keys.itertuples(index=False)):
        b = df[(df.method == k.method) & (df.predictive == k.predictive)]
        width = float((b.hi - b.lo).iloc[0])
        full = b[b["count"] > 0]
        mid = full.lo + width / 2
        bars = ax.bar(mid, full.acc, width=width, edgecolor="k", lw=0.5, color="tab:blue", alpha=0.7)
        (dots,) = ax.plot(mid, full.conf, "o", color="tab:red", ms=3)
        (diag,) = ax.plot([0, 1], [0, 1], "--", color="0.4", lw=1)
        for x, n in zip(mid, full["count"]):
            ax.text(x, 0.015, str(int(n)), rotation=90, ha="center", va="bottom", fontsize=5.5)
        handles = [bars, dots, diag]
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_aspect("equal")
        ax.set_xlabel("confidence")
        ax.set_ylabel("accuracy")
        seeds = f", {k.n_seeds} seeds pooled" if k.n_seeds > 1 else ""
        ax.set_title(f"{k.label}\nECE {100 * k.ece:.2f} %{seeds}", fontsize=9)
    labels = [
        "accuracy (bar; its number of examples at its foot)",
        "mean confidence per bin",
        "perfect calibration",
    ]
    fig.legend(handles, labels, loc="outside lower center", ncols=3, fontsize=8, frameon=False)
    dataset, model = df.dataset.iloc[0], df.model.iloc[0]
    fig.suptitle(f"{DATASET_LABELS.get(dataset, dataset)} [{model}]: reliability")
    return fig
