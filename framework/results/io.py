"""Run directories: writing them atomically and reading them back as DataFrames.

A run directory holds::

    items.parquet   one row per item: worker, seq, value, created_ns, forwarded_ns, consumed_ns, state
    depth.parquet   t_ns, elapsed_s, queue (global | local), worker (-1 = global), depth
    memory.parquet  t_ns, role, worker, pid, rss_bytes (each process, once a second)
    summary.json    status, counts, throughput, latency, processes, config, metadata
    config.yaml     the resolved config (what ran, seeds included)

Each file is written under a temporary name and renamed into place, and summary.json
comes last: a directory with a summary.json is complete.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from framework.errors import ResultsWriteError
from framework.layout import CONFIG_FILE, DEPTH_FILE, ITEMS_FILE, MEMORY_FILE, SUMMARY_FILE



@dataclass
class RunResult:
    """One run's records and figures, for use from Python."""

    items: pd.DataFrame
    """One row per item (see the module docstring)."""
    depth: pd.DataFrame
    """Queue depth samples, long format."""
    summary: dict[str, Any]
    """Everything in summary.json."""
    directory: Path | None = None
    memory: pd.DataFrame | None = None
    """Resident memory per process over time (t_ns, role, worker, pid, rss_bytes)."""

    @property
    def status(self) -> str:
        return self.summary["status"]

    @property
    def counts(self) -> dict[str, int]:
        return self.summary["counts"]

    @property
    def latency(self) -> pd.DataFrame:
        """Stage x (count, p50_ms, p95_ms, p99_ms, max_ms) over the measured window."""
        return pd.DataFrame.from_dict(self.summary["latency_ms"], orient="index")

    def summary_frame(self) -> pd.DataFrame:
        """The summary's figures as one flat row (config keys prefixed ``config.``)."""
        flat = {k: v for k, v in self.summary.items() if k not in ("processes", "per_worker", "errors", "warnings")}
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


def write_run(directory: str | os.PathLike, result: RunResult, config_yaml: str) -> Path:
    """Write the four files of a run directory; raise ResultsWriteError with the fix."""
    out = Path(directory)
    try:
        out.mkdir(parents=True, exist_ok=True)
        atomic_write(out / ITEMS_FILE, lambda p: result.items.to_parquet(p, index=False))
        atomic_write(out / DEPTH_FILE, lambda p: result.depth.to_parquet(p, index=False))
        if result.memory is not None:
            atomic_write(out / MEMORY_FILE, lambda p: result.memory.to_parquet(p, index=False))
        atomic_write(out / CONFIG_FILE, lambda p: p.write_text(config_yaml))
        atomic_write(out / SUMMARY_FILE, lambda p: p.write_text(json.dumps(result.summary, indent=2, default=str)))
    except OSError as exc:
        raise ResultsWriteError(
            f"Could not write the results of this run to {str(out)!r}: {exc.strerror or exc}. Nothing "
            f"half-written was left under a final name. Fix: free disk space or choose a writable directory "
            f"(`hydra.run.dir=/some/writable/dir`, or output_dir= from Python)."
        ) from exc
    result.directory = out
    return out


def load_run(directory: str | os.PathLike) -> RunResult:
    """Read a run directory back (the same DataFrames ``framework.run`` returned)."""
    out = Path(directory)
    summary_path = out / SUMMARY_FILE
    if not summary_path.exists():
        raise FileNotFoundError(f"{str(out)!r} holds no {SUMMARY_FILE}: it is not a complete chiefbench run directory")
    summary = json.loads(summary_path.read_text())
    memory = pd.read_parquet(out / MEMORY_FILE) if (out / MEMORY_FILE).exists() else None
    return RunResult(items=pd.read_parquet(out / ITEMS_FILE), depth=pd.read_parquet(out / DEPTH_FILE),
                     summary=summary, directory=out, memory=memory)
