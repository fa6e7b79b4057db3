"""What the chief and its workers say to each other: the shared control block and
the tiny messages that travel on the global queue beside the items.

An item on the global queue is a plain tuple, the cheapest thing to pickle::

    (worker_id, seq, created_ns, forwarded_ns, value)

Stamps are ``time.monotonic_ns()``, one clock shared by every process on the machine.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# Control block slots (int64 each). The chief writes the header, worker i writes its own
# four slots: one writer per slot, so no lock is needed, and an aligned 8-byte store
# is never seen half-written.
STOP = 0
"""Non-zero once the chief asks workers to stop."""
START_NS = 1
"""The start barrier: 0 until every worker is ready, then the run's t0."""
CONSUMED = 2
"""Items the chief has taken so far."""
HEADER_SLOTS = 8
PRODUCED, FORWARDED, HEARTBEAT_NS, READY = range(4)
WORKER_SLOTS = 4


def worker_slot(worker_id: int, field: int) -> int:
    """Index of ``field`` (PRODUCED, FORWARDED, ...) of worker ``worker_id``."""
    return HEADER_SLOTS + worker_id * WORKER_SLOTS + field


def control_block(mp_context: Any, n_workers: int) -> Any:
    """A zeroed shared int64 array holding the header and every worker's slots."""
    return mp_context.RawArray("q", HEADER_SLOTS + n_workers * WORKER_SLOTS)


@dataclass
class Leftovers:
    """Items still in a worker's local queue when it stopped, as item tuples: transformed and
    stamped if ``run.on_stop=forward``, untransformed with ``forwarded_ns=-1`` if ``keep``."""

    worker: int
    items: list


@dataclass
class EndOfStream:
    """A worker's last message: nothing from it follows. Carries its own account."""

    worker: int
    produced: int
    forwarded: int
    wall_s: float
    """Seconds from the start barrier to this message."""
    cpu_s: float
    """CPU seconds (user + system) this process spent over the same span."""
    pid: int
    error: str | None = None
    """The worker's formatted traceback if it failed, else None."""
