"""The ``chiefbench`` console script: a Hydra app around ``framework.engine.runner.execute``.

    chiefbench                                   the original system (conf/config.yaml)
    chiefbench workers.count=4 queue=pipe        any override
    chiefbench -m queue=mp_queue,pipe            a Hydra multirun sweep
    chiefbench run.repeats=5                     five fresh runs of one configuration, median and 95 % CI
    chiefbench --designs                         which queue designs are installed

In a multirun each job goes through ``framework.sweep.job.run_job`` (repeats, failures as rows) and
the ``GatherResults`` callback gathers the sweep into one table and a report.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode

from framework.config.hydra import check_group_overrides, conf_dir, register_configs, user_config_dirs
from framework.config.validate import to_spec
from framework.engine.runner import execute, execute_repeats
from framework.errors import BackendError, ConfigError, ResultsWriteError
from framework.queues.catalog import availability
from framework.results.collect import collect
from framework.results.io import make_writable_dir
from framework.results.stats import aggregate, format_aggregate
from framework.results.text import format_summary
from framework.sweep.job import run_job


def _task(cfg: Any) -> float | None:
    hc = HydraConfig.get()
    overrides = list(hc.overrides.task)
    if hc.mode == RunMode.MULTIRUN:
        # A failing job becomes a row with status failed; the sweep goes on (framework.sweep.job).
        return run_job(cfg, hc.runtime.output_dir, overrides, hc.job.get("num"), hc.launcher)
    try:
        spec = to_spec(cfg)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        sys.exit(2)
    try:
        if spec.run.repeats > 1:
            def show(k: int, result: Any) -> None:
                print(f"repeat {k + 1}/{spec.run.repeats}")
                print(format_summary(result.summary))

            results = execute_repeats(spec, hc.runtime.output_dir, overrides, after_each=show)
            collected = collect(hc.runtime.output_dir)
            print(format_aggregate(aggregate(collected.table, [])))
        else:
            results = [execute(spec, hc.runtime.output_dir, overrides)]
            print(format_summary(results[0].summary))
    except ResultsWriteError as exc:
        print(f"chiefbench: {exc}", file=sys.stderr)
        sys.exit(1)
    except BackendError as exc:  # e.g. backend.address names no running Ray cluster
        print(f"chiefbench: {exc}", file=sys.stderr)
        sys.exit(1)
    print(f"results       {hc.runtime.output_dir}")
    result = results[-1]
    code = result.summary["exit_code"] or (1 if any(r.status == "failed" for r in results) else 0)
    if code:
        if result.status == "interrupted":
            print(f"chiefbench: {result.summary['errors'][0]}; results so far were written.", file=sys.stderr)
        sys.exit(code)
    return result.summary["throughput_items_per_s"]


def _check_output_dirs(overrides: list[str]) -> None:
    """Fail with one paragraph, not Hydra's traceback, when the output directory cannot be made."""
    wanted = [o.split("=", 1)[1] for o in overrides if o.split("=", 1)[0] in ("hydra.run.dir", "hydra.sweep.dir")]
    for target in wanted or ["outputs"]:
        if "${" in target:
            continue  # an interpolation: only Hydra can resolve it
        path = Path(target)
        try:
            make_writable_dir(path)
        except OSError as exc:
            key = "hydra.run.dir" if wanted else "the current directory"
            print(f"chiefbench: cannot write results to {str(path)!r}: {exc.strerror or exc}. Nothing was run. "
                  f"Fix: choose a writable directory (`hydra.run.dir=/some/dir`), or run from one ({key}).",
                  file=sys.stderr)
            sys.exit(2)


def main() -> None:
    """Entry point of the ``chiefbench`` command."""
    if sys.argv[1:2] == ["--designs"]:
        for name, state in availability().items():
            print(f"{name:16} {state}")
        return
    argv = sys.argv[1:]
    user_dirs = user_config_dirs(argv)
    overrides = [a for a in argv if not a.startswith("-") and a not in user_dirs]
    try:
        check_group_overrides(overrides, user_dirs)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        sys.exit(2)
    _check_output_dirs(overrides)
    register_configs()
    hydra.main(version_base="1.3", config_path=str(conf_dir()), config_name="config")(_task)()


if __name__ == "__main__":
    main()
