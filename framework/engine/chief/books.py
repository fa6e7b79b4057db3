"""The chief's books: every worker's counters, read from the control block, and what the chief took.

Queue depths are computed from the counters (global = sum(FORWARDED) - TAKEN, local i =
PRODUCED_i - FORWARDED_i - DROPPED_i), never from ``qsize()``. What a dead worker held in its
local queue is exactly the seqs in [FORWARDED + DROPPED, PRODUCED) at its death.
"""

from __future__ import annotations

from typing import Any

from framework.engine import protocol
from framework.engine.record import DepthRecorder

COUNTERS = (protocol.PRODUCED, protocol.FORWARDED, protocol.DROPPED, protocol.HEARTBEAT_NS, protocol.READY,
            protocol.BLOCKED_NS)


class Notes:
    """What the run says in words: errors (the run failed) and warnings (it ran, but read this)."""

    def __init__(self) -> None:
        self.errors: list[str] = []
        self.warnings: list[str] = []


class Books:
    """Counters of the workers (the control block) and of the chief (the recorder's counts)."""

    def __init__(self, control: Any, n_workers: int, counts: Any, depth_sample_s: float,
                 depth: DepthRecorder | None = None) -> None:
        self.control = control
        self.n = n_workers
        self.counts = counts
        """The recorder: ``count(state)`` of the items recorded in each state, and ``taken`` (consumed or evicted)."""
        self.slots = {f: [protocol.worker_slot(w, f) for w in range(n_workers)] for f in COUNTERS}
        self._forwarded_slots = strided_view(control, protocol.worker_slot(0, protocol.FORWARDED),
                                             protocol.WORKER_SLOTS, n_workers)
        self.in_transit_lost = 0
        """Items a dead worker counted as forwarded that never arrived."""
        self.dead_local: list[tuple[int, int, int]] = []
        """(worker, first, end): seqs [first, end) were in a dead worker's local queue."""
        self.depth = depth if depth is not None else DepthRecorder(n_workers)
        self.sample_ns = int(depth_sample_s * 1e9)
        self._last_sample_ns = 0
        self._area = 0.0
        self._area_t = 0
        self._area_depth = 0
        self.window_start_ns = 0
        self.area_at_start: float | None = None
        """The integral of the global depth (item x ns) from t0 to the window's start (see ``observe``)."""

    def counter(self, field: int) -> list[int]:
        """One counter of every worker (PRODUCED, FORWARDED, DROPPED, HEARTBEAT_NS, READY, BLOCKED_NS)."""
        control = self.control
        return [control[s] for s in self.slots[field]]

    def slot(self, w: int, field: int) -> int:
        return self.control[self.slots[field][w]]

    def produced(self) -> list[int]:
        return self.counter(protocol.PRODUCED)

    def forwarded(self) -> list[int]:
        return self.counter(protocol.FORWARDED)

    def taken(self) -> int:
        """Items that left the global queue by the chief's hand: consumed, evicted, or lost in transit."""
        return self.counts.taken + self.in_transit_lost

    def global_depth(self) -> int:
        # Read at every check, several times per take: one C-level sum over the live slots, no lists.
        forwarded = self._forwarded_slots
        if forwarded is None:
            forwarded = self.forwarded()
        return sum(forwarded) - self.counts.taken - self.in_transit_lost

    def publish_taken(self) -> None:
        """Tell the workers (their bound check reads it)."""
        self.control[protocol.TAKEN] = self.counts.taken + self.in_transit_lost  # taken(), inline: every take

    def local_span(self, w: int) -> tuple[int, int]:
        """(first, end): the seqs worker ``w``'s local queue holds now, by its counters."""
        popped = self.slot(w, protocol.FORWARDED) + self.slot(w, protocol.DROPPED)
        return popped, self.slot(w, protocol.PRODUCED)

    def lose_local(self, w: int) -> None:
        """Worker ``w`` is dead: what its local queue held is lost."""
        first, end = self.local_span(w)
        if end > first:
            self.dead_local.append((w, first, end))

    def observe(self, now: int, depth: int, after: int | None = None) -> None:
        """Integrate the global depth over time (trapezoids between the chief's observations, which it
        makes at every check): the run's own L for Little's law, denser than the depth samples. ``after``:
        the chief took ``depth - after`` items at ``now``, so the depth was ``depth`` up to then (every item
        forwarded while it waited is in it) and is ``after`` from then on."""
        last = self._area_t
        if last:
            if self.area_at_start is None and now >= self.window_start_ns:
                # The window opens between the last observation and this one: the depth in between, linear.
                at = max(self.window_start_ns, last)
                mid = self._area_depth + (depth - self._area_depth) * (at - last) / max(1, now - last)
                self.area_at_start = self._area + (self._area_depth + mid) * 0.5 * (at - last)
            self._area += (self._area_depth + depth) * 0.5 * (now - last)
        elif now >= self.window_start_ns:
            self.area_at_start = 0.0
        self._area_t = now
        self._area_depth = depth if after is None else after

    @property
    def area(self) -> float:
        """The integral of the global depth (item x ns) from t0 to the last observation."""
        return self._area

    def sample_depth(self, now: int, force: bool = False) -> None:
        if force or now - self._last_sample_ns >= self.sample_ns:
            produced, forwarded, dropped = self.produced(), self.forwarded(), self.counter(protocol.DROPPED)
            depth = sum(forwarded) - self.taken()
            self.observe(now, depth)
            self.depth.add(now, depth, [p - f - d for p, f, d in zip(produced, forwarded, dropped)])
            self._last_sample_ns = now

    def blocked_s(self) -> dict[int, float]:
        return {w: ns / 1e9 for w, ns in enumerate(self.counter(protocol.BLOCKED_NS))}


def strided_view(control: Any, first: int, step: int, count: int) -> memoryview | None:
    """Slots ``first, first + step, ...`` (``count`` of them) of the control block as a live view, where the
    block is a buffer of int64 (a shared RawArray); None where it is not (the Ray backend's mirror, a list)."""
    try:
        whole = memoryview(control).cast("B").cast("q")
    except TypeError:
        return None
    return whole[first:first + step * count:step]
