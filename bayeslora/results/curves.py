"""Training curves: training loss and the periodic validation's NLL, ECE and accuracy against steps,
one line per method (mean over seeds, ± SEM band), one column of panels per (dataset, model).

This is where over-fitting shows: the training loss falls towards 0 while the validation NLL and ECE
rise. Drawn by ``bayeslora-figures`` / ``--figures`` as ``curves.{png,pdf,csv}``.
"""

from __future__ import annotations

import pandas as pd

from bayeslora.results.draw import new_figure, panel_keys, panel_title
from bayeslora.results.history import seed_histories
from bayeslora.results.layout import dataset_rank
from bayeslora.results.runs import group_records, run_label
from bayeslora.results.summary import sem

KEYS = {"train/loss": "training loss", "val/nll": "validation NLL", "val/ece": "validation ECE ×100"}
SCALE = {"val/ece": 100.0}


def curves_data(records: list[dict]) -> pd.DataFrame:
    """Long table: (dataset, model, method, label, key, step) -> mean, sem, n over the seeds."""
    cols = ["dataset", "model", "method", "label", "key", "step", "n", "mean", "sem"]
    rows = []
    for (dataset, model, method), recs in group_records(records).items():
        h = seed_histories(recs, list(KEYS))
        if h is None:
            continue
        for key in KEYS:
            if key not in h:
                continue
            for step, g in h.dropna(subset=[key]).groupby("step", sort=True):
                rows.append(
                    dict(
                        dataset=dataset,
                        model=model,
                        method=method,
                        label=run_label(recs),
                        key=key,
                        step=int(step),
                        n=len(g),
                        mean=float(g[key].mean()) * SCALE.get(key, 1.0),
                        sem=sem(g[key]) * SCALE.get(key, 1.0),
                    )
                )
    df = pd.DataFrame(rows, columns=cols)
    if df.empty:
        return df
    df["_d"] = df.dataset.map(dataset_rank)
    return (
        df.sort_values(["_d", "dataset", "model", "method", "key", "step"])
        .drop(columns="_d")
        .reset_index(drop=True)
    )


def plot_curves(df: pd.DataFrame):
    panels = panel_keys(df)
    keys = [k for k in KEYS if k in set(df.key)]
    multi = df.model.nunique() > 1
    fig, axes = new_figure(len(panels) * len(keys))
    for i, (dataset, model) in enumerate(panels):
        for j, key in enumerate(keys):
            ax = axes[i * len(keys) + j]
            sel = df[(df.dataset == dataset) & (df.model == model) & (df.key == key)]
            for _, g in sel.groupby("method", sort=True):
                line = ax.plot(g.step, g["mean"], marker="o", ms=2, label=g.label.iloc[0])[0]
                sem = g["sem"].fillna(0)
                if (sem > 0).any():
                    ax.fill_between(
                        g.step, g["mean"] - sem, g["mean"] + sem, color=line.get_color(), alpha=0.2
                    )
            ax.set_title(f"{panel_title(dataset, model, multi)}: {KEYS[key]}", fontsize=9)
            ax.set_xlabel("step")
            ax.set_ylabel(KEYS[key])
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8)
    return fig
