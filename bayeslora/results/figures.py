"""The paper's figures from run folders, as PNG + PDF + the plotted values as CSV.

    bayeslora-figures <exp> [--results-dir results] [--split S] [--bins 10]

writes ``<results>/figures/<exp>/``:

* ``figure1.{png,pdf,csv}`` (the paper's Figure 1): test error (1 − acc, %) against NLL of the IVON
  predictive with weights from N(m, τ·v) as τ goes 0 → 1 (record predictives ``<name>_tau<τ>``,
  e.g. ``ivon_tau0.25``), one panel per dataset, the mean over seeds, points colored and annotated
  by τ. From the records only.
* ``figure2.{png,pdf,csv}`` (the paper's Figure 2): validation accuracy against wall-clock hours of
  training, one line per method (AdamW, IVON, and any other with a history), one panel per dataset.
  From each run's ``history.csv``: ``val/acc`` against ``time/train_s`` of the same step; seeds are
  aligned by step and averaged (``n`` says how many seeds have that step).
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

import math
import re
import sys
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from bayeslora import metrics as M
from bayeslora.errors import BayesLoraError
from bayeslora.results.layout import (
    DATASET_LABELS,
    DATASET_ORDER,
    DEFAULT_ECE_BINS,
    POSTHOC_SUFFIX,
    PREDICTIVE_ORDER,
)
from bayeslora.results.outputs import OneLineParser, StagedOutputs, safe_name
from bayeslora.results.runs import group_records, load_records, run_dir_of
from bayeslora.results.summary import summarize

TAU_RE = re.compile(r"^(?P<base>.+)_tau(?P<tau>\d+(?:\.\d*)?(?:[eE][-+]?\d+)?)$")
METHOD_LABELS = {"adamw": "AdamW", "ivon": "IVON", "ensemble": "Ensemble", "blob": "BLoB"}
FORMATS = ("png", "pdf")


class FigureError(BayesLoraError):
    pass


@dataclass
class FigureData:
    """What each figure plots (``name -> DataFrame``), and why the others were skipped."""

    figures: dict[str, pd.DataFrame] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    n_bins: int = DEFAULT_ECE_BINS
    written: list[Path] = field(default_factory=list)


def _sem(x: pd.Series) -> float:
    x = x.astype(float)
    return float(x.std(ddof=1) / math.sqrt(len(x))) if len(x) > 1 else float("nan")


def _dataset_rank(d: str) -> tuple[int, str]:
    return (DATASET_ORDER.index(d) if d in DATASET_ORDER else len(DATASET_ORDER), d)


def _panels(df: pd.DataFrame) -> list[tuple[str, str]]:
    keys = df[["dataset", "model"]].drop_duplicates().itertuples(index=False, name=None)
    return sorted(keys, key=lambda k: (_dataset_rank(k[0]), k[1]))


def _panel_title(dataset: str, model: str, multi_model: bool) -> str:
    name = DATASET_LABELS.get(dataset, dataset)
    return f"{name} [{model}]" if multi_model else name


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
    df = pd.DataFrame(rows, columns=cols)
    if df.empty:
        return df
    df["_d"] = df.dataset.map(_dataset_rank)
    return df.sort_values(["_d", "model", "method", "base", "tau"]).drop(columns="_d").reset_index(drop=True)


def history_table(path: Path, keys: list[str]) -> pd.DataFrame:
    """``history.csv`` (step, key, value) -> one row per step (``step`` + one column per key of ``keys``
    the file has; the last value of a key at a step wins)."""
    try:
        h = pd.read_csv(path)
    except (OSError, ValueError, pd.errors.ParserError) as e:
        raise FigureError(f"{path}: unreadable ({e})") from None
    if not {"step", "key", "value"} <= set(h.columns):
        raise FigureError(f"{path}: expected columns step,key,value, got {','.join(map(str, h.columns))}")
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
        history_table(run_dir_of(r) / "history.csv", keys).assign(seed=r["seed"])
        for r in records
        if (run_dir_of(r) / "history.csv").is_file()
    ]
    return pd.concat(per_seed, ignore_index=True) if per_seed else None


def read_history(path: Path) -> pd.DataFrame:
    """``history.csv`` -> one row per step with ``val/acc`` and ``time/train_s``."""
    wide = history_table(path, ["val/acc", "time/train_s"])
    if "val/acc" not in wide or "time/train_s" not in wide:
        return pd.DataFrame(columns=["step", "train_s", "val_acc"])
    wide = wide.dropna(subset=["val/acc", "time/train_s"])
    return pd.DataFrame({"step": wide.step, "train_s": wide["time/train_s"], "val_acc": wide["val/acc"]})


def figure2_data(records: list[dict]) -> pd.DataFrame:
    """Validation accuracy vs wall-clock hours per (dataset, model, method), mean over seeds by step."""
    cols = ["dataset", "model", "method", "label", "step", "n", "seeds", "hours", "val_acc", "val_acc_sem"]
    rows = []
    for (dataset, model, method), recs in group_records(records).items():
        per_seed = []
        for r in recs:
            path = run_dir_of(r) / "history.csv"
            if not path.is_file():
                continue
            h = read_history(path)
            if len(h):
                per_seed.append(h.assign(seed=r["seed"]))
        if not per_seed:
            continue
        h = pd.concat(per_seed, ignore_index=True)
        for step, g in h.groupby("step", sort=True):
            rows.append(
                dict(
                    dataset=dataset,
                    model=model,
                    method=method,
                    label=METHOD_LABELS.get(method, method),
                    step=int(step),
                    n=len(g),
                    seeds=" ".join(map(str, sorted(g.seed))),
                    hours=float(g.train_s.mean()) / 3600.0,
                    val_acc=float(g.val_acc.mean()),
                    val_acc_sem=_sem(g.val_acc),
                )
            )
    df = pd.DataFrame(rows, columns=cols)
    if df.empty:
        return df
    df["_d"] = df.dataset.map(_dataset_rank)
    return df.sort_values(["_d", "model", "method", "step"]).drop(columns="_d").reset_index(drop=True)


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
    keys = s[["dataset", "model", "method", "predictive", "label"]].drop_duplicates()
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
        order = PREDICTIVE_ORDER.index(k.predictive) if k.predictive in PREDICTIVE_ORDER else 99
        bins.insert(0, "order", order)
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
        data.skipped.append("figure2: no history.csv with val/acc and time/train_s in the run folders")
    from bayeslora.results.curves import curves_data

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


def _new_figure(n_panels: int, width: float = 4.0, height: float = 3.4):
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


def plot_figure1(df: pd.DataFrame):
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize
    from matplotlib.ticker import MaxNLocator

    panels = _panels(df)
    multi = df.model.nunique() > 1
    fig, axes = _new_figure(len(panels))
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
            f"{_panel_title(dataset, model, multi)} (n={n})" if n > 1 else _panel_title(dataset, model, multi)
        )
        ax.set_xlabel("NLL")
        ax.set_ylabel("error (%)")
        ax.xaxis.set_major_locator(MaxNLocator(5))
        ax.grid(alpha=0.3)
    fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=list(axes), label="τ")
    return fig


def plot_figure2(df: pd.DataFrame):
    panels = _panels(df)
    multi = df.model.nunique() > 1
    fig, axes = _new_figure(len(panels))
    for ax, (dataset, model) in zip(axes, panels):
        sel = df[(df.dataset == dataset) & (df.model == model)]
        for _, g in sel.groupby("method", sort=True):
            g = g.sort_values("step")
            line = ax.plot(g.hours, 100 * g.val_acc, marker="o", ms=3, label=g.label.iloc[0])[0]
            sem = g.val_acc_sem.fillna(0)
            if (sem > 0).any():
                ax.fill_between(
                    g.hours,
                    100 * (g.val_acc - sem),
                    100 * (g.val_acc + sem),
                    color=line.get_color(),
                    alpha=0.2,
                )
        ax.set_title(_panel_title(dataset, model, multi))
        ax.set_xlabel("wall-clock training time (hours)")
        ax.ticklabel_format(axis="x", style="sci", scilimits=(-2, 4))
        ax.set_ylabel("validation accuracy (%)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return fig


def plot_reliability(df: pd.DataFrame):
    keys = df[["method", "predictive", "label", "ece", "n_seeds"]].drop_duplicates(["method", "predictive"])
    fig, axes = _new_figure(len(keys), width=3.2, height=3.2)
    for ax, k in zip(axes, keys.itertuples(index=False)):
        b = df[(df.method == k.method) & (df.predictive == k.predictive)]
        width = float((b.hi - b.lo).iloc[0])
        full = b[b["count"] > 0]
        ax.bar(full.lo + width / 2, full.acc, width=width, edgecolor="k", lw=0.5, color="tab:blue", alpha=0.7)
        ax.plot(full.lo + width / 2, full.conf, "o", color="tab:red", ms=3, label="mean confidence")
        ax.plot([0, 1], [0, 1], "--", color="0.4", lw=1)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_aspect("equal")
        ax.set_xlabel("confidence")
        ax.set_ylabel("accuracy")
        seeds = f", {k.n_seeds} seeds pooled" if k.n_seeds > 1 else ""
        ax.set_title(f"{k.label}\nECE {100 * k.ece:.2f} %{seeds}", fontsize=9)
    dataset, model = df.dataset.iloc[0], df.model.iloc[0]
    fig.suptitle(f"{DATASET_LABELS.get(dataset, dataset)} [{model}]: reliability")
    return fig


def _plotter(name: str):
    if name == "figure1":
        return plot_figure1
    if name == "figure2":
        return plot_figure2
    if name.startswith("reliability_"):
        return plot_reliability
    if name == "curves":
        from bayeslora.results.curves import plot_curves

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
            path = out_dir / f"{name}.{fmt}"
            fig.savefig(path, dpi=150)
            written.append(path)
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
