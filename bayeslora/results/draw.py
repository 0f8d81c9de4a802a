"""Drawing helpers shared by every figure: panel grids, panel titles, and saving.

Matplotlib is used without pyplot (Agg canvases), so importing a figure module changes no global
backend.
"""

from __future__ import annotations

import math

import pandas as pd

from bayeslora.results.layout import DATASET_LABELS, dataset_rank


def new_figure(n_panels: int, width: float = 4.0, height: float = 3.4):
    """A figure with ``n_panels`` axes on a grid of at most three columns (the spare ones hidden)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    ncols = min(3, n_panels)
    nrows = math.ceil(n_panels / ncols)
    fig = Figure(figsize=(width * ncols, height * nrows), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax in axes[n_panels:]:
        ax.set_visible(False)
    return fig, axes[:n_panels]


def panel_keys(df: pd.DataFrame) -> list[tuple[str, str]]:
    """The (dataset, model) panels of a figure's frame, datasets in the paper's order."""
    keys = df[["dataset", "model"]].drop_duplicates().itertuples(index=False, name=None)
    return sorted(keys, key=lambda k: (dataset_rank(k[0]), k[0], k[1]))


def panel_title(dataset: str, model: str, multi_model: bool) -> str:
    name = DATASET_LABELS.get(dataset, dataset)
    return f"{name} [{model}]" if multi_model else name
