"""The grid of a sweep, from its multirun.yaml: every job's overrides, how many jobs, the command.

Hydra's private APIs (the basic sweeper's expansion of ``a,b,c`` and ``glob(...)``) are used here
and nowhere else.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from framework.config.hydra import conf_dir, register_configs
from framework.sweep.order import order_jobs


def load_yaml(path: Path) -> Any:
    return OmegaConf.load(path)


def sweep_command(multirun_cfg: Any) -> str:
    """The command that launched the sweep, from multirun.yaml."""
    task = list(multirun_cfg.hydra.overrides.task)
    return shlex.join(["chiefbench", "-m", *task])


def grid_points(multirun_cfg: Any) -> list[list[str]] | None:
    """Every job's overrides, in job order, for the basic and ordered sweepers; None for others (searches)."""
    sweeper = multirun_cfg.hydra.get("sweeper", {})
    target = str(sweeper.get("_target_", ""))
    if "BasicSweeper" not in target and "OrderedSweeper" not in target:
        return None
    from hydra._internal.config_loader_impl import ConfigLoaderImpl
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra._internal.utils import create_config_search_path
    from hydra.core.override_parser.overrides_parser import OverridesParser

    register_configs()  # resolvers used in sweeper params (chiefbench_cpus)
    try:
        params = [f"{k}={v}" for k, v in (sweeper.get("params") or {}).items()]
        params.extend(multirun_cfg.hydra.overrides.task)
        # A config loader lets the parser expand group globs such as queue=glob(*,exclude=*_schema).
        loader = ConfigLoaderImpl(config_search_path=create_config_search_path(str(conf_dir())))
        overrides = OverridesParser.create(config_loader=loader).parse_overrides(params)
        batches = BasicSweeper.split_arguments(overrides, None)
    except Exception:  # a sweep syntax we cannot expand here: no grid, jobs are still gathered
        return None
    jobs = [list(job) for chunk in batches for job in chunk]
    if "OrderedSweeper" not in target:
        return jobs
    run = multirun_cfg.get("run") or {}
    return order_jobs(jobs, int(run.get("repeats") or 1), str(run.get("order") or "grouped"), run.get("seed"))


def expected_jobs(multirun_cfg: Any) -> int | None:
    """How many jobs the sweep will run, when that is known in advance."""
    points = grid_points(multirun_cfg)
    if points is not None:
        return len(points)
    n = multirun_cfg.hydra.get("sweeper", {}).get("n_trials")
    return int(n) if isinstance(n, int) else None


