"""Learnability probe: does LoRA fine-tuning of a small model beat zero-shot and the class prior?

The over-fitting probe (``scripts/overfit_probe.py``) asks whether AdamW memorises a training subset;
this one asks the question before it: on held-out rows, does fine-tuning on the training split
beat the better of (a) the untrained model (zero-shot) and (b) predicting the training labels'
class frequencies (the ``prior`` row), by more than 2 standard errors? Per (model, dataset) cell:

* one run with ``trainer.max_steps=0`` evaluating ``zero_shot`` and ``prior`` on the first
  ``--eval-n`` validation rows;
* one AdamW run (MAP row) on the first ``--n-train`` training rows, validated every
  ``--eval-every`` steps on the same rows, then evaluated on them.

Both go through the project's runner (``bayeslora.runner.run``), so their settings are a run's.
The verdict uses the final evaluation, paired per example against each baseline (the same rows):
SE of the mean per-example difference (correct for accuracy, -log p(y) for NLL). The best
periodic validation is shown too, with its binomial SE for accuracy; it is the maximum over several
evaluations, so "beats at best" is optimistic and reported as such.

    BAYESLORA_DATA_DIR=/path/to/data python scripts/learnability_probe.py \\
        --models smollm2_135m_bf16 gemma3_270m_bf16 --datasets arc_e winogrande_s boolq

Writes ``results/probes/learnability.{json,md}``. Cells already in the JSON are kept and skipped
(``--redo`` reruns them), so the probe can be grown a cell at a time; ``--from-json`` redraws the
Markdown only.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bayeslora.config import compose_config  # noqa: E402
from bayeslora.runner import run  # noqa: E402

sys.path.insert(0, str(ROOT / "scripts"))
from overfit_probe import common_overrides  # noqa: E402

OUT = ROOT / "results" / "probes"
STEM = "learnability"


def overrides(a, model: str, dataset: str, steps: int, results_dir: str) -> list[str]:
    out = [
        *common_overrides(a, model, dataset, steps, results_dir),
        f"trainer.max_train_examples={a.n_train}",
    ]
    if steps:
        out += ["method.predictives=[map]", f"method.lr={a.lr}"]
    else:
        out += ["method.name=zero_shot", "predictive=[zero_shot,prior]", "method.val_predictive=zero_shot"]
    return out + list(a.override)


def per_example(run_dir: Path, row: str) -> tuple[np.ndarray, np.ndarray]:
    """(correct, -log p(y)) per validation example of one row of a finished run."""
    with np.load(run_dir / "preds.npz") as z:
        split = next(k.split("/")[0] for k in z.files if k.endswith("/labels"))
        y, p = z[f"{split}/labels"].astype(int), z[f"{split}/{row}"]
    py = p[np.arange(len(y)), y]
    return (p.argmax(1) == y).astype(float), -np.log(np.maximum(py, np.finfo(float).tiny))


def paired(a: np.ndarray, b: np.ndarray) -> dict:
    d = a - b
    return {"diff": float(d.mean()), "se": float(d.std(ddof=1) / math.sqrt(len(d)))}


def cell(a, model: str, dataset: str) -> dict:
    with tempfile.TemporaryDirectory(prefix="bayeslora-learn-") as tmp:
        base_cfg = compose_config(overrides(a, model, dataset, 0, tmp))
        base = run(base_cfg)
        ft_cfg = compose_config(overrides(a, model, dataset, a.steps, tmp))
        ft = run(ft_cfg)
        zs, pr, fin = (
            per_example(Path(base_cfg.run_dir), "zero_shot"),
            per_example(Path(base_cfg.run_dir), "prior"),
            per_example(Path(ft_cfg.run_dir), "map"),
        )
        hist = pd.read_csv(Path(ft_cfg.run_dir) / "history.csv")
    wide = hist.pivot_table(index="step", columns="key", values="value").reset_index()
    val = wide[["step", "val/acc", "val/nll"]].dropna()
    train = wide[["step", "train/loss"]].dropna()
    tail = train[train.step > 0.9 * a.steps]["train/loss"]
    n = len(fin[0])
    rows = {
        "zero_shot": base["metrics"]["zero_shot"],
        "prior": base["metrics"]["prior"],
        "final": ft["metrics"]["map"],
    }
    best_i = int(val["val/acc"].values.argmax())
    rows["best"] = {
        "acc": float(val["val/acc"].values[best_i]),
        "acc_step": int(val.step.values[best_i]),
        "nll": float(val["val/nll"].min()),
        "nll_step": int(val.step.values[int(val["val/nll"].values.argmin())]),
    }
    # the better baseline per metric, then the paired test of the final evaluation against it
    base_acc = max(("zero_shot", "prior"), key=lambda r: rows[r]["acc"])
    base_nll = min(("zero_shot", "prior"), key=lambda r: rows[r]["nll"])
    per = {"zero_shot": zs, "prior": pr}
    acc_test = paired(fin[0], per[base_acc][0])
    nll_test = paired(per[base_nll][1], fin[1])  # > 0: fine-tuning lower
    best_se = math.sqrt(rows["best"]["acc"] * (1 - rows["best"]["acc"]) / n)
    base_se = math.sqrt(rows[base_acc]["acc"] * (1 - rows[base_acc]["acc"]) / n)
    return {
        "model": model,
        "dataset": dataset,
        "n_eval": n,
        "n_train": ft["n_train"],
        "steps": a.steps,
        "lr": a.lr,
        "seed": a.seed,
        "epochs": round(a.steps * ft_cfg.trainer.batch_size / ft["n_train"], 2),
        "classes": len(ft_cfg.dataset.classes),
        "prior_counts": base["predictive_info"]["prior"]["class_counts"],
        "rows": rows,
        "acc_se": {
            r: math.sqrt(rows[r]["acc"] * (1 - rows[r]["acc"]) / n) for r in ("zero_shot", "prior", "final")
        },
        "best_acc_se": best_se,
        "baseline_acc": base_acc,
        "baseline_nll": base_nll,
        "final_vs_baseline_acc": acc_test,
        "final_vs_baseline_nll": nll_test,
        "beats_acc_final": acc_test["diff"] > 2 * acc_test["se"],
        "beats_nll_final": nll_test["diff"] > 2 * nll_test["se"],
        # optimistic: the best of several evaluations against the baseline, unpaired binomial SEs
        "beats_acc_best": rows["best"]["acc"] - rows[base_acc]["acc"] > 2 * math.hypot(best_se, base_se),
        "train_loss_last_tenth": float(tail.mean()) if len(tail) else None,
        "val_curve": val.to_dict("records"),
        "wall_s": {"baseline": base["provenance"]["wall_s"], "fine_tune": ft["provenance"]["wall_s"]},
        "command_overrides": overrides(a, model, dataset, a.steps, "<tmp>"),
    }


def _pct(x: float) -> str:
    return f"{100 * x:.1f}"


def summary(cells: list[dict]) -> list[str]:
    """One line per model: the datasets it learns (accuracy beats both baselines) and those it does not."""
    out = []
    for model in dict.fromkeys(c["model"] for c in cells):
        mine = [c for c in cells if c["model"] == model]
        yes = [c["dataset"] for c in mine if c["beats_acc_final"]]
        no = [c["dataset"] for c in mine if not c["beats_acc_final"]]
        out.append(
            f"{model}: learns {', '.join(yes) if yes else 'none'} of {len(mine)} "
            f"({len(yes)}); does not learn {', '.join(no) if no else 'none'}"
        )
    return out


def to_markdown(report: dict) -> str:
    lines = [
        "# Learnability probe: does LoRA fine-tuning beat zero-shot and the class prior?",
        "",
        "Written by `scripts/learnability_probe.py` (AdamW, LoRA r8 on q/v, batch 4, linear decay; the "
        "MAP row). Validation on the first rows of each validation split (n below). **beats** = the "
        "final evaluation is better than the better of zero-shot and the prior by more than 2 SE of "
        "the paired per-example difference. *best* is the best periodic validation (the maximum of "
        "several evaluations, so optimistic; binomial SE).",
        "",
        "Commands: " + "; ".join(f"`{c}`" for c in report.get("commands", [])),
        "",
        "| model | dataset | train rows | steps (epochs) | last-tenth train loss | ACC %: zero-shot / prior / "
        "best / final (± SE) | beats on ACC | NLL: zero-shot / prior / best / final | beats on NLL | wall s |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for c in report["cells"]:
        r = c["rows"]
        at, nt = c["final_vs_baseline_acc"], c["final_vs_baseline_nll"]
        loss = "—" if c["train_loss_last_tenth"] is None else f"{c['train_loss_last_tenth']:.3f}"
        acc = (
            f"{_pct(r['zero_shot']['acc'])} / {_pct(r['prior']['acc'])} / {_pct(r['best']['acc'])} / "
            f"{_pct(r['final']['acc'])} (± {_pct(c['acc_se']['final'])})"
        )
        nll = (
            f"{r['zero_shot']['nll']:.3f} / {r['prior']['nll']:.3f} / {r['best']['nll']:.3f} / "
            f"{r['final']['nll']:.3f}"
        )
        beats_acc = (
            f"{'yes' if c['beats_acc_final'] else 'no'} (final − {c['baseline_acc']} "
            f"{100 * at['diff']:+.1f} ± {100 * at['se']:.1f}; best: {'yes' if c['beats_acc_best'] else 'no'})"
        )
        beats_nll = (
            f"{'yes' if c['beats_nll_final'] else 'no'} ({c['baseline_nll']} − final "
            f"{nt['diff']:+.3f} ± {nt['se']:.3f})"
        )
        wall = c["wall_s"]["baseline"] + c["wall_s"]["fine_tune"]
        lines.append(
            f"| {c['model']} | {c['dataset']} (n={c['n_eval']}) | {c['n_train']} | {c['steps']} "
            f"({c['epochs']:g}) | {loss} | {acc} | {beats_acc} | {nll} | {beats_nll} | {wall:.0f} |"
        )
    lines += [
        "",
        "What it says, per model (a cell *learns* when its final accuracy beats both baselines by 2 SE):",
        "",
    ]
    lines += [f"- {line}" for line in summary(report["cells"])]
    lines += [
        "",
        "Where no cell of a model beats its baselines, fine-tuning it on this budget learns nothing that "
        "generalises, so accuracy claims (a method's accuracy gain over AdamW) cannot be tested with it; "
        "calibration claims can then be tested only in the memorisation regime of the miniature "
        "(results/reports/mini.md).",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", nargs="+", default=["smollm2_135m_bf16"])
    ap.add_argument("--datasets", nargs="+", default=["arc_e", "winogrande_s", "boolq"])
    ap.add_argument("--n-train", type=int, default=2000, help="first N training rows (all if fewer)")
    ap.add_argument("--steps", type=int, default=500)
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--eval-every", type=int, default=100)
    ap.add_argument("--eval-n", type=int, default=300)
    ap.add_argument("--seed", type=int, default=21)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--override", nargs="*", default=[], help="more Hydra overrides for every run")
    ap.add_argument("--redo", action="store_true", help="rerun cells already in the JSON")
    ap.add_argument("--out", default=str(OUT))
    ap.add_argument("--from-json", action="store_true", help="redraw the Markdown from the JSON only")
    a = ap.parse_args()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{STEM}.json"
    report = json.loads(path.read_text()) if path.is_file() else {"cells": [], "commands": []}
    if not a.from_json:
        argv = sys.argv[1:]
        if "--out" in argv:  # where it writes is not part of what it ran
            i = argv.index("--out")
            argv = argv[:i] + argv[i + 2 :]
        command = "python scripts/learnability_probe.py " + " ".join(argv)
        for model in a.models:
            for dataset in a.datasets:
                have = [c for c in report["cells"] if (c["model"], c["dataset"]) == (model, dataset)]
                if have and not a.redo:
                    print(f"skip {model}/{dataset}: in {path}", flush=True)
                    continue
                c = cell(a, model, dataset)
                report["cells"] = [x for x in report["cells"] if x not in have] + [c]
                if command not in report["commands"]:
                    report["commands"].append(command)
                path.write_text(json.dumps(report, indent=1) + "\n")  # after every cell
                print(json.dumps({k: v for k, v in c.items() if k != "val_curve"}), flush=True)
    md = to_markdown(report)
    (out / f"{STEM}.md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
