"""The paper's figures from run folders, as PNG + PDF + the plotted values as CSV.

    bayeslora-figures <exp> [--results-dir results] [--split S] [--bins 10]

writes ``<results>/figures/<exp>/``:

* ``figure1.{png,pdf,csv}`` (the paper's Figure 1): test error (1 − acc, %) against NLL of the IVON
  predictive with weights from N(m, τ·v) as τ goes 0 → 1 (record predictives ``<name>_tau<τ>``,
  e.g. ``ivon_tau0.25``), one panel per dataset, the mean over seeds, points colored and annotated
  by τ. From the records only.
* ``figure2.{png,pdf,csv}`` (the paper's Figure 2): validation accuracy during training, one line
  per training run (AdamW, IVON, and any other with a history, named by its validation
  predictive's label), one panel per dataset. From each run's ``history.csv``: ``val/acc`` by step;
  seeds are aligned by step and averaged (``n`` says how many seeds have that step). The paper's
  x axis is wall-clock hours; here it is the training step, because the wall clock of runs made at
  different times on a shared machine is no measure of cost (and would make a rerun's figure
  differ). What a step costs is measured by ``scripts/bench.py`` (``results/bench/``), interleaved
  in one process, and the report's cost claim uses that.
* ``reliability_<dataset>_<model>.{png,pdf,csv}``: reliability diagrams, one panel per table row
  (predictive), from each seed's ``preds.npz``. The seeds' predictions are **pooled** (concatenated
  as if they were more examples of the same split), binned into ``--bins`` equal-width confidence
  bins (lo, hi] as in :mod:`bayeslora.metrics`; bars are each bin's accuracy, the dots its mean
  confidence; the title's ECE is :func:`bayeslora.metrics.classification_metrics` of the pooled set.

A figure whose inputs are absent (no τ grid, no ``history.csv``, no ``preds.npz``) is skipped with a
note; nothing plottable at all is an error. Matplotlib is used without pyplot (Agg canvases), so
importing this module changes no global backend.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from bayeslora.errors import BayesLoraError, FigureError
from bayeslora.results.curves import curves_data, plot_curves, step_means
from bayeslora.results.draw import new_figure, panel_keys, panel_title, save_figure, sorted_by_dataset
from bayeslora.results.layout import DEFAULT_ECE_BINS
from bayeslora.results.outputs import OneLineParser, StagedOutputs, safe_name
from bayeslora.results.reliability import plot_reliability, reliability_data
from bayeslora.results.runs import load_records, no_records
from bayeslora.results.summary import summarize

TAU_RE = re.compile(r"^(?P<base>.+)_tau(?P<tau>\d+(?:\.\d*)?(?:[eE][-+]?\d+)?)$")
FORMATS = ("png", "pdf")


@dataclass
class FigureData:
    """What each figure plots (``name -> DataFrame``), and why the others were skipped."""

    figures: dict[str, pd.DataFrame] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    n_bins: int = DEFAULT_ECE_BINS
    written: list[Path] = field(default_factory=list)


# ------------------------------------------------------------------------------------- the data


def figure1_data(records: list[dict], split: str | None = None) -> pd.DataFrame:
    """Mean over seeds of error (%) and NLL of every ``<name>_tau<τ>`` predictive."""
    cols = ["dataset", "model", "method", "base", "predictive", "label", "tau", "n", "seeds"]
    cols += ["acc", "err", "err_sem", "nll", "nll_sem"]
    s = summarize(records, split, None, all_rows=True)
    if s.empty:
        return pd.DataFrame(columns=cols)
    s = s[s.predictive.str.match(TAU_RE.pattern)]
    rows = []
    for (dataset, model, method, pred), g in s.groupby(["dataset", "model", "method", "predictive"]):
        m = g.set_index("metric")
        match = TAU_RE.match(pred)
        rows.append(
            dict(
                dataset=dataset,
                model=model,
                method=method,
                base=match["base"],
                predictive=pred,
                label=m.label.iloc[0],
                tau=float(match["tau"]),
                n=int(m.loc["acc", "n"]),
                seeds=m.loc["acc", "seeds"],
                acc=float(m.loc["acc", "mean"]),
                err=100.0 * (1.0 - float(m.loc["acc", "mean"])),
                err_sem=100.0 * float(m.loc["acc", "sem"]),
                nll=float(m.loc["nll", "mean"]),
                nll_sem=float(m.loc["nll", "sem"]),
            )
        )
    return sorted_by_dataset(pd.DataFrame(rows, columns=cols), ["model", "method", "base", "tau"])


def figure2_data(records: list[dict]) -> pd.DataFrame:
    """Validation accuracy by training step per (dataset, model, method), mean over seeds."""
    cols = ["dataset", "model", "method", "label", "step", "n", "seeds", "val_acc", "val_acc_sem"]
    df = step_means(records, ["val/acc"]).rename(columns={"mean": "val_acc", "sem": "val_acc_sem"})
    return df[cols]


def compute_figures(
    records: list[dict], split: str | None = None, n_bins: int = DEFAULT_ECE_BINS
) -> FigureData:
    """All figures' plotted values (nothing is drawn or written)."""
    data = FigureData(n_bins=int(n_bins))
    f1 = figure1_data(records, split)
    if len(f1):
        data.figures["figure1"] = f1
    else:
        data.skipped.append("figure1: no τ grid (predictives <name>_tau<τ>, e.g. ivon_tau0.5) in the records")
    f2 = figure2_data(records)
    if len(f2):
        data.figures["figure2"] = f2
    else:
        data.skipped.append("figure2: no history.csv with val/acc in the run folders")
    curves = curves_data(records)
    if len(curves):
        data.figures["curves"] = curves
    else:
        data.skipped.append("curves: no history.csv with train/loss or val/nll in the run folders")
    rel = reliability_data(records, split, n_bins)
    data.figures.update(rel)
    if not rel:
        data.skipped.append("reliability diagrams: no preds.npz in the run folders")
    return data


# ------------------------------------------------------------------------------------- drawing


def plot_figure1(df: pd.DataFrame):
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize
    from matplotlib.ticker import MaxNLocator

    panels = panel_keys(df)
    multi = df.model.nunique() > 1
    fig, axes = new_figure(len(panels))
    norm = Normalize(vmin=min(0.0, df.tau.min()), vmax=max(1.0, df.tau.max()))
    cmap = "viridis"
    for ax, (dataset, model) in zip(axes, panels):
        sel = df[(df.dataset == dataset) & (df.model == model)]
        for (_, base), g in sel.groupby(["method", "base"]):
            g = g.sort_values("tau")
            ax.plot(g.nll, g.err, color="0.6", lw=1, zorder=1)
            ax.scatter(g.nll, g.err, c=g.tau, cmap=cmap, norm=norm, s=40, zorder=2, edgecolors="k", lw=0.5)
            ends = (g.iloc[0], g.iloc[-1]) if len(g) > 1 else (g.iloc[0],)
            for r in ends:  # the colorbar gives the τ of the points in between
                ax.annotate(
                    f"τ={r.tau:g}", (r.nll, r.err), textcoords="offset points", xytext=(4, 4), fontsize=7
                )
            if sel.base.nunique() > 1:
                ax.plot([], [], color="0.6", label=base)
        n = sel.n.min()
        ax.set_title(
            f"{panel_title(dataset, model, multi)} (n={n})" if n > 1 else panel_title(dataset, model, multi)
        )
        ax.set_xlabel("NLL")
        ax.set_ylabel("error (%)")
        ax.xaxis.set_major_locator(MaxNLocator(5))
        ax.grid(alpha=0.3)
    fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=list(axes), label="τ")
    return fig


def plot_figure2(df: pd.DataFrame):
    panels = panel_keys(df)
    multi = df.model.nunique() > 1
    fig, axes = new_figure(len(panels))
    for ax, (dataset, model) in zip(axes, panels):
        sel = df[(df.dataset == dataset) & (df.model == model)]
        for _, g in sel.groupby("method", sort=True):
            g = g.sort_values("step")
            line = ax.plot(g.step, 100 * g.val_acc, marker="o", ms=3, label=g.label.iloc[0])[0]
            sem = g.val_acc_sem.fillna(0)
            if (sem > 0).any():
                ax.fill_between(
                    g.step,
                    100 * (g.val_acc - sem),
                    100 * (g.val_acc + sem),
                    color=line.get_color(),
                    alpha=0.2,
                )
        ax.set_title(panel_title(dataset, model, multi))
        ax.set_xlabel("training step")
        ax.set_ylabel("validation accuracy (%)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return fig


def _plotter(name: str):
    if name == "figure1":
        return plot_figure1
    if name == "figure2":
        return plot_figure2
    if name.startswith("reliability_"):
        return plot_reliability
    if name == "curves":
        return plot_curves
    raise FigureError(f"unknown figure {name!r}")


def render_figures(data: FigureData, out_dir: Path) -> list[Path]:
    """Draw every figure of ``data`` into ``out_dir`` as ``<name>.png``, ``.pdf`` and ``.csv``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, df in data.figures.items():
        fig = _plotter(name)(df)
        for fmt in FORMATS:
            written.append(save_figure(fig, out_dir / f"{name}.{fmt}"))
        path = out_dir / f"{name}.csv"
        df.to_csv(path, index=False)
        written.append(path)
    return written


def make_figures(
    exp: str,
    results_dir: Path = Path("results"),
    split: str | None = None,
    n_bins: int = DEFAULT_ECE_BINS,
    write: bool = True,
) -> FigureData:
    """Compute, draw and (atomically, all at the end) write ``<results>/figures/<exp>/``.

    ``data.written`` lists the files written."""
    if int(n_bins) < 1:
        raise FigureError(f"--bins must be >= 1, got {n_bins}")
    results_dir = Path(results_dir)
    exp_dir = results_dir / "runs" / exp
    records = load_records(exp_dir)
    if not records:
        raise no_records(exp_dir)
    if not any(r.get("status") == "success" for r in records):
        raise FigureError(f"no successful run records (metrics.json) under {exp_dir}")
    data = compute_figures(records, split, n_bins)
    if not data.figures:
        raise FigureError(f"nothing to plot for {exp}: {'; '.join(data.skipped)}")
    out = StagedOutputs(results_dir if write else None)
    try:
        rel = f"figures/{exp}" + (f"_{safe_name(split)}" if split else "")
        render_figures(data, out.add_dir(rel))
        data.written = out.commit()
    finally:
        out.cleanup()
    return data


def main(argv: list[str] | None = None) -> int:
    ap = OneLineParser(prog="bayeslora-figures", description=__doc__.splitlines()[0])
    ap.add_argument("exp", help="experiment name (folder under <results>/runs/)")
    ap.add_argument("--results-dir", default="results")
    ap.add_argument("--split", default=None, help="evaluation split (default: each record's first)")
    ap.add_argument("--bins", type=int, default=DEFAULT_ECE_BINS, help="reliability-diagram bins")
    args = ap.parse_args(argv)
    try:
        data = make_figures(args.exp, Path(args.results_dir), args.split, args.bins)
    except (BayesLoraError, OSError) as e:
        print(f"bayeslora-figures: error: {' '.join(str(e).split())}", file=sys.stderr)
        return 1
    for s in data.skipped:
        print(f"bayeslora-figures: skipped {s}", file=sys.stderr)
    for p in data.written:
        print(f"wrote {p}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
