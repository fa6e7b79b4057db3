"""One job of a multirun: validate, run every repeat, write job.json; a bad job is a row, never a crash.

A job that fails (invalid combination, crash) still writes a ``summary.json`` with status
``failed`` and the error, so it becomes a row of the sweep table and the sweep goes on.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import signal
import sys
import threading
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from framework.lazy import lazy_module
from framework.config.validate import to_spec
from framework.engine.runner import execute, rerun_command
from framework.errors import ConfigError
from framework.layout import JOB_FILE, REPEAT_DIR, SUMMARY_FILE
from framework.metadata import SCHEMA_VERSION, machine_metadata
from framework.results.io import atomic_write
from framework.results.text import format_summary

pd = lazy_module("pandas")  # a run that reads no table does not import pandas

NO_LATENCY_PENALTY = 1e6
"""Objective of an ok job that consumed nothing in its window, under a latency bound (finite, for Optuna)."""


def launcher_concurrency(launcher_cfg: Any) -> tuple[str, int]:
    """The launcher's name and how many jobs it runs at once (1 for Hydra's basic launcher)."""
    target = str(launcher_cfg.get("_target_", "")) if launcher_cfg is not None else ""
    name = target.rsplit(".", 1)[-1] or "basic"
    if "joblib" in target.lower():
        n = launcher_cfg.get("n_jobs", -1)
        n = -1 if n is None else int(n)
        cpus = os.cpu_count() or 1
        return "joblib", max(1, cpus + 1 + n if n < 0 else n)  # joblib: -1 = every CPU, -2 = all but one
    if "basic" in target.lower() or not target:
        return "basic", 1
    n = launcher_cfg.get("n_jobs", None)
    return name, int(n) if isinstance(n, int) and n > 0 else 1


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda p: p.write_text(json.dumps(data, indent=2, default=str)))


def write_failed_summary(directory: str | os.PathLike, error: str, overrides: Sequence[str] = (),
                         exit_code: int = 1, config: dict[str, Any] | None = None) -> dict[str, Any]:
    """A ``summary.json`` for a job that could not run: status failed, the error, the config as composed, the
    machine."""
    summary = {
        "schema_version": SCHEMA_VERSION, "status": "failed", "errors": [error], "warnings": [],
        "exit_code": exit_code, "throughput_items_per_s": None, "throughput_mb_per_s": None,
        "config": config, "metadata": machine_metadata(), "rerun_command": rerun_command(overrides, 0).rsplit(" run.seed=0", 1)[0],
    }
    _write_json(Path(directory) / SUMMARY_FILE, summary)
    return summary


def job_objective(summaries: Sequence[dict[str, Any]], metric: str, max_p99_ms: float | None) -> dict[str, Any]:
    """What the job returns to the sweeper: the median of ``metric`` over its ok repeats.

    With a latency bound, a job whose median end-to-end p99 exceeds it is infeasible and returns
    ``-(p99 / bound)``: negative, so worse than any feasible job, and less bad the closer it gets.
    """
    ok = [s for s in summaries if s.get("status") == "ok" and s.get(metric) is not None]
    if not ok:
        return {"objective": math.nan, "feasible": None, "median": None, "p99_ms": None}
    values = sorted(float(s[metric]) for s in ok)
    median = float(pd.Series(values).median())
    p99s = [s["latency_ms"]["end_to_end"]["p99_ms"] for s in ok]
    p99s = [p for p in p99s if p is not None]
    p99 = float(pd.Series(p99s).median()) if p99s else None
    feasible = None if max_p99_ms is None else (p99 is not None and p99 <= max_p99_ms)
    objective = median
    if feasible is False:  # no latency measured at all (nothing consumed in the window) scores worst
        objective = -(p99 / max_p99_ms) if p99 is not None else -NO_LATENCY_PENALTY
    return {"objective": objective, "feasible": feasible, "median": median, "p99_ms": p99}


def _composed(cfg: Any) -> dict[str, Any] | None:
    """The job's config as Hydra composed it (before validation), without Hydra's own node."""
    if not isinstance(cfg, DictConfig):
        return None
    try:
        return {k: OmegaConf.to_container(cfg[k], resolve=True) for k in cfg if k != "hydra"}
    except Exception:  # an unresolvable value: the error text already says what is wrong
        return None


def _execute_with_timeout(execute: Any, spec: Any, run_dir: Path, overrides: Sequence[str]) -> Any:
    """``execute`` under ``run.timeout_s``: past it, the run is stopped as SIGTERM stops it, and recorded as
    failed (timed out) instead of interrupted, so that the sweep goes on."""
    limit = spec.run.timeout_s
    if limit is None:
        return execute(spec, run_dir, overrides)
    fired = threading.Event()

    def on_term(signum: int, frame: Any) -> None:
        if fired.is_set():  # our own signal, arriving after the system had stopped: nothing left to stop
            return
        raise SystemExit(128 + signum)

    def expire() -> None:
        fired.set()
        os.kill(os.getpid(), signal.SIGTERM)  # the chief stops, drains and writes its results

    previous = signal.signal(signal.SIGTERM, on_term)
    timer = threading.Timer(limit, expire)
    timer.daemon = True
    timer.start()
    try:
        result = execute(spec, run_dir, overrides)
    finally:
        timer.cancel()
        signal.signal(signal.SIGTERM, previous)
    if fired.is_set():
        s = result.summary
        s["status"], s["exit_code"] = "failed", 1
        s["errors"] = [e for e in s["errors"] if not e.startswith("interrupted by SIGTERM")]
        s["errors"].append(f"timed out: the run was still going after run.timeout_s={limit} s and was stopped; "
                           f"the figures cover the run until then. Fix: raise run.timeout_s, or shorten the run "
                           f"(run.duration_s, run.items)")
        _write_json(run_dir / SUMMARY_FILE, s)
    return result


def run_job(cfg: Any, output_dir: str | os.PathLike, overrides: Sequence[str], job_num: int | None = None,
            launcher_cfg: Any = None) -> float:
    """One job of a multirun: validate, run every repeat, write job.json; never raise for a bad job.

    Returns the objective for the sweeper (NaN when the job failed). An interrupted run
    (Ctrl-C, SIGTERM) ends the whole sweep with its exit status; ``chiefbench-collect`` gathers
    what was done.
    """
    out = Path(output_dir)
    launcher, concurrent = launcher_concurrency(launcher_cfg)
    info: dict[str, Any] = {
        "job": job_num, "overrides": list(overrides), "launcher": launcher, "concurrent_jobs": concurrent,
        "started_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"), "status": "running",
    }
    _write_json(out / JOB_FILE, info)
    try:
        spec = to_spec(cfg)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        write_failed_summary(out, str(exc), overrides, exit_code=2, config=_composed(cfg))
        info.update(status="failed", objective=math.nan, feasible=None)
        _write_json(out / JOB_FILE, info)
        return math.nan
    info["repeats"] = spec.run.repeats
    one = spec.run.repeat_index  # an interleaved or random sweep: this job is one repeat of its configuration
    if one is not None:
        info["repeat_index"] = one
    summaries = []
    for k in range(spec.run.repeats) if one is None else [one]:
        run_dir = out if spec.run.repeats == 1 or one is not None else out / REPEAT_DIR.format(k)
        try:
            result = _execute_with_timeout(execute, spec, run_dir, overrides)
        except Exception:  # a crash is a row too, and the sweep goes on
            error = traceback.format_exc()
            print(f"chiefbench: job {job_num} repeat {k} crashed:\n{error}", file=sys.stderr)
            summaries.append(write_failed_summary(run_dir, error, overrides, exit_code=1))
            continue
        summaries.append(result.summary)
        if spec.run.repeats > 1:
            print(f"repeat {k + 1}/{spec.run.repeats}")
        print(format_summary(result.summary))
        print(f"results       {run_dir}")
        if result.status == "interrupted":
            info.update(status="interrupted")
            _write_json(out / JOB_FILE, info)
            print(f"chiefbench: {result.summary['errors'][0]}; the sweep stops here. "
                  f"`chiefbench-collect {out.parent}` gathers what was done.", file=sys.stderr)
            sys.exit(result.summary["exit_code"] or 130)
    objective = job_objective(summaries, spec.objective.metric, spec.objective.max_p99_ms)
    statuses = {s.get("status") for s in summaries}
    info.update(status="ok" if statuses == {"ok"} else "failed", **objective)
    _write_json(out / JOB_FILE, info)
    if objective["feasible"] is False:
        measured = "none measured" if objective["p99_ms"] is None else f"{objective['p99_ms']:.3f} ms"
        print(f"infeasible: median end-to-end p99 ({measured}) is over the bound "
              f"objective.max_p99_ms={spec.objective.max_p99_ms}")
    return objective["objective"]


