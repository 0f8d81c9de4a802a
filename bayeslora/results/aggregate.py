"""Tables from run records only: mean ± SEM over seeds, in the paper's Table 1 layout.

    bayeslora-table <exp> [--split S] [--seeds 21,42,87] [--recompute --ece-bins 15]
                          [--posthoc-ensemble] [--figures] [--vs-paper] [--extra-digits K]
                          [--wandb --wandb-project P] [--no-write]

Reads every ``metrics.json`` under ``<results>/runs/<exp>/``, keeps successful runs, groups them by
(dataset, model, method), requires one config hash per group (seeds that disagree are an error,
never averaged), and writes ``<results>/tables/<exp>.{csv,md,tex}``:

* one block per metric (ACC ↑, ECE ×100 ↓, NLL ↓, Brier ↓); rows are predictives in the paper's
  order (each record's ``labels`` names them, its ``table_rows`` says which are table rows);
  columns are the datasets in the paper's order, then **Average** (when there are at least two);
* a cell is the mean ± SEM over seeds, SEM = sample std (ddof=1) / sqrt(n) (no SEM for n = 1);
  accuracy and ECE are in %, printed with the paper's precision (one decimal for ACC and ECE ×100,
  two for NLL and Brier) plus ``--extra-digits`` (the demo uses 1). ``(n=k)`` marks a cell whose seeds differ from the expected ones
  (``--seeds``); the missing seeds are listed under the table. A post-hoc ensemble record
  (``provenance.member_seeds``) covers the seeds of its members;
* **Average** is the mean of a row's per-dataset means over *all* dataset columns of the table, with
  SEM = sqrt(sum of the squared per-dataset SEMs) / D (datasets are independent experiments). A row
  that lacks any dataset column has no Average (shown as "–", and a note names what it lacks): an
  average over a different set of datasets would not be comparable with the other rows;
* "Δ vs AdamW": each IVON row (``ivon_mean``, ``ivon``) minus the AdamW row (predictive ``map`` of
  method ``adamw``, same dataset and model), as the paper prints it: the difference of the displayed
  quantities (accuracy points, ECE ×100, NLL, Brier), per dataset and for the Average (only where
  both rows have one).

The CSV is long form, one row per (experiment, split, dataset, model, method, predictive, metric)
with ``n``, ``mean`` and ``sem`` in raw units (fractions, not %). ``dataset == "average"`` rows hold
the Average column and ``metric == "delta_vs_adamw/<metric>"`` rows the changes vs AdamW (``sem``
empty). Everything is computed before anything is written; the files are first written to a staging
folder and then renamed into place, so bad input never leaves partial outputs.

``--vs-paper`` also writes ``<results>/reports/<exp>_vs_paper.{md,csv,png}``: every cell beside the
paper's Table 1 and the paper's claims checked on the reproduced numbers (:mod:`bayeslora.results.paper`;
the ``.png`` only when something compares), and prints the verdicts: the claims' tally, the rows
that do not beat the Prior, each claim with its interval (:mod:`bayeslora.results.verdicts`).
The table is printed unless ``--no-tables`` (``make compare`` prints the verdicts alone).

This module is only the command: records (:mod:`bayeslora.results.runs`) -> summary
(:mod:`bayeslora.results.summary`) -> tables (:mod:`bayeslora.results.tables`), figures (:mod:`bayeslora.results.figures`)
and the paper comparison (:mod:`bayeslora.results.paper`) -> staged outputs (:mod:`bayeslora.results.outputs`),
W&B (:func:`bayeslora.loggers.upload_to_wandb`).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from bayeslora.errors import BayesLoraError
from bayeslora.loggers import WandbUploadError, upload_to_wandb
from bayeslora.results.layout import DEFAULT_ECE_BINS
from bayeslora.results.outputs import OneLineParser, StagedOutputs, safe_name
from bayeslora.results.posthoc_ensemble import posthoc_ensembles
from bayeslora.results.runs import (
    AggregationError,
    group_records,
    load_records,
    no_records,
    recompute_metrics,
)
from bayeslora.results.summary import CSV_COLUMNS
from bayeslora.results.tables import Tables, make_tables

__all__ = ["AggregationError", "aggregate", "main"]


def _suffix(split: str | None, recompute_bins: int | None) -> str:
    s = f"_{safe_name(split)}" if split else ""
    return s + (f"_ece{recompute_bins}" if recompute_bins is not None else "")


def aggregate(
    exp: str,
    results_dir: Path,
    split: str | None = None,
    expected_seeds: list[int] | None = None,
    write: bool = True,
    all_rows: bool = False,
    *,
    recompute: bool = False,
    ece_bins: int | None = None,
    posthoc_ensemble: bool = False,
    figures: bool = False,
    vs_paper: bool = False,
    extra_digits: int = 0,
    wandb_project: str | None = None,
    wandb_entity: str | None = None,
    write_tables: bool = True,
) -> Tables:
    """Everything the CLI does; outputs are written only after all of it has been computed.

    ``write_tables=False`` (``--no-tables``) writes only the figures and the report asked for, so
    ``make compare`` leaves the tables ``make table`` wrote alone."""
    results_dir = Path(results_dir)
    exp_dir = results_dir / "runs" / exp
    bins = None
    if recompute or ece_bins is not None:
        bins = DEFAULT_ECE_BINS if ece_bins is None else int(ece_bins)
        if bins < 1:
            raise AggregationError(f"--ece-bins must be >= 1, got {bins}")
    records = load_records(exp_dir)
    if not records:
        raise no_records(exp_dir)
    if not any(r.get("status") == "success" for r in records):
        first = records[0]
        raise AggregationError(
            f"no successful runs under {exp_dir} ({len(records)} not successful, e.g. "
            f"{first['_path']}: {first.get('status')}: {first.get('error')})"
        )
    out = StagedOutputs(results_dir if write else None)
    try:
        group_records(records)  # a hash clash stops here, before anything is built
        if posthoc_ensemble:
            records = posthoc_ensembles(records, out, results_dir)
        if bins is not None:
            records = recompute_metrics(records, bins)
        tables = make_tables(records, split, expected_seeds, all_rows, bins, extra_digits)
        suffix = _suffix(split, bins)
        table_files = {}
        texts = {"csv": tables.long[CSV_COLUMNS].to_csv(index=False), "md": tables.md, "tex": tables.tex}
        for ext, text in texts.items() if write_tables else ():
            rel = f"tables/{exp}{suffix}.{ext}"
            table_files[Path(rel).name] = out.write_text(rel, text)
        figure_files: dict[str, Path] = {}
        if figures:
            from bayeslora.results.figures import compute_figures, render_figures

            data = compute_figures(records, split, bins or DEFAULT_ECE_BINS)
            tables.skipped = data.skipped
            if not data.figures:
                raise AggregationError(f"--figures: nothing to plot for {exp} ({'; '.join(data.skipped)})")
            fig_rel = f"figures/{exp}{suffix}"
            for path in render_figures(data, out.add_dir(fig_rel)):
                figure_files[path.name] = path
            tables.figures = data.figures
        if vs_paper:
            from bayeslora.results.cost import load_bench
            from bayeslora.results.paper import write_report

            stem = f"reports/{exp}{suffix}_vs_paper"
            bench = load_bench(results_dir)
            report = write_report(
                records, tables.summary, out, stem, exp, extra_digits, bench=bench, split=split
            )
            tables.verdicts = report.verdicts
            if write:
                tables.verdicts += f"\nfull report: {results_dir / stem}.md\n"
        tables.written = out.commit()
        if write:
            table_files = {k: results_dir / "tables" / v.name for k, v in table_files.items()}
            figure_files = {k: results_dir / fig_rel / k for k in figure_files} if figures else {}
        if wandb_project:
            try:
                upload_to_wandb(
                    table_files,
                    figure_files,
                    exp,
                    wandb_project,
                    wandb_entity,
                    config={"exp": exp, "split": split, "ece_bins": bins, "seeds": expected_seeds},
                )
            except WandbUploadError as e:
                if not tables.written:
                    raise AggregationError(str(e)) from e
                raise AggregationError(f"{e} (the tables and figures were written locally)") from e
    finally:
        out.cleanup()
    return tables


def parse_seeds(text: str) -> list[int] | None:
    try:
        return [int(s) for s in text.split(",") if s.strip()] or None
    except ValueError:
        raise AggregationError(f"--seeds must be comma-separated integers, got {text!r}") from None


# the on/off options of the command line, in the order --help lists them
SWITCHES = [
    ("--no-write", "print only"),
    ("--no-tables", "write (and print) only what --figures / --vs-paper ask for, not <results>/tables/"),
    ("--all-rows", "also analysis rows such as the IVON τ grid"),
    ("--recompute", "recompute every metric from the runs' preds.npz"),
    ("--posthoc-ensemble", "first build a post-hoc ensemble of every dataset/model's adamw seeds (>= 2)"),
    ("--figures", "also draw <results>/figures/<exp>/"),
    (
        "--vs-paper",
        "also write <results>/reports/<exp>_vs_paper.{md,csv,png}: every cell beside the paper's, "
        "and the paper's claims checked; print the verdicts",
    ),
    ("--wandb", "upload tables and figures as W&B artifacts"),
]


def main(argv: list[str] | None = None) -> int:
    ap = OneLineParser(prog="bayeslora-table", description=__doc__.splitlines()[0])
    ap.add_argument("exp", help="experiment name (folder under <results>/runs/)")
    ap.add_argument("--results-dir", default="results")
    ap.add_argument("--split", default=None, help="evaluation split (default: each record's first)")
    ap.add_argument("--seeds", default="21,42,87", help="expected seeds, comma-separated ('' = no check)")
    for flag, help_ in SWITCHES:
        ap.add_argument(flag, action="store_true", help=help_)
    ap.add_argument(
        "--ece-bins",
        type=int,
        default=None,
        help=f"ECE bins for --recompute (default {DEFAULT_ECE_BINS}; implies --recompute)",
    )
    ap.add_argument(
        "--extra-digits",
        type=int,
        default=0,
        help="decimals beyond the paper's (ACC/ECE ×100: 1, NLL/Brier: 2); the demo uses 1",
    )
    ap.add_argument(
        "--wandb-project",
        default=None,
        help="W&B project (implies --wandb; default $WANDB_PROJECT or bayeslora); mode from $WANDB_MODE",
    )
    ap.add_argument("--wandb-entity", default=os.environ.get("WANDB_ENTITY") or None)
    args = ap.parse_args(argv)
    project = None
    if args.wandb or args.wandb_project:
        project = args.wandb_project or os.environ.get("WANDB_PROJECT") or "bayeslora"
    try:
        seeds = parse_seeds(args.seeds)
        t = aggregate(
            args.exp,
            Path(args.results_dir),
            args.split,
            seeds,
            write=not args.no_write,
            all_rows=args.all_rows,
            recompute=args.recompute,
            ece_bins=args.ece_bins,
            posthoc_ensemble=args.posthoc_ensemble,
            figures=args.figures,
            vs_paper=args.vs_paper,
            extra_digits=args.extra_digits,
            wandb_project=project,
            wandb_entity=args.wandb_entity,
            write_tables=not args.no_tables,
        )
    except (BayesLoraError, OSError) as e:
        msg = " ".join(str(e).split())
        print(f"bayeslora-table: error: {msg}", file=sys.stderr)
        return 1
    if not args.no_tables:
        print(t.md)
    if t.verdicts:  # --vs-paper: the verdicts (make compare prints only these)
        print(t.verdicts, end="")
    for s in t.skipped:
        print(f"bayeslora-table: skipped {s}", file=sys.stderr)
    for p in t.written:
        print(f"wrote {p}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
