"""Training curves: training loss and the periodic validation's NLL, ECE and accuracy against steps,
one line per method (mean over seeds, ± SEM band), one column of panels per (dataset, model).

This is where over-fitting shows: the training loss falls towards 0 while the validation NLL and ECE
rise. Drawn by ``bayeslora-figures`` / ``--figures`` as ``curves.{png,pdf,csv}``.
"""

from __future__ import annotations

import pandas as pd

from bayeslora.results.draw import new_figure, panel_keys, panel_title, sorted_by_dataset
from bayeslora.results.history import seed_histories
from bayeslora.results.runs import group_records, run_label
from bayeslora.results.summary import sem

KEYS = {"train/loss": "training loss", "val/nll": "validation NLL", "val/ece": "validation ECE ×100"}
SCALE = {"val/ece": 100.0}


def step_means(records: list[dict], keys: list[str], scale: dict[str, float] | None = None) -> pd.DataFrame:
    """Long table of logged scalars over the seeds: (dataset, model, method, label, key, step) ->
    n, seeds, mean, sem (times ``scale[key]``), from each run's ``history.csv``."""
    cols = ["dataset", "model", "method", "label", "key", "step", "n", "seeds", "mean", "sem"]
    scale = scale or {}
    rows = []
    for (dataset, model, method), recs in group_records(records).items():
        h = seed_histories(recs, list(keys))
        if h is None:
            continue
        for key in [k for k in keys if k in h]:
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
                        seeds=" ".join(map(str, sorted(g.seed))),
                        mean=float(g[key].mean()) * scale.get(key, 1.0),
                        sem=sem(g[key]) * scale.get(key, 1.0),
                    )
                )
    return sorted_by_dataset(pd.DataFrame(rows, columns=cols), ["model", "method", "key", "step"])


def curves_data(records: list[dict]) -> pd.DataFrame:
    """Long table: (dataset, model, method, label, key, step) -> mean, sem, n over the seeds."""
    return step_means(records, list(KEYS), SCALE).drop(columns="seeds")


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
