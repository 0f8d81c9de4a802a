"""Hydra entry point: ``python -m bayeslora.train [overrides]`` (or ``bayeslora-train``).

Only composes the config and calls :func:`bayeslora.runner.run`; user errors become one line on
stderr and a non-zero exit.
"""

from __future__ import annotations

import logging
import sys

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from bayeslora.errors import BayesLoraError

log = logging.getLogger("bayeslora")


@hydra.main(version_base="1.3", config_path="../conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    from bayeslora.runner import run
    from bayeslora.utils.secrets import install_log_filter, scrub

    install_log_filter()
    multirun = HydraConfig.get().mode == RunMode.MULTIRUN
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


def sweep_jobs(overrides: list[str]) -> int:
    """How many jobs ``-m <overrides>`` launches: the product of the sweep sizes of the sweeper's
    ``params`` and of the command line (the command line wins for a key set in both)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from bayeslora.config import compose_config

    parser = OverridesParser.create()
    parsed = parser.parse_overrides(overrides)
    first = [
        f"{p.get_key_element()}={next(iter(p.sweep_string_iterator()))}" if p.is_sweep_override() else o
        for o, p in zip(overrides, parsed)
    ]
    cfg = compose_config(first, return_hydra_config=True)
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
    """``-m`` with ``--cfg``/``--info`` (which Hydra refuses together) shows the config of the
    sweep and the number of jobs it launches, without running anything."""
    argv = sys.argv[1:]
    multirun = any(a in ("-m", "--multirun") for a in argv)
    inspect = any(a in ("-c", "--cfg", "-i", "--info") for a in argv)
    if multirun and inspect:
        from hydra.core.override_parser.overrides_parser import OverridesParser

        flags_with_value = {
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
        }
        overrides, shown, skip = [], [], False
        for a in argv:
            if a in ("-m", "--multirun"):
                continue
            if skip or a in flags_with_value or a.startswith("-"):
                skip = a in flags_with_value
                shown.append(a)
                continue
            overrides.append(a)
            parsed = OverridesParser.create().parse_overrides([a])[0]
            if parsed.is_sweep_override():  # show the config of the sweep's first job
                a = f"{parsed.get_key_element()}={next(iter(parsed.sweep_string_iterator()))}"
            shown.append(a)
        sys.argv = [sys.argv[0], *shown]
        main()
        print(f"# sweep: {sweep_jobs(overrides)} jobs (the config above is the first job's)")
        return
    main()


if __name__ == "__main__":
    cli()
