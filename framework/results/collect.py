"""``collect``: every job of a sweep directory (or one run directory) gathered into one table.

Reads result files only (see ``framework.layout``). Idempotent: it rewrites the same tables from the
same job directories, after a crash or a killed sweep too, and lists the grid points that have no
result yet.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from framework.lazy import lazy_module
from framework.layout import (DEPTH_FILE, ITEM_STATES, ITEMS_FILE, JOB_FILE, MULTIRUN_FILE, NO_STAMP, REPEAT_DIR,
                              RESULTS_TABLE, SUMMARY_FILE, SUMMARY_TABLE, job_dirs, run_dirs)
from framework.results.io import atomic_write
from framework.results.latency import StageHistograms
from framework.results.stats import aggregate
from framework.results.stream import part_paths, read_table
from framework.sweep.grid import expected_jobs, grid_points, load_yaml, sweep_command
from framework.sweep.order import REPEAT_INDEX_KEY

pd = lazy_module("pandas")  # a run that reads no table does not import pandas

# Summary keys that do not become columns (lists of rows; the text ones are joined into `error`, `warning`).
_NOT_COLUMNS = ("processes", "per_worker", "errors", "warnings", "failures", "memory", "latency_histograms")


def _parse_value(text: str) -> Any:
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


def job_complete(job_dir: Path) -> bool:
    """The job finished (not running, not interrupted) and every repeat has a summary.json."""
    info = _read_json(job_dir / JOB_FILE)
    if info is not None and info.get("status") in ("running", "interrupted"):
        return False
    return all((d / SUMMARY_FILE).exists() for _, d in run_dirs(job_dir))


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _flatten(summary: dict[str, Any]) -> dict[str, Any]:
    flat = pd.json_normalize({k: v for k, v in summary.items() if k not in _NOT_COLUMNS}, sep=".")
    row = flat.iloc[0].to_dict() if len(flat) else {}
    return {k: (json.dumps(v) if isinstance(v, (list, dict)) else v) for k, v in row.items()}


def job_rows(job_dir: Path, base: Path, job: int) -> list[dict[str, Any]]:
    """One row per complete repeat of a job directory."""
    info = _read_json(job_dir / JOB_FILE) or {}
    overrides = info.get("overrides")
    hydra_overrides = job_dir / ".hydra" / "overrides.yaml"
    if overrides is None and hydra_overrides.exists():
        overrides = list(load_yaml(hydra_overrides))
    keys = override_items(overrides or [])
    rows = []
    for repeat, run_dir in run_dirs(job_dir):
        summary = _read_json(run_dir / SUMMARY_FILE)
        if summary is None:
            summary = crashed_summary(run_dir)  # the chief died: what it streamed is still there
            if summary is None:
                continue
        if info.get("repeat_index") is not None:
            repeat = int(info["repeat_index"])  # one repeat per job (run.order=interleaved|random)
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


def _readable(table: Path) -> bool:
    """A streamed table with at least one closed part (a chief killed early may have closed none yet)."""
    return table.is_file() or (table.is_dir() and bool(part_paths(table)))


def crashed_summary(run_dir: Path) -> dict[str, Any] | None:
    """What can be read of a run whose chief died before writing summary.json (status ``crashed``): the
    counts per state of the items it streamed, and how far its records go; None if it streamed nothing."""
    if not any((run_dir / name).exists() for name in (ITEMS_FILE, DEPTH_FILE)):
        return None
    summary: dict[str, Any] = {"status": "crashed", "warnings": [], "errors": [
        f"no {SUMMARY_FILE}: the chief died before the end of the run; the counts are what its streamed "
        f"records hold (up to about record.flush_s before it died)"]}
    if _readable(run_dir / ITEMS_FILE):
        items = read_table(run_dir / ITEMS_FILE, columns=["state", "consumed_ns", "forwarded_ns"])
        codes = items["state"].to_numpy()
        counts = {name: int((codes == code).sum()) for code, name in enumerate(ITEM_STATES)}
        summary["counts"] = {"recorded": int(len(items)), **counts}
        stamps = items["consumed_ns"].to_numpy()
        stamps = stamps[stamps != NO_STAMP]
        if stamps.size:
            summary["records_until_ns"] = int(stamps.max())
    if _readable(run_dir / DEPTH_FILE):
        depth = read_table(run_dir / DEPTH_FILE, columns=["elapsed_s"])
        summary["recorded_s"] = float(depth["elapsed_s"].max()) if len(depth) else 0.0
    return summary


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
    """One row per configuration: median, 95 % CI and spread of throughput (``framework.results.stats.aggregate``)."""
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
    base = Path(directory)
    if not base.is_dir():
        raise FileNotFoundError(f"{str(base)!r} is not a directory: give a sweep directory (outputs/sweeps/...) "
                                f"or a run directory")
    multirun = base / MULTIRUN_FILE
    mcfg = load_yaml(multirun) if multirun.exists() else None
    jobs = job_dirs(base)
    rows: list[dict[str, Any]] = []
    done: set[int] = set()
    if jobs:
        for job_dir in jobs:
            job_rows_ = job_rows(job_dir, base, int(job_dir.name))
            rows.extend(job_rows_)
            if job_rows_ and job_complete(job_dir):
                done.add(int(job_dir.name))
    elif (base / SUMMARY_FILE).exists() or any(base.glob(f"{REPEAT_DIR.format('*')}/{SUMMARY_FILE}")) or \
            crashed_summary(base) is not None:
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
    summary = pooled_latency(aggregate(table, keys), table, keys, base)
    collected = Collected(table=table, summary=summary, keys=keys, missing=missing, expected=expected,
                          command=table.attrs["chiefbench"]["command"], directory=base)
    if write and len(table):
        write_tables(collected, base)
    return collected


def pooled_latency(summary: pd.DataFrame, table: pd.DataFrame, keys: list[str], base: Path) -> pd.DataFrame:
    """Per configuration, the end-to-end latency of all its ok repeats together: their histograms merged
    (quantiles of pooled histograms, not a median of quantiles), ``pooled_e2e_p50_ms`` .. ``_p99_ms``."""
    columns = {f"pooled_e2e_{q}_ms": [] for q in ("p50", "p99")}
    if table.empty or "status" not in table:
        return summary.assign(**columns) if len(summary) == 0 else summary
    ok = table[table["status"] == "ok"]
    present = [k for k in keys if k in ok.columns]
    groups = {tuple(str(v) for v in (row if isinstance(row, tuple) else (row,))): g
              for row, g in (ok.groupby(present, sort=False, dropna=False) if present else [((), ok)])}
    for _, r in summary.iterrows():
        merged = None
        for directory in groups.get(tuple(str(r[k]) for k in present), ok.iloc[0:0])["directory"]:
            run = _read_json(base / directory / SUMMARY_FILE) if directory != "." else _read_json(base / SUMMARY_FILE)
            encoded = (run or {}).get("latency_histograms")
            if encoded:
                h = StageHistograms.decode(encoded)
                merged = h if merged is None else merged.merge(h)
        q = merged.quantiles((50, 99))["end_to_end"] if merged is not None else {}
        columns["pooled_e2e_p50_ms"].append(q.get("p50_ms"))
        columns["pooled_e2e_p99_ms"].append(q.get("p99_ms"))
    return summary.assign(**columns)


def swept_keys(table: pd.DataFrame, points: list[list[str]] | None) -> list[str]:
    """The override keys that vary across the sweep's grid (or across its rows)."""
    if points:
        values: dict[str, set[str]] = {}
        for p in points:
            for k, v in override_items(p).items():
                values.setdefault(k, set()).add(repr(v))
        return [k for k, v in values.items() if len(v) > 1 and k != REPEAT_INDEX_KEY]
    if table.empty:
        return []
    override_cols = [c for c in table.columns
                     if c not in ("job", "repeat", "directory", REPEAT_INDEX_KEY) and not _is_figure(c)]
    return [c for c in override_cols if table[c].astype(str).nunique() > 1]


_FIGURE_PREFIXES = ("status", "error", "warning", "counts.", "window.", "latency_ms.", "stability.", "metadata.",
                    "config.", "throughput_", "rerun_command", "exit_code", "schema_version", "item_bytes", "rounds",
                    "objective", "feasible", "blocked_s", "memory", "failures", "transitions", "normalised.",
                    "machine_noise.", "calibration.", "littles_law.", "worker_utilisation", "written_in_place",
                    "created_stamps")


def _is_figure(column: str) -> bool:
    return column.startswith(_FIGURE_PREFIXES)


def write_tables(collected: Collected, directory: Path) -> None:
    """sweep_results.parquet/.csv and sweep_summary.parquet/.csv, each written atomically."""
    for name, df in ((RESULTS_TABLE, collected.table), (SUMMARY_TABLE, collected.summary)):
        df = df.copy()
        df.attrs = dict(collected.table.attrs)
        atomic_write(directory / f"{name}.parquet", lambda p, df=df: df.to_parquet(p, index=False))
        atomic_write(directory / f"{name}.csv", lambda p, df=df: df.to_csv(p, index=False))


def best_job(table: pd.DataFrame) -> dict[str, Any] | None:
    """The feasible configuration with the largest objective, as one of its jobs (None when no job succeeded).

    A configuration's objective is the median over its jobs: one job per configuration (grouped repeats),
    or one per repeat (run.order=interleaved|random)."""
    if table.empty or "objective" not in table:
        return None
    jobs = table.drop_duplicates("job").copy()
    jobs["objective"] = pd.to_numeric(jobs["objective"], errors="coerce")
    jobs = jobs[jobs["objective"].notna()]
    if "feasible" in jobs:
        jobs = jobs[jobs["feasible"].astype(str) != "False"]
    if jobs.empty:
        return None
    keys = [k for k in table.attrs.get("chiefbench", {}).get("keys", []) if k in jobs.columns]
    if keys:
        medians = jobs.groupby(keys, sort=False, dropna=False)["objective"].transform("median")
        jobs = jobs.assign(objective=medians)
    row = jobs.loc[jobs["objective"].idxmax()]
    return {"job": int(row["job"]), "objective": float(row["objective"]),
            "overrides": [f"{k}={row[k]}" for k in table.attrs.get("chiefbench", {}).get("keys", []) if k in row],
            "directory": str(Path(row["directory"]).parts[0]) if row["directory"] != "." else "."}


