"""``run(cfg)``: one training run, top to bottom, as a plain function of the composed config.

skip-if-done -> seed -> model + data -> method + predictives -> step loop (validation every
``eval_every``) -> post-fit -> evaluate every predictive on every evaluation split -> write
predictions, adapter and the record. Any failure is recorded (``status: failed`` + traceback)
and re-raised; W&B is closed in every case.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
import traceback
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from tqdm.auto import tqdm

from bayeslora import checkpoint
from bayeslora import metrics as M
from bayeslora.checkpoint import load_trainable_state, rng_state, set_rng_state, trainable_state
from bayeslora.data import TaskData, build_task, eval_batches
from bayeslora.errors import ConfigError, TrainingDivergedError
from bayeslora.loggers import CSVLogger, flatten, instantiate_loggers
from bayeslora.models import build_model, lora_parameters
from bayeslora.predictives import EvalContext, Predictive
from bayeslora.records import RunRecord, config_hash, git_info, package_versions, should_skip, write_record
from bayeslora.utils.device import peak_memory_mb, resolve_device
from bayeslora.utils.instantiate import instantiate
from bayeslora.utils.secrets import refuse_secret_keys, scrub
from bayeslora.utils.seed import seed_everything

log = logging.getLogger(__name__)


def build_predictives(cfg: DictConfig, names: list[str]) -> dict[str, Predictive]:
    known = cfg.get("predictive") or {}
    out = {}
    for name in names:
        if name not in known:
            raise ConfigError(
                f"unknown predictive {name!r}; known: {sorted(known)} (each is a conf/predictive/<name>.yaml)"
            )
        out.update(instantiate(known[name]).expand(name))
    return out


def model_config(cfg: DictConfig) -> DictConfig:
    """``cfg.model``, with the LoRA dropout a method trains with (``method.lora_dropout``) if it sets one."""
    dropout = cfg.method.get("lora_dropout")
    if dropout is None:
        return cfg.model
    model_cfg = OmegaConf.create(OmegaConf.to_container(cfg.model, resolve=True))
    model_cfg.lora.dropout = float(dropout)
    return model_cfg


def to_device(batch, device: torch.device):
    """Move a batch (or a list of batches, one per ensemble member) to ``device``."""
    if isinstance(batch, (list, tuple)):
        return [to_device(b, device) for b in batch]
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}


def predict_split(
    predictive: Predictive,
    ctx: EvalContext,
    task: TaskData,
    split: str,
    batch_size: int,
    multiple: int,
    device: torch.device,
    max_examples: int | None = None,
    progress: bool = False,
) -> np.ndarray:
    """``log p̄`` ``[N, C]`` (float64) of ``predictive`` on ``split``, in dataset order: the
    predictive's per-sample log-probabilities averaged over samples in probability space."""
    data = task.evals[split]
    n = len(data) if max_examples is None else min(len(data), max_examples)
    if n < len(data):
        data = type(data)(data.name, data.input_ids[:n], data.labels[:n], data.prompts[:n])
    out = np.zeros((n, len(task.class_ids)), dtype=np.float64)
    batches = eval_batches(data, batch_size, task.pad_id, multiple)
    bar = tqdm(
        batches, total=-(-n // batch_size), desc=f"eval {predictive.label} {split}", disable=not progress
    )
    for idx, batch in bar:
        logp = predictive.predict(ctx, to_device(batch, device))
        if logp.dim() != 3 or logp.shape[1:] != (len(idx), len(task.class_ids)):
            raise RuntimeError(
                f"{type(predictive).__name__} returned shape {tuple(logp.shape)}, "
                f"expected [samples, {len(idx)}, {len(task.class_ids)}]"
            )
        out[idx] = M.log_mean_probs(logp)
    return out


def make_loggers(cfg: DictConfig, run_dir: Path, chash: str, resume_step: int | None = None) -> list:
    """The local CSV history (kept up to ``resume_step`` when resuming) and the loggers of ``cfg.logger``."""
    config = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)
    config.pop("paths", None)
    config.update(config_hash=chash, **git_info())
    # stable per run folder and config: a resumed run continues the same W&B run
    run_id = hashlib.sha256(f"{run_dir.resolve()}:{chash}".encode()).hexdigest()[:16]
    return [CSVLogger(run_dir, resume_step), *instantiate_loggers(cfg.logger, config, run_id)]


def fit(
    cfg: DictConfig,
    ctx: EvalContext,
    task: TaskData,
    predictives: dict[str, Predictive],
    val_predictive: Predictive,
    loggers: list,
    device: torch.device,
    chash: str,
    resume: dict[str, Any] | None = None,
) -> int:
    """The step loop, from step 1 or from a checkpoint. Returns the number of optimizer steps taken."""
    tr = cfg.trainer
    run_dir = Path(cfg.run_dir)
    method, model = ctx.method, ctx.model
    start, loop = 0, {"running": 0.0, "n_running": 0, "train_s": 0.0}
    if resume is not None:
        start, loop = int(resume["step"]), dict(resume["loop"])
        log.info("resuming %s from step %d", run_dir, start)
    batches = method.batches(task.train, tr.batch_size, cfg.seed, task.pad_id, tr.pad_to_multiple_of, start)
    val_split = list(task.evals)[0]
    t0 = time.perf_counter() - loop["train_s"]
    bar = tqdm(
        total=tr.max_steps,
        initial=start,
        desc=f"{cfg.method.name} {cfg.dataset.name}",
        disable=not tr.progress_bar,
    )
    step = start
    for step in range(start + 1, tr.max_steps + 1):
        model.train()
        loss = method.train_step(model, to_device(next(batches), device))
        if not math.isfinite(loss):
            raise TrainingDivergedError(
                f"loss is {loss} at step {step}; training diverged ({method.divergence_hint})"
            )
        for p in predictives.values():
            p.on_train_step(ctx, step)
        loop["running"] += loss
        loop["n_running"] += 1
        bar.update(1)
        if step % tr.log_every == 0 or step == tr.max_steps:
            scalars = {
                "train/loss": loop["running"] / loop["n_running"],
                "train/lr": method.current_lr(),
                "time/train_s": time.perf_counter() - t0,
            }
            bar.set_postfix(loss=f"{scalars['train/loss']:.4f}")
            for lg in loggers:
                lg.log(scalars, step)
            loop["running"], loop["n_running"] = 0.0, 0
        if tr.eval_every and (step % tr.eval_every == 0 or step == tr.max_steps):
            logp = predict_split(
                val_predictive,
                ctx,
                task,
                val_split,
                tr.eval_batch_size,
                tr.pad_to_multiple_of,
                device,
                tr.eval_max_examples,
            )
            labels = task.evals[val_split].labels[: len(logp)]
            m = M.classification_metrics(None, labels, cfg.eval.ece_bins, log_probs=logp)
            scalars = {f"val/{k}": v for k, v in m.items()}
            if not (step % tr.log_every == 0 or step == tr.max_steps):  # time/train_s once per step
                scalars["time/train_s"] = time.perf_counter() - t0
            log.info("step %d  %s", step, "  ".join(f"{k}={v:.4f}" for k, v in m.items()))
            for lg in loggers:
                lg.log(scalars, step)
        if tr.checkpoint_every and step % tr.checkpoint_every == 0 and step < tr.max_steps:
            loop["train_s"] = time.perf_counter() - t0
            state = {
                "trainable": trainable_state(model),
                "method": method.state_dict(),
                "shared": ctx.shared,
                "rng": rng_state(),
                "loop": dict(loop),
            }
            checkpoint.save(run_dir, state, step, chash)
    bar.close()
    return step


def restore(ctx: EvalContext, state: dict[str, Any]) -> None:
    """Put a verified checkpoint's state back (weights, method, predictive state, RNG)."""
    load_trainable_state(ctx.model, state["trainable"])
    ctx.method.load_state_dict(state["method"])
    ctx.shared.update(state["shared"])
    set_rng_state(state["rng"])


def run(cfg: DictConfig) -> dict[str, Any]:
    """Train, evaluate and record one run; returns the record as a dict."""
    run_dir = Path(cfg.run_dir)
    refuse_secret_keys(OmegaConf.to_container(cfg, resolve=False))
    chash = config_hash(cfg)
    done = should_skip(run_dir, chash, cfg.overwrite)
    if done is not None:
        log.info("skipping %s: finished with the same config hash %s", run_dir, chash)
        return done

    record = RunRecord(
        status="running",
        exp_name=cfg.exp_name,
        dataset=cfg.dataset.name,
        dataset_label=cfg.dataset.get("label"),
        model=cfg.model.name,
        method=cfg.method.name,
        seed=int(cfg.seed),
        config_hash=chash,
    )
    started = datetime.now(timezone.utc)
    t_start = time.perf_counter()
    loggers: list = []
    device = torch.device("cpu")
    ok = False
    try:
        if cfg.trainer.num_threads:
            torch.set_num_threads(int(cfg.trainer.num_threads))
        device = resolve_device(cfg.trainer.device)
        seed_everything(cfg.seed)
        model, tokenizer = build_model(model_config(cfg), device, cfg.seed)
        task = build_task(
            cfg.dataset,
            tokenizer,
            cfg.trainer.max_length,
            cfg.eval.max_examples,
            cfg.eval.ood,
            cfg.trainer.get("max_train_examples"),
        )
        record.n_train = len(task.train)
        record.n_eval = {k: len(v) for k, v in task.evals.items()}
        record.eval_split = list(task.evals)[0]
        record.data_sources = dict(task.sources or {})

        method = instantiate(cfg.method)
        method.setup(model, task.class_ids, cfg.trainer.max_steps, len(task.train), int(cfg.seed))
        ctx = EvalContext(
            model=model,
            method=method,
            class_ids=task.class_ids,
            seed=int(cfg.seed),
            sample_chunk=int(cfg.eval.sample_chunk),
            progress=bool(cfg.trainer.progress_bar),
        )
        predictives = build_predictives(cfg, method.predictives)
        val_predictive = next(iter(build_predictives(cfg, [method.val_predictive]).values()))
        for p in [*predictives.values(), val_predictive]:
            p.bind(ctx)
        record.labels = {name: p.label for name, p in predictives.items()}
        record.table_rows = [name for name, p in predictives.items() if p.in_table]
        if cfg.overwrite:
            checkpoint.remove(run_dir)
        resume = checkpoint.load(run_dir, chash, device)
        if resume is not None:
            restore(ctx, resume)
        loggers = make_loggers(cfg, run_dir, chash, None if resume is None else int(resume["step"]))

        record.steps = fit(cfg, ctx, task, predictives, val_predictive, loggers, device, chash, resume)

        def post_fit_batches():
            for _, batch in eval_batches(
                task.train, cfg.trainer.eval_batch_size, task.pad_id, cfg.trainer.pad_to_multiple_of
            ):
                yield to_device(batch, device)

        for p in predictives.values():
            p.post_fit(ctx, post_fit_batches)
        record.predictive_info = {name: p.info() for name, p in predictives.items() if p.info()}
        eval_s: dict[str, float] = {}

        saved: dict[str, np.ndarray] = {}
        for split, data in task.evals.items():
            saved[f"{split}/labels"] = data.labels
            record.splits[split] = {}
            for name, p in predictives.items():
                t0 = time.perf_counter()
                logp = predict_split(
                    p,
                    ctx,
                    task,
                    split,
                    cfg.trainer.eval_batch_size,
                    cfg.trainer.pad_to_multiple_of,
                    device,
                    progress=cfg.trainer.progress_bar,
                )
                eval_s[f"{split}/{name}"] = round(time.perf_counter() - t0, 3)
                m = M.classification_metrics(None, data.labels, cfg.eval.ece_bins, log_probs=logp)
                record.splits[split][name] = m
                saved[f"{split}/{name}"] = np.exp(logp)  # float64: exact down to 1e-308
        record.eval_seconds = eval_s
        record.metrics = record.splits[record.eval_split]
        for lg in loggers:
            lg.summary(flatten({"final": record.splits}))
            lg.log(flatten({"final": record.metrics}), record.steps)
        for name, m in record.metrics.items():
            log.info("%-12s %s", name, "  ".join(f"{k}={v:.4f}" for k, v in m.items()))

        if cfg.eval.save_predictions:
            np.savez_compressed(run_dir / "preds.npz", **saved)
        model.save_pretrained(str(run_dir / "adapter"))
        method.save_artifacts(run_dir)
        record.status = "success"
        ok = True
        if not cfg.trainer.keep_checkpoint:
            checkpoint.remove(run_dir)
    except BaseException as e:
        record.status = "canceled" if isinstance(e, KeyboardInterrupt) else "failed"
        record.error = scrub(f"{type(e).__name__}: {e}")
        record.traceback = scrub(traceback.format_exc())
        raise
    finally:
        record.provenance = {
            **git_info(),
            "packages": package_versions(),
            "device": _device_name(device),
            "started": started.isoformat(timespec="seconds"),
            "wall_s": round(time.perf_counter() - t_start, 3),
            **peak_memory_mb(device),
        }
        if ok:
            record.provenance["n_lora_params"] = sum(p.numel() for _, p in lora_parameters(model))
        write_record(run_dir, record)
        for lg in loggers:
            try:
                lg.close(ok)
            except Exception:  # closing must never hide the real error
                log.exception("closing logger %s failed", type(lg).__name__)
    return record.to_dict()


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda:{torch.cuda.get_device_name(device)}"
    import platform

    return f"cpu:{platform.processor() or platform.machine()} x{torch.get_num_threads()} threads"
