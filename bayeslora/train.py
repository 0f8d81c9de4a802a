"""Hydra entry point: ``python -m bayeslora.train [overrides]`` (or ``bayeslora-train``).

Only composes the config and calls :func:`bayeslora.runner.run`; user errors become one line on
stderr and a non-zero exit. Before Hydra starts (and writes anything), :func:`cli` reads ``.env``,
refuses secret-looking overrides and checks the composed config (:func:`bayeslora.checks.preflight`:
types and ranges, data files, model paths, what the method serves): bad input exits with status 2
in a few seconds, before any model loads and with no run folder; errors during the run exit with 1.
"""

from __future__ import annotations

import logging
import re
import sys

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

import bayeslora.config  # noqa: F401  (registers the config resolvers used by conf/)
from bayeslora.errors import BayesLoraError

log = logging.getLogger("bayeslora")
# Set by cli() once it has composed and validated the config of a single run, before Hydra starts.
_PRECHECKED = False


@hydra.main(version_base="1.3", config_path="../conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    from bayeslora.checks import preflight
    from bayeslora.runner import run
    from bayeslora.utils.secrets import install_log_filter, scrub

    install_log_filter()
    multirun = HydraConfig.get().mode == RunMode.MULTIRUN
    try:
        if not _PRECHECKED:  # a sweep's jobs (cli checked each swept value), or main() called alone
            preflight(cfg)
    except BayesLoraError as e:
        if multirun:
            log.error("job refused: %s", scrub(str(e)))
            record_refusal(cfg, e)
            return None
        print(f"bayeslora: error: {scrub(str(e))}", file=sys.stderr)
        sys.exit(2)
    try:
        record = run(cfg)
    except Exception as e:
        if multirun:
            # One failed job must not stop the sweep: its record (status: failed) says why.
            log.error("job failed: %s: %s", type(e).__name__, e)
            return None
        if isinstance(e, BayesLoraError):
            print(f"bayeslora: error: {scrub(str(e))}", file=sys.stderr)
            sys.exit(1)
        raise
    metrics = record.get("metrics") or {}
    first = next(iter(metrics.values()), {})
    return first.get("acc")


def record_refusal(cfg: DictConfig, error: Exception) -> None:
    """A sweep job refused by the config check gets a ``failed`` record (so the sweep summary lists
    it), where its run folder can be resolved."""
    from pathlib import Path

    from bayeslora.records import RunRecord, write_record
    from bayeslora.utils.secrets import scrub

    try:
        fields = {k: str(v) for k, v in [("exp_name", cfg.exp_name), ("dataset", cfg.dataset.name)]}
        record = RunRecord(
            status="failed",
            model=str(cfg.model.name),
            method=str(cfg.method.name),
            seed=cfg.seed,
            config_hash="",
            error=scrub(f"{type(error).__name__}: {error}"),
            **fields,
        )
        write_record(Path(cfg.run_dir), record)
    except Exception:  # an unresolvable run folder: the log line above is all there is
        log.exception("could not write the failed record of a refused job")


# Hydra flags that take a value (the rest of argv are overrides or bare flags).
FLAGS_WITH_VALUE = {
    "-c",
    "--cfg",
    "-i",
    "--info",
    "-p",
    "--package",
    "-cp",
    "--config-path",
    "-cn",
    "--config-name",
    "-cd",
    "--config-dir",
    "--experimental-rerun",
    "--shell-completion",
}
# Flags after which nothing runs (help, config printing, shell completion, rerun of a pickled config).
NOT_A_RUN = {
    "-h",
    "--help",
    "--hydra-help",
    "--version",
    "-c",
    "--cfg",
    "-i",
    "--info",
    "-sc",
    "--shell-completion",
}
# Flags that change which config is composed: the up-front check leaves those runs to main().
OTHER_CONFIG = {"-cp", "--config-path", "-cn", "--config-name", "-cd", "--config-dir", "--experimental-rerun"}


def split_argv(argv: list[str]) -> tuple[list[str], list[str]]:
    """(flags with their values, overrides) of a Hydra command line."""
    flags, overrides, takes_value = [], [], False
    for a in argv:
        if a.startswith("-") or (takes_value and "=" not in a and not a.startswith(("~", "+"))):
            takes_value = a in FLAGS_WITH_VALUE  # --info's value is optional: an override is not one
            flags.append(a)
        else:
            takes_value = False
            overrides.append(a)
    return flags, overrides


def first_job(overrides: list[str]) -> list[str]:
    """The overrides of a sweep's first job (each sweep replaced by its first value)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_overrides(overrides)
    return [
        f"{p.get_key_element()}={next(iter(p.sweep_string_iterator()))}" if p.is_sweep_override() else o
        for o, p in zip(overrides, parsed)
    ]


def sweep_variants(overrides: list[str], limit: int = 50) -> list[list[str]]:
    """The first job of a command-line sweep, then each further value of each swept key on top of
    it (the sum of the sweep sizes, not their product; at most ``limit``)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_overrides(overrides)
    base = first_job(overrides)
    variants = [base]
    for i, p in enumerate(parsed):
        if p.is_sweep_override():
            for value in list(p.sweep_string_iterator())[1:]:
                variants.append([*base[:i], f"{p.get_key_element()}={value}", *base[i + 1 :]])
    return variants[:limit]


def precheck(overrides: list[str], multirun: bool, config_dir: str | None = None) -> None:
    """Compose the config of the run (of each value of a sweep) and validate it, turning Hydra's
    composition errors (unknown option or key, bad override syntax) into one-line ConfigErrors."""

    from bayeslora.checks import preflight
    from bayeslora.config import compose_config
    from bayeslora.errors import ConfigError

    try:
        variants = sweep_variants(overrides) if multirun else [overrides]
    except Exception as e:  # override syntax
        raise ConfigError(one_line(e)) from None
    for job in variants:
        try:
            cfg = compose_config(job, config_dir=config_dir)
        except Exception as e:  # Hydra's composition and override-parsing errors
            raise ConfigError(one_line(e)) from None
        preflight(cfg, config_dir)  # also refuses secret-looking keys, e.g. from conf/local/


# keys users reach for that are not in the config, and what to write instead (Hydra's own advice,
# "+key=...", would add a key that nothing reads)
NOT_A_KEY = {
    "predictives": "choose rows with predictive=[...] (each a conf/predictive/<name>.yaml)",
}


def one_line(e: Exception) -> str:
    """Hydra's multi-line message on one line, without its search path and node details."""
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    wrong = re.match(r"Could not override '([^']+)'", lines[0]) if lines else None
    if wrong and wrong.group(1) in NOT_A_KEY:
        return f"there is no key {wrong.group(1)!r} to override: {NOT_A_KEY[wrong.group(1)]}"
    if "Config search path:" in lines:  # after an unknown option: the search path is noise
        lines = lines[: lines.index("Config search path:")]
    lines = [ln for ln in lines if not ln.startswith(("full_key:", "object_type=", "reference_type="))]
    return " ".join(lines) or type(e).__name__


def sweep_jobs(overrides: list[str]) -> int:
    """How many jobs ``-m <overrides>`` launches: the product of the sweep sizes of the sweeper's
    ``params`` and of the command line (the command line wins for a key set in both)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from bayeslora.config import compose_config

    parser = OverridesParser.create()
    parsed = parser.parse_overrides(overrides)
    cfg = compose_config(first_job(overrides), return_hydra_config=True)
    sizes = {}
    for p in parser.parse_overrides([f"{k}={v}" for k, v in (cfg.hydra.sweeper.get("params") or {}).items()]):
        sizes[p.key_or_group] = len(list(p.sweep_string_iterator())) if p.is_sweep_override() else 1
    for p in parsed:  # the command line wins
        sizes[p.key_or_group] = len(list(p.sweep_string_iterator())) if p.is_sweep_override() else 1
    n = 1
    for size in sizes.values():
        n *= size
    return n


def cli() -> None:
    """Read ``.env``, refuse secrets and bad configs before Hydra writes anything, then run Hydra.

    ``-m`` with ``--cfg``/``--info`` (which Hydra refuses together) shows the config of the sweep
    and the number of jobs it launches, without running anything."""
    from bayeslora.errors import BayesLoraError
    from bayeslora.utils.env import setup_entry_point
    from bayeslora.utils.secrets import refuse_secret_overrides, scrub

    setup_entry_point()
    argv = sys.argv[1:]
    flags, overrides = split_argv(argv)
    multirun = any(a in ("-m", "--multirun") for a in flags)
    inspect = any(a in ("-c", "--cfg", "-i", "--info") for a in flags)
    try:
        refuse_secret_overrides(overrides)  # before Hydra writes them into .hydra/*.yaml
        from bayeslora.config import split_config_dir

        config_dir, other = split_config_dir(flags)  # a user's conf folder: checked with it
        if not (set(other) & (NOT_A_RUN | OTHER_CONFIG)):
            precheck(overrides, multirun, config_dir)
            global _PRECHECKED
            _PRECHECKED = not multirun  # this very config: main() need not check it again
    except BayesLoraError as e:
        print(f"bayeslora: error: {scrub(str(e))}", file=sys.stderr)
        sys.exit(2)
    if multirun and inspect:
        shown = [a for a in flags if a not in ("-m", "--multirun")]
        sys.argv = [sys.argv[0], *shown, *first_job(overrides)]  # show the config of the first job
        main()
        print(f"# sweep: {sweep_jobs(overrides)} jobs (the config above is the first job's)")
        return
    main()


if __name__ == "__main__":
    cli()
