"""Write ``results/reports/mini.md`` (the real-LLM miniature's report) from the committed records.

    python scripts/mini_report.py [--exp mini] [--results-dir results]     # part of `make mini-tables`

It puts together, from the run records and the files `bayeslora-table mini --figures --vs-paper`
wrote before it: what was run (from the records), the pattern beside the paper's (each row against
AdamW and Kendall's τ of the rows' order, from ``<exp>_vs_paper.md``), the over-fitting check of
every run (mean training loss over the last tenth of the steps against 0.25 ln C, and the final
validation beside the zero-shot row), the table, the figures, the paper's claims as checked on
these numbers, the per-run times, and the hand-written reading of the results
(``results/reports/<exp>_notes.md``).
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from run_summary import summary_markdown  # noqa: E402

from bayeslora.results.history import history_path, history_table  # noqa: E402
from bayeslora.results.layout import AVERAGE, DATASET_LABELS, dataset_rank, fmt, metric_info  # noqa: E402
from bayeslora.results.paper import ABSOLUTE_HEADING, PATTERN_HEADING  # noqa: E402
from bayeslora.results.paper_table import is_paper_model  # noqa: E402
from bayeslora.results.runs import dataset_label, load_records, run_dir_of  # noqa: E402


def section(path: Path, heading: str) -> str:
    """The body of ``## heading`` in a generated Markdown file (up to the next ``## ``)."""
    text = path.read_text(encoding="utf-8")
    start = text.index(f"## {heading}")
    end = text.find("\n## ", start + 3)
    return text[start + len(f"## {heading}") : None if end < 0 else end].strip("\n") + "\n"


def fit_rows(records: list[dict]) -> list[str]:
    """One line per trained run: last-tenth training loss vs 0.25 ln C, final validation metrics, and
    whether the run fitted (bayeslora/results/fit.py: its rows are evidence only if it did)."""
    from bayeslora.results.fit import run_fits

    fitted = {(f.model, f.dataset, f.method, f.seed): f for f in run_fits(records)}
    out = [
        "| run | steps | epochs | last-tenth training loss | ≤ 0.25 ln C | val acc % | val NLL | val ECE ×100 | fitted |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    multi = len({r["model"] for r in records}) > 1
    records = sorted(
        records, key=lambda r: (r["model"], dataset_rank(r["dataset"]), r["method"], str(r["seed"]))
    )
    where = lambda r: f"{r['model']} " * multi + f"{dataset_label(r)}"  # noqa: E731
    for r in records:
        if not r.get("steps") or not history_path(r).is_file():
            continue  # zero-shot rows below; a post-hoc ensemble has no training of its own
        row = r["table_rows"][0]
        with np.load(run_dir_of(r) / "preds.npz") as preds:
            n_classes = preds[f"{r['eval_split']}/{row}"].shape[1]
        h = history_table(history_path(r), ["train/loss"]).dropna()
        tail = h[h.step > 0.9 * r["steps"]]["train/loss"]
        last = float(tail.mean()) if len(tail) else float("nan")
        threshold = 0.25 * math.log(n_classes)
        m = r["metrics"][row]
        epochs = r["steps"] * 4 / r["n_train"]
        out.append(
            f"| {where(r)} {r['method']} seed {r['seed']} ({r['labels'][row]}) | {r['steps']} | {epochs:.1f} | {last:.3f} | "
            f"{'yes' if last <= threshold else '**no**'} ({threshold:.3f}) | {100 * m['acc']:.1f} | "
            f"{m['nll']:.3f} | {100 * m['ece']:.1f} | {fit_cell(fitted.get((r['model'], r['dataset'], r['method'], str(r['seed']))))} |"
        )
    for r in records:
        if r.get("steps") == 0 and history_path(r).is_file():
            row = r["table_rows"][0]
            m = r["metrics"][row]
            out.append(
                f"| {where(r)} {r['method']} ({r['labels'][row]}, untrained) | 0 | 0 | – | – | {100 * m['acc']:.1f} | "
                f"{m['nll']:.3f} | {100 * m['ece']:.1f} | – |"
            )
    return out


def fit_cell(f) -> str:
    if f is None or f.fitted is None:
        return "not known (no zero-shot row)" if f is not None else "–"
    return "yes" if f.fitted else f"**no**: {f.why().split(': ', 1)[1]}"


# the compact table's columns: metric, its title here (the per-metric tables use layout's titles)
COLUMNS = (("acc", "ACC % ↑"), ("ece", "ECE ×100 ↓"), ("nll", "NLL ↓"), ("brier", "Brier ↓"))


def compact_table(table_csv: Path) -> str:
    """Per model and column, one line per row, the four metrics as columns (mean ± SEM, n), from
    ``results/tables/<exp>.csv``."""
    import pandas as pd

    df = pd.read_csv(table_csv)
    df = df[(df.split == df.split.iloc[0]) & (df.dataset != AVERAGE)]
    multi = df.model.nunique() > 1
    blocks = []
    order = sorted({(m, d) for m, d in zip(df.model, df.dataset)}, key=lambda k: (k[0], dataset_rank(k[1])))
    for model, dataset in order:
        lines = [
            f"**{model + ' · ' if multi else ''}{DATASET_LABELS.get(dataset, dataset)}**",
            "",
            "| row | n | " + " | ".join(h for _, h in COLUMNS) + " |",
            "|---" * (2 + len(COLUMNS)) + "|",
        ]
        part = df[(df.model == model) & (df.dataset == dataset)]
        for label, g in part.groupby("label", sort=False):
            if g["mean"].isna().all():  # a row of another column's runs
                continue
            cells = []
            for metric, _ in COLUMNS:
                r = g[g.metric == metric].iloc[0]
                sem = "" if pd.isna(r["sem"]) else f" ± {fmt(r['sem'], metric)}"
                cells.append(f"{fmt(r['mean'], metric)}{sem}")
            lines.append(f"| {label} | {int(g['n'].iloc[0])} | " + " | ".join(cells) + " |")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + "\n"


def floor_table(records: list[dict]) -> list[str]:
    """Which rows beat the Prior row on NLL and Brier (:func:`bayeslora.results.claims.against_floor`)."""
    from bayeslora.results.claims import BEATS, FLOOR_METRICS, FLOOR_VERDICTS, against_floor

    frame = against_floor(records)
    if frame.empty:
        return ["No column has a Prior row (run the zero-shot line of `make mini`)."]
    multi = frame.model.nunique() > 1
    out = [
        "| column | row | seeds | "
        + " | ".join(f"{metric_info(m)[0]}: row − Prior [95 %] | verdict" for m in FLOOR_METRICS)
        + " |",
        "|---|---|---|" + "---|---|" * len(FLOOR_METRICS),
    ]
    by_nll: dict[str, list[str]] = {}
    for (model, dataset, _, _), g in frame.groupby(["model", "dataset", "method", "predictive"], sort=False):
        g = g.set_index("metric")
        col = f"{model + ' · ' if multi else ''}{DATASET_LABELS.get(dataset, dataset)}"
        cells = []
        for m in FLOOR_METRICS:
            r = g.loc[m]
            diff = fmt(r["diff"], m, 1, sign=True, scaled=True)
            lo, hi = (fmt(x, m, 1, sign=True, scaled=True) for x in (r.lo, r.hi))
            iv = "" if math.isnan(r.lo) else f" [{lo}, {hi}]"
            verdict = r.verdict if r.verdict != BEATS else f"**{r.verdict}**"
            cells.append(f"{diff}{iv} | {verdict}")
        out.append(f"| {col} | {g.label.iloc[0]} | {int(g.n_seeds.iloc[0])} | " + " | ".join(cells) + " |")
        by_nll.setdefault(g.loc["nll", "verdict"], []).append(f"{g.label.iloc[0]} ({col})")
    out += [
        "",
        "On NLL: "
        + "; ".join(
            f"{verdict}: {', '.join(by_nll[verdict])}"
            for verdict in FLOOR_VERDICTS.values()
            if verdict in by_nll
        )
        + "."
        + (" No row beats the Prior on NLL beyond noise." if BEATS not in by_nll else ""),
    ]
    return out


def tau_grid(records: list[dict], figure1_csv: Path, fig: Path) -> list[str]:
    """Figure 1's section: its plotted values per τ (error and NLL, mean over the grid's seeds), the
    samples per τ (from each grid run's own config) and the figure; nothing without a τ grid."""
    if not figure1_csv.is_file():
        return []
    import pandas as pd
    from omegaconf import OmegaConf

    df = pd.read_csv(figure1_csv)
    samples, rows = set(), set()
    for r in (r for r in records if r["method"] in set(df.method)):
        rows.add(r["n_eval"].get(r.get("eval_split"), 0))
        cfg_file = run_dir_of(r) / ".hydra" / "config.yaml"
        if cfg_file.is_file():
            cfg = OmegaConf.load(cfg_file)
            samples |= {int(v.n_samples) for v in cfg.get("predictive", {}).values() if "taus" in v}
    lines = [
        "## Figure 1: the posterior's temperature",
        "",
        "IVON's predictive with weights drawn from N(m, τ·v): τ = 0 is IVON@mean, τ = 1 the posterior "
        "itself"
        + (f" ({', '.join(map(str, sorted(samples)))} samples per τ)" if samples else "")
        + f". Mean over the seeds of the grid, on {' / '.join(map(str, sorted(rows)))} validation rows.",
        "",
        "| column | model | run | τ | seeds | ACC % | NLL |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in df.itertuples():
        sem = lambda x: "" if pd.isna(x) or x == 0 else f" ± {x:.1f}"  # noqa: E731
        lines.append(
            f"| {DATASET_LABELS.get(r.dataset, r.dataset)} | {r.model} | {r.method} | {r.tau:g} | {r.seeds} | "
            f"{r.acc * 100:.1f}{sem(r.err_sem)} | {r.nll:.3f} |"
        )
    return [*lines, "", f"![Figure 1]({fig / 'figure1.png'})", ""]


def build(exp: str, results: Path) -> str:
    records = [r for r in load_records(results / "runs" / exp) if r["status"] == "success"]
    if not records:
        raise SystemExit(f"mini_report: error: no successful records under {results / 'runs' / exp}")
    models = sorted({r["model"] for r in records})
    datasets = sorted({r.get("dataset_label") or r["dataset"] for r in records})
    n_eval = sorted({n for r in records for n in r["n_eval"].values()})
    n_train = sorted({r["n_train"] for r in records})
    seeds: dict[tuple, dict[str, list]] = {}
    for r in sorted(records, key=lambda r: (r["model"], dataset_rank(r["dataset"]))):
        seeds.setdefault((r["model"], dataset_label(r)), {}).setdefault(r["method"], []).append(r["seed"])
    tables = results / "tables" / f"{exp}.md"
    vs_paper = results / "reports" / f"{exp}_vs_paper.md"
    notes = results / "reports" / f"{exp}_notes.md"
    fig = Path("..") / "figures" / exp
    lines = [
        f"# The real-LLM miniature of Table 1: {', '.join(models)} on {', '.join(datasets)}",
        "",
        f"Generated by `make {exp}-tables` (`scripts/mini_report.py`) from the run records under "
        f"`results/runs/{exp}/`; the reading of the results at the end is `results/reports/{exp}_notes.md`.",
        "",
        *[
            f"- Runs, {model} on {label}: "
            + "; ".join(f"{m} seeds {' '.join(map(str, sorted(map(str, s))))}" for m, s in sorted(by.items()))
            + "."
            for (model, label), by in seeds.items()
        ],
        f"- Training rows: {', '.join(map(str, n_train))} (a fixed subset: the first rows of the training split); "
        f"evaluation rows: {', '.join(map(str, n_eval))} (the whole validation split).",
        f"- Config: `conf/experiment/{exp}.yaml`; probes behind its settings: `results/probes/`.",
        "",
        f"## {PATTERN_HEADING}",
        "",
        f"From [`{vs_paper.name}`]({vs_paper.name})"
        + (
            ""
            if all(map(is_paper_model, models))
            else f": {', '.join(m for m in models if not is_paper_model(m))} is not the paper's "
            "Llama-2-7B, so what compares is this pattern; the absolute cells are listed there, not judged"
        )
        + ".",
        "",
        section(vs_paper, PATTERN_HEADING).strip("\n"),
        "",
        "## Does AdamW over-fit as the paper's does?",
        "",
        "The paper's AdamW memorises WG-S (62 epochs) and ends over-confident. The criterion here: mean "
        "training loss over the last tenth of the steps ≤ 0.25 ln C, with the final validation beside "
        "the untrained model's. *fitted*: the training loss fell (last tenth below the first tenth and "
        "ln C) and the validation row is more accurate than the better of zero-shot and the Prior; the "
        "rows of a run that did not fit are marked *did not fit: not evidence* beside the claims.",
        "",
        *fit_rows(records),
        "",
        f"![training curves]({fig / 'curves.png'})",
        "",
        "## The table (mean ± SEM over seeds; n = seeds)",
        "",
        compact_table(tables.with_suffix(".csv")).strip("\n"),
        "",
        f"Per metric in the paper's layout: [`results/tables/{exp}.md`](../tables/{exp}.md) "
        f"(also `.csv`, `.tex`).",
        "",
        "## Which rows beat the Prior?",
        "",
        "The Prior row gives every example the class frequencies of the run's training rows (plus one "
        "per class): the floor any useful row must beat on NLL and Brier. Each row's difference from it "
        "with the 95 % interval of the claims below (paired bootstrap over the validation examples plus "
        "the between-seed spread; an untrained row on the bootstrap alone; a trained row with one seed "
        "cannot be checked).",
        "",
        *floor_table(records),
        "",
        "## Beside the paper",
        "",
        f"Every cell beside the paper's ({ABSOLUTE_HEADING.lower()}; judged only for the paper's own "
        f'model, Llama-2-7B, and labelled "different model" otherwise): `{vs_paper.name}` '
        f"([md]({vs_paper.name}), [csv]({vs_paper.with_suffix('.csv').name}), "
        f"[png]({vs_paper.with_suffix('.png').name})). The paper's claims, checked on these numbers:",
        "",
        section(vs_paper, "The paper's claims on the reproduced numbers").strip("\n"),
        "",
        "## Reliability diagrams",
        "",
        *[
            f"![{p.stem}]({fig / p.name})"
            for p in sorted((results / "figures" / exp).glob("reliability_*.png"))
        ],
        "",
        *tau_grid(records, results / "figures" / exp / "figure1.csv", fig),
        "## Per-run times (from the records: a 2-core CPU machine shared with other work, so not a "
        "benchmark; what a step costs per method is `results/bench/`)",
        "",
        summary_markdown(results / "runs" / exp).strip("\n"),
        "",
    ]
    if notes.is_file():
        lines += [notes.read_text(encoding="utf-8").strip("\n"), ""]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--exp", default="mini")
    ap.add_argument("--results-dir", type=Path, default=ROOT / "results")
    a = ap.parse_args()
    out = a.results_dir / "reports" / f"{a.exp}.md"
    text = build(a.exp, a.results_dir)
    out.write_text(text, encoding="utf-8")
    summary = out.with_name(f"{a.exp}_summary.md")  # the README pastes this one
    summary.write_text(compact_table(a.results_dir / "tables" / f"{a.exp}.csv"), encoding="utf-8")
    print(f"wrote {out} and {summary}")


if __name__ == "__main__":
    main()
