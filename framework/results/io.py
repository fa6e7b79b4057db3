"""Run directories: writing them atomically and reading them back as DataFrames.

A run directory holds (see ``framework.layout``)::

    items.parquet/  part-*.parquet: one row per item kept (record.items): worker, seq, value, created_ns,
                    forwarded_ns, consumed_ns (-1: never happened), state (a code: STATES)
    depth.parquet/  t_ns, elapsed_s, queue (global | local), worker (-1 = global), depth
    memory.parquet/ t_ns, role, worker, pid, rss_bytes (each process, once a second)
    config.yaml     the resolved config (what ran, seeds included)
    summary.json    status, counts, throughput, latency, noise, processes, config, metadata

The tables stream in as the run goes (parts closed at least every record.flush_s); config.yaml and
summary.json are written at the end, each under a temporary name renamed into place, summary.json
last: a directory with a summary.json is complete, one without it holds a run whose chief died.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


from framework.lazy import lazy_module
from framework.errors import ResultsWriteError
from framework.layout import (CONFIG_FILE, DEPTH_FILE, ITEM_STATES, ITEMS_FILE, MEMORY_FILE, NO_STAMP,
                              SUMMARY_FILE)
from framework.results.stream import read_table

pd = lazy_module("pandas")  # a run that reads no table does not import pandas



def items_frame(table: pd.DataFrame) -> pd.DataFrame:
    """items.parquet as read (state codes, NO_STAMP) -> state names and missing stamps (<NA>)."""
    df = table.copy()
    for column in ("forwarded_ns", "consumed_ns"):
        if column in df and str(df[column].dtype) != "Int64":
            values = df[column].to_numpy()
            df[column] = pd.array(values, dtype="Int64")
            df.loc[values == NO_STAMP, column] = pd.NA
    if "state" in df and not isinstance(df["state"].dtype, pd.CategoricalDtype):
        df["state"] = pd.Categorical.from_codes(df["state"].to_numpy().astype(int), categories=list(ITEM_STATES))
    return df


def _table(directory: Path | None, name: str) -> pd.DataFrame | None:
    """A streamed table of a run directory (a directory of parts, or one file), or None when it is absent."""
    if directory is None or not (directory / name).exists():
        return None
    return read_table(directory / name)


@dataclass
class RunResult:
    """One run's summary, and its records read from its run directory when first asked for."""

    summary: dict[str, Any]
    """Everything in summary.json."""
    directory: Path | None = None
    _cache: dict[str, Any] = field(default_factory=dict, repr=False)

    def _read(self, name: str) -> pd.DataFrame | None:
        if name not in self._cache:
            self._cache[name] = _table(self.directory, name)
        return self._cache[name]

    @property
    def items(self) -> pd.DataFrame | None:
        """One row per item kept (record.items: all or sample; None under none); see the module docstring."""
        table = self._read(ITEMS_FILE)
        return items_frame(table) if table is not None else None

    @property
    def depth(self) -> pd.DataFrame | None:
        """Queue depth samples, long format."""
        return self._read(DEPTH_FILE)

    @property
    def memory(self) -> pd.DataFrame | None:
        """Resident memory per process over time (t_ns, role, worker, pid, rss_bytes)."""
        return self._read(MEMORY_FILE)

    @property
    def status(self) -> str:
        return self.summary["status"]

    @property
    def counts(self) -> dict[str, int]:
        return self.summary["counts"]

    @property
    def latency(self) -> pd.DataFrame:
        """Stage x (count, p50_ms, p95_ms, p99_ms, p99.9_ms, max_ms) over the measured window."""
        return pd.DataFrame.from_dict(self.summary["latency_ms"], orient="index")

    def summary_frame(self) -> pd.DataFrame:
        """The summary's figures as one flat row (config keys prefixed ``config.``)."""
        flat = {k: v for k, v in self.summary.items()
                if k not in ("processes", "per_worker", "errors", "warnings", "latency_histograms")}
        return pd.json_normalize(flat, sep=".")

    @property
    def processes(self) -> pd.DataFrame:
        """Wall and CPU time per process."""
        return pd.DataFrame(self.summary["processes"])


def atomic_write(path: Path, write: Any) -> None:
    """``write(tmp)`` a temporary file beside ``path``, then rename it into place (never half-written)."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def make_writable_dir(path: Path) -> None:
    """Make ``path`` (and its parents) and check this process may write there; raise OSError if not."""
    path.mkdir(parents=True, exist_ok=True)
    if not os.access(path, os.W_OK):
        raise PermissionError(13, "Permission denied")


def prepare_run_dir(directory: str | os.PathLike) -> Path:
    """Make the run directory the records will stream into; raise ResultsWriteError (with the fix) before
    anything starts when it cannot be written, or already holds a run."""
    out = Path(directory)
    try:
        make_writable_dir(out)
    except OSError as exc:
        raise ResultsWriteError(
            f"Could not write the results of this run to {str(out)!r}: {exc.strerror or exc}. Nothing was run. "
            f"Fix: free disk space or choose a writable directory (`hydra.run.dir=/some/writable/dir`, or "
            f"output_dir= from Python).") from exc
    taken = [name for name in (ITEMS_FILE, DEPTH_FILE, MEMORY_FILE, SUMMARY_FILE) if (out / name).exists()]
    if taken:
        raise ResultsWriteError(
            f"{str(out)!r} already holds a run ({', '.join(taken)}): a run never writes over another's records. "
            f"Nothing was run. Fix: choose a new directory (the default, under outputs/runs, is new every time).")
    return out


def write_run(directory: str | os.PathLike, result: RunResult, config_yaml: str) -> Path:
    """Write config.yaml and, last, summary.json (the tables were streamed during the run); raise
    ResultsWriteError with the fix."""
    out = Path(directory)
    try:
        out.mkdir(parents=True, exist_ok=True)
        atomic_write(out / CONFIG_FILE, lambda p: p.write_text(config_yaml))
        atomic_write(out / SUMMARY_FILE, lambda p: p.write_text(json.dumps(result.summary, indent=2, default=str)))
    except OSError as exc:
        raise ResultsWriteError(
            f"Could not write the results of this run to {str(out)!r}: {exc.strerror or exc}. Nothing "
            f"half-written was left under a final name. Fix: free disk space or choose a writable directory "
            f"(`hydra.run.dir=/some/writable/dir`, or output_dir= from Python)."
        ) from exc
    if result.directory is None:
        result.directory = out
    return out


def load_run(directory: str | os.PathLike) -> RunResult:
    """Read a run directory back (the same result ``framework.run`` returned; tables read when asked for)."""
    out = Path(directory)
    summary_path = out / SUMMARY_FILE
    if not summary_path.exists():
        raise FileNotFoundError(f"{str(out)!r} holds no {SUMMARY_FILE}: it is not a complete chiefbench run directory "
                                f"(a run whose chief was killed keeps its records: `chiefbench-collect` lists it)")
    return RunResult(summary=json.loads(summary_path.read_text()), directory=out)
