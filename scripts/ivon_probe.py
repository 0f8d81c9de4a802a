"""Choose IVON's ess and initial Hessian for a model by a criterion that discriminates.

The paper tunes ess and h₀ by hand for Llama-2-7B (its Table 2). An earlier version of this probe
chose by the drift of the running Hessian over the first steps; with the paper's β2 = 1 - 1e-5 the
Hessian cannot move in a few dozen steps, the drift read 0.000 at every grid point, and it chose
nothing. With the Hessian frozen near h₀, IVON's elementwise step is lr·ĝ/h₀ clipped at
lr·clip_radius (h₀ sets the step) and the posterior's noise is 1/√(ess·h₀) (ess·h₀ sets the noise),
so the two are judged together against what they are for:

* ``gap``: IVON's mean training loss over the last quarter of ``--steps`` minus AdamW's on the same
  batches (same seed; AdamW at the model's own lr, one reference run). A setting ``fits`` when every
  loss is finite and ``gap`` <= ``--gap-tol`` nats: it trains as well as AdamW does;
* ``noise_ratio``: the posterior's initial noise scale 1/√(ess·h₀) over the RMS of the LoRA weights
  at the end of the AdamW reference run. Noise above the weights' own scale (ratio > 1) is a
  posterior wider than anything training moved.

Two diagnostics say why a setting does not fit. ``clipped``: the share of weights whose last step was
clipped at lr·clip_radius. Near 1, IVON is sign descent with momentum: every weight moves a full
step, those whose gradient is noise too, where AdamW's m/√v shrinks them. ``rms_vs_adamw``: the
LoRA weights' RMS at the end over AdamW's; well above 1 with a loss that did not fall is a random
walk: lower ``clip_radius`` (``--clip-radius`` takes a list, a third grid axis). On Qwen2.5-Coder-0.5B
(ARC-E) at radius 0.0167, a quarter of which trains, that was the case (docs/ivon_settings.md).

The choice: of the settings that fit with noise_ratio <= 1, the one with the most noise (the widest
posterior that still trains as AdamW does); ties go to the smaller gap. None fits: no choice, and
the table says so. Each grid point is one process (``--jobs`` at a time). Output: ``--out`` (JSON
with every grid point and the reference) and a Markdown table.

    python scripts/ivon_probe.py --model qwen25_coder_05b_bf16 --dataset arc_e --max-train-examples 320 \
        --ess 1e9,1e10 --hess-init 1e-5,1e-4 --clip-radius 0.004,0.0167 --steps 100 \
        --out results/probes/ivon_qwen25_coder_05b_bf16_arc_e.json
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
    """One grid point (``ess`` and ``h0`` numbers) or the AdamW reference (``ess`` None)."""
    model_name, dataset, ess, h0, steps, clip_radius, seed, device, threads, max_train = args
    import torch

    from bayeslora.config import compose_config
    from bayeslora.runner import setup, to_device

    if ess is None:
        method = ["method=adamw"]
    else:
        method = ["method=ivon", f"method.ess={ess}", f"method.hess_init={h0}"]
        method += [] if clip_radius is None else [f"method.clip_radius={clip_radius}"]
    cfg = compose_config(
        [f"model={model_name}", f"dataset={dataset}", *method, f"seed={seed}", f"trainer.max_steps={steps}"]
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
        if ess is not None:
            hess_means.append(float(method.optimizer.param_groups[0]["hess"].mean()))
        if not math.isfinite(loss):
            break
    q = max(1, steps // 4)
    finite = all(math.isfinite(x) for x in losses) and len(losses) == steps
    first, last = sum(losses[:q]) / q, sum(losses[-q:]) / q
    lora = [p.detach().float().flatten() for n, p in model.named_parameters() if p.requires_grad]
    row = {
        "ess": ess,
        "hess_init": h0,
        "clip_radius": None if ess is None else float(cfg.method.clip_radius),
        "lr": float(cfg.method.lr),
        "finite": finite,
        "loss_first_quarter": first,
        "loss_last_quarter": last,
        "lora_rms_end": float(torch.cat(lora).pow(2).mean().sqrt()),
        "seconds": round(time.perf_counter() - t0, 1),
    }
    if ess is not None:
        row["noise"] = 1.0 / math.sqrt(ess * h0)
        row["hess_mean_end"] = hess_means[-1]
        row["clipped"] = clipped_share(method.optimizer)
    return row


def clipped_share(opt) -> float:
    """Share of the weights whose last IVON step was clipped: |m / debias + δθ| / (h + δ) >= radius."""
    import torch

    debias = 1.0 - opt.param_groups[0]["beta1"] ** max(1, opt.current_step) if opt.debias else 1.0
    hits, total = 0, 0
    for g in opt.param_groups:
        theta = torch.cat([p.detach().flatten() for p in g["params"]])
        wd = g["weight_decay"]
        ratio = (g["momentum"] / debias + wd * theta).abs() / (g["hess"] + wd)
        hits += int((ratio >= g["clip_radius"]).sum())
        total += ratio.numel()
    return hits / max(1, total)


def mark(rows: list[dict], reference: dict, gap_tol: float) -> list[dict]:
    """``gap`` against the AdamW reference (same batches), ``fits``, and ``noise_ratio``."""
    for r in rows:
        r["gap"] = r["loss_last_quarter"] - reference["loss_last_quarter"]
        r["fits"] = bool(r["finite"] and reference["finite"] and r["gap"] <= gap_tol)
        r["noise_ratio"] = r["noise"] / reference["lora_rms_end"]
        r["rms_vs_adamw"] = r["lora_rms_end"] / reference["lora_rms_end"] if "lora_rms_end" in r else None
    return rows


def choose(rows: list[dict]) -> dict | None:
    """Of the settings that fit with noise_ratio <= 1: the most noise; ties go to the smaller gap."""
    ok = [r for r in rows if r["fits"] and r["noise_ratio"] <= 1.0]
    if not ok:
        return None
    return max(ok, key=lambda r: (r["noise"], -r["gap"]))


def to_markdown(rows: list[dict], reference: dict, chosen: dict | None, meta: dict) -> str:
    lines = [
        f"IVON probe: {meta['model']} on {meta['dataset']}, {meta['steps']} steps per grid point, seed "
        f"{meta['seed']}, device {meta['device']}; AdamW reference (lr {reference['lr']:g}, same batches): "
        f"last-quarter loss {reference['loss_last_quarter']:.4f}, LoRA weights' RMS at the end "
        f"{reference['lora_rms_end']:.4f}. fits = finite and gap <= {meta['gap_tol']:g} nats.",
        "",
        "| ess | h₀ | clip radius | noise 1/√(ess·h₀) | noise / LoRA RMS | loss 1st ¼ | loss last ¼ "
        "| gap vs AdamW | clipped | weights' RMS / AdamW's | fits |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in sorted(rows, key=lambda r: (r["ess"], r["hess_init"], r.get("clip_radius") or 0)):
        clipped = "–" if r.get("clipped") is None else f"{r['clipped']:.2f}"
        rms = "–" if r.get("rms_vs_adamw") is None else f"{r['rms_vs_adamw']:.2f}"
        lines.append(
            f"| {r['ess']:.0e} | {r['hess_init']:.0e} | {r.get('clip_radius') or '–'} | {r['noise']:.3g} | "
            f"{r['noise_ratio']:.2f} | {r['loss_first_quarter']:.4f} | {r['loss_last_quarter']:.4f} | "
            f"{r['gap']:+.4f} | {clipped} | {rms} | {'yes' if r['fits'] else 'no'} |"
        )
    pick = (
        "none of the grid fits with noise <= the LoRA weights' RMS"
        if chosen is None
        else f"ess = {chosen['ess']:g}, hess_init = {chosen['hess_init']:g}"
        + ("" if chosen.get("clip_radius") is None else f", clip_radius = {chosen['clip_radius']:g}")
    )
    lines += ["", f"Chosen (of those that fit with noise ratio <= 1, the most noise): {pick}."]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2_135m")
    ap.add_argument("--dataset", default="winogrande_s")
    ap.add_argument("--ess", default="1e4,1e5,1e6,1e7")
    ap.add_argument("--hess-init", default="1e-4,1e-3,1e-2")
    ap.add_argument("--steps", type=int, default=80)
    ap.add_argument(
        "--clip-radius",
        default=None,
        help="IVON's clip radius, one or a comma list (a grid axis; default: the config's)",
    )
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
    ap.add_argument("--gap-tol", type=float, default=0.05, help="see `fits` above (nats)")
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
    meta = {k: getattr(a, k) for k in ("model", "dataset", "steps", "seed", "device", "clip_radius")}
    if a.from_json is not None:
        earlier = json.loads(a.from_json.read_text())
        meta = {k: earlier[k] for k in meta}
        rows, reference = earlier["grid"], earlier["reference"]
    else:
        radii = [None] if a.clip_radius is None else [float(r) for r in str(a.clip_radius).split(",")]
        grid = [
            (float(e), float(h), r) for e in a.ess.split(",") for h in a.hess_init.split(",") for r in radii
        ]
        rest = (a.seed, a.device, a.threads, a.max_train_examples)
        jobs = [(a.model, a.dataset, None, None, a.steps, None, *rest)]  # the AdamW reference first
        jobs += [(a.model, a.dataset, e, h, a.steps, r, *rest) for e, h, r in grid]
        if a.jobs > 1:
            with ProcessPoolExecutor(a.jobs, mp_context=get_context("spawn")) as pool:
                reference, *rows = list(pool.map(probe_one, jobs))
        else:
            reference, *rows = [probe_one(j) for j in jobs]
    meta["gap_tol"] = a.gap_tol
    chosen = choose(mark(rows, reference, a.gap_tol))
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(
        json.dumps({**meta, "reference": reference, "grid": rows, "chosen": chosen}, indent=2) + "\n"
    )
    md = to_markdown(rows, reference, chosen, meta)
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
        extra = {
            k: v for k, v in old.get("method", {}).items() if k not in ("ess", "hess_init", "clip_radius")
        }
    table[dataset] = {"ess": float(chosen["ess"]), "hess_init": float(chosen["hess_init"])}
    if chosen.get("clip_radius") is not None:
        table[dataset]["clip_radius"] = float(chosen["clip_radius"])
    body = OmegaConf.to_yaml({"lookup": {key: dict(sorted(table.items()))}})
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        "# @package _global_\n"
        f"# IVON on {model}: ess and hess_init per dataset, chosen against AdamW's training loss with\n"
        f"#   python scripts/ivon_probe.py --model {model} --dataset <dataset> ... --write-config {path}\n"
        f"# (the probe's grid and numbers: {probe_file.parent}/). A dataset without an entry is an error.\n"
        + body
        + "method:\n"
        + f"  ess: ${{lookup.{key}.${{dataset.name}}.ess}}\n"
        + f"  hess_init: ${{lookup.{key}.${{dataset.name}}.hess_init}}\n"
        + (
            f"  clip_radius: ${{lookup.{key}.${{dataset.name}}.clip_radius}}\n"
            if all("clip_radius" in v for v in table.values())
            else ""
        )
        + "".join(f"  {k}: {json.dumps(v)}\n" for k, v in extra.items())
    )


if __name__ == "__main__":
    main()
