"""Choose IVON's ess and initial Hessian for a new model by the paper's heuristic.

The paper tunes both by hand for Llama-2-7B (its Table 2): ess is the smallest value for which
training is stable, and the initial Hessian h₀ is one for which the running Hessian (so the
posterior variance v = 1 / (ess · h)) does not drift in the first steps. This probe makes that
heuristic a measurement: for every (ess, h₀) of a grid it runs ``--steps`` IVON steps on the
training split and records

* ``stable``: every loss finite, and the mean loss of the last quarter of the steps within
  ``--stable-tol`` (10 %) of the lowest last-quarter loss of the grid. Every grid point sees the same
  batches (same seed), so this is a paired comparison: a stable ess trains as well as the least noisy
  one. (Over a few dozen steps at batch 4 the loss need not fall below its first-quarter value for
  any setting, so "the loss falls" is no criterion here: seen on SmolLM2 / WG-S.);
* ``drift``: max over the first ``--drift-steps`` steps of |log(mean(h_t) / h₀)| (0 = no drift).

The choice: the smallest stable ess; at it, the h₀ with the smallest drift. Each grid point is one
process (``--jobs`` at a time). Output: ``--out`` (JSON with every grid point) and a Markdown table.

    python scripts/ivon_probe.py --model smollm2_135m --dataset winogrande_s \\
        --ess 1e4,1e5,1e6,1e7 --hess-init 1e-4,1e-3,1e-2 --steps 80 --out results/probes/ivon_smollm2_wgs.json
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def probe_one(args: tuple) -> dict:
    model_name, dataset, ess, h0, steps, drift_steps, seed, device, threads, max_train = args
    from bayeslora.config import compose_config
    from bayeslora.runner import setup, to_device

    cfg = compose_config(
        [f"model={model_name}", f"dataset={dataset}", "method=ivon", f"seed={seed}"]
        + [f"method.ess={ess}", f"method.hess_init={h0}", f"trainer.max_steps={steps}"]
        + [f"trainer.device={device}", f"trainer.num_threads={threads}", "trainer.progress_bar=false"]
        + ["eval.max_examples=1"]  # the probe evaluates nothing
        + ([] if max_train is None else [f"trainer.max_train_examples={max_train}"])
    )
    # the run as the runner sets it up; the steps below are its step loop, with the Hessian read per step
    run = setup(cfg)
    model, method, task, dev, tr = run.model, run.method, run.task, run.device, cfg.trainer
    batches = method.batches(task.train, tr.batch_size, seed, task.pad_id, tr.pad_to_multiple_of)
    losses, hess_means = [], []
    t0 = time.perf_counter()
    for _ in range(steps):
        model.train()
        loss = method.train_step(model, to_device(next(batches), dev))
        losses.append(loss)
        hess_means.append(float(method.optimizer.param_groups[0]["hess"].mean()))
        if not math.isfinite(loss):
            break
    q = max(1, steps // 4)
    finite = all(math.isfinite(x) for x in losses) and len(losses) == steps
    first, last = sum(losses[:q]) / q, sum(losses[-q:]) / q
    drift = max(abs(math.log(max(h, 1e-30) / h0)) for h in hess_means[:drift_steps])
    return {
        "ess": ess,
        "hess_init": h0,
        "finite": finite,
        "loss_first_quarter": first,
        "loss_last_quarter": last,
        "drift": drift,
        "hess_mean_end": hess_means[-1],
        "mean_variance_end": 1.0 / (ess * hess_means[-1]) if hess_means[-1] > 0 else None,
        "seconds": round(time.perf_counter() - t0, 1),
    }


def mark_stable(rows: list[dict], tol: float) -> list[dict]:
    """``stable``: finite, and a last-quarter loss within ``tol`` of the grid's best (paired: same batches)."""
    finite = [r["loss_last_quarter"] for r in rows if r["finite"]]
    best = min(finite) if finite else float("nan")
    for r in rows:
        r["stable"] = bool(r["finite"] and r["loss_last_quarter"] <= (1.0 + tol) * best)
    return rows


def choose(rows: list[dict]) -> dict | None:
    stable = [r for r in rows if r["stable"]]
    if not stable:
        return None
    ess = min(r["ess"] for r in stable)
    return min((r for r in stable if r["ess"] == ess), key=lambda r: r["drift"])


def to_markdown(rows: list[dict], chosen: dict | None, meta: dict) -> str:
    lines = [
        f"IVON probe: {meta['model']} on {meta['dataset']}, {meta['steps']} steps per grid point, "
        f"drift over the first {meta['drift_steps']} steps, seed {meta['seed']}, device {meta['device']}; "
        f"stable = finite and a last-quarter loss within {meta['stable_tol']:.0%} of the grid's best.",
        "",
        "| ess | h₀ | stable | loss 1st ¼ | loss last ¼ | drift |log(h̄/h₀)| | mean v at end |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in sorted(rows, key=lambda r: (r["ess"], r["hess_init"])):
        v = "–" if r["mean_variance_end"] is None else f"{r['mean_variance_end']:.2e}"
        lines.append(
            f"| {r['ess']:.0e} | {r['hess_init']:.0e} | {'yes' if r['stable'] else 'no'} | "
            f"{r['loss_first_quarter']:.4f} | {r['loss_last_quarter']:.4f} | {r['drift']:.3f} | {v} |"
        )
    pick = (
        "none of the grid is stable"
        if chosen is None
        else (f"ess = {chosen['ess']:g}, hess_init = {chosen['hess_init']:g}")
    )
    lines += ["", f"Chosen (smallest stable ess; at it, least drift): {pick}."]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2_135m")
    ap.add_argument("--dataset", default="winogrande_s")
    ap.add_argument("--ess", default="1e4,1e5,1e6,1e7")
    ap.add_argument("--hess-init", default="1e-4,1e-3,1e-2")
    ap.add_argument("--steps", type=int, default=80)
    ap.add_argument("--drift-steps", type=int, default=20)
    ap.add_argument("--seed", type=int, default=21)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument(
        "--max-train-examples",
        type=int,
        default=None,
        help="train on the first N rows (trainer.max_train_examples)",
    )
    ap.add_argument("--threads", type=int, default=1, help="torch threads per grid point")
    ap.add_argument("--stable-tol", type=float, default=0.1, help="see `stable` above")
    ap.add_argument(
        "--from-json",
        type=Path,
        default=None,
        help="re-apply the choice to the grid of an earlier probe (no runs)",
    )
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument(
        "--write-config",
        type=Path,
        default=None,
        help="add the choice for --dataset to this conf/method_model/ivon_<model>.yaml (kept for other datasets)",
    )
    a = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    meta = {k: getattr(a, k) for k in ("model", "dataset", "steps", "drift_steps", "seed", "device")}
    if a.from_json is not None:
        earlier = json.loads(a.from_json.read_text())
        meta = {k: earlier[k] for k in meta}
        rows = earlier["grid"]
    else:
        grid = [(float(e), float(h)) for e in a.ess.split(",") for h in a.hess_init.split(",")]
        jobs = [
            (
                a.model,
                a.dataset,
                e,
                h,
                a.steps,
                a.drift_steps,
                a.seed,
                a.device,
                a.threads,
                a.max_train_examples,
            )
            for e, h in grid
        ]
        if a.jobs > 1:
            with ProcessPoolExecutor(a.jobs, mp_context=get_context("spawn")) as pool:
                rows = list(pool.map(probe_one, jobs))
        else:
            rows = [probe_one(j) for j in jobs]
    meta["stable_tol"] = a.stable_tol
    chosen = choose(mark_stable(rows, a.stable_tol))
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps({**meta, "grid": rows, "chosen": chosen}, indent=2) + "\n")
    md = to_markdown(rows, chosen, meta)
    a.out.with_suffix(".md").write_text(md)
    print(md)
    if a.write_config is not None and chosen is not None:
        write_config(a.write_config, a.model, a.dataset, chosen, a.out)


def write_config(path: Path, model: str, dataset: str, chosen: dict, probe_file: Path) -> None:
    """Per-dataset IVON settings of ``model``, selected by the dataset's name through interpolation."""
    from omegaconf import OmegaConf

    key = f"ivon_{model}"
    table, extra = {}, {}
    if path.is_file():
        old = OmegaConf.to_container(OmegaConf.load(path), resolve=False)
        table = old.get("lookup", {}).get(key, {})
        extra = {k: v for k, v in old.get("method", {}).items() if k not in ("ess", "hess_init")}
    table[dataset] = {"ess": float(chosen["ess"]), "hess_init": float(chosen["hess_init"])}
    body = OmegaConf.to_yaml({"lookup": {key: dict(sorted(table.items()))}})
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        "# @package _global_\n"
        f"# IVON on {model}: ess and hess_init per dataset, chosen by the paper's heuristic with\n"
        f"#   python scripts/ivon_probe.py --model {model} --dataset <dataset> ... --write-config {path}\n"
        f"# (the probe's grid and numbers: {probe_file.parent}/). A dataset without an entry is an error.\n"
        + body
        + "method:\n"
        + f"  ess: ${{lookup.{key}.${{dataset.name}}.ess}}\n"
        + f"  hess_init: ${{lookup.{key}.${{dataset.name}}.hess_init}}\n"
        + "".join(f"  {k}: {json.dumps(v)}\n" for k, v in extra.items())
    )


if __name__ == "__main__":
    main()
