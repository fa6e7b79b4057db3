"""``GatherResults``: the Hydra callback of every multirun (registered in conf/config.yaml).

After each job it draws the sweep's progress bar (jobs done, total, ETA) on stderr; at the end
of the multirun it gathers the tables, prints the comparison per configuration and writes the
report (without the ``report`` extra: the tables, and one line saying how to get the report).
"""

from __future__ import annotations

import sys
import time
import traceback
from pathlib import Path
from typing import Any

import yaml
from hydra.experimental.callback import Callback
from hydra.types import RunMode

from framework.layout import BEST_FILE, MULTIRUN_FILE, job_dirs
from framework.results.collect import best_job, collect, job_complete
from framework.results.io import atomic_write
from framework.results.text import format_collected, progress_line
from framework.sweep.grid import expected_jobs, load_yaml


class GatherResults(Callback):
    """Hydra callback: the sweep's progress bar, and at the end one table, a comparison and a report.

    Registered in conf/config.yaml under ``hydra.callbacks.gather``; turn the report off with
    ``hydra.callbacks.gather.report=false``.
    """

    def __init__(self, report: bool = True, progress: bool = True) -> None:
        self.report = report
        self.progress = progress

    def on_job_end(self, config: Any, job_return: Any = None, **kwargs: Any) -> None:
        if not self.progress or config.hydra.mode != RunMode.MULTIRUN:
            return
        try:
            sweep_dir = Path(config.hydra.sweep.dir)
            multirun = sweep_dir / MULTIRUN_FILE
            total = expected_jobs(load_yaml(multirun)) if multirun.exists() else None
            done = sum(1 for d in job_dirs(sweep_dir) if job_complete(d))
            elapsed = time.time() - multirun.stat().st_mtime if multirun.exists() else 0.0
            print(progress_line(done, total, elapsed), file=sys.stderr, flush=True)
        except Exception as exc:  # the bar must never break a sweep
            print(f"sweep progress unavailable: {exc}", file=sys.stderr)

    def on_multirun_end(self, config: Any, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        if not sweep_dir.is_dir():
            return
        try:
            self._gather(sweep_dir)
        except Exception:  # every job's results are on disk already: say how to gather them again
            print(f"chiefbench: gathering the sweep failed:\n{traceback.format_exc()}The job directories are "
                  f"complete: `chiefbench-collect {sweep_dir}` and `chiefbench-report {sweep_dir}` redo this.",
                  file=sys.stderr)

    def _gather(self, sweep_dir: Path) -> None:
        collected = collect(sweep_dir)
        print(format_collected(collected), flush=True)
        best = best_job(collected.table)
        if best is not None:
            atomic_write(sweep_dir / BEST_FILE, lambda p: p.write_text(yaml.safe_dump(best, sort_keys=False)))
        if self.report and len(collected.table):
            try:
                from framework.results.report import report
            except ImportError as exc:
                print(f"report skipped: {exc}. Fix: pip install 'chiefbench[report]'", file=sys.stderr)
                return
            path = report(sweep_dir, collected=collected)
            print(f"report        {path}")
