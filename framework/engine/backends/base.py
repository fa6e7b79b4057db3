"""The interface a backend offers the chief: how workers are started and watched, and its hooks.

    chief ----control_block / side_channel / process----> backend ----> worker processes | Ray actors
          <---memory / check / stall_possible (hooks)----

The chief never subclasses a backend's code, nor a backend the chief's: what differs between
backends goes through these methods.
"""

from __future__ import annotations

import os
from typing import Any

import psutil


class Backend:
    """Where workers run. The default methods are the local backend's behaviour."""

    name = "local"

    design_context: Any = None
    """What a queue design is built with: a ``multiprocessing`` context, or the backend itself (Ray)."""

    def control_block(self, n_slots: int) -> Any:
        """A zeroed int64 array of ``n_slots``, shared with the workers (one writer per slot)."""
        raise NotImplementedError

    def side_channel(self) -> Any:
        """A queue on which workers send their tracebacks at once (``put``, ``get``, ``empty``, ``close``)."""
        raise NotImplementedError

    def process(self, target: Any, args: tuple, name: str) -> Any:
        """A not-yet-started worker handle with the ``multiprocessing.Process`` interface the chief uses:
        ``start``, ``pid``, ``exitcode``, ``is_alive``, ``join``, ``kill``, ``name``."""
        raise NotImplementedError

    # -- hooks --------------------------------------------------------------------------------------
    def memory(self, procs: dict[int, Any]) -> list[tuple[str, int, int, int]]:
        """``(role, worker, pid, rss_bytes)`` of the chief and of each worker, sampled now."""
        rows = []
        for role, w, pid in [("chief", -1, os.getpid())] + [("worker", w, p.pid) for w, p in procs.items()]:
            try:
                rows.append((role, w, pid, psutil.Process(pid).memory_info().rss))
            except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
                pass
        return rows

    def check(self, now_ns: int, starting: bool, started_ns: list[int]) -> None:
        """Raise ``framework.errors.WorkerFailed`` when the backend itself cannot go on."""

    def stall_possible(self, forwarded_total: int) -> bool:
        """Whether "every worker is blocked in a put" may mean a deadlock now (the chief then watches it)."""
        return True

    def close(self) -> None:
        """Release what the backend started; idempotent, called after a crash too."""
