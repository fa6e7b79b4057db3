"""What the chief and its workers say to each other: the shared control block and
the tiny messages that travel on the global queue beside the items.

A single item on the global queue is a plain tuple, the cheapest thing to pickle::

    (worker_id, seq, created_ns, forwarded_ns, value)

Several items forwarded together (``workers.forward_batch`` > 1) travel as one
``Chunk``: columns instead of tuples, so a design that understands numpy (shm_ring,
zmq) moves their stamps and values as raw buffers, and the chief records them
with a handful of numpy calls instead of a Python step per item.

Stamps are ``time.monotonic_ns()``, one clock shared by every process on the machine.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

# Control block slots (int64 each). The chief writes the header, worker i writes its own
# four slots: one writer per slot, so no lock is needed, and an aligned 8-byte store
# is never seen half-written.
STOP = 0
"""Non-zero once the chief asks workers to stop."""
START_NS = 1
"""The start barrier: 0 until every worker is ready, then the run's t0."""
TAKEN = 2
"""Items that left the global queue by the chief's hand (consumed, evicted, or known lost in transit)."""
HEADER_SLOTS = 8
PRODUCED, FORWARDED, DROPPED, HEARTBEAT_NS, READY, BLOCKED_NS = range(6)
"""Per worker: items created; put on the global queue; dropped (drop_newest); last sign of life;
ready at the barrier; nanoseconds spent blocked on a full queue. Counts continue across restarts."""
WORKER_SLOTS = 6
IN_PUT = -1
"""HEARTBEAT_NS while a worker is inside a put: blocked by a full queue is alive, not hung."""


def worker_slot(worker_id: int, field: int) -> int:
    """Index of ``field`` (PRODUCED, FORWARDED, ...) of worker ``worker_id``."""
    return HEADER_SLOTS + worker_id * WORKER_SLOTS + field


def chief_alive_probe(chief_pid: int, start_method: str) -> Callable[[], bool]:
    """A cheap check, for a child process, that the chief still lives.

    Under fork and spawn the chief is our parent: a changed parent pid means orphaned,
    even if the chief died before this child ran its first line. Under forkserver the
    parent is the fork server, so we wait on the sentinel that multiprocessing keeps
    for the process that asked for us.
    """
    if start_method == "forkserver":
        import multiprocessing

        parent = multiprocessing.parent_process()
        if parent is not None:
            return parent.is_alive
    return lambda: os.getppid() == chief_pid


def control_block(mp_context: Any, n_workers: int) -> Any:
    """A zeroed shared int64 array holding the header and every worker's slots."""
    return mp_context.RawArray("q", HEADER_SLOTS + n_workers * WORKER_SLOTS)


class Chunk:
    """Items ``seq0 .. seq0 + n - 1`` of one worker, forwarded together at ``forwarded_ns``.

    ``values`` is a float64 array for scalar payloads, else a list of the items' values, or (as shm_ring
    returns a chunk of same-shape arrays) one array of shape (n, *item shape) whose rows are the values.
    A forward always takes the oldest items of a FIFO local queue, so its seqs are consecutive.

    On the chief's side only, ``forwarded_ns`` may also be an int64 array, one stamp per item: a design
    that was told it may (``ConsumerEnd.accept_chunks``) returns a run of single-item messages of one
    worker with consecutive seqs as one chunk (shm_ring reads such a run of fixed-size records in one
    numpy call), so the chief records them without a Python object per item.
    """

    __slots__ = ("worker", "seq0", "created_ns", "forwarded_ns", "values")

    def __init__(self, worker: int, seq0: int, created_ns: Any, forwarded_ns: Any, values: Any) -> None:
        self.worker, self.seq0, self.created_ns, self.forwarded_ns, self.values = \
            worker, seq0, created_ns, forwarded_ns, values

    def __reduce_ex__(self, protocol: int) -> tuple:
        # The columns travel as their bytes: numpy's own pickling of an array costs 2-3 us a side, which
        # made the message of a batch of 64 floats 4x dearer to send and to receive than the same floats
        # in a list. Under protocol 5 they travel as buffers: written straight from the array in band, or
        # out of band where the design takes them so (zmq's frames). A worker pickles a chunk, so
        # forwarded_ns is one stamp.
        created, values, forwarded = self.created_ns, self.values, self.forwarded_ns
        if type(created) is not np.ndarray or type(values) is not np.ndarray or type(forwarded) is not int \
                or values.dtype.hasobject:
            return Chunk, (self.worker, self.seq0, created, forwarded, values)
        if protocol >= 5:
            created_bytes = pickle.PickleBuffer(np.ascontiguousarray(created))
            values_bytes = pickle.PickleBuffer(np.ascontiguousarray(values))
        else:
            created_bytes, values_bytes = created.tobytes(), values.tobytes()
        if values.dtype == np.float64 and values.ndim == 1:
            return _float_chunk, (self.worker, self.seq0, created_bytes, forwarded, values_bytes)
        return _array_chunk, (self.worker, self.seq0, created_bytes, forwarded, values_bytes, values.dtype.str,
                              values.shape)

    def __len__(self) -> int:
        return len(self.created_ns)

    def split(self, k: int) -> tuple[Chunk, Chunk]:
        """The first ``k`` items and the rest (the chief takes exactly what its rule asks for)."""
        f = self.forwarded_ns
        head_f = f if type(f) is int else f[:k]
        return Chunk(self.worker, self.seq0, self.created_ns[:k], head_f, self.values[:k]), self.rest(k)

    def rest(self, k: int) -> Chunk:
        """The items after the first ``k``."""
        f = self.forwarded_ns
        return Chunk(self.worker, self.seq0 + k, self.created_ns[k:], f if type(f) is int else f[k:],
                     self.values[k:])

    def tuples(self, k: int | None = None) -> list[tuple]:
        """The same items (the first ``k`` of them) as item tuples: for printing, and for a take of a few items
        of a long chunk, which costs less as tuples than as a chunk of its own."""
        w, s0, f = self.worker, self.seq0, self.forwarded_ns
        values, created = self.values, self.created_ns
        if k == 1:  # chief.take_batch=1 out of a run: no slices
            value = values[0] if not isinstance(values, np.ndarray) or values.ndim > 1 else values.item(0)
            return [(w, s0, created.item(0), f if type(f) is int else f.item(0), value)]
        if k is not None:
            values, created = values[:k], created[:k]
            f = f if type(f) is int else f[:k]
        if isinstance(values, np.ndarray):
            values = values.tolist() if values.ndim == 1 else list(values)  # numbers, or one array per item
        stamps = [f] * len(created) if type(f) is int else np.asarray(f).tolist()
        return [(w, s0 + i, c, fi, v) for i, (c, fi, v) in enumerate(zip(created.tolist(), stamps, values))]


def _float_chunk(worker: int, seq0: int, created: bytes, forwarded_ns: int, values: bytes) -> Chunk:
    """A pickled chunk of numbers, back (its columns are read-only views of the message's bytes)."""
    return Chunk(worker, seq0, np.frombuffer(created, np.int64), forwarded_ns, np.frombuffer(values, np.float64))


def _array_chunk(worker: int, seq0: int, created: bytes, forwarded_ns: int, values: bytes, dtype: str,
                 shape: tuple) -> Chunk:
    """A pickled chunk of arrays (or of numbers of another dtype), back."""
    return Chunk(worker, seq0, np.frombuffer(created, np.int64), forwarded_ns,
                 np.frombuffer(values, dtype).reshape(shape))


@dataclass
class Leftovers:
    """Items still in a worker's local queue when it stopped, as item tuples: transformed and
    stamped if ``run.on_stop=forward``, untransformed with ``forwarded_ns=-1`` if ``keep``."""

    worker: int
    items: list


@dataclass
class WorkerError:
    """A worker's exception, sent on the side channel at once (the data queue may be slow)."""

    worker: int
    incarnation: int
    traceback: str


@dataclass
class EndOfStream:
    """A worker's last message: nothing from it follows. Carries its own account."""

    worker: int
    incarnation: int
    produced: int
    forwarded: int
    dropped: list
    """(seq, created_ns) of each item dropped under queue.on_full=drop_newest."""
    blocked_s: float
    wall_s: float
    """Seconds from the start barrier to this message."""
    cpu_s: float
    """CPU seconds (user + system) this process spent over the same span."""
    pid: int
    error: str | None = None
    """The worker's formatted traceback if it failed, else None."""
