"""The paper's claims judged beyond noise (bayeslora/results/claims.py): the four verdicts, the paired
bootstrap over examples plus the between-seed spread, the SEM fallback, and the plumbing from the
records' preds.npz. Fabricated prediction sets with known effects; small bootstraps (1,000)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy import stats

from bayeslora import metrics as M
from bayeslora.results import claims as C
from bayeslora.results.runs import load_records
from bayeslora.results.summary import summarize

from .test_aggregate import write_record

SEEDS = [21, 42, 87]
B = 1000  # bootstrap replicates in these tests


def _probs(correct: np.ndarray, labels: np.ndarray, rng: np.random.Generator, c: int = 4) -> np.ndarray:
    """[N, C] with a confidence from U(0.4, 0.9) on the true class where ``correct``, else on a wrong
    one (the rest spread evenly)."""
    n = len(labels)
    top = np.where(correct, labels, (labels + rng.integers(1, c, n)) % c)
    conf = rng.uniform(0.4, 0.9, n)
    p = np.repeat(((1 - conf) / (c - 1))[:, None], c, axis=1)
    p[np.arange(n), top] = conf
    return p


def fabricate(n: int, acc_ours, acc_other, seeds: int = 3, seed: int = 0, c: int = 4):
    """(ours, other, labels): per seed, two predictives on the same ``n`` examples, correct with
    probability ``acc_ours`` / ``acc_other`` (per seed when sequences) independently per example."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, c, n)
    a_acc = np.broadcast_to(acc_ours, (seeds,))
    b_acc = np.broadcast_to(acc_other, (seeds,))
    ours = [_probs(rng.random(n) < a, labels, rng, c) for a in a_acc]
    other = [_probs(rng.random(n) < b, labels, rng, c) for b in b_acc]
    return ours, other, labels


def verdict(ours, other, labels, metric="acc", kind="above", margin=math.nan):
    est = C.paired_bootstrap(ours, other, labels, metric, n_boot=B)
    lo, hi = est.interval()
    return C.judge(kind, metric, lo, hi, margin), est, (lo, hi)


# ---------------------------------------------------------------- the four verdicts on known effects


def test_a_small_effect_is_within_noise_at_50_examples_and_holds_at_5000():
    """Accuracy 65 % vs 60 % (5 points, 3 seeds): at n = 50 the interval is some ±20 points wide, at
    n = 5000 about ±2; the effect is the same, the evidence is not."""
    v50, est50, (lo50, hi50) = verdict(*fabricate(50, 0.65, 0.60))
    assert v50 == "within noise" and lo50 < 0 < hi50
    v5k, est5k, (lo, hi) = verdict(*fabricate(5000, 0.65, 0.60))
    assert v5k == "holds" and 0 < lo < 0.05 < hi
    assert abs(est5k.diff - 0.05) < 0.02  # the fabricated effect
    assert (hi - lo) < 0.25 * (hi50 - lo50)


def test_a_reversed_effect_is_contradicted():
    v, est, (lo, hi) = verdict(*fabricate(5000, 0.60, 0.65))
    assert v == "contradicted" and hi < 0
    # lower-is-better claims read the other way: ours' NLL below the other's is "below"
    ours, other, y = fabricate(5000, 0.65, 0.60)
    assert verdict(ours, other, y, "nll", "below")[0] == "holds"
    assert verdict(other, ours, y, "nll", "below")[0] == "contradicted"


def test_a_nan_probability_cannot_be_checked():
    ours, other, y = fabricate(500, 0.65, 0.60)
    ours[1] = ours[1].copy()
    ours[1][7, 0] = np.nan
    for metric in ("acc", "nll", "ece", "brier"):
        v, est, (lo, hi) = verdict(ours, other, y, metric, "above" if metric == "acc" else "below")
        assert v == "cannot be checked" and math.isnan(lo) and math.isnan(hi), metric
    assert C.judge("above", "acc", math.nan, 1.0) == "cannot be checked"
    assert C.judge("comparable", "nll", -1.0, 1.0, math.nan) == "cannot be checked"  # no margin


def test_equal_rows_are_within_noise_not_above():
    ours, _, y = fabricate(300, 0.6, 0.6)
    v, est, (lo, hi) = verdict(ours, [p.copy() for p in ours], y)
    assert v == "within noise" and lo == hi == est.diff == 0.0


def test_judge_on_the_boundaries():
    """Strictly beyond: an interval touching 0 (or the margin) is within noise."""
    assert C.judge("above", "acc", 0.0, 1.0) == "within noise"
    assert C.judge("above", "acc", 1e-9, 1.0) == "holds"
    assert C.judge("above", "acc", -1.0, -1e-9) == "contradicted"
    assert C.judge("below", "ece", -1.0, -1e-9) == "holds"
    assert C.judge("below", "ece", 1e-9, 1.0) == "contradicted"
    assert C.judge("below", "ece", -1.0, 0.0) == "within noise"
    # comparable (lower is better): IVON worse by less than the margin 0.5 holds, better counts
    assert C.judge("comparable", "nll", -3.0, 0.49, 0.5) == "holds"
    assert C.judge("comparable", "nll", 0.2, 0.49, 0.5) == "holds"  # worse, but by less than δ
    assert C.judge("comparable", "nll", 0.2, 0.5, 0.5) == "within noise"
    assert C.judge("comparable", "nll", 0.51, 0.9, 0.5) == "contradicted"
    # higher is better (accuracy): worse = other − ours
    assert C.judge("comparable", "acc", -0.49, 3.0, 0.5) == "holds"
    assert C.judge("comparable", "acc", -0.9, -0.51, 0.5) == "contradicted"


def test_comparable_is_non_inferiority_with_a_margin():
    """NLL: ours a little worse than the other row (accuracy 62 % vs 63 %, well inside 10 % of its
    NLL) holds at n = 5000, cannot be told at n = 50; far worse (45 % vs 65 %) is contradicted."""

    def comparable(n, a, b):
        ours, other, y = fabricate(n, a, b)
        est = C.paired_bootstrap(ours, other, y, "nll", n_boot=B)
        lo, hi = est.interval()
        return C.judge("comparable", "nll", lo, hi, C.COMPARABLE_MARGIN * est.other), est

    v, est = comparable(5000, 0.62, 0.63)
    assert v == "holds" and est.diff > 0  # worse, within the margin beyond noise
    assert comparable(50, 0.62, 0.63)[0] == "within noise"
    assert comparable(5000, 0.45, 0.65)[0] == "contradicted"


# ---------------------------------------------------------------- how the interval is built


def test_the_between_seed_spread_widens_the_interval():
    """Per-seed effects +8, +1, −5 points on 5000 examples: the bootstrap alone (examples) would be
    ±1.5 points around +1.3 ("holds"); the seeds' spread makes it within noise."""
    ours, other, y = fabricate(5000, [0.68, 0.61, 0.55], 0.60)
    v, est, (lo, hi) = verdict(ours, other, y)
    boot, seeds = est.terms
    assert boot[1] == math.inf and seeds[1] == 2.0
    d = [
        M.classification_metrics(a, y)["acc"] - M.classification_metrics(b, y)["acc"]
        for a, b in zip(ours, other)
    ]
    assert seeds[0] == pytest.approx(np.var(d, ddof=1) / 3, rel=1e-12)
    assert est.diff == pytest.approx(np.mean(d), rel=1e-12)
    assert seeds[0] > 10 * boot[0]
    assert v == "within noise"


def test_the_bootstrap_is_paired_over_examples():
    """Two rows that differ on 1.5 % of the examples (ours right, other wrong there) and agree on the
    rest: resampled together, the difference is certain ("holds"); resampled apart, each row's own
    sampling noise (±2 points) would swamp it."""
    rng = np.random.default_rng(3)
    n, y = 2000, rng.integers(0, 4, 2000)
    ours, other = [], []
    for _ in SEEDS:
        base = rng.random(n) < 0.6
        flip = ~base & (rng.random(n) < 0.015 / 0.4)
        p = _probs(base, y, rng)
        q = p.copy()
        q[flip] = _probs(np.ones(flip.sum(), bool), y[flip], rng)
        ours.append(q)
        other.append(p)
    v, est, (lo, hi) = verdict(ours, other, y)
    assert v == "holds" and (hi - lo) < 0.012, (lo, hi)


def test_the_same_examples_for_every_seed_and_reruns_identical():
    idx = C.resample_indices(300, B)
    assert idx.shape == (B, 300) and np.array_equal(idx, C.resample_indices(300, B))
    ours, other, y = fabricate(300, 0.65, 0.6)
    a = C.paired_bootstrap(ours, other, y, "ece", n_boot=B)
    b = C.paired_bootstrap(ours, other, y, "ece", n_boot=B)
    assert a == b
    # the bootstrap term is the variance of the seed mean over the shared resamples, ECE recomputed
    # on each resample by bayeslora.metrics
    reps = np.mean(
        [
            [M.expected_calibration_error(p[i], y[i]) - M.expected_calibration_error(q[i], y[i]) for i in idx]
            for p, q in zip(ours, other)
        ],
        axis=0,
    )
    assert a.terms[0][0] == pytest.approx(np.var(reps, ddof=1), rel=1e-12)


def test_the_interval_is_t_with_welch_satterthwaite_df():
    """Terms (v1, ∞) and (v2, 2): df = (v1 + v2)² / (v2² / 2); a fallback of two SEMs 0.6 with three
    seeds each has df 4 and half-width t(0.975, 4) · √0.72 = 2.36, not 1.96 · 0.85 = 1.66."""
    e = C.Estimate(1.0, 0.0, 1.0, ((0.01, math.inf), (0.02, 2.0)), "x")
    assert e.df == pytest.approx(0.03**2 / (0.02**2 / 2))
    lo, hi = e.interval()
    assert hi - 1.0 == pytest.approx(stats.t.ppf(0.975, e.df) * math.sqrt(0.03))
    f = C.between_seed(73.0, 0.6, 3, 70.0, 0.6, 3)
    assert f.df == pytest.approx(4.0)
    assert f.interval()[1] - 3.0 == pytest.approx(stats.t.ppf(0.975, 4) * math.sqrt(0.72))
    only_boot = C.Estimate(1.0, 0.0, 1.0, ((0.04, math.inf), (0.0, 2.0)), "x")
    assert only_boot.interval()[1] == pytest.approx(1.0 + stats.norm.ppf(0.975) * 0.2)


def test_the_average_is_the_mean_of_the_columns_with_variance_over_d_squared():
    e1 = C.Estimate(2.0, 1.0, 1.0, ((0.04, math.inf), (0.08, 2.0)), "paired bootstrap, 3 seeds")
    e2 = C.Estimate(4.0, 1.0, 3.0, ((0.36, 4.0),), "between-seed SEMs")
    avg = C.average_of([e1, e2])
    assert (avg.ours, avg.other, avg.diff) == (3.0, 1.0, 2.0)
    assert avg.se == pytest.approx(math.sqrt((0.04 + 0.08 + 0.36) / 4))
    assert avg.df == pytest.approx(((0.48 / 4) ** 2) / ((0.02**2) / 2 + (0.09**2) / 4))


# ---------------------------------------------------------------- from the records and their preds.npz

PREDS = {"adamw": ["map", "mc_dropout", "laplace_kfac", "swag"], "ivon": ["ivon_mean", "ivon"]}
# accuracy per row: IVON clearly better than AdamW and MC Dropout, level with LA (KFAC) and SWAG
ACC = {"map": 0.45, "mc_dropout": 0.46, "laplace_kfac": 0.64, "swag": 0.645, "ivon_mean": 0.64, "ivon": 0.65}


def write_runs(res, n=300, datasets=("arc_e",), seeds=SEEDS, conf=None):
    """Records with preds.npz: every row's metrics computed by bayeslora.metrics from its preds."""
    rng = np.random.default_rng(11)
    for d in datasets:
        y = rng.integers(0, 4, n)
        for method, preds in PREDS.items():
            for seed in seeds:
                probs = {p: _probs(rng.random(n) < ACC[p], y, rng) for p in preds}
                if conf:  # soften some rows' probabilities (better calibrated)
                    for p, k in conf.items():
                        if p in probs:
                            probs[p] = (1 - k) * probs[p] + k / 4
                metrics = {p: M.classification_metrics(probs[p], y) for p in preds}
                path = write_record(res, d, method, seed, metrics, model="smollm", table_rows=preds)
                arrays = {"validation/labels": y, **{f"validation/{p}": v for p, v in probs.items()}}
                np.savez_compressed(path.parent / "preds.npz", **arrays)


def claims_of(res, **kw):
    recs = load_records(res / "runs" / "t1")
    return C.check_claims(summarize(recs, expected_seeds=SEEDS), recs, n_boot=B, **kw).set_index(
        ["claim", "column"]
    )


def test_check_claims_from_preds_npz(tmp_path):
    res = tmp_path / "results"
    write_runs(res)
    recs = load_records(res / "runs" / "t1")
    frame = C.check_claims(summarize(recs, expected_seeds=SEEDS), recs, n_boot=B)
    assert list(frame.columns) == C.COLUMNS
    claims = frame.set_index(["claim", "column"])
    value = claims.drop(index="cost_ivon_step_time", level=0)
    assert set(value.verdict) <= set(C.VERDICTS)
    assert value.evidence.str.contains("paired bootstrap, 3 seeds × 300 examples, 1000 replicates").all()
    row = value.loc[("acc_ivon_mean_above_adamw", "ARC-E")]
    assert row.verdict == "holds" and row.lo > 0 and row.interval.startswith("[+")
    assert row.interval == f"[{row.lo:+.2f}, {row.hi:+.2f}]"
    assert value.loc[("nll_ivon_below_adamw", "ARC-E")].verdict == "holds"
    # comparable: IVON's NLL may be worse than LA (KFAC)'s by up to 10 % of LA's; the interval reaches
    # above 0 but stays below that margin
    comp = value.loc[("nll_ivon_comparable_laplace_kfac", "ARC-E")]
    assert (
        comp.verdict == "holds" and 0 < comp.hi < 0.112 and "margin +0.112 (10 % of 1.121)" in comp.evidence
    )
    # the table's means are the preds' means (same seeds): the estimate is their difference
    s = summarize(recs).set_index(["predictive", "metric"])["mean"]
    assert row.estimate == pytest.approx(100 * (s[("ivon_mean", "acc")] - s[("map", "acc")]), rel=1e-12)
    # seeded: a rerun gives the same frame
    assert claims_of(res).equals(claims)


def test_without_predictions_the_between_seed_sems_and_one_seed_cannot_be_checked(tmp_path):
    """No preds.npz for one seed: the between-seed SEMs (evidence says why). A single seed has no
    SEM: "cannot be checked", never a missing SEM counted as 0."""
    res = tmp_path / "results"
    write_runs(res)
    (res / "runs/t1/arc_e/smollm/adamw/seed=42/preds.npz").unlink()
    claims = claims_of(res)
    row = claims.loc[("acc_ivon_mean_above_adamw", "ARC-E")]
    assert "between-seed SEMs" in row.evidence and "no preds.npz for adamw seed 42" in row.evidence
    assert row.verdict in C.VERDICTS and not math.isnan(row.lo)

    one = tmp_path / "one"
    write_runs(one, seeds=[21])
    claims = claims_of(one)
    value = claims.drop(index="cost_ivon_step_time", level=0)
    assert (value.verdict == "cannot be checked").all()
    assert (value.interval == "–").all()
    row = value.loc[("acc_ivon_mean_above_adamw", "ARC-E")]
    assert "no SEM of ivon_mean (1 seed) and map (1 seed)" in row.evidence


def test_a_nan_metric_in_a_record_cannot_be_checked(tmp_path):
    res = tmp_path / "results"
    write_runs(res)
    path = res / "runs/t1/arc_e/smollm/ivon/seed=87/metrics.json"
    rec = json.loads(path.read_text())
    for key in ("metrics", "splits"):
        block = rec[key] if key == "metrics" else rec[key]["validation"]
        block["ivon"]["nll"] = float("nan")
    path.write_text(json.dumps(rec))
    claims = claims_of(res)
    for other in ("adamw", "mc_dropout"):
        row = claims.loc[(f"nll_ivon_below_{other}", "ARC-E")]
        assert row.verdict == "cannot be checked" and row.evidence == "ivon nll is NaN (seed 87)"
    assert claims.loc[("ece_ivon_below_adamw", "ARC-E")].verdict != "cannot be checked"


def test_nan_probabilities_in_preds_cannot_be_checked(tmp_path):
    res = tmp_path / "results"
    write_runs(res)
    path = res / "runs/t1/arc_e/smollm/adamw/seed=21/preds.npz"
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["validation/swag"][3, 1] = np.nan
    np.savez_compressed(path, **arrays)
    row = claims_of(res).loc[("brier_ivon_comparable_swag", "ARC-E")]
    assert row.verdict == "cannot be checked" and "NaN or inf swag probabilities" in row.evidence


def test_stale_predictions_fall_back_to_the_sems(tmp_path):
    """preds.npz that does not reproduce metrics.json is not used."""
    res = tmp_path / "results"
    write_runs(res)
    path = res / "runs/t1/arc_e/smollm/ivon/seed=42/metrics.json"
    rec = json.loads(path.read_text())
    rec["metrics"]["ivon_mean"]["acc"] += 0.01
    rec["splits"]["validation"]["ivon_mean"]["acc"] += 0.01
    path.write_text(json.dumps(rec))
    row = claims_of(res).loc[("acc_ivon_mean_above_adamw", "ARC-E")]
    assert "between-seed SEMs" in row.evidence
    assert "preds.npz of ivon seed 42 does not reproduce its ivon_mean acc" in row.evidence


def test_the_average_combines_the_columns(tmp_path):
    res = tmp_path / "results"
    write_runs(res, n=200, datasets=("arc_e", "obqa"))
    claims = claims_of(res)
    cols = claims.loc["acc_ivon_mean_above_adamw"]
    assert list(cols.index) == ["ARC-E", "OBQA", "Average"]
    avg = cols.loc["Average"]
    assert avg.estimate == pytest.approx((cols.loc["ARC-E"].estimate + cols.loc["OBQA"].estimate) / 2)
    assert "mean of 2 columns (paired bootstrap)" in avg.evidence
    # narrower than either column's interval (two independent columns)
    width = cols.hi - cols.lo
    assert width["Average"] < min(width["ARC-E"], width["OBQA"])


# ---------------------------------------------------------------- the floor: which rows beat the prior


def write_floor_runs(res, n=400, seeds=SEEDS):
    """A zero-shot record (untrained, one seed) with the zero-shot and prior rows, and a trained
    method whose "sharp" row puts 0.7 on a class right 70 % of the time (beats the prior's 0.25 on
    NLL and Brier), whose "over" row puts 0.99 on a class right 30 % of the time (worse), and whose
    "same" row is the prior plus 1e-4 noise (within noise)."""
    rng = np.random.default_rng(5)
    y = rng.integers(0, 4, n)
    prior = np.full((n, 4), 0.25)

    def peaked(acc, conf):
        correct = rng.random(n) < acc
        top = np.where(correct, y, (y + rng.integers(1, 4, n)) % 4)
        p = np.full((n, 4), (1 - conf) / 3)
        p[np.arange(n), top] = conf
        return p

    def save(path, arrays):
        rows = {f"validation/{k}": v for k, v in arrays.items()}
        np.savez_compressed(path.parent / "preds.npz", **{"validation/labels": y, **rows})

    zs = {"zero_shot": peaked(0.3, 0.5), "prior": prior}
    metrics = {k: M.classification_metrics(v, y) for k, v in zs.items()}
    save(write_record(res, "arc_e", "zero_shot", 21, metrics, model="smollm", steps=0), zs)
    for seed in seeds:
        same = prior + rng.normal(0, 1e-4, (n, 4))
        same /= same.sum(axis=1, keepdims=True)
        rows = {"sharp": peaked(0.7, 0.7), "over": peaked(0.3, 0.99), "same": same}
        metrics = {k: M.classification_metrics(v, y) for k, v in rows.items()}
        save(write_record(res, "arc_e", "adamw", seed, metrics, model="smollm", table_rows=list(rows)), rows)


def test_rows_against_the_prior(tmp_path):
    res = tmp_path / "results"
    write_floor_runs(res)
    frame = C.against_floor(load_records(res / "runs" / "t1"), n_boot=B)
    assert list(frame.columns) == C.FLOOR_COLUMNS
    got = frame.set_index(["predictive", "metric"])
    for m in C.FLOOR_METRICS:
        assert got.loc[("sharp", m)].verdict == C.BEATS and got.loc[("sharp", m)].hi < 0
        assert got.loc[("over", m)].verdict == C.WORSE and got.loc[("over", m)].lo > 0
        assert got.loc[("same", m)].verdict == C.WITHIN
        assert got.loc[("zero_shot", m)].n_seeds == 1 and "untrained" in got.loc[("zero_shot", m)].basis
    assert "prior" not in set(frame.predictive)
    # the floor's value is the prior's NLL (ln 4) and the difference is ours − floor
    row = got.loc[("sharp", "nll")]
    assert row.floor == pytest.approx(math.log(4)) and row["diff"] == pytest.approx(row.ours - row.floor)
    # seeded: identical on a rerun; a trained row with one seed cannot be checked
    assert C.against_floor(load_records(res / "runs" / "t1"), n_boot=B).equals(frame)
    one = tmp_path / "one"
    write_floor_runs(one, seeds=[21])
    single = C.against_floor(load_records(one / "runs" / "t1"), n_boot=B).set_index(["predictive", "metric"])
    assert single.loc[("sharp", "nll")].verdict == C.UNCHECKED
    assert single.loc[("zero_shot", "nll")].verdict != C.UNCHECKED


def test_a_row_without_predictions_cannot_be_checked_against_the_prior(tmp_path):
    """A column with a Prior row, and a run that kept no preds.npz: its rows cannot be checked
    (saying why), the others are judged as before; no crash."""
    res = tmp_path / "results"
    write_floor_runs(res)
    (res / "runs/t1/arc_e/smollm/adamw/seed=42/preds.npz").unlink()
    frame = C.against_floor(load_records(res / "runs" / "t1"), n_boot=B).set_index(["predictive", "metric"])
    for pred in ("sharp", "over", "same"):
        row = frame.loc[(pred, "nll")]
        assert row.verdict == C.UNCHECKED and row.basis == "no preds.npz for adamw seed 42", pred
    assert frame.loc[("zero_shot", "nll")].verdict != C.UNCHECKED
