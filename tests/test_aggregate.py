"""The aggregator: hand-written records with known values -> exact means, SEMs, Averages, changes vs
AdamW, seed markers; Markdown/LaTeX/CSV parse back to the same numbers; recompute from a real run;
post-hoc ensembles; W&B offline/disabled; every bad input is one error line and no output files."""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bayeslora.metrics import classification_metrics
from bayeslora.results import aggregate as A
from bayeslora.results import layout as L
from bayeslora.results import runs as R
from bayeslora.results import summary as S
from bayeslora.results import tables as T
from bayeslora.results.aggregate import AggregationError, main

LABELS = {
    "map": "AdamW",
    "swag": "+ SWAG",
    "ivon_mean": "IVON@mean",
    "ivon": "IVON",
    "ivon_tau0": "IVON τ=0",
    "ivon_tau1": "IVON τ=1",
    "blob": "BLoB",
    "ensemble": "Ensemble",
    "swa": "+ SWA",
    "laplace_diag": "+ LA (diag)",
    "laplace_kfac": "+ LA (KFAC)",
    "mc_dropout": "+ MC Drop",
}
TABLE_ROWS = {"adamw": ["map", "swag"], "ivon": ["ivon_mean", "ivon"], "blob": ["blob"]}
SEEDS = [21, 42, 87]


def write_record(
    results: Path,
    dataset: str,
    method: str,
    seed: int,
    metrics: dict[str, dict[str, float]],
    exp: str = "t1",
    model: str = "tiny",
    chash: str | None = None,
    status: str = "success",
    provenance: dict | None = None,
    splits: dict | None = None,
    folder: str | None = None,
    table_rows: list[str] | None = None,
    **fields,
) -> Path:
    """A metrics.json following the RunRecord schema, at the runner's place (``fields`` added)."""
    run_dir = results / "runs" / exp / dataset / model / method / (folder or f"seed={seed}")
    run_dir.mkdir(parents=True, exist_ok=True)
    rec = {
        "status": status,
        "exp_name": exp,
        "dataset": dataset,
        "model": model,
        "method": method,
        "seed": seed,
        "config_hash": chash or f"{dataset}-{method}",
        "metrics": metrics,
        "splits": splits or {"validation": metrics},
        "eval_split": "validation",
        "labels": {p: LABELS.get(p, p) for p in metrics},
        "table_rows": table_rows
        if table_rows is not None
        else [p for p in metrics if p in TABLE_ROWS.get(method, list(metrics))],
        "predictive_info": {},
        "n_train": 10,
        "n_eval": {"validation": 100},
        "steps": 4,
        "error": None if status == "success" else "RuntimeError: boom",
        "traceback": None,
        "provenance": provenance or {"git_commit": "abc", "git_dirty": False},
        "schema_version": 1,
        **fields,
    }
    path = run_dir / "metrics.json"
    path.write_text(json.dumps(rec), encoding="utf-8")
    return path


def m(acc, ece, nll, brier):
    return {"acc": acc, "ece": ece, "nll": nll, "brier": brier}


# Known values: per (dataset, method, predictive) one list per metric over seeds 21, 42, 87.
ACC = {
    ("winogrande_s", "map"): [0.70, 0.72, 0.74],
    ("winogrande_s", "swag"): [0.71, 0.71, 0.74],
    ("winogrande_s", "ivon_mean"): [0.73, 0.75, 0.74],
    ("winogrande_s", "ivon"): [0.74, 0.76, 0.75],
    ("arc_c", "map"): [0.50, 0.54, 0.52],
    ("arc_c", "swag"): [0.51, 0.53, 0.55],
    ("arc_c", "ivon_mean"): [0.55, 0.56],  # seed 87 of IVON on ARC-C is missing
    ("arc_c", "ivon"): [0.56, 0.58],
}


def value(dataset, pred, metric, i):
    """A distinct, known value for every (dataset, predictive, metric, seed index)."""
    acc = ACC[(dataset, pred)][i]
    return {"acc": acc, "ece": 0.2 - acc / 5, "nll": 1.5 - acc, "brier": 0.9 - acc / 2}[metric]


def expected(dataset, pred, metric):
    vals = [value(dataset, pred, metric, i) for i in range(len(ACC[(dataset, pred)]))]
    n = len(vals)
    mean = sum(vals) / n
    sem = math.sqrt(sum((v - mean) ** 2 for v in vals) / (n - 1)) / math.sqrt(n)
    return n, mean, sem


@pytest.fixture
def results(tmp_path):
    """Two datasets × (AdamW: map, swag; IVON: ivon_mean, ivon + a τ grid) × 3 seeds, IVON ARC-C
    lacking seed 87, one failed run, and a post-hoc ensemble record on WG-S."""
    res = tmp_path / "results"
    for dataset in ("winogrande_s", "arc_c"):
        for method, preds in (("adamw", ["map", "swag"]), ("ivon", ["ivon_mean", "ivon"])):
            for i, seed in enumerate(SEEDS):
                if i >= len(ACC[(dataset, preds[0])]):
                    continue
                mets = {p: {k: value(dataset, p, k, i) for k in L.METRIC_KEYS} for p in preds}
                if method == "ivon":
                    mets["ivon_tau0"] = dict(mets["ivon_mean"])
                    mets["ivon_tau1"] = dict(mets["ivon"])
                write_record(res, dataset, method, seed, mets)
    write_record(res, "arc_c", "ivon", 87, {}, status="failed", folder="seed=87")
    write_record(
        res,
        "winogrande_s",
        "adamw_posthoc_ensemble",
        21,
        {"ensemble": m(0.78, 0.03, 0.55, 0.33)},
        provenance={"member_seeds": SEEDS},
        folder="seed=21+42+87",
    )
    return res


def summary_row(df, dataset, pred, metric):
    sel = df[(df.dataset == dataset) & (df.predictive == pred) & (df.metric == metric)]
    assert len(sel) == 1, (dataset, pred, metric, len(sel))
    return sel.iloc[0]


def test_mean_and_sem_are_exact(results):
    recs = R.load_records(results / "runs" / "t1")
    df = S.summarize(recs, expected_seeds=SEEDS)
    # the brief's example, by hand: 0.70, 0.72, 0.74 -> mean 0.72, std 0.02, SEM 0.02 / sqrt(3)
    r = summary_row(df, "winogrande_s", "map", "acc")
    assert r.n == 3 and r["mean"] == pytest.approx(0.72, abs=1e-12)
    assert r["sem"] == pytest.approx(0.02 / math.sqrt(3), abs=1e-12)
    for (dataset, pred), _ in ACC.items():
        for metric in L.METRIC_KEYS:
            n, mean, sem = expected(dataset, pred, metric)
            r = summary_row(df, dataset, pred, metric)
            assert r.n == n
            assert r["mean"] == pytest.approx(mean, abs=1e-12)
            assert r["sem"] == pytest.approx(sem, abs=1e-12)
    # the τ grid is not a table row unless asked for
    assert not df.predictive.str.startswith("ivon_tau").any()
    assert S.summarize(recs, all_rows=True).predictive.str.startswith("ivon_tau").any()


def test_missing_seeds_and_posthoc_ensemble_cover(results):
    recs = R.load_records(results / "runs" / "t1")
    df = S.summarize(recs, expected_seeds=SEEDS)
    assert summary_row(df, "arc_c", "ivon", "acc").missing_seeds == "87"
    assert summary_row(df, "arc_c", "map", "acc").missing_seeds == ""
    ens = summary_row(df, "winogrande_s", "ensemble", "acc")
    assert ens.n == 1 and ens.missing_seeds == "" and math.isnan(ens["sem"])
    # a 4th seed is flagged as well
    write_record(results, "arc_c", "adamw", 99, {p: m(0.5, 0.1, 1.0, 0.6) for p in ("map", "swag")})
    df = S.summarize(R.load_records(results / "runs" / "t1"), expected_seeds=SEEDS)
    assert summary_row(df, "arc_c", "map", "acc").extra_seeds == "99"
    md = T.markdown_table(df)
    assert "(n=4)" in md and "unexpected seeds for arc_c/tiny/adamw: 99" in md


def test_average_and_change_vs_adamw(results):
    recs = R.load_records(results / "runs" / "t1")
    long = S.long_table(S.summarize(recs, expected_seeds=SEEDS))
    datasets = ("winogrande_s", "arc_c")
    for pred in ("map", "swag", "ivon_mean", "ivon"):
        for metric in L.METRIC_KEYS:
            stats = [expected(d, pred, metric) for d in datasets]
            r = summary_row(long, "average", pred, metric)
            assert r["mean"] == pytest.approx(sum(s[1] for s in stats) / 2, abs=1e-12)
            assert r["sem"] == pytest.approx(math.sqrt(sum(s[2] ** 2 for s in stats)) / 2, abs=1e-12)
    for pred in ("ivon_mean", "ivon"):
        for metric in L.METRIC_KEYS:
            key = f"delta_vs_adamw/{metric}"
            for d in datasets:
                want = expected(d, pred, metric)[1] - expected(d, "map", metric)[1]
                assert summary_row(long, d, pred, key)["mean"] == pytest.approx(want, abs=1e-12)
            want = sum(expected(d, pred, metric)[1] - expected(d, "map", metric)[1] for d in datasets) / 2
            assert summary_row(long, "average", pred, key)["mean"] == pytest.approx(want, abs=1e-12)
    # the accuracy change is in points as printed: IVON on WG-S 0.75 vs AdamW 0.72 -> +3.00
    md = T.markdown_table(long)
    row = next(line for line in md.splitlines() if line.startswith("| ACC ↑: IVON |"))
    assert row.split("|")[2].strip() == "+3.0"
    # only IVON rows get a change; the ensemble row has only WG-S, so no Average and a note
    assert not long[long.metric.str.startswith("delta")].predictive.isin(["map", "swag", "ensemble"]).any()
    assert not ((long.dataset == "average") & (long.predictive == "ensemble")).any()
    assert "no Average for Ensemble: it lacks ARC-C" in md


def test_hash_clash_is_an_error_never_averaged(results, capsys):
    write_record(results, "arc_c", "adamw", 87, {"map": m(0.1, 0.1, 0.1, 0.1)}, chash="other")
    with pytest.raises(AggregationError, match="disagree on the config hash"):
        S.summarize(R.load_records(results / "runs" / "t1"))
    assert main(["t1", "--results-dir", str(results)]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("bayeslora-table: error: arc_c/tiny/adamw: seeds disagree")
    assert not (results / "tables").exists()
    assert not list(results.glob(".bayeslora-staging-*"))


def test_hash_clash_in_a_middle_seed_is_caught(tmp_path):
    """Three seeds where only the middle one (first and last in every order) has another hash: every
    seed is compared, not only the first and the last."""
    res = tmp_path / "results"
    for seed in SEEDS:
        chash = "other" if seed == 42 else None
        write_record(res, "arc_c", "adamw", seed, {"map": m(0.7, 0.1, 0.6, 0.3)}, chash=chash)
    recs = R.load_records(res / "runs" / "t1")
    assert [r["seed"] for r in recs] == SEEDS
    for order in (recs, recs[::-1]):
        with pytest.raises(AggregationError, match="disagree on the config hash"):
            R.group_records(order)
    assert main(["t1", "--results-dir", str(res)]) != 0
    assert not (res / "tables").exists()


# ---------------------------------------------------------------------- outputs parse back


def shown(x: float, scale: float, dec: int) -> float:
    """The number as a table prints it (Python's correctly rounded formatting)."""
    return float(f"{float(x) * scale:.{dec}f}")


def parse_markdown(md: str) -> dict[tuple[str, str, str], tuple[float, float | None, int | None]]:
    """(block title, row name, column) -> (mean, sem, n marker) of every cell."""
    cells = {}
    for block in md.strip().split("\n\n"):
        lines = [ln for ln in block.splitlines() if ln.startswith("|")]
        if not lines:
            continue
        header = [c.strip() for c in lines[0].strip("|").split("|")]
        for line in lines[2:]:
            row = [c.strip() for c in line.strip("|").split("|")]
            for col, text in zip(header[1:], row[1:]):
                if text == "–":
                    continue
                mt = re.fullmatch(r"([-+]?\d+\.\d+)(?: ± (\d+\.\d+))?(?: \(n=(\d+)\))?", text)
                assert mt, text
                cells[(header[0], row[0], col)] = (
                    float(mt[1]),
                    None if mt[2] is None else float(mt[2]),
                    None if mt[3] is None else int(mt[3]),
                )
    return cells


def parse_latex(tex: str) -> dict[tuple[str, str, str], tuple[float, float | None, int | None]]:
    cells, block, header = {}, None, None
    for line in tex.splitlines():
        if not line.endswith("\\\\"):
            continue
        parts = [p.strip() for p in line[:-2].split(" & ")]
        if len(parts) == 1:  # \multicolumn{..}{l}{\textit{<metric title>}}
            block = re.search(r"\\textit\{(.*)\}\}$", parts[0])[1]
            continue
        if parts[0] in ("Method", "$\\Delta$ vs AdamW"):
            header, block = parts, (None if parts[0] == "Method" else "delta")
            continue
        name = parts[0]
        for col, text in zip(header[1:], parts[1:]):
            if text == "--":
                continue
            mt = re.fullmatch(
                r"\$([-+]?\d+\.\d+)(?:_\{\\pm (\d+\.\d+)\})?\$(?:\\textsuperscript\{n=(\d+)\})?", text
            )
            assert mt, text
            key = (block, name, col)
            cells[key] = (
                float(mt[1]),
                None if mt[2] is None else float(mt[2]),
                None if mt[3] is None else int(mt[3]),
            )
    return cells


def test_outputs_parse_back_to_the_same_numbers(results, capsys):
    assert main(["t1", "--results-dir", str(results)]) == 0
    out = capsys.readouterr()
    tables = results / "tables"
    assert sorted(p.name for p in tables.iterdir()) == ["t1.csv", "t1.md", "t1.tex"]
    md = (tables / "t1.md").read_text()
    assert out.out.strip() == md.strip()
    tex = (tables / "t1.tex").read_text()
    text_cols = ("seeds", "missing_seeds", "extra_seeds", "config_hash", "split", "experiment")
    csv = pd.read_csv(tables / "t1.csv", dtype={c: str for c in text_cols})
    csv = csv.fillna({c: "" for c in text_cols})
    md_cells, tex_cells = parse_markdown(md), parse_latex(tex)
    titles = {k: (t, s, dec) for k, t, s, dec in L.METRICS}
    tex_title = {k: T.tex_escape(t) for k, t, *_ in L.METRICS}
    cols = {"winogrande_s": "WG-S", "arc_c": "ARC-C", "average": "Average"}
    n_checked = 0
    for (dataset, pred), _ in ACC.items():
        for metric in L.METRIC_KEYS:
            n, mean, sem = expected(dataset, pred, metric)
            title, scale, dec = titles[metric]
            marker = n if n != 3 else None
            want = (shown(mean, scale, dec), shown(sem, scale, dec), marker)
            assert md_cells[(title, LABELS[pred], cols[dataset])] == pytest.approx(want)
            assert tex_cells[(tex_title[metric], T.tex_escape(LABELS[pred]), cols[dataset])] == pytest.approx(
                want
            )
            r = summary_row(csv, dataset, pred, metric)
            assert (r.n, r["mean"], r["sem"]) == (
                n,
                pytest.approx(mean, abs=1e-12),
                pytest.approx(sem, abs=1e-12),
            )
            assert r.missing_seeds == ("87" if n == 2 else "") and r.experiment == "t1"
            n_checked += 1
    assert n_checked == 32
    # Average and the change vs AdamW in all three outputs
    for pred in ("ivon_mean", "ivon"):
        for metric in L.METRIC_KEYS:
            title, scale, dec = titles[metric]
            avg = summary_row(csv, "average", pred, metric)
            assert md_cells[(title, LABELS[pred], "Average")][:2] == pytest.approx(
                (shown(avg["mean"], scale, dec), shown(avg["sem"], scale, dec))
            )
            for dataset in ("winogrande_s", "arc_c", "average"):
                d = summary_row(csv, dataset, pred, f"delta_vs_adamw/{metric}")["mean"]
                ref = summary_row(csv, dataset, "map", metric)["mean"]
                assert d == pytest.approx(summary_row(csv, dataset, pred, metric)["mean"] - ref, abs=1e-12)
                want = shown(d, scale, dec)
                md_key = ("Δ vs AdamW", f"{title}: {LABELS[pred]}", cols[dataset])
                assert md_cells[md_key][0] == pytest.approx(want)
                key = ("delta", f"{tex_title[metric]}: {LABELS[pred]}", cols[dataset])
                assert tex_cells[key][0] == pytest.approx(want)
    # booktabs and the layout
    assert "\\toprule" in tex and "\\midrule" in tex and "\\bottomrule" in tex
    assert "$72.0_{\\pm 1.2}$" in tex  # AdamW WG-S accuracy: 72 ± 100·0.02/√3 (paper precision)
    assert "- missing seeds for arc_c/tiny/ivon: 87" in md
    assert "- failed: " in md and "RuntimeError: boom" in md


def test_rows_and_columns_in_paper_order(tmp_path):
    res = tmp_path / "results"
    preds = {
        "blob": ["blob"],
        "ivon": ["ivon", "ivon_mean"],
        "adamw": ["swag", "swa", "laplace_diag", "laplace_kfac", "mc_dropout", "map"],
        "ensemble": ["ensemble"],
        "zzz": ["other"],
    }
    for dataset in ("boolq", "obqa", "winogrande_m", "arc_e", "arc_c", "winogrande_s"):
        for method, ps in preds.items():
            write_record(res, dataset, method, 21, {p: m(0.5, 0.1, 0.7, 0.4) for p in ps}, table_rows=ps)
    md = T.markdown_table(S.summarize(R.load_records(res / "runs" / "t1")))
    first = md.split("\n\n")[0].splitlines()
    assert first[0] == "| ACC ↑ | WG-S | ARC-C | ARC-E | WG-M | OBQA | BoolQ | Average |"
    names = [line.split("|")[1].strip() for line in first[2:]]
    assert names == [
        "AdamW",
        "+ MC Drop",
        "+ LA (KFAC)",
        "+ LA (diag)",
        "+ SWA",
        "+ SWAG",
        "IVON@mean",
        "IVON",
        "Ensemble",
        "BLoB",
        "other",
    ]


def test_rows_follow_the_records_ranks_and_labels(tmp_path):
    """A new method's rows need no edit in the results side: the record's ``ranks`` place them and
    its ``labels`` name them; a record without ``ranks`` keeps the old order."""
    res = tmp_path / "results"
    values = m(0.5, 0.1, 0.7, 0.4)
    for seed in SEEDS:
        write_record(
            res, "arc_e", "adamw", seed, {"map": values, "swag": values}, ranks={"map": 10, "swag": 60}
        )
        write_record(
            res,
            "arc_e",
            "newm",
            seed,
            {"new_view": values, "new_extra": values},
            ranks={"new_view": 15, "new_extra": 200},
            labels={"new_view": "+ New view", "new_extra": "New extra"},
        )
        write_record(res, "arc_e", "ivon", seed, {"ivon_mean": values, "ivon": values})  # no ranks
    summary = S.summarize(R.load_records(res / "runs" / "t1"))
    first = T.markdown_table(summary).split("\n\n")[0].splitlines()
    names = [line.split("|")[1].strip() for line in first[2:]]
    assert names == ["AdamW", "+ New view", "+ SWAG", "IVON@mean", "IVON", "New extra"]
    ranks = summary.drop_duplicates("predictive").set_index("predictive")["rank"].to_dict()
    assert ranks == {"map": 10, "swag": 60, "new_view": 15, "new_extra": 200, "ivon_mean": 70, "ivon": 80}
    # the long table (and its CSV) follows the same order
    long = S.long_table(summary)
    assert list(dict.fromkeys(long.predictive)) == [
        "map",
        "new_view",
        "swag",
        "ivon_mean",
        "ivon",
        "new_extra",
    ]


def test_split_option(results):
    res = results
    shifted = {p: m(0.9, 0.01, 0.2, 0.1) for p in ("map", "swag")}
    write_record(
        res,
        "obqa",
        "adamw",
        21,
        {p: m(0.5, 0.1, 0.7, 0.4) for p in ("map", "swag")},
        exp="ood",
        splits={
            "validation": {p: m(0.5, 0.1, 0.7, 0.4) for p in ("map", "swag")},
            "arc_c:validation": shifted,
        },
    )
    long = A.aggregate("ood", res, split="arc_c:validation", expected_seeds=[21]).long
    assert summary_row(long, "obqa", "map", "acc")["mean"] == 0.9
    assert set(long.split) == {"arc_c:validation"}
    assert (res / "tables" / "ood_arc_c-validation.md").is_file()
    with pytest.raises(AggregationError, match="no record has split 'nope'"):
        A.aggregate("ood", res, split="nope")


# ------------------------------------------------------------------- preds.npz: recompute, ensembles


def test_recompute_from_a_real_tiny_run(compose, tiny_overrides, capsys):
    from bayeslora.runner import run

    cfg = compose(tiny_overrides)
    run(cfg)
    run_dir = Path(cfg.run_dir)
    res = run_dir.parents[5]
    preds = np.load(run_dir / "preds.npz")
    rec = json.loads((run_dir / "metrics.json").read_text())
    t = A.aggregate("debug", res, expected_seeds=[21], recompute=True, ece_bins=15)
    for pred in rec["table_rows"]:
        want = classification_metrics(preds[f"validation/{pred}"], preds["validation/labels"], 15)
        for metric, v in want.items():
            r = summary_row(t.long, "synthetic", pred, metric)
            assert r["mean"] == v and r.n == 1
    assert "ECE with 15 bins" in t.md
    assert (res / "tables" / "debug_ece15.csv").is_file() and not (res / "tables" / "debug.csv").exists()
    # with 10 bins it reproduces the record (float32 probabilities on disk)
    t10 = A.aggregate("debug", res, recompute=True, write=False)
    for metric, v in rec["metrics"]["map"].items():
        assert summary_row(t10.long, "synthetic", "map", metric)["mean"] == pytest.approx(v, abs=1e-6)
    # a run without preds.npz: one clear error, nothing written
    (run_dir / "preds.npz").unlink()
    before = sorted(p.name for p in (res / "tables").iterdir())
    assert main(["debug", "--results-dir", str(res), "--recompute", "--ece-bins", "15", "--figures"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no preds.npz to recompute" in err[0]
    assert sorted(p.name for p in (res / "tables").iterdir()) == before
    assert not (res / "figures").exists()


def _fake_preds(run_dir: Path, probs: np.ndarray, labels: np.ndarray) -> None:
    np.savez_compressed(
        run_dir / "preds.npz", **{"validation/map": probs.astype(np.float32), "validation/labels": labels}
    )


def test_posthoc_ensemble_flag(tmp_path):
    res = tmp_path / "results"
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, size=40)
    members = []
    for seed in SEEDS:
        probs = rng.dirichlet(np.ones(3), size=40).astype(np.float32)
        members.append(probs)
        path = write_record(res, "arc_c", "adamw", seed, {"map": classification_metrics(probs, labels)})
        _fake_preds(path.parent, probs, labels)
    # one IVON seed only, and a lone adamw seed on another dataset: no ensemble there
    write_record(res, "obqa", "adamw", 21, {"map": m(0.5, 0.1, 0.7, 0.4)})
    t = A.aggregate("t1", res, expected_seeds=SEEDS, posthoc_ensemble=True)
    ens = t.long[(t.long.method == "adamw_posthoc_ensemble") & (t.long.dataset != "average")]
    assert set(ens.dataset) == {"arc_c"}
    want = classification_metrics(np.stack(members).astype(np.float64), labels)
    for metric, v in want.items():
        r = summary_row(ens, "arc_c", "ensemble", metric)
        assert r["mean"] == pytest.approx(v, abs=1e-12) and r.n == 1 and r.missing_seeds == ""
    out = res / "runs/t1/arc_c/tiny/adamw_posthoc_ensemble/seed=21+42+87"
    assert (out / "metrics.json").is_file() and (out / "preds.npz").is_file()
    # running it again replaces the ensemble instead of averaging it with itself
    t2 = A.aggregate("t1", res, expected_seeds=SEEDS, posthoc_ensemble=True)
    assert summary_row(t2.long, "arc_c", "ensemble", "acc").n == 1
    # --no-write builds it in memory only
    res2 = tmp_path / "r2"
    for seed in SEEDS[:2]:
        path = write_record(res2, "arc_c", "adamw", seed, {"map": m(0.5, 0.1, 0.7, 0.4)})
        _fake_preds(path.parent, members[0], labels)
    t3 = A.aggregate("t1", res2, posthoc_ensemble=True, write=False)
    assert summary_row(t3.long, "arc_c", "ensemble", "acc").n == 1
    assert (
        not (res2 / "runs/t1/arc_c/tiny/adamw_posthoc_ensemble").exists() and not (res2 / "tables").exists()
    )
    assert sorted(p.name for p in res2.iterdir()) == ["runs"]


def test_a_new_seed_supersedes_the_smaller_posthoc_ensemble(tmp_path):
    # Seeds land one at a time: the rebuild after seed 87 must not average the 21+42 ensemble with the
    # 21+42+87 one (two "seeds" of the ensemble row); the older folder is the aggregator's own output
    # and goes.
    res = tmp_path / "results"
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 3, size=40)
    members = {s: rng.dirichlet(np.ones(3), size=40).astype(np.float32) for s in SEEDS}
    for seed in SEEDS[:2]:
        path = write_record(
            res, "arc_c", "adamw", seed, {"map": classification_metrics(members[seed], labels)}
        )
        _fake_preds(path.parent, members[seed], labels)
    A.aggregate("t1", res, posthoc_ensemble=True)
    ens_dir = res / "runs/t1/arc_c/tiny/adamw_posthoc_ensemble"
    assert sorted(p.name for p in ens_dir.iterdir()) == ["seed=21+42"]
    path = write_record(res, "arc_c", "adamw", 87, {"map": classification_metrics(members[87], labels)})
    _fake_preds(path.parent, members[87], labels)
    t = A.aggregate("t1", res, expected_seeds=SEEDS, posthoc_ensemble=True)
    want = classification_metrics(np.stack(list(members.values())).astype(np.float64), labels)
    r = summary_row(t.long, "arc_c", "ensemble", "nll")
    assert r.n == 1 and r["mean"] == pytest.approx(want["nll"], abs=1e-12)
    assert sorted(p.name for p in ens_dir.iterdir()) == ["seed=21+42+87"]
    # --no-write leaves the older folder where it is
    for seed in SEEDS[:2]:
        (res / f"runs/t1/arc_c/tiny/adamw/seed={seed}").rename(tmp_path / f"keep{seed}")
    # (with one adamw seed left there is no ensemble to rebuild, and nothing is removed)
    t2 = A.aggregate("t1", res, posthoc_ensemble=True, write=False)
    assert sorted(p.name for p in ens_dir.iterdir()) == ["seed=21+42+87"]
    assert summary_row(t2.long, "arc_c", "ensemble", "nll").n == 1


# ------------------------------------------------------------------------------- W&B, bad input


@pytest.mark.parametrize("mode", ["disabled", "offline"])
def test_wandb_upload(results, monkeypatch, tmp_path, mode):
    monkeypatch.setenv("WANDB_MODE", mode)
    assert main(["t1", "--results-dir", str(results), "--wandb", "--wandb-project", "bayeslora-test"]) == 0
    assert (results / "tables" / "t1.md").is_file()
    if mode == "offline":
        runs = list((tmp_path / "wandb").rglob("offline-run-*"))
        assert runs, "an offline W&B run directory is written"
        blob = b"".join(p.read_bytes() for p in runs[0].glob("*.wandb"))
        assert b"t1-tables" in blob and b"t1.md" in blob


def test_cli_bad_input_is_one_line(results, tmp_path, capsys):
    for argv, msg in (
        (["nope", "--results-dir", str(results)], "no runs under"),
        (["t1", "--results-dir", str(results), "--seeds", "21,x"], "--seeds must be"),
        (["t1", "--results-dir", str(results), "--ece-bins", "0"], "--ece-bins must be >= 1"),
        (["t1", "--results-dir", str(results), "--split", "nope"], "no record has split"),
        (["t1", "--results-dir", str(results), "--recompute"], "no preds.npz"),
    ):
        assert main(argv) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("bayeslora-table: error: ") and msg in err[0], err
    with pytest.raises(SystemExit) as e:
        main(["t1", "--bogus"])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("bayeslora-table: error: unrecognized arguments")
    (tmp_path / "results/runs/empty").mkdir(parents=True)
    assert main(["empty", "--results-dir", str(results)]) == 1
    assert "no run records" in capsys.readouterr().err
    bad = results / "runs/t1/arc_c/tiny/adamw/seed=21/metrics.json"
    bad.write_text("{not json")
    assert main(["t1", "--results-dir", str(results)]) == 1
    assert "not valid JSON" in capsys.readouterr().err
    assert not (results / "tables").exists()


# what makes the runs of an experiment, as the no-runs error names it
MAKES = {
    "demo": "run `make demo` first",
    "mini": "run `make mini` first",
    "table1": "run `make reproduce` first",
    "qwen": "run `python -m bayeslora.train -m experiment=qwen` first",
    "ood": "run `python -m bayeslora.train -m experiment=ood` first",
    "mine": "run `python -m bayeslora.train exp_name=mine ...` first",
}


@pytest.mark.parametrize("exp", sorted(MAKES))
def test_no_runs_names_the_command_that_makes_them(tmp_path, capsys, exp):
    """A results command on a fresh clone (no results/runs/<exp>, or an empty one) says in one line
    which command makes the runs, and exits non-zero; nothing is written."""
    from bayeslora.results.figures import main as figures_main

    res = tmp_path / "results"
    for argv in ([exp], [exp, "--vs-paper", "--no-tables"]):
        assert main([*argv, "--results-dir", str(res)]) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert err == [f"bayeslora-table: error: no runs under {res / 'runs' / exp}: {MAKES[exp]}"]
    assert figures_main([exp, "--results-dir", str(res)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"bayeslora-figures: error: no runs under {res / 'runs' / exp}: {MAKES[exp]}"]
    (res / "runs" / exp).mkdir(parents=True)  # a folder without records reads the same
    assert main([exp, "--results-dir", str(res)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].endswith(f"(no metrics.json): {MAKES[exp]}"), err
    assert sorted(p.name for p in res.iterdir()) == ["runs"]


@pytest.mark.slow
@pytest.mark.parametrize("target", ["table", "compare", "figures", "bare table"])
def test_make_results_targets_on_a_fresh_clone(tmp_path, target):
    """``make table|compare|figures EXP=demo`` and bare ``make table`` (EXP defaults to demo) on a
    results folder without runs: the command's one error line says to run ``make demo``; exit 2
    (make's for a failed recipe)."""
    res = tmp_path / "results"
    args = ["make", "-s", "-C", str(Path(__file__).resolve().parents[1]), target.split()[-1]]
    args += [f"RESULTS={res}", f"PYTHON={sys.executable}"] + (
        [] if target.startswith("bare") else ["EXP=demo"]
    )
    out = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert out.returncode != 0
    err = [line for line in out.stderr.splitlines() if not line.startswith("make")]
    assert len(err) == 1 and err[0].endswith(f"no runs under {res}/runs/demo: run `make demo` first"), (
        out.stderr
    )
    assert out.stdout == "" and not res.exists()


@pytest.mark.slow
def test_cli_subprocess_hash_clash_and_missing_exp(results):
    write_record(results, "arc_c", "adamw", 87, {"map": m(0.1, 0.1, 0.1, 0.1)}, chash="other")
    env = dict(os.environ, WANDB_MODE="disabled")
    for exp in ("t1", "missing"):
        out = subprocess.run(
            [sys.executable, "-m", "bayeslora.results.aggregate", exp, "--results-dir", str(results)],
            capture_output=True,
            text=True,
            timeout=120,
            env=env,
        )
        assert out.returncode != 0
        lines = out.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("bayeslora-table: error: "), out.stderr
        assert out.stdout == ""
    assert not (results / "tables").exists()
