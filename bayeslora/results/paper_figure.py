"""The report's figure: what compares with the paper at any scale, each row's change from AdamW.

One panel per metric; one point per paper row other than AdamW and per column the run shares with
the paper (:func:`bayeslora.results.paper_table.pattern`), at x = the paper's row − AdamW and
y = ours (displayed units), labelled with the row. The shaded quadrants are "same direction as
the paper" (both changes of one sign); the dotted line is ours = paper. Nothing compares (no
column of the paper's in the run): no figure (:func:`report_figure` returns None).
"""

from __future__ import annotations

import pandas as pd

from bayeslora.results.layout import (
    AVERAGE,
    AVERAGE_LABEL,
    BASELINE,
    DATASET_LABELS,
    METRIC_KEYS,
    metric_info,
)

COLORS = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown", "tab:pink")


def _column(model: str, dataset: str, multi: bool) -> str:
    col = AVERAGE_LABEL if dataset == AVERAGE else DATASET_LABELS.get(dataset, dataset)
    return f"{col} [{model}]" if multi else col


def _limits(values: pd.Series) -> tuple[float, float]:
    """Axis limits that hold every value and 0, with a margin."""
    lo, hi = min(0.0, float(values.min())), max(0.0, float(values.max()))
    pad = 0.12 * (hi - lo) or 1.0
    return lo - pad, hi + pad


def report_figure(rows: pd.DataFrame):
    """The figure of :func:`~bayeslora.results.paper_table.pattern`'s ``rows``, or None when no row
    has both changes."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    if rows is None or rows.empty:
        return None
    changes = rows[(rows.predictive != BASELINE[1]) & rows.ours_change.notna() & rows.paper_change.notna()]
    if changes.empty:
        return None
    metrics = [m for m in METRIC_KEYS if m in set(changes.metric)]
    ncols = min(2, len(metrics))
    nrows = -(-len(metrics) // ncols)
    fig = Figure(figsize=(5.2 * ncols, 4.6 * nrows), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax in axes[len(metrics) :]:
        ax.set_visible(False)
    columns = list(dict.fromkeys(zip(changes.model, changes.dataset)))
    multi = changes.model.nunique() > 1
    for ax, metric in zip(axes, metrics):
        g = changes[changes.metric == metric]
        (x0, x1), (y0, y1) = _limits(g.paper_change), _limits(g.ours_change)
        for quad in ((0, 0, x1, y1), (x0, y0, -x0, -y0)):  # same sign: the paper's direction
            ax.add_patch(Rectangle(quad[:2], quad[2], quad[3], color="tab:green", alpha=0.08, lw=0))
        ax.axhline(0, color="0.5", lw=0.8)
        ax.axvline(0, color="0.5", lw=0.8)
        lo, hi = max(x0, y0), min(x1, y1)
        if lo < hi:
            ax.plot([lo, hi], [lo, hi], ":", color="0.4", lw=1, label="ours = paper")
        for i, (model, dataset) in enumerate(columns):
            h = g[(g.model == model) & (g.dataset == dataset)]
            if h.empty:
                continue
            color = COLORS[i % len(COLORS)]
            ax.scatter(h.paper_change, h.ours_change, s=18, color=color, label=_column(model, dataset, multi))
            for r in h.itertuples(index=False):
                ax.annotate(
                    r.label,
                    (r.paper_change, r.ours_change),
                    xytext=(3, 3),
                    textcoords="offset points",
                    fontsize=7,
                )
        ax.set_xlim(x0, x1)
        ax.set_ylim(y0, y1)
        same = int(g.same_direction.astype(bool).sum())
        ax.set_title(f"{metric_info(metric)[0]}: {same} of {len(g)} in the paper's direction", fontsize=10)
        ax.set_xlabel("paper: row − AdamW")
        ax.set_ylabel("ours: row − AdamW")
        ax.legend(fontsize=7, loc="best")
    fig.suptitle("Each row's change from AdamW, ours against the paper's (shaded: same direction)")
    return fig
