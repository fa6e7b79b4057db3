"""Sweeps: one job of a multirun, gathering every job into one table, and ``collect``.

A ``chiefbench -m ...`` sweep directory looks like this::

    outputs/sweeps/<date>/<time-with-microseconds>_<pid>/
        multirun.yaml              Hydra's config of the sweep (the command's overrides, the sweeper)
        0/  1/  2/ ...             one directory per job (Hydra's job number)
            job.json               written first: overrides, launcher, concurrent jobs; at the end the objective
            .hydra/overrides.yaml  the job's own overrides (its grid point)
            summary.json ...       a complete run directory (run.repeats=1), or
            repeat-0/ repeat-1/    one complete run directory per repeat (run.repeats>1)
        sweep_results.parquet/.csv one row per job and repeat (written by the callback or by collect)
        sweep_summary.parquet/.csv one row per configuration: median, 95 % CI, spread
        report.html, *.png         the report (framework.report)

A job that fails (invalid combination, crash) still writes a ``summary.json`` with status
``failed`` and the error, so it becomes a row and the sweep goes on. ``collect(dir)`` rebuilds
both tables from the job directories alone (after a crash or a killed sweep), is idempotent,
and lists the grid points that have no result yet.

``GatherResults`` is the Hydra callback registered in ``conf/config.yaml``: after each job it
draws the sweep's progress bar (jobs done, total, ETA) on stderr; at the end of the multirun it
gathers the tables, prints the comparison per configuration and writes the report.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import sys
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from framework.results import SUMMARY_FILE, _atomic

JOB_FILE = "job.json"
MULTIRUN_FILE = "multirun.yaml"
RESULTS_TABLE = "sweep_results"
SUMMARY_TABLE = "sweep_summary"
BEST_FILE = "best.yaml"
NO_LATENCY_PENALTY = 1e6
"""Objective of an ok job that consumed nothing in its window, under a latency bound (finite, for Optuna)."""

# Summary keys that do not become columns (lists of rows; the text ones are joined into `error`, `warning`).
_NOT_COLUMNS = ("processes", "per_worker", "errors", "warnings", "failures", "memory")


# --------------------------------------------------------------------------------------------- one job
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
    _atomic(path, lambda p: p.write_text(json.dumps(data, indent=2, default=str)))


def write_failed_summary(directory: str | os.PathLike, error: str, overrides: Sequence[str] = (),
                         exit_code: int = 1, config: dict[str, Any] | None = None) -> dict[str, Any]:
    """A ``summary.json`` for a job that could not run: status failed, the error, the config as composed, the
    machine."""
    from framework.metadata import SCHEMA_VERSION, machine_metadata
    from framework.runner import rerun_command

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
    from omegaconf import DictConfig, OmegaConf

    if not isinstance(cfg, DictConfig):
        return None
    try:
        return {k: OmegaConf.to_container(cfg[k], resolve=True) for k in cfg if k != "hydra"}
    except Exception:  # an unresolvable value: the error text already says what is wrong
        return None


def _execute_with_timeout(execute: Any, spec: Any, run_dir: Path, overrides: Sequence[str]) -> Any:
    """``execute`` under ``run.timeout_s``: past it, the run is stopped as SIGTERM stops it, and recorded as
    failed (timed out) instead of interrupted, so that the sweep goes on."""
    import signal
    import threading

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
    from framework.cli import format_summary
    from framework.config import ConfigError, to_spec
    from framework.runner import REPEAT_DIR, execute

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
    summaries = []
    for k in range(spec.run.repeats):
        run_dir = out if spec.run.repeats == 1 else out / REPEAT_DIR.format(k)
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


# --------------------------------------------------------------------------------------------- the grid
def _load_yaml(path: Path) -> Any:
    from omegaconf import OmegaConf

    return OmegaConf.load(path)


def sweep_command(multirun_cfg: Any) -> str:
    """The command that launched the sweep, from multirun.yaml."""
    import shlex

    task = list(multirun_cfg.hydra.overrides.task)
    return shlex.join(["chiefbench", "-m", *task])


def grid_points(multirun_cfg: Any) -> list[list[str]] | None:
    """Every job's overrides, in job order, for Hydra's basic sweeper; None for other sweepers (searches)."""
    sweeper = multirun_cfg.hydra.get("sweeper", {})
    if "BasicSweeper" not in str(sweeper.get("_target_", "")):
        return None
    from hydra._internal.config_loader_impl import ConfigLoaderImpl
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra._internal.utils import create_config_search_path
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from framework.config import CONF_DIR, register_configs

    register_configs()  # resolvers used in sweeper params (chiefbench_cpus)
    try:
        params = [f"{k}={v}" for k, v in (sweeper.get("params") or {}).items()]
        params.extend(multirun_cfg.hydra.overrides.task)
        # A config loader lets the parser expand group globs such as queue=glob(*,exclude=*_schema).
        loader = ConfigLoaderImpl(config_search_path=create_config_search_path(str(CONF_DIR)))
        overrides = OverridesParser.create(config_loader=loader).parse_overrides(params)
        batches = BasicSweeper.split_arguments(overrides, None)
    except Exception:  # a sweep syntax we cannot expand here: no grid, jobs are still gathered
        return None
    return [list(job) for chunk in batches for job in chunk]


def expected_jobs(multirun_cfg: Any) -> int | None:
    """How many jobs the sweep will run, when that is known in advance."""
    points = grid_points(multirun_cfg)
    if points is not None:
        return len(points)
    n = multirun_cfg.hydra.get("sweeper", {}).get("n_trials")
    return int(n) if isinstance(n, int) else None


# --------------------------------------------------------------------------------------------- gathering
def _parse_value(text: str) -> Any:
    import yaml

    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    return value if isinstance(value, (int, float, str, bool)) or value is None else text


def override_items(overrides: Sequence[str]) -> dict[str, Any]:
    """``["queue=pipe", "+experiment=x", "workers.count=4"]`` -> {"queue": "pipe", "experiment": "x", ...}."""
    items = {}
    for o in overrides:
        if "=" not in o or o.startswith("~"):
            continue
        key, value = o.split("=", 1)
        key = key.lstrip("+")
        if key.startswith("hydra.") or key.startswith("hydra/"):
            continue
        items[key] = _parse_value(value)
    return items


def _run_dirs(job_dir: Path) -> list[tuple[int, Path]]:
    """(repeat, run directory) pairs of a job directory, complete or not."""
    from framework.runner import REPEAT_DIR

    repeats = sorted((int(p.name.split("-", 1)[1]), p) for p in job_dir.glob(REPEAT_DIR.format("*"))
                     if p.is_dir() and p.name.split("-", 1)[1].isdigit())
    return repeats or [(0, job_dir)]


def _job_complete(job_dir: Path) -> bool:
    """The job finished (not running, not interrupted) and every repeat has a summary.json."""
    info = _read_json(job_dir / JOB_FILE)
    if info is not None and info.get("status") in ("running", "interrupted"):
        return False
    return all((d / SUMMARY_FILE).exists() for _, d in _run_dirs(job_dir))


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _flatten(summary: dict[str, Any]) -> dict[str, Any]:
    flat = pd.json_normalize({k: v for k, v in summary.items() if k not in _NOT_COLUMNS}, sep=".")
    row = flat.iloc[0].to_dict() if len(flat) else {}
    return {k: (json.dumps(v) if isinstance(v, (list, dict)) else v) for k, v in row.items()}


def _job_dirs(sweep_dir: Path) -> list[Path]:
    return sorted((p for p in sweep_dir.iterdir() if p.is_dir() and p.name.isdigit()), key=lambda p: int(p.name))


def job_rows(job_dir: Path, base: Path, job: int) -> list[dict[str, Any]]:
    """One row per complete repeat of a job directory."""
    info = _read_json(job_dir / JOB_FILE) or {}
    overrides = info.get("overrides")
    hydra_overrides = job_dir / ".hydra" / "overrides.yaml"
    if overrides is None and hydra_overrides.exists():
        overrides = list(_load_yaml(hydra_overrides))
    keys = override_items(overrides or [])
    rows = []
    for repeat, run_dir in _run_dirs(job_dir):
        summary = _read_json(run_dir / SUMMARY_FILE)
        if summary is None:
            continue
        row: dict[str, Any] = {"job": job, "repeat": repeat,
                               "directory": str(run_dir.relative_to(base)) if run_dir != base else "."}
        row.update(keys)
        row["status"] = summary.get("status")
        row["error"] = "\n".join(summary.get("errors") or [])
        row["warning"] = "\n".join(summary.get("warnings") or [])
        row.update(_flatten(summary))
        row["metadata.launcher"] = info.get("launcher", "none")
        row["metadata.concurrent_jobs"] = int(info.get("concurrent_jobs", 1))
        row["objective"] = info.get("objective")
        row["feasible"] = info.get("feasible")
        rows.append(row)
    return rows


def _sanitize(df: pd.DataFrame) -> pd.DataFrame:
    """Columns that parquet and CSV both hold, and that read back equal: mixed object columns become
    text, flags become nullable booleans, and a missing text is None."""
    def missing(v: Any) -> bool:
        return v is None or (isinstance(v, float) and math.isnan(v))

    for col in df.columns:
        if df[col].dtype == object:
            kinds = {type(v) for v in df[col] if not missing(v)}
            if kinds and kinds <= {bool}:
                df[col] = df[col].map(lambda v: None if missing(v) else v).astype("boolean")
            elif len(kinds) > 1 or (kinds and not kinds <= {str}):
                df[col] = df[col].map(lambda v: None if missing(v) else str(v))
            else:
                df[col] = df[col].map(lambda v: None if missing(v) else v)
    return df


@dataclass
class Collected:
    """What ``collect`` found in a sweep directory."""

    table: pd.DataFrame
    """One row per job and repeat: the swept keys, status, error, every summary figure (flattened)."""
    summary: pd.DataFrame
    """One row per configuration: median, 95 % CI and spread of throughput (``framework.stats.aggregate``)."""
    keys: list[str]
    """The swept keys (columns of both tables)."""
    missing: list[list[str]] = field(default_factory=list)
    """Grid points (their overrides) with no complete result yet."""
    expected: int | None = None
    """Jobs the sweep was to run, when known."""
    command: str | None = None
    """The command that launched the sweep."""
    directory: Path | None = None


def collect(directory: str | os.PathLike, write: bool = True) -> Collected:
    """Gather every job of a sweep directory (or one run directory) into one table.

    Reads only result files. Idempotent: it rewrites the same tables from the same job
    directories. Lists the grid points that have no complete result yet.
    """
    from framework.stats import aggregate

    base = Path(directory)
    if not base.is_dir():
        raise FileNotFoundError(f"{str(base)!r} is not a directory: give a sweep directory (outputs/sweeps/...) "
                                f"or a run directory")
    multirun = base / MULTIRUN_FILE
    mcfg = _load_yaml(multirun) if multirun.exists() else None
    jobs = _job_dirs(base)
    rows: list[dict[str, Any]] = []
    done: set[int] = set()
    if jobs:
        for job_dir in jobs:
            job_rows_ = job_rows(job_dir, base, int(job_dir.name))
            rows.extend(job_rows_)
            if job_rows_ and _job_complete(job_dir):
                done.add(int(job_dir.name))
    elif (base / SUMMARY_FILE).exists() or any(base.glob("repeat-*/summary.json")):
        rows.extend(job_rows(base, base, 0))
        done.add(0)
    elif mcfg is None:
        raise FileNotFoundError(f"{str(base)!r} holds no job directories, multirun.yaml or summary.json: it is not "
                                f"a chiefbench sweep or run directory")
    points = grid_points(mcfg) if mcfg is not None else None
    if points is not None:
        missing = [p for i, p in enumerate(points) if i not in done]
        expected = len(points)
    else:
        missing = [list((_read_json(d / JOB_FILE) or {}).get("overrides") or [d.name]) for d in jobs
                   if int(d.name) not in done]
        expected = expected_jobs(mcfg) if mcfg is not None else None
    table = _sanitize(pd.DataFrame(rows))
    keys = swept_keys(table, points)
    table.attrs["chiefbench"] = {"keys": keys, "command": sweep_command(mcfg) if mcfg is not None else None}
    summary = aggregate(table, keys)
    collected = Collected(table=table, summary=summary, keys=keys, missing=missing, expected=expected,
                          command=table.attrs["chiefbench"]["command"], directory=base)
    if write and len(table):
        write_tables(collected, base)
    return collected


def swept_keys(table: pd.DataFrame, points: list[list[str]] | None) -> list[str]:
    """The override keys that vary across the sweep's grid (or across its rows)."""
    if points:
        values: dict[str, set[str]] = {}
        for p in points:
            for k, v in override_items(p).items():
                values.setdefault(k, set()).add(repr(v))
        return [k for k, v in values.items() if len(v) > 1]
    if table.empty:
        return []
    override_cols = [c for c in table.columns if c not in ("job", "repeat", "directory") and not _is_figure(c)]
    return [c for c in override_cols if table[c].astype(str).nunique() > 1]


_FIGURE_PREFIXES = ("status", "error", "warning", "counts.", "window.", "latency_ms.", "stability.", "metadata.",
                    "config.", "throughput_", "rerun_command", "exit_code", "schema_version", "item_bytes", "rounds",
                    "objective", "feasible", "blocked_s", "memory", "failures", "transitions")


def _is_figure(column: str) -> bool:
    return column.startswith(_FIGURE_PREFIXES)


def write_tables(collected: Collected, directory: Path) -> None:
    """sweep_results.parquet/.csv and sweep_summary.parquet/.csv, each written atomically."""
    for name, df in ((RESULTS_TABLE, collected.table), (SUMMARY_TABLE, collected.summary)):
        df = df.copy()
        df.attrs = dict(collected.table.attrs)
        _atomic(directory / f"{name}.parquet", lambda p, df=df: df.to_parquet(p, index=False))
        _atomic(directory / f"{name}.csv", lambda p, df=df: df.to_csv(p, index=False))


def best_job(table: pd.DataFrame) -> dict[str, Any] | None:
    """The feasible job with the largest objective (None when no job succeeded)."""
    if table.empty or "objective" not in table:
        return None
    jobs = table.drop_duplicates("job")
    jobs = jobs[pd.to_numeric(jobs["objective"], errors="coerce").notna()]
    if "feasible" in jobs:
        jobs = jobs[jobs["feasible"].astype(str) != "False"]
    if jobs.empty:
        return None
    row = jobs.loc[pd.to_numeric(jobs["objective"]).idxmax()]
    return {"job": int(row["job"]), "objective": float(row["objective"]),
            "overrides": [f"{k}={row[k]}" for k in table.attrs.get("chiefbench", {}).get("keys", []) if k in row],
            "directory": str(Path(row["directory"]).parts[0]) if row["directory"] != "." else "."}


def format_collected(c: Collected) -> str:
    """What the end of a sweep (and chiefbench-collect) prints."""
    from framework.stats import format_aggregate

    lines = []
    n_jobs = c.table["job"].nunique() if len(c.table) else 0
    failed = int((c.table["status"] != "ok").sum()) if len(c.table) else 0
    total = f" of {c.expected}" if c.expected is not None else ""
    lines.append(f"sweep         {n_jobs}{total} jobs gathered, {len(c.table)} rows ({failed} not ok)")
    if len(c.summary):
        lines.append(format_aggregate(c.summary, c.keys))
    for _, row in c.table[c.table["status"] != "ok"].drop_duplicates("job").iterrows() if failed else []:
        first = (row["error"] or "").strip().splitlines()
        lines.append(f"failed job {row['job']}: {first[-1] if first else row['status']}")
    if c.missing:
        lines.append(f"missing       {len(c.missing)} grid point(s) without a result:")
        lines.extend("              " + " ".join(p) for p in c.missing[:20])
        if len(c.missing) > 20:
            lines.append(f"              ... and {len(c.missing) - 20} more")
    best = best_job(c.table)
    if best is not None and len(c.summary) > 1:
        lines.append(f"best          job {best['job']}: {' '.join(best['overrides']) or '(no swept keys)'} "
                     f"objective {best['objective']:,.1f}")
    if c.directory is not None:
        lines.append(f"table         {c.directory / (RESULTS_TABLE + '.parquet')} (and .csv, {SUMMARY_TABLE}.*)")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------- progress
def progress_line(done: int, total: int | None, elapsed_s: float, width: int = 24) -> str:
    """``sweep [#########---------------] 3/8 jobs  elapsed 0:12  ETA 0:20``."""
    def clock(s: float) -> str:
        s = int(round(s))
        return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"

    if not total:
        return f"sweep  {done} jobs done  elapsed {clock(elapsed_s)}"
    filled = min(width, int(width * done / total))
    eta = clock(elapsed_s / done * (total - done)) if done else "?"
    return f"sweep  [{'#' * filled}{'-' * (width - filled)}] {done}/{total} jobs  elapsed {clock(elapsed_s)}  ETA {eta}"


# --------------------------------------------------------------------------------------------- callback
try:
    from hydra.experimental.callback import Callback as _HydraCallback
except ImportError:  # pragma: no cover - hydra is a dependency
    _HydraCallback = object  # type: ignore[assignment,misc]


class GatherResults(_HydraCallback):
    """Hydra callback: the sweep's progress bar, and at the end one table, a comparison and a report.

    Registered in conf/config.yaml under ``hydra.callbacks.gather``; turn the report off with
    ``hydra.callbacks.gather.report=false``.
    """

    def __init__(self, report: bool = True, progress: bool = True) -> None:
        self.report = report
        self.progress = progress

    def on_job_end(self, config: Any, job_return: Any = None, **kwargs: Any) -> None:
        from hydra.types import RunMode

        if not self.progress or config.hydra.mode != RunMode.MULTIRUN:
            return
        try:
            sweep_dir = Path(config.hydra.sweep.dir)
            multirun = sweep_dir / MULTIRUN_FILE
            total = expected_jobs(_load_yaml(multirun)) if multirun.exists() else None
            done = sum(1 for d in _job_dirs(sweep_dir) if _job_complete(d))
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
            import yaml

            _atomic(sweep_dir / BEST_FILE, lambda p: p.write_text(yaml.safe_dump(best, sort_keys=False)))
        if self.report and len(collected.table):
            try:
                from framework.report import report
            except ImportError as exc:
                print(f"report skipped: {exc}. Fix: pip install 'chiefbench[report]'", file=sys.stderr)
                return
            path = report(sweep_dir, collected=collected)
            print(f"report        {path}")
