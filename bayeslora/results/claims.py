"""The paper's qualitative claims, checked on the reproduced numbers alone, beyond noise.

Every claim, per model and dataset column and for the Average, gets one of four verdicts
(:data:`VERDICTS`) from a 95 % interval of the difference ours − other (display units):

* **holds**: the interval lies on the claimed side ("above": lo > 0; "below": hi < 0;
  "comparable": IVON worse by less than the margin, hi < δ, better counts);
* **contradicted**: it lies on the other side ("above": hi < 0; "below": lo > 0; "comparable":
  lo > δ, IVON worse by more than the margin);
* **within noise**: the interval reaches across 0 (across δ for "comparable");
* **cannot be checked**: a row, a seed's number, an SEM or the margin is missing or NaN (the
  evidence says which).

"Comparable" is a non-inferiority claim with margin δ = :data:`COMPARABLE_MARGIN` (10 %) of the
comparator's value: without a margin, "no difference found" would hold for any run too small to
find one.

The interval comes from the predictions where every seed of both rows kept them (``preds.npz``):
the paired bootstrap over examples plus the between-seed spread; without predictions, the two rows'
between-seed SEMs; the Average: the mean of the columns' differences (the statistics:
:mod:`bayeslora.results.intervals`). docs/results.md states the rule in full. The cost claim is
judged from the bench (:mod:`bayeslora.results.cost`). The floor (which rows beat the Prior row)
is :mod:`bayeslora.results.floor`; its names are re-exported here for older callers.
"""

from __future__ import annotations

import math
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from bayeslora.results.cost import cost_claims
from bayeslora.results.fit import NOT_EVIDENCE, unfit_methods

# the floor's names, re-exported: scripts/mini_report.py and older callers import them from here
from bayeslora.results.floor import (  # noqa: F401
    BEATS,
    FLOOR,
    FLOOR_COLUMNS,
    FLOOR_METRICS,
    FLOOR_VERDICTS,
    WORSE,
    against_floor,
)
from bayeslora.results.intervals import (  # noqa: F401  (the statistics, re-exported for callers)
    ALPHA,
    BOOT_SEED,
    CONTRADICTED,
    HOLDS,
    N_BOOT,
    UNCHECKED,
    VERDICTS,
    WITHIN,
    Estimate,
    average_of,
    between_seed,
    combine_paired,
    judge,
    paired_bootstrap,
    replicates,
    resample_indices,
)
from bayeslora.results.layout import AVERAGE, DEFAULT_ECE_BINS, dataset_rank, fmt, metric_info
from bayeslora.results.paper_table import load_paper_table, ours_display, paper_rows
from bayeslora.results.runs import group_records, metrics_of, run_dir_of
from bayeslora.results.summary import base_rows
from bayeslora.results.tables import column_labels

COMPARABLE_MARGIN = 0.10  # "comparable": IVON worse by less than 10 % of the comparator's value
# how closely preds.npz must reproduce metrics.json before the claims use it (float64 either way)
_RTOL, _ATOL = 1e-9, 1e-12
# fit: "" or NOT_EVIDENCE with why (a row of the claim comes from a run that did not fit: results/fit.py)
COLUMNS = [
    "model",
    "claim",
    "text",
    "column",
    "verdict",
    "interval",
    "evidence",
    "estimate",
    "lo",
    "hi",
    "fit",
]
RULE = (
    "Each claim is judged on the 95 % interval of ours − other (displayed units): **holds** when the "
    "interval lies on the claimed side of 0, **contradicted** when it lies on the other side, "
    "**within noise** when it reaches across 0, **cannot be checked** when a row, a number, an SEM "
    '(one seed) or the margin is missing or NaN. "Comparable" is non-inferiority: holds when IVON '
    f"is worse by less than {100 * COMPARABLE_MARGIN:g} % of the comparator's value (the whole "
    "interval below that margin; better counts), contradicted when the whole interval lies above it. "
    "The interval: a paired bootstrap over the validation examples "
    f"({N_BOOT} replicates, the same resampled examples for every seed and both rows) for the "
    "seed-mean difference, its variance plus the between-seed variance of the per-seed differences "
    "/ S, ± t with Welch–Satterthwaite df; without preds.npz, the two rows' between-seed SEMs "
    "(√(SEM² + SEM²), Welch df). Average: the mean of the columns' differences, variance Σ var / D². "
    "See docs/results.md."
)


@dataclass
class Claim:
    id: str
    text: str
    metric: str
    ours: str  # predictive
    other: str  # predictive
    kind: str  # "above" | "below" | "comparable"


def _claims() -> list[Claim]:
    out = [
        Claim(
            "acc_ivon_mean_above_adamw", "IVON@mean accuracy above AdamW", "acc", "ivon_mean", "map", "above"
        )
    ]
    for m in ("ece", "nll", "brier"):
        t = metric_info(m)[0].split()[0]
        out.append(Claim(f"{m}_ivon_below_adamw", f"IVON {t} below AdamW", m, "ivon", "map", "below"))
        out.append(
            Claim(
                f"{m}_ivon_below_mc_dropout", f"IVON {t} below MC Dropout", m, "ivon", "mc_dropout", "below"
            )
        )
    for m in ("ece", "nll", "brier"):
        t = metric_info(m)[0].split()[0]
        for other, name in (("laplace_kfac", "LA (KFAC)"), ("swag", "SWAG")):
            out.append(
                Claim(
                    f"{m}_ivon_comparable_{other}",
                    f"IVON {t} comparable to {name}",
                    m,
                    "ivon",
                    other,
                    "comparable",
                )
            )
    return out


CLAIMS = _claims()


# ------------------------------------------------------------------------------ records -> estimates


class Unchecked(Exception):
    """A claim that cannot be checked (the message says why), as opposed to predictions that are
    merely unavailable (then the between-seed SEMs are used)."""


class _Runs:
    """The records and predictions behind the rows, loaded once; per column the same resampled
    example indices (:func:`resample_indices`)."""

    def __init__(self, records: list[dict] | None, summary: pd.DataFrame, paper: pd.DataFrame, n_boot: int):
        self.n_boot = n_boot
        self.method = {p: m for p, (m, _) in paper_rows(paper).items()}
        self.groups = group_records(records) if records else {}
        base = base_rows(summary)
        self.split = {
            (r.model, r.dataset, r.method, r.predictive): r.split
            for r in base[["model", "dataset", "method", "predictive", "split"]].itertuples(index=False)
        }
        self._arrays: dict[tuple, np.ndarray] = {}
        self._reps: dict[tuple, tuple] = {}

    def seeds(self, model: str, dataset: str, pred: str) -> dict[int, tuple[dict, str]]:
        """seed -> (record, split) of the records that have the row."""
        method = self.method.get(pred)
        out = {}
        for r in self.groups.get((dataset, model, method), []):
            split = self.split.get((model, dataset, method, pred)) or r.get("eval_split")
            if pred in (metrics_of(r, split) or {}):
                out.setdefault(int(r["seed"]), (r, split))
        return out

    def nan_seeds(self, model: str, dataset: str, pred: str, metric: str) -> list[int]:
        bad = []
        for seed, (r, split) in self.seeds(model, dataset, pred).items():
            try:
                if not math.isfinite(float(metrics_of(r, split)[pred][metric])):
                    bad.append(seed)
            except (TypeError, ValueError, KeyError):
                bad.append(seed)
        return sorted(bad)

    def _array(self, path: Path, key: str) -> np.ndarray:
        if (path, key) not in self._arrays:
            with np.load(path) as z:
                if key not in z.files:
                    raise KeyError(key)
                self._arrays[(path, key)] = np.asarray(z[key], dtype=np.float64)
        return self._arrays[(path, key)]

    def _row(self, rec: dict, split: str, pred: str, metric: str):
        """(labels, full value, replicates) of one seed's row; raises LookupError with the reason."""
        path = run_dir_of(rec) / "preds.npz"
        where = f"{rec['method']} seed {rec['seed']}"
        if not path.is_file():
            raise LookupError(f"no preds.npz for {where}")
        try:
            labels = self._array(path, f"{split}/labels").astype(np.int64)
            probs = self._array(path, f"{split}/{pred}")
        except KeyError as e:
            raise LookupError(f"preds.npz of {where} lacks {e.args[0]!r}") from None
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
            raise LookupError(f"preds.npz of {where} is unreadable ({e})") from None
        bins = _ece_bins(rec)
        key = (path, split, pred, metric, bins)
        if key not in self._reps:
            if not np.isfinite(probs).all():
                raise Unchecked(f"preds.npz of {where} holds NaN or inf {pred} probabilities")
            idx = self.indices(len(labels))
            try:
                self._reps[key] = replicates(probs, labels, metric, idx, bins)
            except ValueError as e:
                raise LookupError(f"preds.npz of {where}: {e}") from None
        full, reps = self._reps[key]
        recorded = float(metrics_of(rec, split)[pred][metric])
        if not np.isclose(full, recorded, rtol=_RTOL, atol=_ATOL):
            raise LookupError(f"preds.npz of {where} does not reproduce its {pred} {metric}")
        return labels, full, reps

    def indices(self, n: int) -> np.ndarray:
        if ("idx", n) not in self._arrays:
            self._arrays[("idx", n)] = resample_indices(n, self.n_boot)
        return self._arrays[("idx", n)]

    def paired(self, model: str, dataset: str, c: Claim) -> tuple[Estimate | None, str]:
        """The paired-bootstrap estimate (raw units), or None and why it cannot be made."""
        a, b = self.seeds(model, dataset, c.ours), self.seeds(model, dataset, c.other)
        if not a or not b:
            return None, "no records"
        common = sorted(set(a) & set(b))
        if len(common) < 2:
            return None, f"{len(common)} seed(s) in common"
        rows_a, rows_b, first = [], [], None
        try:
            for s in common:
                la, *ra = self._row(*a[s], c.ours, c.metric)
                lb, *rb = self._row(*b[s], c.other, c.metric)
                if len(la) != len(lb) or not np.array_equal(la, lb):
                    return None, f"seed {s}'s two rows are not on the same examples"
                if first is not None and not np.array_equal(la, first):
                    return None, f"seed {s} is not on the same examples as seed {common[0]}"
                first = la
                rows_a.append(tuple(ra))
                rows_b.append(tuple(rb))
        except LookupError as e:
            return None, str(e.args[0])
        est = combine_paired(rows_a, rows_b, len(first), self.n_boot)
        if set(common) != set(a) | set(b):  # the table's means are over more seeds than the pairs
            return est, f"paired on seeds {' '.join(map(str, common))} only"
        return est, ""


def _ece_bins(rec: dict) -> int:
    """The ECE bins of a record's metrics: set by ``--recompute``, else its run's config, else the
    default (a wrong guess is caught: the predictions must reproduce the record)."""
    if rec.get("ece_bins"):
        return int(rec["ece_bins"])
    cfg = run_dir_of(rec) / ".hydra" / "config.yaml"
    try:
        bins = (yaml.safe_load(cfg.read_text(encoding="utf-8")) or {}).get("eval", {}).get("ece_bins")
        return int(bins) if bins else DEFAULT_ECE_BINS
    except (OSError, yaml.YAMLError, AttributeError, TypeError, ValueError):
        return DEFAULT_ECE_BINS


def _fmt_interval(lo: float, hi: float, metric: str) -> str:
    if math.isnan(lo) or math.isnan(hi):
        return "–"
    return f"[{fmt(lo, metric, 1, sign=True, scaled=True)}, {fmt(hi, metric, 1, sign=True, scaled=True)}]"


def check_claims(
    summary: pd.DataFrame,
    records: list[dict] | None = None,
    paper: pd.DataFrame | None = None,
    bench: dict | None = None,
    n_boot: int = N_BOOT,
    alpha: float = ALPHA,
) -> pd.DataFrame:
    """Each claim per model and column (datasets, then Average): one of :data:`VERDICTS`, the
    interval of ours − other beside it (display units), the evidence, and ``estimate``/``lo``/``hi``
    as numbers. ``records`` (with ``_path``) lead to each run's ``preds.npz`` for the paired
    bootstrap; without them, or where a seed kept no predictions, the between-seed SEMs.
    ``paper`` names the paper's rows (default: the shipped ``paper_table1.csv``); ``bench`` is the
    bench report the cost claim is judged from (:mod:`bayeslora.results.cost`; None: not checked)."""
    paper = load_paper_table() if paper is None else paper
    ours = ours_display(summary, paper)
    if ours.empty:
        return pd.DataFrame(columns=COLUMNS)
    labels = column_labels(base_rows(summary))
    idx = {(r.model, r.dataset, r.predictive, r.metric): r for r in ours.itertuples(index=False)}
    runs = _Runs(records, summary, paper, n_boot)
    unfit = unfit_methods(records or [])
    rows = []
    for model in sorted(set(ours.model)):
        columns = sorted({d for (mo, d, _, _) in idx if mo == model}, key=lambda d: (dataset_rank(d), d))
        datasets = [d for d in columns if d != AVERAGE]
        for c in CLAIMS:
            found = {d: _estimate(idx, runs, model, d, c) for d in datasets}
            for d in columns:
                if d == AVERAGE:
                    est, why = _average(idx, model, datasets, c, found, labels)
                else:
                    est, why = found[d]
                fit = _fit_mark(unfit, runs.method, model, datasets if d == AVERAGE else [d], c, labels)
                rows.append([model, c.id, c.text, labels.get(d, d), *_row(c, est, why, alpha), fit])
    for model, cid, text, col, verdict, evidence in cost_claims(records or [], bench):
        rows.append([model, cid, text, col, verdict, "– (one bench ratio)", evidence, *[math.nan] * 3, ""])
    return pd.DataFrame(rows, columns=COLUMNS)


def _fit_mark(unfit: dict, method_of: dict, model: str, datasets: list[str], c: Claim, labels: dict) -> str:
    """NOT_EVIDENCE and why, when a row of the claim in these columns comes from a run that did not fit."""
    why = []
    for pred in (c.ours, c.other):
        method = method_of.get(pred)
        for d in datasets:
            if (model, d, method) in unfit:
                where = f" on {labels.get(d, d)}" if len(datasets) > 1 else ""
                why.append(f"{method}{where}: {unfit[(model, d, method)]}")
    return f"{NOT_EVIDENCE} ({'; '.join(dict.fromkeys(why))})" if why else ""


def _estimate(idx: dict, runs: _Runs, model: str, d: str, c: Claim) -> tuple[Estimate | None, str]:
    """(estimate in display units, note), or (None, why it cannot be checked)."""
    a, b = idx.get((model, d, c.ours, c.metric)), idx.get((model, d, c.other, c.metric))
    if a is None or b is None:
        return None, "no " + " and ".join(p for p, r in ((c.ours, a), (c.other, b)) if r is None)
    for pred, r in ((c.ours, a), (c.other, b)):
        bad = runs.nan_seeds(model, d, pred, c.metric)
        if bad or math.isnan(r.ours):
            seeds = f" (seed {' '.join(map(str, bad))})" if bad else ""
            return None, f"{pred} {c.metric} is NaN{seeds}"
    scale = metric_info(c.metric)[1]
    try:
        est, why = runs.paired(model, d, c)
    except Unchecked as e:
        return None, str(e)
    if est is not None:
        return est.scaled(scale), why
    lacking = [
        f"{p} ({r.n} seed{'s' if r.n != 1 else ''})"
        for p, r in ((c.ours, a), (c.other, b))
        if not r.ours_sem >= 0
    ]
    if lacking:
        return None, f"no SEM of {' and '.join(lacking)}; no paired predictions ({why})"
    est = between_seed(a.ours, a.ours_sem, int(a.n), b.ours, b.ours_sem, int(b.n))
    return est, f"no paired predictions: {why}"


def _average(idx, model, datasets, c, found, labels) -> tuple[Estimate | None, str]:
    lacking = [p for p in (c.ours, c.other) if (model, AVERAGE, p, c.metric) not in idx]
    if lacking:
        return None, "no " + " and ".join(lacking)
    bad = [f"{labels.get(d, d)}: {found[d][1]}" for d in datasets if found[d][0] is None]
    if bad:
        return None, "; ".join(bad)
    notes = sorted({found[d][1] for d in datasets if found[d][1]})
    return average_of([found[d][0] for d in datasets]), "; ".join(notes)


def _row(c: Claim, est: Estimate | None, note: str, alpha: float) -> list:
    """[verdict, interval, evidence, estimate, lo, hi] of one claim in one column."""
    if est is None:
        return [UNCHECKED, "–", note, math.nan, math.nan, math.nan]
    m = c.metric
    lo, hi = est.interval(alpha)
    margin = COMPARABLE_MARGIN * abs(est.other) if c.kind == "comparable" else math.nan
    verdict = judge(c.kind, m, lo, hi, margin)
    f = lambda x, sign=False: fmt(x, m, 1, sign=sign, scaled=True)  # noqa: E731
    ev = f"{f(est.ours)} vs {f(est.other)}, diff {f(est.diff, True)}; {est.basis}: SE {f(est.se)}"
    ev += ", df ∞" if math.isinf(est.df) else ", df > 100" if est.df > 100 else f", df {est.df:.1f}"
    if c.kind == "comparable":
        ev += f"; margin {f(margin, True)} ({100 * COMPARABLE_MARGIN:g} % of {f(est.other)})"
    if note:
        ev += f"; {note}"
    if verdict == UNCHECKED:
        ev = f"NaN interval: {ev}"
    return [verdict, _fmt_interval(lo, hi, m), ev, est.diff, lo, hi]
