"""What every result carries about the machine, the software and the code version."""

from __future__ import annotations

import datetime as _dt
import os
import platform
import socket
import subprocess
import sys
from importlib import metadata as _pkg
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 1
"""Version of the result files' layout (summary.json, items.parquet, depth.parquet)."""
PACKAGES = ("chiefbench", "numpy", "pandas", "pyarrow", "hydra-core", "omegaconf", "psutil")
REPO_ROOT = Path(__file__).resolve().parent.parent


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return None


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(REPO_ROOT), *args], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def code_version() -> dict[str, Any]:
    """The git commit of the chiefbench checkout and whether its tree had changes."""
    commit = _git("rev-parse", "HEAD")
    status = _git("status", "--porcelain") if commit else None
    return {"git_commit": commit, "git_dirty": bool(status) if status is not None else None}


def machine_metadata(start_method: str | None = None) -> dict[str, Any]:
    """Python, platform, CPU, load and package versions, as pyperf records them."""
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = _pkg.version(name)
        except _pkg.PackageNotFoundError:
            versions[name] = None
    try:
        affinity = sorted(os.sched_getaffinity(0))
    except AttributeError:
        affinity = None
    try:
        import psutil

        memory_total = psutil.virtual_memory().total
    except Exception:  # noqa: BLE001 - metadata must never break a run
        memory_total = None
    return {
        "schema_version": SCHEMA_VERSION,
        "timestamp_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "hostname": socket.gethostname(),
        "python": sys.version.split()[0],
        "python_implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "cpu_model": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpu_affinity": affinity,
        "cpu_governor": _read("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor"),
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "memory_total_bytes": memory_total,
        "start_method": start_method,
        "packages": versions,
        **code_version(),
    }
