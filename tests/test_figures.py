"""Figures from REAL tiny runs: files exist, and what is plotted equals the records, history.csv and
preds.npz (Figure 1: error/NLL over the τ grid; Figure 2: val acc by step; reliability diagrams)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bayeslora.metrics import classification_metrics, expected_calibration_error
from bayeslora.results import figures as F
from bayeslora.results.aggregate import main as table_main
from bayeslora.results.reliability import reliability_bins

from .conftest import REPO
from .test_aggregate import m, write_record

TAUS = [0.0, 0.25, 0.5, 0.75, 1.0]


def _nonempty(path: Path, magic: bytes) -> None:
    assert path.is_file() and path.stat().st_size > 1000, path
    assert path.read_bytes().startswith(magic), path


def _history(path: Path) -> dict[int, dict[str, float]]:
    out: dict[int, dict[str, float]] = {}
    with path.open(newline="") as fh:
        for row in csv.DictReader(fh):
            out.setdefault(int(row["step"]), {})[row["key"]] = float(row["value"])
    return out


def test_figures_from_real_tiny_runs(compose, tiny_overrides, capsys):
    from bayeslora.runner import run

    run_dirs: dict[str, list[Path]] = {"ivon": [], "adamw": []}
    for method in ("ivon", "adamw"):
        for seed in (21, 42):
            cfg = compose(tiny_overrides + [f"method={method}", "trainer.eval_every=2", f"seed={seed}"])
            assert run(cfg)["status"] == "success"
            run_dirs[method].append(Path(cfg.run_dir))
    res = run_dirs["ivon"][0].parents[5]
    records = {k: [json.loads((d / "metrics.json").read_text()) for d in v] for k, v in run_dirs.items()}

    data = F.make_figures("debug", res)
    out = res / "figures" / "debug"
    names = ["curves", "figure1", "figure2", "reliability_synthetic_tiny"]
    assert sorted(data.figures) == names and data.skipped == []
    for name in names:
        _nonempty(out / f"{name}.png", b"\x89PNG")
        _nonempty(out / f"{name}.pdf", b"%PDF")
        # the CSV next to each figure holds exactly what was plotted
        written = pd.read_csv(out / f"{name}.csv")
        got = data.figures[name]
        assert list(written.columns) == list(got.columns) and len(written) == len(got)
        for col in got.select_dtypes("number").columns:
            np.testing.assert_allclose(written[col].to_numpy(float), got[col].to_numpy(float), rtol=1e-12)

    # the same values draw the same bytes (no creation date in the PDF), so a rerun changes no file
    again = F.render_figures(data, res / "again")
    assert sorted(p.name for p in again) == sorted(f"{n}.{e}" for n in names for e in ("png", "pdf", "csv"))
    for path in again:
        assert path.read_bytes() == (out / path.name).read_bytes(), path.name

    # Figure 1: the τ grid's error (%) and NLL averaged over the two IVON seeds
    f1 = data.figures["figure1"]
    assert list(f1.tau) == TAUS and set(f1.n) == {2}
    for r in f1.itertuples(index=False):
        name = f"ivon_tau{r.tau:g}"
        accs = [rec["metrics"][name]["acc"] for rec in records["ivon"]]
        nlls = [rec["metrics"][name]["nll"] for rec in records["ivon"]]
        assert r.predictive == name and r.label == f"IVON τ={r.tau:g}"
        assert r.err == pytest.approx(100 * (1 - np.mean(accs)), abs=1e-10)
        assert r.nll == pytest.approx(np.mean(nlls), abs=1e-12)
    # τ = 0 is IVON@mean
    r0 = f1[f1.tau == 0].iloc[0]
    assert r0.nll == pytest.approx(np.mean([rec["metrics"]["ivon_mean"]["nll"] for rec in records["ivon"]]))

    # Figure 2: val/acc by step, mean over seeds 21 and 42 (no wall clock: a rerun draws the same)
    f2 = data.figures["figure2"]
    assert set(f2.method) == {"adamw", "ivon"} and set(f2.label) == {
        "AdamW",
        "IVON@mean",
    }  # validation predictive
    for method, dirs in run_dirs.items():
        hist = [_history(d / "history.csv") for d in dirs]
        steps = sorted(s for s in hist[0] if "val/acc" in hist[0][s])
        assert steps == [2, 4]
        sel = f2[f2.method == method].sort_values("step")
        assert list(sel.step) == steps and set(sel.n) == {2} and set(sel.seeds) == {"21 42"}
        for step, r in zip(steps, sel.itertuples(index=False)):
            assert r.val_acc == pytest.approx(np.mean([h[step]["val/acc"] for h in hist]), abs=1e-12)
    assert "hours" not in f2 and "train_s" not in f2

    # curves: training loss and validation NLL / ECE (x100) per step, mean over seeds 21 and 42
    cur = data.figures["curves"]
    assert set(cur.key) == {"train/loss", "val/nll", "val/ece"} and set(cur.n) == {2}
    for method, dirs in run_dirs.items():
        hist = [_history(d / "history.csv") for d in dirs]
        for key, scale in (("train/loss", 1.0), ("val/nll", 1.0), ("val/ece", 100.0)):
            sel = cur[(cur.method == method) & (cur.key == key)].sort_values("step")
            steps = sorted(s for s in hist[0] if key in hist[0][s])
            assert list(sel.step) == steps and steps
            for step, r in zip(steps, sel.itertuples(index=False)):
                vals = [h[step][key] for h in hist]
                assert r.mean == pytest.approx(scale * np.mean(vals), abs=1e-12)
                assert r.sem == pytest.approx(scale * np.std(vals, ddof=1) / np.sqrt(2), abs=1e-12)

    # reliability: seeds pooled; ECE from classification_metrics; bins reproduce it
    rel = data.figures["reliability_synthetic_tiny"]
    table_rows = records["adamw"][0]["table_rows"] + records["ivon"][0]["table_rows"]
    got_rows = list(rel.drop_duplicates(["method", "predictive"]).predictive)
    assert got_rows == table_rows  # paper order: AdamW rows, then IVON@mean, IVON
    for (method, pred), g in rel.groupby(["method", "predictive"]):
        preds = [np.load(d / "preds.npz") for d in run_dirs[method]]
        probs = np.concatenate([p[f"validation/{pred}"] for p in preds])
        labels = np.concatenate([p["validation/labels"] for p in preds])
        ece = classification_metrics(probs, labels, 10)["ece"]
        assert set(g.ece) == {ece} and set(g.n_seeds) == {2} and len(g) == 10
        assert g["count"].sum() == len(labels) == g.n_examples.iloc[0]
        full = g[g["count"] > 0]
        gap = (full["count"] / len(labels) * (full.acc - full.conf).abs()).sum()
        assert gap == pytest.approx(ece, abs=1e-12)

    # the aggregator draws the same figures with --figures, next to its tables
    assert table_main(["debug", "--results-dir", str(res), "--seeds", "21,42", "--figures"]) == 0
    assert "wrote" in capsys.readouterr().err
    for name in names:
        _nonempty(out / f"{name}.png", b"\x89PNG")
    assert (res / "tables" / "debug.tex").is_file()


def test_figure1_from_records_only(tmp_path, capsys):
    res = tmp_path / "results"
    grid = {
        0.0: [(0.70, 0.80), (0.72, 0.78)],
        0.5: [(0.71, 0.70), (0.74, 0.72)],
        1.0: [(0.69, 0.65), (0.70, 0.66)],
    }
    for i, seed in enumerate((21, 42)):
        mets = {"ivon_mean": m(0.7, 0.1, 0.8, 0.4), "ivon": m(0.7, 0.1, 0.7, 0.4)}
        for tau, vals in grid.items():
            acc, nll = vals[i]
            mets[f"ivon_tau{tau:g}"] = m(acc, 0.1, nll, 0.4)
        write_record(res, "arc_c", "ivon", seed, mets, exp="f", table_rows=["ivon_mean", "ivon"])
    assert F.main(["f", "--results-dir", str(res)]) == 0
    err = capsys.readouterr().err
    assert "skipped figure2" in err and "skipped reliability" in err
    out = res / "figures" / "f"
    assert sorted(p.name for p in out.iterdir()) == ["figure1.csv", "figure1.pdf", "figure1.png"]
    f1 = pd.read_csv(out / "figure1.csv")
    assert list(f1.tau) == [0.0, 0.5, 1.0]
    for r in f1.itertuples(index=False):
        (a1, n1), (a2, n2) = grid[r.tau]
        assert r.err == pytest.approx(100 * (1 - (a1 + a2) / 2), abs=1e-10)
        assert r.nll == pytest.approx((n1 + n2) / 2, abs=1e-12)
        assert r.err_sem == pytest.approx(100 * abs(a1 - a2) / 2, abs=1e-10)  # SEM of 2 = |a-b|/2


def test_reliability_bins_reproduce_the_metrics_ece():
    rng = np.random.default_rng(3)
    probs = rng.dirichlet(np.ones(4) * 0.7, size=500)
    probs[:20] = [0.7, 0.1, 0.1, 0.1]  # confidences exactly on bin edges
    probs[20:40] = [0.25, 0.25, 0.25, 0.25]
    labels = rng.integers(0, 4, size=500)
    for n_bins in (10, 15):
        b = reliability_bins(probs, labels, n_bins)
        assert len(b) == n_bins and b["count"].sum() == 500
        full = b[b["count"] > 0]
        gap = (full["count"] / 500 * (full.acc - full.conf).abs()).sum()
        assert gap == pytest.approx(expected_calibration_error(probs, labels, n_bins), abs=1e-12)
    assert b[np.isclose(b.lo, 0.2)]["count"].iloc[0] >= 20  # 0.25 lies in (0.2, 0.2667]


def test_reliability_diagram_has_a_legend_and_bin_counts():
    """Each panel says what its bars, dots and diagonal are (a legend) and how many examples each
    non-empty bin holds (a count per bar)."""
    from bayeslora.results.reliability import plot_reliability

    rng = np.random.default_rng(4)
    parts = []
    for pred, label in (("map", "AdamW"), ("ivon", "IVON")):
        probs = rng.dirichlet(np.ones(4), size=300)
        b = reliability_bins(probs, rng.integers(0, 4, 300), 10)
        meta = dict(
            dataset="arc_e", model="tiny", method=pred, predictive=pred, label=label, ece=0.1, n_seeds=2
        )
        parts.append(b.assign(**meta))
    df = pd.concat(parts, ignore_index=True)
    fig = plot_reliability(df)
    legend = [t.get_text() for lg in fig.legends for t in lg.get_texts()]
    panels = [ax for ax in fig.axes if ax.get_visible()]
    assert len(panels) == 2
    for ax in panels:
        if ax.get_legend() is not None:
            legend += [t.get_text() for t in ax.get_legend().get_texts()]
    assert any("accuracy" in t for t in legend) and any("mean confidence" in t for t in legend), legend
    assert any("perfect calibration" in t for t in legend), legend
    for ax, part in zip(panels, parts):
        counts = [str(c) for c in part["count"] if c > 0]
        assert sorted(t.get_text() for t in ax.texts) == sorted(counts)


def test_figures_cli_bad_input_is_one_line(tmp_path, capsys):
    res = tmp_path / "results"
    assert F.main(["nope", "--results-dir", str(res)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("bayeslora-figures: error: no runs under")
    # records without a τ grid, history.csv or preds.npz: nothing to plot
    write_record(res, "arc_c", "adamw", 21, {"map": m(0.5, 0.1, 0.7, 0.4)}, exp="bare")
    assert F.main(["bare", "--results-dir", str(res)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "nothing to plot" in err[0]
    assert table_main(["bare", "--results-dir", str(res), "--figures"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("bayeslora-table: error: --figures: nothing to plot")
    assert sorted(p.name for p in res.iterdir()) == ["runs"]  # no tables, no figures, no staging left
    # a hash clash stops the figures as well
    write_record(res, "arc_c", "adamw", 42, {"map": m(0.5, 0.1, 0.7, 0.4)}, exp="bare", chash="other")
    assert F.main(["bare", "--results-dir", str(res)]) == 1
    assert "disagree on the config hash" in capsys.readouterr().err


def test_mini_report_from_real_tiny_runs(compose, tiny_overrides):
    """scripts/mini_report.py: the over-fitting check is the records' own history (last tenth of the
    steps), and the compact table holds the aggregator's means."""
    import importlib.util
    import math

    from bayeslora.runner import run

    for method in ("adamw", "ivon"):
        assert (
            run(compose(tiny_overrides + [f"method={method}", "trainer.eval_every=2"]))["status"] == "success"
        )
    cfg = compose(tiny_overrides)
    res = Path(cfg.paths.results_dir)
    assert table_main(["debug", "--results-dir", str(res), "--vs-paper"]) == 0
    spec = importlib.util.spec_from_file_location("mini_report", REPO / "scripts" / "mini_report.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    text = mod.build("debug", res)
    for method in ("adamw", "ivon"):
        d = Path(compose(tiny_overrides + [f"method={method}"]).run_dir)
        rec = json.loads((d / "metrics.json").read_text())
        hist = _history(d / "history.csv")
        tail = [v["train/loss"] for s, v in hist.items() if "train/loss" in v and s > 0.9 * rec["steps"]]
        row = rec["table_rows"][0]
        m = rec["metrics"][row]
        label = rec.get("dataset_label") or rec["dataset"]
        expected = f"| {label} {method} seed {rec['seed']} ({rec['labels'][row]}) | {rec['steps']} | "
        line = next(x for x in text.splitlines() if x.startswith(expected))
        cells = [c.strip() for c in line.split("|")[1:-1]]
        assert float(cells[3]) == pytest.approx(np.mean(tail), abs=5e-4)
        assert cells[4].startswith("yes" if np.mean(tail) <= 0.25 * math.log(4) else "**no**")
        assert float(cells[5]) == pytest.approx(100 * m["acc"], abs=0.05)
        assert f"| {rec['labels'][row]} | 1 | {100 * m['acc']:.1f} | {100 * m['ece']:.1f} |" in text
    assert (
        "## The paper's claims" not in text
        and "| claim | column | verdict | 95 % interval | evidence |" in text
    )
    # no zero-shot run with the Prior row: the floor section says so instead of judging against nothing
    assert "## Which rows beat the Prior?" in text and "No column has a Prior row" in text
    # Figure 1's section only once the figures are drawn, with the τ rows of the IVON record
    assert "## Figure 1" not in text
    assert table_main(["debug", "--results-dir", str(res), "--figures"]) == 0
    text = mod.build("debug", res)
    ivon = json.loads((Path(compose(tiny_overrides + ["method=ivon"]).run_dir) / "metrics.json").read_text())
    acc = 100 * ivon["metrics"]["ivon_tau0.5"]["acc"]
    nll = ivon["metrics"]["ivon_tau0.5"]["nll"]
    assert "## Figure 1: the posterior's temperature" in text
    row = f"| {ivon['dataset_label'] or ivon['dataset']} | {ivon['model']} | ivon | 0.5 | 21 | {acc:.1f} | {nll:.3f} |"
    assert row in text
