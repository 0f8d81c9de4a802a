"""The paper beside the reproduction: the shipped Table 1 data, cell-by-cell comparison, the claims,
and one table cell computed by hand."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bayeslora.results import claims as C
from bayeslora.results import paper as P
from bayeslora.results import paper_table as PT
from bayeslora.results.aggregate import main
from bayeslora.results.layout import DATASET_ORDER, METRIC_KEYS, metric_info
from bayeslora.results.runs import load_records
from bayeslora.results.summary import averages, summarize
from bayeslora.results.tables import markdown_table

from .conftest import REPO
from .test_aggregate import write_record

SEEDS = [21, 42, 87]
# A made-up Table 1 for the tests only (display units), shaped like the paper's and satisfying its
# claims: IVON@mean more accurate than AdamW, IVON better calibrated than AdamW and MC Dropout and
# close to LA (KFAC) and SWAG. NOT the paper's numbers (bayeslora/results/paper_table1.csv holds those).
BASE = {"acc": 70.0, "ece": 20.0, "nll": 1.20, "brier": 0.40}
SHIFT = {  # per row, added to BASE (ACC) or subtracted (the others)
    "map": 0.0,
    "mc_dropout": 0.3,
    "laplace_kfac": 4.0,
    "laplace_diag": 3.0,
    "swa": 1.0,
    "swag": 3.8,
    "ivon_mean": 3.0,
    "ivon": 4.1,
}
SEM = {"acc": 0.6, "ece": 0.5, "nll": 0.03, "brier": 0.01}
# the paper's eight rows: predictive -> (training method, printed label), as paper_table1.csv has them
PAPER_ROWS = PT.paper_rows(PT.load_paper_table())


def fixture_paper() -> pd.DataFrame:
    rows = []
    for pred, (method, label) in PAPER_ROWS.items():
        for i, d in enumerate(DATASET_ORDER):
            for m in METRIC_KEYS:
                step = SHIFT[pred] * (1 if m == "acc" else (1 if m == "ece" else 0.02))
                mean = BASE[m] + i + step if m == "acc" else BASE[m] + 0.01 * i - step
                rows.append([pred, method, label, d, m, round(mean, 2), SEM[m], "test fixture"])
    df = pd.DataFrame(rows, columns=PT.PAPER_COLUMNS)
    avg = (
        df.groupby(["predictive", "method", "label", "metric"], sort=False)
        .agg(mean=("mean", "mean"))
        .reset_index()
    )
    avg = avg.assign(
        dataset="average", sem=avg.metric.map(lambda m: SEM[m] / math.sqrt(6)), source="test fixture"
    )
    return pd.concat([df, avg[PT.PAPER_COLUMNS]], ignore_index=True)


def records_equal_to(
    paper: pd.DataFrame, res: Path, perturb: dict | None = None, model: str = "llama2_7b"
) -> None:
    """Three seeds per (dataset, method) whose mean and SEM equal the paper's (display -> raw units);
    ``perturb`` maps (predictive, dataset, metric) to a shift of every seed's value (display units).
    The model is the paper's unless ``model`` says otherwise (only its cells are judged)."""
    perturb = perturb or {}
    for d in DATASET_ORDER:
        for method in ("adamw", "ivon"):
            preds = [p for p, (m, _) in PAPER_ROWS.items() if m == method]
            for k, seed in enumerate(SEEDS):
                metrics = {}
                for p in preds:
                    metrics[p] = {}
                    for m in METRIC_KEYS:
                        row = paper[
                            (paper.predictive == p) & (paper.dataset == d) & (paper.metric == m)
                        ].iloc[0]
                        scale = metric_info(m)[1]
                        dev = (k - 1) * row["sem"] * math.sqrt(3)  # seeds m-d, m, m+d: SEM = d/√3
                        metrics[p][m] = (row["mean"] + dev + perturb.get((p, d, m), 0.0)) / scale
                write_record(res, d, method, seed, metrics, table_rows=preds, model=model)


def test_shipped_table_has_every_cell_and_cites_the_paper():
    paper = PT.load_paper_table()
    assert len(paper) == 8 * 7 * 4 == 224
    assert set(paper.dataset) == {*DATASET_ORDER, "average"}
    assert PAPER_ROWS == {
        "map": ("adamw", "AdamW"),
        "mc_dropout": ("adamw", "+ MC Drop"),
        "laplace_kfac": ("adamw", "+ LA (KFAC)"),
        "laplace_diag": ("adamw", "+ LA (diag)"),
        "swa": ("adamw", "+ SWA"),
        "swag": ("adamw", "+ SWAG"),
        "ivon_mean": ("ivon", "IVON@mean"),
        "ivon": ("ivon", "IVON"),
    }
    assert list(PAPER_ROWS) == list(dict.fromkeys(paper.predictive))  # in the paper's order
    assert set(paper.metric) == set(METRIC_KEYS)
    assert not paper.duplicated(["predictive", "dataset", "metric"]).any()
    assert "arXiv:2411.04421v1 Table 1" in PT.PAPER_CSV.read_text()
    # every cell typed in, citing the paper; a SEM everywhere but in the Average column
    assert paper["mean"].notna().all()
    assert (paper.source == "arXiv:2411.04421v1 Table 1").all()
    per_dataset = paper.dataset != "average"
    assert paper["sem"][per_dataset].notna().all() and paper["sem"][~per_dataset].isna().all()
    # the parenthesised change is printed for the IVON rows only, in every column
    ivon = paper.predictive.isin(["ivon_mean", "ivon"])
    assert paper["change"][ivon].notna().all() and paper["change"][~ivon].isna().all()
    # a few cells read by hand (the extracted text runs mean and SEM together)
    cell = paper.set_index(["predictive", "dataset", "metric"])
    assert tuple(cell.loc[("map", "winogrande_s", "acc"), ["mean", "sem"]]) == (66.5, 0.4)
    assert tuple(cell.loc[("laplace_kfac", "winogrande_s", "ece"), ["mean", "sem"]]) == (5.2, 2.0)
    assert tuple(cell.loc[("ivon_mean", "boolq", "ece"), ["mean", "sem", "change"]]) == (5.6, 0.1, -2.0)
    assert tuple(cell.loc[("ivon", "winogrande_m", "nll"), ["mean", "sem", "change"]]) == (2.16, 0.01, 0.13)
    # the abstract's headline numbers are IVON@mean's Average changes
    assert cell.loc[("ivon_mean", "average", "acc"), "change"] == 2.8
    assert cell.loc[("ivon_mean", "average", "ece"), "change"] == -4.6


def test_shipped_averages_are_the_mean_of_their_rows():
    """Within the rounding of the printed numbers: half a unit of the Average + at most half a unit
    of rounding in the mean of six rounded means. One cell of the paper fails this (IVON@mean's
    Brier: printed 0.40, its six cells average to 0.38; the paper's change, -0.05, matches the
    printed 0.40, so it is not a typing slip here) and is named, so a new mismatch still fails."""
    paper = PT.load_paper_table()
    bad = set()
    for (pred, metric), g in paper.groupby(["predictive", "metric"]):
        derived = g[g.dataset != "average"]["mean"].mean()
        printed = g[g.dataset == "average"]["mean"].iloc[0]
        if abs(derived - printed) > 2 * PT.half_unit(metric) + 1e-9:
            bad.add((pred, metric, round(derived, 4), printed))
    assert bad == {("ivon_mean", "brier", 0.38, 0.40)}
    found = PT.paper_average_mismatches(paper)
    assert list(zip(found.predictive, found.metric)) == [("ivon_mean", "brier")]


def test_shipped_changes_are_ivon_minus_adamw():
    """Within rounding: the change and the two means are each printed rounded (three half units)."""
    paper = PT.load_paper_table()
    adamw = paper[paper.predictive == "map"].set_index(["dataset", "metric"])["mean"]
    ivon = paper[paper["change"].notna()]
    assert len(ivon) == 2 * 7 * 4
    for r in ivon.itertuples(index=False):
        derived = r.mean - adamw[(r.dataset, r.metric)]
        assert abs(derived - r.change) <= 3 * PT.half_unit(r.metric) + 1e-9, r
    assert PT.paper_change_mismatches(paper).empty
    typo = paper.copy()
    i = typo.index[(typo.predictive == "ivon") & (typo.dataset == "obqa") & (typo.metric == "nll")][0]
    typo.loc[i, "change"] = -1.10  # printed -1.00 (0.54 - 1.54)
    bad = PT.paper_change_mismatches(typo)
    assert list(zip(bad.predictive, bad.dataset, bad.metric)) == [("ivon", "obqa", "nll")]


def test_report_names_the_papers_inconsistent_cell(tmp_path):
    md = P.report_markdown("t", *(pd.DataFrame(),) * 3, PT.load_paper_table())
    assert "224 of 224 cells typed in" in md and "not in this package yet" not in md
    assert "IVON@mean, Brier ↓: the Average is printed as 0.40" in md and "average to 0.380" in md


def test_paper_averages_check_catches_a_typo():
    paper = fixture_paper()
    assert PT.paper_average_mismatches(paper).empty
    typo = paper.copy()
    i = typo.index[(typo.predictive == "swa") & (typo.dataset == "arc_e") & (typo.metric == "acc")][0]
    typo.loc[i, "mean"] += 1.0  # shifts the derived Average by 0.17 > one printed unit
    bad = PT.paper_average_mismatches(typo)
    assert list(zip(bad.predictive, bad.metric)) == [("swa", "acc")]


def test_records_equal_to_the_paper_agree_and_no_claim_is_contradicted(tmp_path):
    paper = fixture_paper()
    res = tmp_path / "results"
    records_equal_to(paper, res)
    recs = load_records(res / "runs" / "t1")
    cells, lacking, claims = P.build_report(recs, summarize(recs, expected_seeds=SEEDS), paper)
    assert len(cells) == 8 * 7 * 4 and lacking.empty
    assert cells.within_noise.astype(bool).all()
    assert (cells.basis == "t").all()
    assert cells["diff"].abs().max() < 0.01  # the Average agrees within the rounding of the fixture
    # Welch–Satterthwaite: two equal SEMs of 3 seeds each -> df = 4; an Average: 12 equal parts -> 24
    assert np.allclose(cells.df[cells.dataset != "average"], 4.0)
    assert np.allclose(cells.df[cells.dataset == "average"], 24.0)
    value = claims[claims.claim != "cost_ivon_step_time"]
    assert len(value) == len(C.CLAIMS) * 7 and set(value.verdict) == {"holds", "within noise"}
    # three seeds a side (no preds.npz: between-seed SEMs, df 4, ±2.78 combined SEMs): per column the
    # NLL gains (0.08 ± 0.04) and the comparable claims' 10 % margins are within noise; the Average
    # (six columns) resolves every claim
    per = value[value.column != "Average"]
    weak = per.claim.str.startswith("nll_ivon_below") | per.claim.str.contains("comparable")
    assert (per[weak].verdict == "within noise").all() and (per[~weak].verdict == "holds").all()
    assert (value[value.column == "Average"].verdict == "holds").all()
    # no history.csv: the cost claim is listed and cannot be checked
    assert set(claims[claims.claim == "cost_ivon_step_time"].verdict) == {"cannot be checked"}


def test_perturbed_records_flag_exactly_the_perturbed_cells_and_claims(tmp_path):
    paper = fixture_paper()
    res = tmp_path / "results"
    # IVON@mean accuracy on WG-S 30 points lower: that cell and the Average (-5 points) move
    records_equal_to(paper, res, {("ivon_mean", "winogrande_s", "acc"): -30.0})
    recs = load_records(res / "runs" / "t1")
    cells, _, claims = P.build_report(recs, summarize(recs, expected_seeds=SEEDS), paper)
    flagged = cells[~cells.within_noise.astype(bool)]
    assert set(zip(flagged.predictive, flagged.dataset, flagged.metric)) == {
        ("ivon_mean", "winogrande_s", "acc"),
        ("ivon_mean", "average", "acc"),
    }
    failing = claims[claims.verdict == "contradicted"]
    assert set(zip(failing.claim, failing.column)) == {
        ("acc_ivon_mean_above_adamw", "WG-S"),
        ("acc_ivon_mean_above_adamw", "Average"),
    }


def test_comparable_is_contradicted_beyond_its_margin(tmp_path):
    paper = fixture_paper()
    res = tmp_path / "results"
    # IVON's NLL on OBQA well above SWAG's (+0.5): not comparable, and no longer below AdamW/MC Drop
    records_equal_to(paper, res, {("ivon", "obqa", "nll"): 0.5})
    recs = load_records(res / "runs" / "t1")
    claims = C.check_claims(summarize(recs, expected_seeds=SEEDS), recs)
    failing = claims[(claims.verdict == "contradicted") & (claims.column == "OBQA")]
    assert set(failing.claim) == {
        "nll_ivon_below_adamw",
        "nll_ivon_below_mc_dropout",
        "nll_ivon_comparable_laplace_kfac",
        "nll_ivon_comparable_swag",
    }


def _bench(model: str, adamw_s: float, ivon_s: float) -> dict:
    """A bench report shaped like scripts/bench.py's results/bench/bench.json."""
    training = {"adamw": {"median_s": adamw_s}, "ivon": {"median_s": ivon_s}}
    return {
        "machine": "x86_64, 2 threads",
        "args": {"steps": 15, "repeat": 3},
        "models": {model: {"training": training}},
    }


def test_cost_claim_from_the_bench_never_from_run_wall_clocks(tmp_path, capsys):
    res = tmp_path / "results"
    m = {"acc": 0.7, "ece": 0.05, "nll": 0.6, "brier": 0.3}
    # the runs' histories say IVON steps took 3x AdamW's (e.g. run while the machine was loaded)
    for method, preds, step_s in (("adamw", ["map"], 0.30), ("ivon", ["ivon"], 0.90)):
        for seed in SEEDS:
            path = write_record(res, "winogrande_s", method, seed, {p: m for p in preds}, table_rows=preds)
            rows = ["step,key,value"] + [f"{s},time/train_s,{s * step_s}" for s in (10, 20, 30)]
            (path.parent / "history.csv").write_text("\n".join(rows) + "\n")
    recs = load_records(res / "runs" / "t1")
    s = summarize(recs)

    def cost(bench):
        claims = C.check_claims(s, recs, bench=bench)
        return claims[claims.claim == "cost_ivon_step_time"].iloc[0]

    # no bench of this model: cannot be checked, and the wall clocks are not used
    row = cost(None)
    assert row.verdict == "cannot be checked" and row.column == "WG-S"
    assert "no bench of tiny" in row.evidence and "×" not in row.evidence
    assert cost(_bench("smollm2_135m", 1.0, 1.0)).verdict == "cannot be checked"  # another model's
    # the bench's interleaved ratio decides: 1.03 holds, 1.40 does not (threshold 1.25)
    row = cost(_bench("tiny", 0.0062, 0.0064))
    assert row.verdict == "holds" and row.evidence.startswith("×1.03 per training step on tiny")
    assert "median of 15 steps × 3 repeats, interleaved in one process; x86_64, 2 threads" in row.evidence
    assert cost(_bench("tiny", 1.0, 1.4)).verdict == "contradicted"
    # a model added later (bench.py --merge) is described by its own conditions, not the report's
    merged = _bench("tiny", 0.0062, 0.0064)
    merged["models"]["tiny"]["conditions"] = {
        "machine": "x86_64, 1 threads",
        "steps": 20,
        "repeat": 3,
        "dataset": "arc_e",
    }
    assert (
        "median of 20 steps × 3 repeats, interleaved in one process; x86_64, 1 threads, on arc_e batches"
        in (cost(merged).evidence)
    )

    # the command reads <results>/bench/bench.json
    (res / "bench").mkdir()
    (res / "bench" / "bench.json").write_text(json.dumps(_bench("tiny", 0.0062, 0.0064)))
    assert main(["t1", "--results-dir", str(res), "--vs-paper", "--no-tables"]) == 0
    md = (res / "reports" / "t1_vs_paper.md").read_text()
    assert (
        "| IVON training step at most 1.25× AdamW's (bench) | WG-S | holds | – (one bench ratio) "
        "| ×1.03 per training step" in md
    )
    (res / "bench" / "bench.json").write_text("{not json")
    capsys.readouterr()
    assert main(["t1", "--results-dir", str(res), "--vs-paper", "--no-tables"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "bench.json: unreadable" in err[0]


def test_run_without_the_papers_datasets_still_reports(tmp_path):
    res = tmp_path / "results"
    m = {"acc": 0.7, "ece": 0.05, "nll": 0.6, "brier": 0.3}
    for seed in SEEDS:
        write_record(
            res, "synthetic", "adamw", seed, {"map": m, "mc_dropout": m}, table_rows=["map", "mc_dropout"]
        )
        write_record(
            res, "synthetic", "ivon", seed, {"ivon_mean": m, "ivon": m}, table_rows=["ivon_mean", "ivon"]
        )
    assert main(["t1", "--results-dir", str(res), "--vs-paper"]) == 0
    md = (res / "reports" / "t1_vs_paper.md").read_text()
    assert "No comparable cells" in md
    assert "## The paper's claims on the reproduced numbers" in md
    # equal on every seed is not above
    assert "| IVON@mean accuracy above AdamW | synthetic | within noise | [+0.00, +0.00] |" in md
    assert "IVON ECE comparable to SWAG | synthetic | cannot be checked | – | no swag" in md
    csv = pd.read_csv(res / "reports" / "t1_vs_paper.csv")
    assert {"lacking", "claim"} <= set(csv.kind)
    assert not (res / "reports" / "t1_vs_paper.png").exists()  # nothing compares: no empty figure


def test_compare_leaves_the_tables_alone(tmp_path):
    """``--vs-paper --no-tables`` (make compare) writes the report and nothing under tables/; the
    report is the same bytes when written again from the same records."""
    res = tmp_path / "results"
    m = {"acc": 0.7, "ece": 0.05, "nll": 0.6, "brier": 0.3}
    for seed in SEEDS:
        write_record(res, "arc_e", "adamw", seed, {"map": m}, table_rows=["map"])
    assert main(["t1", "--results-dir", str(res), "--vs-paper", "--no-tables"]) == 0
    assert not (res / "tables").exists()
    first = {p.name: p.read_bytes() for p in (res / "reports").iterdir()}
    assert sorted(first) == ["t1_vs_paper.csv", "t1_vs_paper.md"]  # AdamW alone: no change to plot
    assert main(["t1", "--results-dir", str(res), "--vs-paper", "--no-tables"]) == 0
    assert {p.name: p.read_bytes() for p in (res / "reports").iterdir()} == first


def test_one_table_cell_by_hand(tmp_path):
    """ece = 0.0523 on every seed -> 5.2 in the ECE ×100 block (paper precision), 5.23 with one
    extra digit; accuracy 0.7125 -> 71.2 (round half to even of 71.25 is 71.2)."""
    res = tmp_path / "results"
    for seed in SEEDS:
        write_record(
            res,
            "winogrande_s",
            "adamw",
            seed,
            {"map": {"acc": 0.7125, "ece": 0.0523, "nll": 0.6, "brier": 0.3}},
        )
    s = summarize(load_records(res / "runs" / "t1"), expected_seeds=SEEDS)
    md = markdown_table(s)
    block = md.split("| ECE ×100 ↓ |")[1]
    assert "| AdamW | 5.2 ± 0.0 |" in block
    assert "| AdamW | 5.23 ± 0.00 |" in markdown_table(s, extra_digits=1)
    assert "| ACC ↑ | WG-S |" in md  # the column label from the paper's layout (old record: no dataset_label)
    assert np.isclose(s[s.metric == "ece"]["mean"].iloc[0], 0.0523)


def test_dataset_label_travels_in_the_record(tmp_path):
    res = tmp_path / "results"
    path = write_record(
        res, "my_task", "adamw", 21, {"map": {"acc": 0.5, "ece": 0.1, "nll": 0.7, "brier": 0.5}}
    )
    import json

    rec = json.loads(path.read_text())
    rec["dataset_label"] = "My Task"
    path.write_text(json.dumps(rec))
    md = markdown_table(summarize(load_records(res / "runs" / "t1")))
    assert "| ACC ↑ | My Task |" in md


# --------------------------------------------------- the comparison's arithmetic, one test per slip


def test_t_divides_by_the_root_sum_of_squares_of_both_sems(tmp_path):
    """Both SEMs are 0.6 (ACC): the combined SE is √(0.6² + 0.6²) = 0.849, not 0.6 + 0.6 = 1.2, so a
    difference of 3.0 is t = 3.54, beyond the threshold 2.78 (df 4); with the sum it would be 2.5,
    within."""
    paper = fixture_paper()
    res = tmp_path / "results"
    records_equal_to(paper, res, {("ivon", "obqa", "acc"): 3.0})
    recs = load_records(res / "runs" / "t1")
    cells, _ = PT.compare(summarize(recs, expected_seeds=SEEDS), paper)
    c = cells[(cells.predictive == "ivon") & (cells.dataset == "obqa") & (cells.metric == "acc")].iloc[0]
    assert c.ours_sem == pytest.approx(0.6) and c.paper_sem == pytest.approx(0.6)
    assert c["diff"] == pytest.approx(3.0)
    assert c.t == pytest.approx(3.0 / math.sqrt(0.6**2 + 0.6**2))
    assert c.basis == "t" and not bool(c.within_noise)


def test_equal_by_rounding_means_within_half_a_printed_unit(tmp_path):
    """One seed (no SEM of ours): a cell agrees only when |ours − paper| ≤ half a unit of the paper's
    last printed digit: 0.05 for ACC and ECE, 0.005 for NLL and Brier (against the shipped table)."""
    paper = PT.load_paper_table()
    ref = paper.set_index(["predictive", "dataset", "metric"])["mean"]
    res = tmp_path / "results"
    off = {  # dataset -> (display-unit offset of ACC, of NLL)
        "winogrande_s": (0.07, 0.007),  # beyond half a unit, within a whole one: disagrees
        "arc_c": (0.04, 0.004),  # within half a unit: agrees
        "arc_e": (-0.07, -0.007),
    }
    for d, (acc_off, nll_off) in off.items():
        m = {k: ref[("map", d, k)] / metric_info(k)[1] for k in METRIC_KEYS}
        m["acc"] = (ref[("map", d, "acc")] + acc_off) / 100
        m["nll"] = ref[("map", d, "nll")] + nll_off
        write_record(res, d, "adamw", 21, {"map": m}, table_rows=["map"], model="llama2_7b")
    recs = load_records(res / "runs" / "t1")
    cells, _ = PT.compare(summarize(recs), paper)
    cells = cells.set_index(["dataset", "metric"])
    assert (cells.basis == "rounding").all()
    verdict = {k: bool(v) for k, v in cells.within_noise.items()}
    for d in off:
        assert verdict[(d, "ece")] and verdict[(d, "brier")]  # equal to the paper's
    assert verdict[("arc_c", "acc")] and verdict[("arc_c", "nll")]
    for d in ("winogrande_s", "arc_e"):
        assert not verdict[(d, "acc")] and not verdict[(d, "nll")], d


def test_lower_is_better_claims_go_by_the_sign_not_the_size(tmp_path):
    """IVON's ECE on WG-S far below (better than) LA (KFAC)'s and SWAG's is still "comparable" and
    below AdamW's; far above, it is neither."""
    paper = fixture_paper()
    for shift, ok in ((-15.0, True), (+15.0, False)):
        res = tmp_path / f"results{shift:+g}"
        records_equal_to(paper, res, {("ivon", "winogrande_s", "ece"): shift})
        recs = load_records(res / "runs" / "t1")
        claims = C.check_claims(summarize(recs, expected_seeds=SEEDS), recs)
        wgs = claims[(claims.column == "WG-S") & claims.claim.str.startswith("ece_ivon")]
        assert set(wgs.claim) == {
            "ece_ivon_below_adamw",
            "ece_ivon_below_mc_dropout",
            "ece_ivon_comparable_laplace_kfac",
            "ece_ivon_comparable_swag",
        }
        assert set(wgs.verdict) == {"holds" if ok else "contradicted"}, (shift, wgs)


def test_comparable_claims_use_the_root_sum_of_squares_of_both_sems(tmp_path):
    """Both ECE SEMs are 0.5: the SE is √(0.5² + 0.5²) = 0.71, not 0.5 + 0.5 = 1, so the interval of
    IVON's ECE 3.7 above SWAG's (3.9 above LA (KFAC)'s) on ARC-E is 3.7 ± 2.78 × 0.71 = [1.74, 5.66],
    wholly beyond the margin (10 % of SWAG's 16.2): contradicted (with the sum: [0.92, 6.48], within
    noise)."""
    paper = fixture_paper()
    res = tmp_path / "results"
    records_equal_to(paper, res, {("ivon", "arc_e", "ece"): 4.0})
    recs = load_records(res / "runs" / "t1")
    claims = C.check_claims(summarize(recs, expected_seeds=SEEDS), recs).set_index(["claim", "column"])
    for other in ("swag", "laplace_kfac"):
        row = claims.loc[(f"ece_ivon_comparable_{other}", "ARC-E")]
        assert row.verdict == "contradicted" and "SE 0.71, df 4.0" in row.evidence, row
    assert claims.loc[("ece_ivon_comparable_swag", "ARC-E")].interval == "[+1.74, +5.66]"
    assert claims.loc[("ece_ivon_below_adamw", "ARC-E")].verdict == "within noise"


# ------------------------------------------- the absolute cells: the paper's SEMs, t, the model gate


def _cell(cells: pd.DataFrame, pred: str, dataset: str, metric: str) -> pd.Series:
    sel = (cells.predictive == pred) & (cells.dataset == dataset) & (cells.metric == metric)
    assert sel.sum() == 1, (pred, dataset, metric)
    return cells[sel].iloc[0]


def test_paper_average_sem_is_derived_from_its_six_sems_as_ours_is():
    """The paper prints no SEM for the Average: it gets √(Σ SEM²) / 6 over the row's six SEMs, the
    rule of our own Average (summary.averages). AdamW's ACC: SEMs 0.4 0.5 0.2 0.4 0.7 0.1 ->
    √1.11 / 6 = 0.17559; AdamW's Brier: 0.01 0.01 0.00 0.01 0.01 0.00, the two 0.00 floored at
    0.005 -> √(4 × 0.01² + 2 × 0.005²) / 6 = 0.0035355."""
    paper = PT.load_paper_table()
    assert paper[paper.dataset == "average"]["sem"].isna().all()  # as printed: none
    used = PT.paper_sems(paper).set_index(["predictive", "dataset", "metric"])
    acc = used.loc[("map", "average", "acc")]
    assert acc.sem_used == pytest.approx(math.sqrt(1.11) / 6) and acc.sem_basis == "derived"
    assert acc.sem_used == pytest.approx(0.17559, abs=1e-5)
    brier = used.loc[("map", "average", "brier")]
    assert brier.sem_used == pytest.approx(math.sqrt(4 * 0.01**2 + 2 * 0.005**2) / 6)
    assert brier.sem_used == pytest.approx(0.0035355, abs=1e-7)
    assert (used.xs("average", level="dataset").sem_basis == "derived").all()
    # the same number as our own Average of six cells with these SEMs
    sems = [0.4, 0.5, 0.2, 0.4, 0.7, 0.1]
    base = pd.DataFrame(
        dict(
            dataset=DATASET_ORDER,
            model="m",
            method="adamw",
            predictive="map",
            metric="acc",
            mean=0.5,
            sem=sems,
            n=3,
            label="AdamW",
            experiment="x",
            split="validation",
        )
    )
    ours_avg = averages(base)
    assert float(ours_avg["sem"].iloc[0]) == pytest.approx(acc.sem_used)


def test_average_cells_are_judged_on_the_derived_sem(tmp_path):
    """Records equal to the shipped table, every AdamW ACC cell 0.3 points higher: the Average is 0.3
    higher (0.25 above the printed 76.1, as the row's six average 76.05), t = 0.25 / √(2 × 0.1756²)
    = 1.01 (df from twelve parts (SEM/6)², 2 each), within; with
    the old fallback (no SEM printed: half a unit, 0.05) it was **no**. The one Average that still
    disagrees is the paper's own inconsistent cell (IVON@mean's Brier, printed 0.40, its row 0.38)."""
    paper = PT.load_paper_table()
    res = tmp_path / "results"
    records_equal_to(paper, res, {("map", d, "acc"): 0.3 for d in DATASET_ORDER})
    recs = load_records(res / "runs" / "t1")
    cells, _ = PT.compare(summarize(recs, expected_seeds=SEEDS), paper)
    c = _cell(cells, "map", "average", "acc")
    # the paper's six AdamW accuracies average 76.05, its Average is printed 76.1: ours is 76.35
    assert c["diff"] == pytest.approx(0.25) and c.paper_sem_basis == "derived" and c.basis == "t"
    assert c.paper_sem == pytest.approx(math.sqrt(1.11) / 6)
    assert c.t == pytest.approx(0.25 / (math.sqrt(2) * math.sqrt(1.11) / 6))
    parts = [v**2 / 36 for v in (0.4, 0.5, 0.2, 0.4, 0.7, 0.1)] * 2  # ours = the paper's SEMs
    assert c.df == pytest.approx(sum(parts) ** 2 / sum(v * v / 2 for v in parts))
    assert bool(c.within_noise)
    flagged = cells[cells.within_noise.notna() & ~cells.within_noise.astype(bool)]
    assert set(zip(flagged.predictive, flagged.dataset, flagged.metric)) == {
        ("ivon_mean", "average", "brier")
    }


def test_a_printed_sem_of_zero_is_floored_at_half_a_unit(tmp_path):
    """AdamW's ARC-E Brier is printed 0.29 ± 0.00: a SEM below 0.005, floored at 0.005 (not 0).
    Three identical seeds (SEM 0) at 0.30: t = 0.01 / 0.005 = 2 on df 2 (the paper's side alone),
    threshold 4.30, within noise; without the floor the SE is 0 and the half-unit rule says **no**."""
    paper = PT.load_paper_table()
    used = PT.paper_sems(paper).set_index(["predictive", "dataset", "metric"])
    cell = used.loc[("map", "arc_e", "brier")]
    assert cell["sem"] == 0.0 and cell.sem_used == 0.005 and cell.sem_basis == "floored"
    assert used.loc[("map", "arc_e", "nll")].sem_used == 0.05  # a printed SEM is kept
    assert used.loc[("map", "arc_e", "acc")].sem_basis == "printed"
    res = tmp_path / "results"
    records_equal_to(paper, res, {("map", "arc_e", "brier"): 0.01})
    recs = load_records(res / "runs" / "t1")
    cells, _ = PT.compare(summarize(recs, expected_seeds=SEEDS), paper)
    c = _cell(cells, "map", "arc_e", "brier")
    assert c.ours_sem == pytest.approx(0.0, abs=1e-12) and c["diff"] == pytest.approx(0.01)
    assert c.paper_sem == 0.005 and c.paper_sem_basis == "floored" and c.basis == "t"
    assert c.t == pytest.approx(2.0) and c.df == pytest.approx(2.0)
    assert c.threshold == pytest.approx(4.302653, abs=1e-6)  # t_0.975(2), from a table
    assert bool(c.within_noise)


def test_the_threshold_is_students_t_with_welch_satterthwaite_df(tmp_path):
    """n = 3 seeds per side: df = (s1² + s2²)² / (s1⁴/2 + s2⁴/2), 4 for two equal SEMs, and the
    two-sided 95 % point of t(4) is 2.776 (|z| ≤ 2 would flag ~12 % of agreeing cells). Both ACC SEMs
    0.6: a difference of 2.2 (t = 2.59) agrees, 2.5 (t = 2.95) does not."""
    assert PT.welch_df([(0.04, 2), (0.09, 2)]) == pytest.approx(0.13**2 / (0.04**2 / 2 + 0.09**2 / 2))
    assert PT.welch_df([(0.04, 2), (0.09, 2)]) == pytest.approx(3.484536, abs=1e-6)
    assert PT.welch_df([(0.36, 2), (0.36, 2)]) == pytest.approx(4.0)
    assert PT.welch_df([(0.0, 2), (0.25, 2)]) == pytest.approx(2.0)  # a zero variance adds nothing
    assert math.isnan(PT.welch_df([(0.0, 2), (0.0, 2)]))
    assert PT.t_threshold(4) == pytest.approx(2.776445, abs=1e-6)
    assert PT.t_threshold(2) == pytest.approx(4.302653, abs=1e-6)
    paper = fixture_paper()
    for shift, ok in ((2.2, True), (2.5, False)):
        res = tmp_path / f"r{shift}"
        records_equal_to(paper, res, {("ivon", "obqa", "acc"): shift})
        recs = load_records(res / "runs" / "t1")
        cells, _ = PT.compare(summarize(recs, expected_seeds=SEEDS), paper)
        c = _cell(cells, "ivon", "obqa", "acc")
        assert c.df == pytest.approx(4.0) and c.threshold == pytest.approx(2.776445, abs=1e-6)
        assert c.t == pytest.approx(shift / math.sqrt(0.72))
        assert bool(c.within_noise) is ok, shift


def test_another_model_is_labelled_and_never_marked_no(tmp_path):
    """The paper's cells are Llama-2-7B's: a SmolLM2 run far from them is listed but not judged."""
    assert PT.is_paper_model("llama2_7b") and PT.is_paper_model("llama2_7b_bf16")
    assert not PT.is_paper_model("llama2_7b_random") and not PT.is_paper_model("smollm2_135m_bf16")
    paper = fixture_paper()
    res = tmp_path / "results"
    records_equal_to(paper, res, {("ivon_mean", "winogrande_s", "acc"): -30.0}, model="smollm2_135m_bf16")
    recs = load_records(res / "runs" / "t1")
    cells, _ = PT.compare(summarize(recs, expected_seeds=SEEDS), paper)
    assert len(cells) == 8 * 7 * 4
    assert cells.within_noise.isna().all() and (cells.basis == "different model").all()
    assert cells.t.isna().all() and cells["diff"].notna().all()
    c = _cell(cells, "ivon_mean", "winogrande_s", "acc")
    assert c["diff"] == pytest.approx(-30.0)
    assert main(["t1", "--results-dir", str(res), "--vs-paper", "--no-tables"]) == 0
    md = (res / "reports" / "t1_vs_paper.md").read_text()
    absolute = md.split("## Absolute cells (ours − paper)")[1].split("## Paper cells the run lacks")[0]
    assert "**smollm2_135m_bf16: different model: absolute cells are not comparable**" in absolute
    assert "**no**" not in absolute and "| different model |" in absolute
    assert "agree within noise" not in absolute and "No cell is judged" in absolute
    # the paper's own model, same numbers: judged, and the shifted cells are **no**
    res2 = tmp_path / "results2"
    records_equal_to(paper, res2, {("ivon_mean", "winogrande_s", "acc"): -30.0})
    assert main(["t1", "--results-dir", str(res2), "--vs-paper", "--no-tables"]) == 0
    md2 = (res2 / "reports" / "t1_vs_paper.md").read_text()
    assert ": different model" not in md2 and "| different model |" not in md2
    assert "| IVON@mean | WG-S | ACC ↑ |" in md2 and "**no** |" in md2


# --------------------------------------------------------- the pattern: changes vs AdamW, Kendall τ

# One column (ARC-E), the paper's eight rows, distinct values. The made-up paper's ACC (%) and ECE:
PATTERN_PAPER = {
    "map": (80.0, 20.0),
    "mc_dropout": (80.5, 19.0),
    "laplace_kfac": (81.0, 12.0),
    "laplace_diag": (79.0, 25.0),
    "swa": (82.0, 15.0),
    "swag": (82.5, 11.0),
    "ivon_mean": (84.0, 16.0),
    "ivon": (83.0, 10.0),
}


def _pattern_paper() -> pd.DataFrame:
    rows = []
    for pred, (method, label) in PAPER_ROWS.items():
        acc, ece = PATTERN_PAPER[pred]
        for m, v in (("acc", acc), ("ece", ece), ("nll", ece / 10), ("brier", ece / 50)):
            rows.append([pred, method, label, "arc_e", m, v, 0.5 if m in ("acc", "ece") else 0.01, "fixture"])
    return pd.DataFrame(rows, columns=PT.PAPER_COLUMNS).assign(change=np.nan)


def _pattern_records(res: Path) -> None:
    """A smaller model: ACC in the paper's order at half the level and twice the spread
    (40 + 2 × (paper − 80)); ECE, NLL and Brier in the paper's ECE order reversed (60 − paper ECE)."""
    for method in ("adamw", "ivon"):
        preds = [p for p, (m, _) in PAPER_ROWS.items() if m == method]
        for k, seed in enumerate(SEEDS):
            metrics = {}
            for p in preds:
                acc, ece = PATTERN_PAPER[p]
                jitter = 0.001 * (k - 1)
                ours_ece = 60.0 - ece
                metrics[p] = {
                    "acc": (40.0 + 2 * (acc - 80.0)) / 100 + jitter,
                    "ece": ours_ece / 100 + jitter,
                    "nll": ours_ece / 10 + jitter,
                    "brier": ours_ece / 50 + jitter,
                }
            write_record(res, "arc_e", method, seed, metrics, table_rows=preds, model="smollm2_135m_bf16")


def test_pattern_signs_relative_sizes_and_kendall_tau(tmp_path):
    """ACC: the same order as the paper's -> τ = 1, exact two-sided p = 2 / 8! = 4.96e-5, every row
    moves from AdamW in the paper's direction (7 of 7); IVON@mean: +4 points = +5 % of the paper's
    80, ours +8 = +20 % of 40. ECE (and NLL, Brier): reversed -> τ = −1, 0 of 7 in the paper's
    direction; LA (diag): paper 25 vs 20 = +25 %, ours 35 vs 40 = −12.5 %."""
    paper = _pattern_paper()
    res = tmp_path / "results"
    _pattern_records(res)
    recs = load_records(res / "runs" / "t1")
    rows, ranks = PT.pattern(summarize(recs, expected_seeds=SEEDS), paper)
    assert len(rows) == 8 * 4 and len(ranks) == 4
    r = ranks.set_index("metric")
    assert r.loc["acc", "tau"] == 1.0 and r.loc["acc", "p"] == pytest.approx(2 / math.factorial(8))
    assert (r.loc["acc", "n_same_direction"], r.loc["acc", "n_changes"]) == (7, 7)
    for m in ("ece", "nll", "brier"):
        assert r.loc[m, "tau"] == -1.0 and r.loc[m, "p"] == pytest.approx(2 / math.factorial(8)), m
        assert (r.loc[m, "n_same_direction"], r.loc[m, "n_changes"]) == (0, 7), m
    assert (r.n_rows == 8).all()
    row = rows.set_index(["metric", "predictive"])
    im = row.loc[("acc", "ivon_mean")]
    assert im.paper_change == pytest.approx(4.0) and im.paper_rel == pytest.approx(0.05)
    assert im.ours_change == pytest.approx(8.0) and im.ours_rel == pytest.approx(0.20)
    assert (im.ours_rank, im.paper_rank) == (1, 1) and bool(im.same_direction)
    diag = row.loc[("ece", "laplace_diag")]
    assert diag.paper_change == pytest.approx(5.0) and diag.paper_rel == pytest.approx(0.25)
    assert diag.ours_change == pytest.approx(-5.0) and diag.ours_rel == pytest.approx(-0.125)
    assert (diag.paper_rank, diag.ours_rank) == (8, 1) and not bool(diag.same_direction)
    assert row.loc[("acc", "laplace_diag")].ours_rank == 8  # lowest accuracy: worst
    assert row.loc[("acc", "map")].same_direction is None  # AdamW is the reference
    # one row against the paper's sign (SWA's accuracy below AdamW's): 6 of 7, τ drops below 1
    path = res / "runs" / "t1" / "arc_e" / "smollm2_135m_bf16" / "adamw"
    for seed in SEEDS:
        f = path / f"seed={seed}" / "metrics.json"
        rec = json.loads(f.read_text())
        for where in (rec["metrics"], rec["splits"]["validation"]):
            where["swa"]["acc"] = 0.30
        f.write_text(json.dumps(rec))
    recs = load_records(res / "runs" / "t1")
    rows, ranks = PT.pattern(summarize(recs), paper)
    acc = ranks.set_index("metric").loc["acc"]
    assert (acc.n_same_direction, acc.n_changes) == (6, 7) and acc.tau < 1.0
    assert not bool(rows.set_index(["metric", "predictive"]).loc[("acc", "swa")].same_direction)


def test_pattern_comes_first_in_the_report_and_in_the_miniatures(tmp_path):
    """``--vs-paper`` puts the pattern before the absolute cells; scripts/mini_report.py carries it
    near the top of mini.md; a rerun writes the same bytes."""
    import importlib.util

    paper = _pattern_paper()
    res = tmp_path / "results"
    _pattern_records(res)
    recs = load_records(res / "runs" / "t1")
    s = summarize(recs, expected_seeds=SEEDS)
    rows, ranks = PT.pattern(s, paper)
    cells, lacking, claims = P.build_report(recs, s, paper)
    md = P.report_markdown("t1", cells, lacking, claims, paper, pattern_tables=(rows, ranks))
    assert md.index("## The pattern beside the paper's") < md.index("## Absolute cells (ours − paper)")
    assert "| ARC-E | ACC ↑ | 8 | +1.00 | 5.0e-05 | 7 of 7 |" in md
    assert "| ARC-E | ECE ×100 ↓ | 8 | -1.00 | 5.0e-05 | 0 of 7 |" in md
    assert "| ARC-E | ACC ↑ | IVON@mean | 48.0 | +8.0 | +20.0 % | 1 | 84.0 | +4.0 | +5.0 % | 1 | yes |" in md
    assert "| ARC-E | ACC ↑ | AdamW | 40.0 | ref. | – | 7 | 80.0 | ref. | – | 7 | – |" in md
    # through the command, with the shipped table (the miniature's setting: a different model)
    assert main(["t1", "--results-dir", str(res), "--vs-paper"]) == 0
    first = (res / "reports" / "t1_vs_paper.md").read_bytes()
    text = first.decode()
    assert text.index("## The pattern beside the paper's") < text.index("## Absolute cells")
    assert "| ARC-E | ACC ↑ | 8 |" in text
    csv = pd.read_csv(res / "reports" / "t1_vs_paper.csv")
    assert list(dict.fromkeys(csv.kind))[:2] == ["rank", "pattern"]
    spec = importlib.util.spec_from_file_location("mini_report", REPO / "scripts" / "mini_report.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    mini = mod.build("t1", res)
    assert mini.index("## The pattern beside the paper's") < mini.index("## Does AdamW over-fit")
    assert "| ARC-E | ACC ↑ | 8 |" in mini and "smollm2_135m_bf16 is not the paper's Llama-2-7B" in mini
    assert main(["t1", "--results-dir", str(res), "--vs-paper"]) == 0
    assert (res / "reports" / "t1_vs_paper.md").read_bytes() == first


# ------------------------------------------------------------------ the report's head, make compare, the figure


def _prior_runs(res: Path, n: int = 400) -> None:
    """ARC-E of one model: a zero-shot record (untrained: zero-shot and Prior rows), AdamW (its MAP
    row sharp and right 70 % of the time: beats the Prior on NLL) and IVON (IVON@mean = the Prior
    plus noise: within noise; IVON over-confident and mostly wrong: worse than the Prior)."""
    from bayeslora import metrics as M

    rng = np.random.default_rng(3)
    y = rng.integers(0, 4, n)
    prior = np.full((n, 4), 0.25)

    def peaked(acc, conf):
        top = np.where(rng.random(n) < acc, y, (y + rng.integers(1, 4, n)) % 4)
        p = np.full((n, 4), (1 - conf) / 3)
        p[np.arange(n), top] = conf
        return p

    def record(method, seed, rows, **kw):
        metrics = {k: M.classification_metrics(v, y) for k, v in rows.items()}
        path = write_record(res, "arc_e", method, seed, metrics, model="smollm2_135m_bf16", **kw)
        arrays = {f"validation/{k}": v for k, v in rows.items()}
        np.savez_compressed(path.parent / "preds.npz", **{"validation/labels": y, **arrays})

    record("zero_shot", 21, {"zero_shot": peaked(0.3, 0.5), "prior": prior}, steps=0)
    for seed in SEEDS:
        record("adamw", seed, {"map": peaked(0.7, 0.7)}, table_rows=["map"])
        same = prior + rng.normal(0, 1e-4, (n, 4))
        rows = {"ivon_mean": same / same.sum(axis=1, keepdims=True), "ivon": peaked(0.3, 0.99)}
        record("ivon", seed, rows, table_rows=list(rows))


def test_report_starts_with_the_tally_and_the_rows_that_do_not_beat_the_prior(tmp_path, capsys):
    """The report's first lines: the claims' verdict tally, then the rows whose NLL is not below the
    Prior's beyond its interval (with their verdicts); ``--vs-paper --no-tables`` (make compare)
    prints those verdicts and the claims, not the table."""
    res = tmp_path / "results"
    _prior_runs(res)
    assert main(["t1", "--results-dir", str(res), "--vs-paper", "--no-tables"]) == 0
    out = capsys.readouterr().out
    md = (res / "reports" / "t1_vs_paper.md").read_text()
    claims = pd.read_csv(res / "reports" / "t1_vs_paper.csv").query("kind == 'claim'")
    counts = claims.verdict.value_counts()
    tally = ", ".join(f"{counts.get(v, 0)} {v}" for v in C.VERDICTS)
    floor = [
        "- ARC-E: IVON@mean (within noise), IVON (worse than the prior), zero_shot (worse than the prior)"
    ]
    lines = md.splitlines()
    assert lines[:3] == ["# t1 beside the paper's Table 1", "", f"**The paper's claims:** {tally}."]
    start = lines.index(
        "**Rows that do not beat the Prior** (NLL not below the Prior row's beyond its 95 % interval):"
    )
    assert 3 < start < lines.index("## The pattern beside the paper's")
    assert lines[start + 2 : start + 3] == floor
    assert "AdamW" not in lines[start + 2]  # AdamW beats the Prior
    # make compare: the verdicts, then the claims with their intervals, not the table
    assert out.splitlines()[0] == f"t1 against the paper's claims: {tally}."
    assert floor[0] in out and "| claim | column | verdict | 95 % interval |" in out
    assert "| IVON@mean accuracy above AdamW | ARC-E | contradicted |" in out
    assert "| ACC ↑ |" not in out and "±" not in out
    assert f"full report: {res / 'reports' / 't1_vs_paper.md'}" in out
    # the table command prints the table, and with --vs-paper the verdicts after it
    assert main(["t1", "--results-dir", str(res), "--vs-paper"]) == 0
    out = capsys.readouterr().out
    assert out.index("| ACC ↑ |") < out.index(f"t1 against the paper's claims: {tally}.")


def test_report_head_without_a_prior_row_or_claims(tmp_path):
    """No Prior row in the run: the head says so (and how to add one); no claim: says so."""
    res = tmp_path / "results"
    m = {"acc": 0.7, "ece": 0.05, "nll": 0.6, "brier": 0.3}
    for seed in SEEDS:
        write_record(res, "synthetic", "blob", seed, {"blob": m}, table_rows=["blob"])
    assert main(["t1", "--results-dir", str(res), "--vs-paper", "--no-tables"]) == 0
    lines = (res / "reports" / "t1_vs_paper.md").read_text().splitlines()
    assert lines[2] == "**The paper's claims:** none can be checked (the run has none of the paper's rows)."
    assert lines[4].startswith(
        "**Rows that do not beat the Prior**: not checked, no column of the run has a Prior row"
    )


def test_figure_plots_each_rows_change_from_adamw_ours_against_the_papers(tmp_path):
    """The figure: per metric, one labelled point per paper row other than AdamW, at (the paper's
    change from AdamW, ours); nothing compares (no paper column): no figure file, and a stale one
    is removed."""
    paper = _pattern_paper()
    res = tmp_path / "results"
    _pattern_records(res)
    recs = load_records(res / "runs" / "t1")
    rows, _ = PT.pattern(summarize(recs, expected_seeds=SEEDS), paper)
    fig = P.report_figure(rows)
    axes = [ax for ax in fig.axes if ax.get_visible()]
    assert len(axes) == len(METRIC_KEYS)
    for ax, metric in zip(axes, METRIC_KEYS):
        g = rows[(rows.metric == metric) & (rows.predictive != "map")]
        points = np.concatenate([c.get_offsets() for c in ax.collections if len(c.get_offsets())])
        assert sorted(map(tuple, points)) == sorted(zip(g.paper_change, g.ours_change)), metric
        assert sorted(t.get_text() for t in ax.texts) == sorted(g.label), metric
        assert "paper" in ax.get_xlabel() and "ours" in ax.get_ylabel() and "AdamW" in ax.get_xlabel()
    assert P.report_figure(rows.iloc[0:0]) is None
    # through the command: the synthetic task compares nothing, so no .png (an old one is removed)
    other = tmp_path / "other"
    m = {"acc": 0.7, "ece": 0.05, "nll": 0.6, "brier": 0.3}
    for seed in SEEDS:
        write_record(other, "synthetic", "adamw", seed, {"map": m}, table_rows=["map"])
    (other / "reports").mkdir()
    (other / "reports" / "t1_vs_paper.png").write_bytes(b"stale")
    assert main(["t1", "--results-dir", str(other), "--vs-paper", "--no-tables"]) == 0
    assert sorted(p.name for p in (other / "reports").iterdir()) == ["t1_vs_paper.csv", "t1_vs_paper.md"]
