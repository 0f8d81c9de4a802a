"""Per-run facts of an experiment, from its records only: wall time, training time and step time,
evaluation time per predictive, and the SWAG deviation spectrum (are D's columns collinear?).

    python scripts/run_summary.py mini [--results-dir results]

Prints Markdown (used in results/reports/mini.md).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from bayeslora.results.history import median_step_seconds, train_seconds
from bayeslora.results.runs import load_records, run_dir_of


def summary_markdown(exp_dir: Path) -> str:
    """The per-run table (and the SWAG spectra) of every record under ``exp_dir``, as Markdown."""
    lines: list[str] = []
    print = lines.append  # noqa: A001 (the table is built line by line)
    records = load_records(Path(exp_dir))
    print("| run | status | wall (min) | training (min) | s / step (median) | evaluation (min) |")
    print("|---|---|---|---|---|---|")
    spectra = []
    for rec in records:
        seeds = run_dir_of(rec).name.removeprefix("seed=")  # a post-hoc ensemble's: 21+42+87
        run = f"{rec['dataset']} {rec['model']} {rec['method']} seed {seeds}"
        train_s, step_s = train_seconds(rec), median_step_seconds(rec)
        eval_s = sum(rec.get("eval_seconds", {}).values())
        wall = rec.get("provenance", {}).get("wall_s")
        fmt = lambda v, d=1: "–" if v is None else f"{v:.{d}f}"  # noqa: E731
        print(
            f"| {run} | {rec['status']} | {fmt(wall and wall / 60)} | {fmt(train_s and train_s / 60)} | "
            f"{fmt(step_s, 2)} | {fmt(eval_s / 60 if eval_s else None)} |"
        )
        swag = rec.get("predictive_info", {}).get("swag")
        if swag and "deviation_singular_values_rel" in swag:
            spectra.append((run, swag))
    if spectra:
        print("")
        print("SWAG deviation matrix D (columns = snapshots at the listed steps): singular values relative")
        print("to the largest, and the largest |cosine| between two columns (1 = collinear).")
        print("")
        print("| run | snapshots | D's columns at steps | singular values / largest | max |cos| |")
        print("|---|---|---|---|---|")
        for run, s in spectra:
            sv = ", ".join(f"{v:.2f}" for v in s["deviation_singular_values_rel"])
            print(
                f"| {run} | {s['n_snapshots']} ({s['first_snapshot_step']}–{s['last_snapshot_step']}) | "
                f"{', '.join(map(str, s['deviation_steps']))} | {sv} | {s['deviation_max_abs_cosine']:.2f} |"
            )

    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("exp")
    ap.add_argument("--results-dir", type=Path, default=Path("results"))
    a = ap.parse_args()
    print(summary_markdown(a.results_dir / "runs" / a.exp), end="")


if __name__ == "__main__":
    main()
