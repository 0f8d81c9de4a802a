"""Bayesian predictions for any LoRA adapter: ``python -m bayeslora.evaluate`` (``bayeslora-evaluate``).

    python -m bayeslora.evaluate model=smollm2_135m dataset=arc_e adapter=/path/to/peft_adapter \\
        'predictive=[map,mc_dropout,laplace_kfac,laplace_diag]' [eval.max_examples=100] [...]

Hydra overrides of ``conf/evaluate.yaml``, as for training. The base model loads as in a training
run, the adapter (a PEFT LoRA folder or hub id; ``adapter=null``: none, the zero-shot rows of
``trainer.max_steps=0``) is attached with its own rank, alpha, dropout and target modules, and the
listed predictives are evaluated on the dataset's evaluation splits; Laplace fits its curvature on
the training split (``trainer.max_train_examples`` caps it) exactly as after training. An IVON
run's ``ivon_posterior.pt`` (``ivon_posterior=...``) gives the IVON rows.

It runs the training runner's own ``setup -> evaluate -> write`` (:mod:`bayeslora.runner`) with the
adapter's model and :class:`~bayeslora.adapters.FixedAdapter` as the method, and writes the same
``metrics.json`` and ``preds.npz`` as a training run (plus ``.hydra/config.yaml``) under
``results/runs/<exp_name>/<dataset>/<model>/<adapter_name>/seed=<seed>/``, so ``bayeslora-table
<exp_name>`` tables it beside trained rows. The record's ``adapter`` says which adapter it was
(source, sha256 of its weights, its LoRA settings and base model); its config hash covers the
adapter's and the posterior's content, not their paths.

Bad input is one ``bayeslora-evaluate: error:`` line and writes nothing: everything that can be
checked from the config and the adapter's files is checked before the model loads (exit 2), the
rest (base model, target modules, weight names and shapes) before anything is written (exit 1).
This is why it composes the config itself rather than through ``@hydra.main``, which creates the
run folder before the job starts: one evaluation per command (no ``-m``); ``--cfg job`` prints
the config.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from bayeslora.errors import BayesLoraError, ConfigError

log = logging.getLogger("bayeslora")
PROG = "bayeslora-evaluate"
CFG_KINDS = ("job", "hydra", "all")


class CheckError(ConfigError):
    """Bad input found before the model loads (exit status 2)."""


def check(cfg: DictConfig):
    """Everything that can be checked before the model loads; returns the adapter (or None)."""
    from bayeslora.adapters import adapter_method_class, read_adapter
    from bayeslora.checks import check_data, check_model
    from bayeslora.contracts import DESCRIPTIONS, GaussianPosterior, missing
    from bayeslora.predictives import build_predictive
    from bayeslora.schema import validate

    if OmegaConf.is_missing(cfg, "adapter"):
        raise ConfigError(
            "adapter is required: a PEFT LoRA adapter folder, a hub id, or adapter=null for the base model"
        )
    if cfg.trainer.max_steps != 0:
        raise ConfigError(
            f"an adapter evaluation trains nothing: trainer.max_steps must be 0, not {cfg.trainer.max_steps}"
        )
    names = list(cfg.method.predictives)
    if not names:
        raise ConfigError("no predictive to evaluate: name the rows with predictive=[map,...]")
    spec = None if cfg.adapter is None else read_adapter(cfg.adapter)
    method_class = adapter_method_class(cfg.ivon_posterior)
    dropout = float(cfg.model.lora.dropout) if spec is None else spec.dropout
    dropout_from = (
        "model.lora.dropout" if spec is None else f"lora_dropout in {spec.folder}/adapter_config.json"
    )
    for name in names:
        p = build_predictive(cfg.predictive[name])
        if p.needs_training:
            raise ConfigError(
                f"predictive {name!r} ({p.label}) needs the training trajectory ({p.needs_training}), "
                f"which an adapter alone cannot give; its rows come from a training run (bayeslora.train)"
            )
        if p.needs_lora_dropout and dropout <= 0:
            raise ConfigError(
                f"predictive {name!r} ({p.label}) samples the LoRA dropout masks and needs the adapter's "
                f"dropout rate above 0, but it is {dropout:g} ({dropout_from})"
            )
        if p.requires is GaussianPosterior and cfg.ivon_posterior is None:
            raise ConfigError(
                f"predictive {name!r} ({p.label}) needs an IVON posterior over the adapter's weights: pass "
                f"ivon_posterior=<IVON run folder>/ivon_posterior.pt"
            )
        lacking = [] if p.requires is None else missing(method_class, p.requires)
        if lacking:  # the contract, checked on the evaluation's method class before anything loads
            what, example = DESCRIPTIONS.get(p.requires, (p.requires.__name__, "a method that has it"))
            raise ConfigError(
                f"predictive {name!r} ({p.label}) needs {what} ({example}), which an adapter evaluation "
                f"does not have; its rows come from a training run (bayeslora.train {example})"
            )
    validate(cfg)
    check_model(cfg)  # a GGUF model's quantization, local model paths
    check_data(cfg)  # data files and folders
    return spec


def evaluation_hash(cfg: DictConfig, spec) -> str:
    """The config hash of an evaluation: the resolved config (as for a run, without the adapter's
    and the posterior's paths, wherever they appear) plus what the files hold: the sha256 of the
    adapter's weights, the LoRA settings of its adapter_config.json (rank, alpha, dropout, target
    modules: alpha sets the scaling of the weights' product, so the same weights under another
    alpha are another model) and the sha256 of the posterior."""
    from bayeslora.adapters import file_sha256
    from bayeslora.records import hashed_config

    config = hashed_config(cfg)
    config.pop("adapter", None)
    config.pop("ivon_posterior", None)
    if isinstance(config.get("method"), dict):
        config["method"].pop("posterior", None)  # ${ivon_posterior}: the path again
    config["adapter_sha256"] = None if spec is None else spec.sha256
    config["adapter_lora"] = None if spec is None else spec.lora_config()
    config["ivon_posterior_sha256"] = (
        None if cfg.ivon_posterior is None else file_sha256(Path(cfg.ivon_posterior))
    )
    blob = json.dumps(config, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def evaluate_adapter(cfg: DictConfig, overrides: list[str] | None = None) -> dict[str, Any]:
    """Evaluate the adapter of ``cfg`` and write its record; returns the record as a dict.
    A finished evaluation with the same hash is skipped (as a training run)."""
    from bayeslora.adapters import adapter_model
    from bayeslora.models import lora_parameters
    from bayeslora.records import should_skip, write_record
    from bayeslora.runner import evaluate, fresh_lora_model, new_record, provenance, setup, write
    from bayeslora.utils.atomic import atomic_write_text
    from bayeslora.utils.device import resolve_device

    try:
        spec = check(cfg)
    except ConfigError as e:  # before the model loads: exit status 2
        raise CheckError(str(e)) from None
    run_dir = Path(cfg.run_dir)
    chash = evaluation_hash(cfg, spec)
    done = should_skip(run_dir, chash, cfg.overwrite)
    if done is not None:
        log.info("skipping %s: finished with the same config hash %s", run_dir, chash)
        return done
    started = datetime.now(timezone.utc)
    t_start = time.perf_counter()
    record = new_record(cfg, chash)
    record.adapter = None if spec is None else spec.info()
    if record.adapter is None:
        record.adapter = {"source": None, "note": "base model with an untrained LoRA adapter (B = 0)"}
    if cfg.ivon_posterior is not None:
        record.adapter["ivon_posterior"] = str(cfg.ivon_posterior)
    device = resolve_device(cfg.trainer.device)
    load = fresh_lora_model if spec is None else (lambda c, d: adapter_model(c, d, spec))
    state = setup(cfg, record, device, load_model=load)
    evaluate(state)
    record.steps = 0
    record.status = "success"
    record.provenance = provenance(device, started, t_start)
    record.provenance["n_lora_params"] = sum(p.numel() for _, p in lora_parameters(state.model))
    # everything is computed: now write (the record last, so a folder without it is not a result)
    write(state, artifacts=False)
    hydra_dir = run_dir / ".hydra"
    hydra_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(hydra_dir / "config.yaml", OmegaConf.to_yaml(cfg))
    atomic_write_text(
        hydra_dir / "overrides.yaml", OmegaConf.to_yaml(OmegaConf.create(list(overrides or [])))
    )
    write_record(run_dir, record)
    return record.to_dict()


def summary(record: dict[str, Any]) -> str:
    """The record's rows as a small text table: metrics of the evaluation split, the seconds of each
    row's post-fit work (Laplace: curvature pass + prior tuning) and of its evaluation."""
    split = record.get("eval_split")
    lines = [f"{'row':<14} {'acc':>7} {'ece':>7} {'nll':>7} {'brier':>7} {'fit s':>8} {'eval s':>8}"]
    for name, m in (record.get("metrics") or {}).items():
        fit = (record.get("post_fit_seconds") or {}).get(name, 0.0)
        secs = (record.get("eval_seconds") or {}).get(f"{split}/{name}", float("nan"))
        lines.append(
            f"{record['labels'].get(name, name):<14} {m['acc']:7.4f} {m['ece']:7.4f} {m['nll']:7.4f} "
            f"{m['brier']:7.4f} {fit:8.2f} {secs:8.2f}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from bayeslora.config import compose_config, split_config_dir
    from bayeslora.train import one_line
    from bayeslora.utils.env import setup_entry_point
    from bayeslora.utils.secrets import install_log_filter, refuse_secret_overrides, scrub

    if argv is None:  # the command: read .env, quiet library chatter, log to stderr
        setup_entry_point()
        install_log_filter()
        logging.basicConfig(level=logging.INFO, format="[%(asctime)s][%(name)s] %(message)s")
    args = list(sys.argv[1:] if argv is None else argv)
    if any(a in ("-h", "--help") for a in args):
        print(__doc__.strip())
        return 0

    def fail(message: str, status: int) -> int:
        print(f"{PROG}: error: {scrub(message)}", file=sys.stderr)
        return status

    show = None
    if "--cfg" in args or "-c" in args:
        i = args.index("--cfg") if "--cfg" in args else args.index("-c")
        # Hydra's --cfg takes job|hydra|all; anything else after it is an override, not swallowed
        given = i + 1 < len(args) and args[i + 1] in CFG_KINDS
        show = args[i + 1] if given else "job"
        if show != "job":
            return fail(f"--cfg {show}: an evaluation composes no Hydra runtime config; use --cfg job", 2)
        del args[i : i + 1 + given]
    resolve = "--resolve" in args
    args = [a for a in args if a != "--resolve"]
    try:
        config_dir, args = split_config_dir(args)  # a user's own conf folder, as for bayeslora.train
    except BayesLoraError as e:
        return fail(str(e), 2)
    flags = [a for a in args if a.startswith("-")]
    if flags:
        hint = "; it evaluates one adapter per command" if flags[0] in ("-m", "--multirun") else ""
        return fail(
            f"unknown option {flags[0]}{hint} (it takes Hydra overrides, --config-dir, --cfg job and --help)",
            2,
        )
    try:
        refuse_secret_overrides(args)
        cfg = compose_config(args, config_name="evaluate", config_dir=config_dir)
    except BayesLoraError as e:
        return fail(str(e), 2)
    except Exception as e:  # Hydra's composition and override-parsing errors
        return fail(one_line(e), 2)
    if show is not None:
        print(OmegaConf.to_yaml(cfg, resolve=resolve))
        return 0
    try:
        record = evaluate_adapter(cfg, args)
    except CheckError as e:
        return fail(str(e), 2)
    except BayesLoraError as e:
        return fail(str(e), 1)
    print(f"{cfg.run_dir}\n{summary(record)}")
    return 0


def cli() -> None:
    sys.exit(main())


if __name__ == "__main__":
    cli()
