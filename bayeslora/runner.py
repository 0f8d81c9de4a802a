"""One training run as plain functions of the composed config: ``setup -> fit -> evaluate -> write``.

:func:`run` reads top to bottom: skip-if-done -> :func:`setup` (seed, model, data, method,
predictives bound to the evaluation context) -> :func:`fit` (the step loop, validation every
``eval_every``; nothing at ``trainer.max_steps=0``, the zero-shot row) -> :func:`evaluate` (post-fit
work such as Laplace's curvature pass, then every predictive on every evaluation split) ->
:func:`write` (predictions, adapter, method artifacts) and the record. Any failure is recorded
(``status: failed`` + traceback) and re-raised; W&B is closed in every case.

``bayeslora.evaluate`` (post-hoc rows of an adapter trained elsewhere) runs the same
``setup -> evaluate -> write`` with the adapter's model and no training.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
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
from bayeslora.checks import swag_schedules
from bayeslora.config import require_composed
from bayeslora.data import TaskData, build_task, eval_batches
from bayeslora.data.report import data_line
from bayeslora.errors import BayesLoraError, TrainingDivergedError
from bayeslora.loggers import CSVLogger, flatten, instantiate_loggers
from bayeslora.models import build_model, lora_parameters
from bayeslora.predictives import EvalContext, Predictive, build_predictive
from bayeslora.records import (
    RECORD_FILE,
    RunRecord,
    config_hash,
    git_info,
    package_versions,
    should_skip,
    write_record,
)
from bayeslora.utils.device import peak_memory_mb, resolve_device
from bayeslora.utils.instantiate import instantiate
from bayeslora.utils.secrets import scrub
from bayeslora.utils.seed import seed_everything

log = logging.getLogger(__name__)

# (cfg, device) -> (model with LoRA, tokenizer)
ModelLoader = Callable[[DictConfig, torch.device], tuple[Any, Any]]


@dataclass
class Run:
    """What :func:`setup` builds and :func:`fit`, :func:`evaluate` and :func:`write` work on."""

    cfg: DictConfig
    record: RunRecord
    device: torch.device
    model: Any
    tokenizer: Any
    task: TaskData
    method: Any
    ctx: EvalContext
    predictives: dict[str, Predictive]
    val_predictive: Predictive
    # preds.npz arrays: "<split>/labels" and "<split>/<predictive>" (probabilities, float64)
    outputs: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def run_dir(self) -> Path:
        return Path(self.cfg.run_dir)


def build_predictives(cfg: DictConfig, names: list[str]) -> dict[str, Predictive]:
    """The predictives ``names`` (each composed as ``predictive.<name>``), by table row name, each
    told its row name; a grid predictive expands into one row per grid point, each with the grid's
    ``table_rank``."""
    require_composed(cfg, names, "unknown predictive")
    out = {}
    for name in names:
        predictive = build_predictive(cfg.predictive[name])
        for row, p in predictive.expand(name).items():
            p.table_rank = predictive.table_rank
            p.row = row
            out[row] = p
    return out


def model_config(cfg: DictConfig) -> DictConfig:
    """``cfg.model``, with the LoRA dropout a method trains with (``method.lora_dropout``) if it sets one."""
    dropout = (cfg.get("method") or {}).get("lora_dropout")
    if dropout is None:
        return cfg.model
    model_cfg = OmegaConf.create(OmegaConf.to_container(cfg.model, resolve=True))
    model_cfg.lora.dropout = float(dropout)
    return model_cfg


def fresh_lora_model(cfg: DictConfig, device: torch.device):
    """The base model with a fresh LoRA adapter (B = 0, A from the run seed) from the model config."""
    return build_model(model_config(cfg), device, cfg.seed)


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
    predictive's per-sample log-probabilities averaged over samples in probability space. NaN or
    inf probabilities are refused (a :class:`BayesLoraError` naming the row and the split)."""
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
        finite = torch.isfinite(logp.double().exp())  # probabilities: a log-probability of -inf is 0
        if not finite.all():
            n_bad = int((~finite).any(dim=-1).any(dim=0).sum())
            raise BayesLoraError(
                f"row {predictive.row or predictive.label!r}: NaN or inf probabilities on split {split!r} "
                f"({n_bad} of the {len(idx)} examples of a batch); no metrics are computed from them"
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


def new_record(cfg: DictConfig, chash: str) -> RunRecord:
    """A ``running`` record naming the run (experiment, dataset, model, method, seed, config hash)."""
    return RunRecord(
        status="running",
        exp_name=cfg.exp_name,
        dataset=cfg.dataset.name,
        dataset_label=cfg.dataset.get("label"),
        model=cfg.model.name,
        method=cfg.method.name,
        seed=int(cfg.seed),
        config_hash=chash,
    )


def setup(
    cfg: DictConfig,
    record: RunRecord | None = None,
    device: torch.device | None = None,
    load_model: ModelLoader = fresh_lora_model,
) -> Run:
    """Seed everything; the model (``load_model``: by default the base model with a fresh LoRA
    adapter from the model config), the task, the method set up for ``trainer.max_steps`` steps, the
    evaluation context and the method's predictives bound to it. Fills the record's data fields.
    Logs what it derives (a SWAG schedule that did not fit the run) and one line on the data."""
    record = record if record is not None else new_record(cfg, config_hash(cfg))
    patch, derived = swag_schedules(cfg)  # a file's SWAG start after a short run's last step
    if patch:
        cfg = OmegaConf.merge(cfg, OmegaConf.from_dotlist([f"{k}={v}" for k, v in patch.items()]))
        for line in derived:
            log.info("%s", line)
    if cfg.trainer.num_threads:
        torch.set_num_threads(int(cfg.trainer.num_threads))
    device = device if device is not None else resolve_device(cfg.trainer.device)
    seed_everything(cfg.seed)
    model, tokenizer = load_model(cfg, device)
    task = build_task(
        cfg.dataset,
        tokenizer,
        cfg.trainer.max_length,
        cfg.eval.max_examples,
        cfg.eval.ood,
        cfg.trainer.get("max_train_examples"),
    )
    log.info("%s", data_line(task, int(cfg.trainer.max_steps), int(cfg.trainer.batch_size)))
    record.n_train = len(task.train)
    record.n_eval = {k: len(v) for k, v in task.evals.items()}
    record.eval_split = list(task.evals)[0]
    record.data_sources = dict(task.sources or {})

    method = instantiate(cfg.method)
    method.setup(model, task.class_ids, int(cfg.trainer.max_steps), len(task.train), int(cfg.seed))
    ctx = EvalContext(
        model=model,
        method=method,
        class_ids=task.class_ids,
        pad_id=task.pad_id,
        seed=int(cfg.seed),
        total_steps=int(cfg.trainer.max_steps),
        sample_chunk=int(cfg.eval.sample_chunk),
        progress=bool(cfg.trainer.progress_bar),
    )
    predictives = build_predictives(cfg, method.predictives)
    val_predictive = next(iter(build_predictives(cfg, [method.val_predictive]).values()))
    for p in [*predictives.values(), val_predictive]:
        p.bind(ctx)
    record.labels = {name: p.label for name, p in predictives.items()}
    record.table_rows = [name for name, p in predictives.items() if p.in_table]
    record.ranks = {name: p.table_rank for name, p in predictives.items() if p.table_rank is not None}
    return Run(cfg, record, device, model, tokenizer, task, method, ctx, predictives, val_predictive)


def fit(run: Run, loggers: list, resume: dict[str, Any] | None = None) -> int:
    """The step loop, from step 1 or from a checkpoint, up to ``trainer.max_steps`` (0: no step).
    Returns the number of optimizer steps taken."""
    cfg, tr, task, device = run.cfg, run.cfg.trainer, run.task, run.device
    ctx, method, model = run.ctx, run.method, run.model
    start, loop = 0, {"running": 0.0, "n_running": 0, "train_s": 0.0}
    if resume is not None:
        start, loop = int(resume["step"]), dict(resume["loop"])
        log.info("resuming %s from step %d", run.run_dir, start)
    if tr.max_steps == 0:
        log.info("trainer.max_steps=0: no training, the predictives see the untrained adapter")
        return 0
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
        for p in run.predictives.values():
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
                run.val_predictive,
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
            checkpoint.save(run.run_dir, state, step, run.record.config_hash)
    bar.close()
    # the training loop's seconds summed over every process that ran it (a resumed run's wall_s is
    # its last process's only), and the step it resumed from
    run.record.provenance["train_s"] = round(time.perf_counter() - t0, 3)
    if start:
        run.record.provenance["resumed_from_step"] = start
    return step


def restore(ctx: EvalContext, state: dict[str, Any]) -> None:
    """Put a verified checkpoint's state back (weights, method, predictive state, RNG)."""
    load_trainable_state(ctx.model, state["trainable"])
    ctx.method.load_state_dict(state["method"])
    ctx.shared.update(state["shared"])
    set_rng_state(state["rng"])


def post_fit(run: Run) -> None:
    """Post-fit work of every predictive (e.g. Laplace's curvature pass over the training split,
    in evaluation batches); fills the record's ``post_fit_seconds``."""
    task, tr = run.task, run.cfg.trainer

    def post_fit_batches():
        for _, batch in eval_batches(task.train, tr.eval_batch_size, task.pad_id, tr.pad_to_multiple_of):
            yield to_device(batch, run.device)

    for name, p in run.predictives.items():
        if type(p).post_fit is not Predictive.post_fit:
            log.info("post-fit %s (%d training examples)", name, len(task.train))
        t0 = time.perf_counter()
        p.post_fit(run.ctx, post_fit_batches)
        run.record.post_fit_seconds[name] = round(time.perf_counter() - t0, 3)


def evaluate(run: Run) -> dict[str, dict[str, float]]:
    """:func:`post_fit`, then every predictive on every evaluation split. Fills the record
    (``splits``, ``metrics``, ``predictive_info``, ``post_fit_seconds``, ``eval_seconds``) and
    ``run.outputs``; returns the metrics of the evaluation split."""
    cfg, task, ctx, record = run.cfg, run.task, run.ctx, run.record
    tr = cfg.trainer
    post_fit(run)
    record.predictive_info = {name: p.info() for name, p in run.predictives.items() if p.info()}
    for split, data in task.evals.items():
        run.outputs[f"{split}/labels"] = data.labels
        record.splits[split] = {}
        log.info("eval %s (%d examples): %s", split, len(data), ", ".join(run.predictives))
        for name, p in run.predictives.items():
            t0 = time.perf_counter()
            logp = predict_split(
                p,
                ctx,
                task,
                split,
                tr.eval_batch_size,
                tr.pad_to_multiple_of,
                run.device,
                progress=tr.progress_bar,
            )
            record.eval_seconds[f"{split}/{name}"] = round(time.perf_counter() - t0, 3)
            record.splits[split][name] = M.classification_metrics(
                None, data.labels, cfg.eval.ece_bins, log_probs=logp
            )
            run.outputs[f"{split}/{name}"] = np.exp(logp)  # float64: exact down to 1e-308
    record.metrics = record.splits[record.eval_split]
    for name, m in record.metrics.items():
        log.info("%-12s %s", name, "  ".join(f"{k}={v:.4f}" for k, v in m.items()))
    return record.metrics


def write(run: Run, out_dir: Path | None = None, artifacts: bool = True) -> None:
    """Write the predictions (``preds.npz``, unless ``eval.save_predictions=false``) and, with
    ``artifacts``, the trained adapter and the method's artifacts (e.g. IVON's posterior) into
    ``out_dir`` (default: the run folder). The record is the caller's: it is written last."""
    out = Path(out_dir) if out_dir is not None else run.run_dir
    out.mkdir(parents=True, exist_ok=True)
    if run.cfg.eval.save_predictions:
        np.savez_compressed(out / "preds.npz", **run.outputs)
    if artifacts:
        run.model.save_pretrained(str(out / "adapter"))
        run.method.save_artifacts(out)


def provenance(device: torch.device, started: datetime, t_start: float) -> dict[str, Any]:
    """Git commit, package versions, device, start time, wall seconds and peak memory."""
    return {
        **git_info(),
        "packages": package_versions(),
        "device": _device_name(device),
        "started": started.isoformat(timespec="seconds"),
        "wall_s": round(time.perf_counter() - t_start, 3),
        **peak_memory_mb(device),
    }


def run(cfg: DictConfig) -> dict[str, Any]:
    """Train, evaluate and record one run; returns the record as a dict. The entry points check
    ``cfg`` first (:func:`bayeslora.checks.preflight`); a caller of ``run`` should too. Logs the run
    folder first and the record's path last."""
    run_dir = Path(cfg.run_dir)
    log.info("run folder: %s", run_dir)
    chash = config_hash(cfg)
    done = should_skip(run_dir, chash, cfg.overwrite)
    if done is not None:
        log.info("skipping %s: finished with the same config hash %s", run_dir, chash)
        return done

    record = new_record(cfg, chash)
    started = datetime.now(timezone.utc)
    t_start = time.perf_counter()
    loggers: list = []
    device = torch.device("cpu")
    state: Run | None = None
    ok = False
    try:
        device = resolve_device(cfg.trainer.device)
        state = setup(cfg, record, device)
        if cfg.overwrite:
            checkpoint.remove(run_dir)
        resume = checkpoint.load(run_dir, chash, device)
        if resume is not None:
            restore(state.ctx, resume)
        loggers = make_loggers(cfg, run_dir, chash, None if resume is None else int(resume["step"]))

        record.steps = fit(state, loggers, resume)
        evaluate(state)
        for lg in loggers:
            lg.summary(flatten({"final": record.splits}))
            lg.log(flatten({"final": record.metrics}), record.steps)
        write(state)
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
        record.provenance = {**provenance(device, started, t_start), **record.provenance}
        if ok:
            record.provenance["n_lora_params"] = sum(p.numel() for _, p in lora_parameters(state.model))
        write_record(run_dir, record)
        for lg in loggers:
            try:
                lg.close(ok)
            except Exception:  # closing must never hide the real error
                log.exception("closing logger %s failed", type(lg).__name__)
        log.info("record: %s (%s)", run_dir / RECORD_FILE, record.status)
    return record.to_dict()


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda:{torch.cuda.get_device_name(device)}"
    import platform

    return f"cpu:{platform.processor() or platform.machine()} x{torch.get_num_threads()} threads"
