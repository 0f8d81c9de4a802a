"""Drawing helpers shared by every figure: panel grids, panel titles, and saving.

Matplotlib is used without pyplot (Agg canvases), so importing a figure module changes no global
backend. :func:`save_figure` writes no creation date, so the same values give the same bytes and a
rerun leaves committed figures unchanged.
"""

from __future__ import annotations

import math
from pathlib import Path

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


# per format: metadata that would differ between two saves of the same figure
_NO_DATE = {"pdf": {"CreationDate": None}, "svg": {"Date": None}}


def save_figure(fig, path: Path, dpi: int = 150) -> Path:
    """``fig`` saved to ``path`` (format from the suffix) without a creation date."""
    path = Path(path)
    fig.savefig(path, dpi=dpi, metadata=_NO_DATE.get(path.suffix.lstrip(".").lower()))
    return path


def panel_keys(df: pd.DataFrame) -> list[tuple[str, str]]:
    """The (dataset, model) panels of a figure's frame, datasets in the paper's order."""
    keys = df[["dataset", "model"]].drop_duplicates().itertuples(index=False, name=None)
    return sorted(keys, key=lambda k: (dataset_rank(k[0]), k[0], k[1]))


def panel_title(dataset: str, model: str, multi_model: bool) -> str:
    name = DATASET_LABELS.get(dataset, dataset)
    return f"{name} [{model}]" if multi_model else name


def sorted_by_dataset(df: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """A figure's data rows: datasets in the paper's order, then ``keys``; an empty frame as it is."""
    if df.empty:
        return df
    return (
        df.assign(_d=df.dataset.map(dataset_rank))
        .sort_values(["_d", "dataset", *keys])
        .drop(columns="_d")
        .reset_index(drop=True)
    )
