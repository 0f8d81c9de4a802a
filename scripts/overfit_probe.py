"""Probe: does AdamW-LoRA (or another method) fit and over-fit a training subset, at which settings?

The paper's AdamW runs 10,000 steps at batch 4 on WG-S's 640 rows: about 62 epochs, ending with a
memorised training set and an over-confident model (ECE 32.8, NLL 4.19). Before a miniature's sweep
is sized, each candidate (dataset, training-subset size, learning rate, steps) is trained here with
the MAP row only and judged against that regime:

    fits:  mean training loss over the last tenth of the steps <= 0.25 * ln C   (C classes)

with the periodic validation (accuracy, ECE, NLL) showing whether it over-fits, beside the
zero-shot model (``trainer.max_steps=0``). Every run goes through the project's runner
(``bayeslora.runner.run``), so its settings are exactly a run's.

    BAYESLORA_DATA_DIR=/path/to/data python scripts/overfit_probe.py \\
        --dataset arc_e --runs 160:1e-3:400 160:2e-3:400 320:1e-3:700 --eval-every 50 --eval-n 200

Writes ``results/probes/overfit_<model>_<dataset>.{json,md}`` (one row per candidate, the full
validation curve in the JSON); ``--from-json`` redraws the Markdown from a saved JSON.

``--method ivon`` asks the same of another method (its validation row, e.g. IVON@mean, is the one
judged; ``--override method.clip_radius=0.05`` varies its other settings), written to
``overfit_<model>_<dataset>_<method>.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bayeslora.config import compose_config  # noqa: E402
from bayeslora.runner import run  # noqa: E402


def common_overrides(a, model: str, dataset: str, steps: int, results_dir: str) -> list[str]:
    """The settings every probe run shares (AdamW unless ``a.method``, no checkpoints, quiet,
    validation on the first ``a.eval_n`` rows); ``scripts/learnability_probe.py`` builds on them too."""
    return [
        f"model={model}",
        f"dataset={dataset}",
        f"method={getattr(a, 'method', 'adamw')}",
        "exp_name=probe",
        f"paths.results_dir={results_dir}",
        f"trainer.max_steps={steps}",
        f"trainer.eval_every={a.eval_every if steps else 0}",
        f"trainer.eval_max_examples={a.eval_n}",
        f"eval.max_examples={a.eval_n}",
        "trainer.log_every=10",
        "trainer.checkpoint_every=0",
        "trainer.progress_bar=false",
        f"trainer.num_threads={a.threads}",
        f"seed={a.seed}",
        "overwrite=true",
    ]


def probe_overrides(
    a, n_train: int | None, lr: float | None, steps: int, results_dir: str, row: str | None = None
) -> list[str]:
    """A candidate's overrides; ``row`` (the method's validation row) is the only row evaluated."""
    out = common_overrides(a, a.model, a.dataset, steps, results_dir)
    if row is not None:
        out.append(f"method.predictives=[{row}]")
    if n_train is not None:
        out.append(f"trainer.max_train_examples={n_train}")
    if lr is not None:
        out.append(f"method.lr={lr}")
    if a.data_dir:
        out.append(f"paths.data_dir={a.data_dir}")
    return out + list(a.override)


def curves(run_dir: Path) -> tuple[list[dict], list[dict]]:
    hist = pd.read_csv(run_dir / "history.csv")
    wide = hist.pivot_table(index="step", columns="key", values="value").reset_index()
    train = wide[["step", "train/loss"]].dropna().to_dict("records") if "train/loss" in wide else []
    val_cols = [c for c in wide.columns if c.startswith("val/")]
    val = wide[["step", *val_cols]].dropna().to_dict("records") if val_cols else []
    return train, val


def one(a, n_train, lr, steps) -> dict:
    with tempfile.TemporaryDirectory(prefix="bayeslora-probe-") as tmp:
        row = compose_config(probe_overrides(a, n_train, lr, steps, tmp)).method.val_predictive
        cfg = compose_config(probe_overrides(a, n_train, lr, steps, tmp, row))
        record = run(cfg)
        n_classes = len(cfg.dataset.classes)
        train, val = curves(Path(cfg.run_dir)) if steps else ([], [])
    tail = [r["train/loss"] for r in train if r["step"] > 0.9 * steps]
    last_tenth = sum(tail) / len(tail) if tail else None
    return {
        "n_train": record["n_train"],
        "lr": lr,
        "steps": steps,
        "epochs": round(steps * cfg.trainer.batch_size / record["n_train"], 1) if steps else 0.0,
        "classes": n_classes,
        "threshold": 0.25 * math.log(n_classes),
        "train_loss_last_tenth": last_tenth,
        "fits": last_tenth is not None and last_tenth <= 0.25 * math.log(n_classes),
        "row": row,
        "overrides": list(a.override),
        "final": record["metrics"][row],
        "train_curve": train,
        "val_curve": val,
        "train_s": (val[-1] if val else {}).get("time/train_s"),
        "wall_s": record["provenance"]["wall_s"],
    }


def to_markdown(report: dict) -> str:
    rows = report["rows"]
    zero = next((r for r in rows if r["steps"] == 0), None)
    lines = [
        f"# Over-fitting probe: {report['model']} on {report['dataset']} "
        f"({report.get('method', 'adamw')}, {rows[-1].get('row', 'map') if rows else 'map'} row)",
        "",
        f"Validation: the first {report['eval_n']} rows of the evaluation split; seed {report['seed']}; "
        f"criterion: mean training loss over the last tenth of the steps <= 0.25 ln C.",
        "",
        f"Command: `{report['command']}`",
        "",
        "| train rows | lr | other settings | steps | epochs | last-tenth train loss | fits | val acc "
        "| val ECE×100 | val NLL | wall s |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        f = r["final"]
        loss = "—" if r["train_loss_last_tenth"] is None else f"{r['train_loss_last_tenth']:.3f}"
        lr = "—" if r["lr"] is None else f"{r['lr']:g}"
        fits = "zero-shot" if r["steps"] == 0 else ("yes" if r["fits"] else "no")
        lines.append(
            f"| {r['n_train']} | {lr} | {', '.join(r.get('overrides', [])) or '—'} | {r['steps']} | "
            f"{r['epochs']} | {loss} | {fits} | "
            f"{100 * f['acc']:.1f} | {100 * f['ece']:.1f} | {f['nll']:.3f} | {r['wall_s']:.0f} |"
        )
    lines += ["", "Validation curves (step: acc / ECE×100 / NLL; training loss of the last 10 steps):", ""]
    for r in rows:
        if not r["val_curve"]:
            continue
        train = {int(t["step"]): t["train/loss"] for t in r["train_curve"]}
        pts = ", ".join(
            f"{int(v['step'])}: {100 * v['val/acc']:.1f} / {100 * v['val/ece']:.1f} / {v['val/nll']:.2f}"
            + (f" (train {train[int(v['step'])]:.3f})" if int(v["step"]) in train else "")
            for v in r["val_curve"]
        )
        lines.append(f"- {r['n_train']} rows, lr {r['lr']:g}: {pts}")
    if zero is not None:
        lines += [
            "",
            f"Zero-shot (0 steps): acc {100 * zero['final']['acc']:.1f}, NLL {zero['final']['nll']:.3f}.",
        ]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="smollm2_135m_bf16")
    ap.add_argument("--dataset", default="arc_e")
    ap.add_argument("--method", default="adamw", help="the method group (ivon: --lr is IVON's lr)")
    ap.add_argument("--n-train", type=int, nargs="+", default=[160])
    ap.add_argument("--lr", type=float, nargs="+", default=[1e-3])
    ap.add_argument("--steps", type=int, nargs="+", default=[400], help="one value, or one per --n-train")
    ap.add_argument("--eval-every", type=int, default=50)
    ap.add_argument("--eval-n", type=int, default=200)
    ap.add_argument("--seed", type=int, default=21)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument(
        "--runs", nargs="*", default=None, help="explicit candidates N:LR:STEPS (instead of the grid)"
    )
    ap.add_argument("--zero-shot", action="store_true", help="also evaluate the untrained model")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--override", nargs="*", default=[], help="more Hydra overrides for every run")
    ap.add_argument("--out", default=str(ROOT / "results" / "probes"))
    ap.add_argument("--from-json", default=None, help="redraw the Markdown from this JSON")
    ap.add_argument(
        "--append", action="store_true", help="add the rows to the JSON already at the output (same probe)"
    )
    a = ap.parse_args()
    if a.from_json:
        report = json.loads(Path(a.from_json).read_text())
    else:
        steps = a.steps * len(a.n_train) if len(a.steps) == 1 else a.steps
        if len(steps) != len(a.n_train):
            ap.error("--steps takes one value or one per --n-train")
        grid = [(n, lr, s) for n, s in zip(a.n_train, steps) for lr in a.lr]
        if a.runs:
            grid = [(int(n), float(lr), int(s)) for n, lr, s in (r.split(":") for r in a.runs)]
        rows = [one(a, None, None, 0)] if a.zero_shot else []
        for n, lr, s in grid:
            rows.append(one(a, n, lr, s))
            print(json.dumps({k: v for k, v in rows[-1].items() if not k.endswith("_curve")}), flush=True)
        report = {
            "model": a.model,
            "dataset": a.dataset,
            "method": a.method,
            "eval_n": a.eval_n,
            "seed": a.seed,
            "command": "python scripts/overfit_probe.py " + " ".join(sys.argv[1:]),
            "rows": rows,
        }
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    method = report.get("method", "adamw")
    stem = out / f"overfit_{report['model']}_{report['dataset']}{'' if method == 'adamw' else '_' + method}"
    if a.append and not a.from_json and stem.with_suffix(".json").is_file():
        old = json.loads(stem.with_suffix(".json").read_text())
        same = ("model", "dataset", "method", "eval_n", "seed")
        if any(old.get(k, "adamw" if k == "method" else None) != report[k] for k in same):
            sys.exit(f"overfit_probe: --append: {stem}.json is another probe ({', '.join(same)} differ)")
        report["command"] = f"{old['command']}; {report['command']}"
        report["rows"] = old["rows"] + report["rows"]
    if not a.from_json:
        stem.with_suffix(".json").write_text(json.dumps(report, indent=1) + "\n")
    stem.with_suffix(".md").write_text(to_markdown(report))
    print(to_markdown(report))


if __name__ == "__main__":
    main()
