"""Leave nothing behind: chiefbench's private temporary directory, and stale ones of dead runs.

multiprocessing keeps its Unix sockets (the fork server's, a manager's) in one temporary
directory per process, removed by an exit hook that a SIGKILL never runs. chiefbench
names that directory itself, ``chiefbench-<pid>-<random>`` (owner-only, unguessable), so
that the next run can recognise the ones whose process is dead and remove them: only
ours, never another program's.
"""

from __future__ import annotations

import atexit
import multiprocessing
import os
import re
import shutil
import tempfile
from pathlib import Path

PREFIX = "chiefbench-"
_OURS = re.compile(rf"^{PREFIX}(\d+)-")


def claim_tempdir() -> Path:
    """Make this process's multiprocessing temp directory a chiefbench one (idempotent)."""
    config = multiprocessing.current_process()._config
    current = config.get("tempdir")
    if current and Path(current).name.startswith(f"{PREFIX}{os.getpid()}-"):
        return Path(current)
    if current:
        return Path(current)  # multiprocessing already made one (and will remove it at exit)
    path = tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}-")  # mode 0o700, random suffix
    config["tempdir"] = path
    atexit.register(shutil.rmtree, path, True)
    return Path(path)


def remove_stale(tmp: str | os.PathLike | None = None) -> list[Path]:
    """Remove chiefbench temp directories whose process is gone; return what was removed."""
    removed = []
    for entry in Path(tmp or tempfile.gettempdir()).iterdir():
        match = _OURS.match(entry.name)
        if not match or not entry.is_dir() or entry.name.startswith(f"{PREFIX}rescue-"):
            continue
        if entry.stat().st_uid != os.getuid() or _alive(int(match.group(1))):
            continue
        shutil.rmtree(entry, ignore_errors=True)
        removed.append(entry)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie has exited: it holds nothing open.
    try:
        return Path(f"/proc/{pid}/status").read_text().split("State:")[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True
