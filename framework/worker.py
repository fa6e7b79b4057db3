"""A worker's loop: generate, keep locally, forward past the threshold, stop cleanly.

    payload source --created_ns--> local queue --(len > local_threshold
        or oldest older than forward_deadline_s)--> transform --forwarded_ns--> put / put_many

The loop reads the stop flag and writes its counters in the shared control block;
it never logs and never touches pandas. On stop it sends what its local queue still
holds (``Leftovers``), then ``EndOfStream``, then flushes and closes its producer end.
"""

from __future__ import annotations

import os
import signal
import time
import traceback
from collections import deque
from dataclasses import dataclass
from typing import Any

import numpy as np

from framework import protocol
from framework.payloads import make_source
from framework.transforms import make_transform

SLEEP_SLICE_S = 0.05
"""Longest uninterrupted sleep: bounds how late a worker sees the stop flag or a dead chief."""
PARENT_CHECK_EVERY_ITEMS = 4096
"""In as-fast-as-possible mode, how often the worker checks that the chief is alive."""


@dataclass(frozen=True)
class WorkerSpec:
    """Everything a worker needs, as plain picklable values."""

    worker_id: int
    seed: int
    interval_s: float
    local_threshold: int
    forward_batch: int
    forward_deadline_s: float | None
    local_queue: str
    items: int | None
    on_stop: str
    payload: Any
    transform: Any


def worker_stream(seed: int, worker_id: int) -> np.random.Generator:
    """Worker ``worker_id``'s generator: child ``worker_id`` of ``SeedSequence(seed)``."""
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed, spawn_key=(worker_id,))))


class _MpLocalQueue:
    """The original program's local multiprocessing.Queue, used inside one process.

    ``len`` comes from our own count: ``qsize()`` raises on macOS.
    """

    def __init__(self) -> None:
        import multiprocessing

        self._q = multiprocessing.Queue()
        # A queue cannot be peeked: the deadline rule reads the oldest stamp from here.
        self._created: deque = deque()

    def append(self, entry: tuple) -> None:
        self._q.put(entry)
        self._created.append(entry[1])

    def popleft(self) -> tuple:
        self._created.popleft()
        return self._q.get()

    def __len__(self) -> int:
        return len(self._created)

    def __getitem__(self, index: int) -> tuple:
        return (None, self._created[index], None)

    def drain(self) -> list:
        return [self.popleft() for _ in range(len(self))]

    def close(self) -> None:
        self._q.close()
        self._q.join_thread()


def run_worker(spec: WorkerSpec, producer: Any, control: Any) -> None:
    """Process entry point. Never raises: a failure travels to the chief as a traceback."""
    # The chief under fork and spawn, the fork server under forkserver (which exits when
    # the chief dies): either way, a new parent pid means we were orphaned.
    parent_pid = os.getppid()
    # The chief coordinates Ctrl-C and SIGTERM; a worker must not die of them mid-stream.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    started_wall, started_cpu = time.monotonic(), time.process_time()
    wid = spec.worker_id
    slot_produced = protocol.worker_slot(wid, protocol.PRODUCED)
    slot_forwarded = protocol.worker_slot(wid, protocol.FORWARDED)
    slot_heartbeat = protocol.worker_slot(wid, protocol.HEARTBEAT_NS)
    seq = forwarded = 0
    local: Any = deque() if spec.local_queue == "deque" else _MpLocalQueue()
    error = None
    transform = None
    try:
        source = make_source(spec.payload, worker_stream(spec.seed, wid))
        transform = make_transform(spec.transform)
        control[protocol.worker_slot(wid, protocol.READY)] = 1
        while control[protocol.START_NS] == 0:
            _check_parent(parent_pid)
            if control[protocol.STOP]:
                break
            time.sleep(0.001)

        # Times in the summary cover the run from the start barrier, as the chief's do.
        started_wall, started_cpu = time.monotonic(), time.process_time()
        interval_ns = int(spec.interval_s * 1e9)
        deadline_ns = None if spec.forward_deadline_s is None else int(spec.forward_deadline_s * 1e9)
        threshold, batch_size, limit = spec.local_threshold, spec.forward_batch, spec.items
        now_ns = time.monotonic_ns
        next_ns = control[protocol.START_NS]
        put, put_many = producer.put, producer.put_many
        while not control[protocol.STOP]:
            if limit is not None and seq >= limit:
                # Done producing: wait for the chief's stop, still heartbeating.
                control[slot_heartbeat] = now_ns()
                _check_parent(parent_pid)
                time.sleep(SLEEP_SLICE_S)
                continue
            if interval_ns:
                remaining = next_ns - now_ns()
                if remaining > 0:
                    time.sleep(min(remaining / 1e9, SLEEP_SLICE_S))
                    control[slot_heartbeat] = now_ns()
                    _check_parent(parent_pid)
                    continue
                next_ns += interval_ns
            elif seq % PARENT_CHECK_EVERY_ITEMS == 0:
                control[slot_heartbeat] = now_ns()
                _check_parent(parent_pid)
            local.append((seq, now_ns(), source()))
            seq += 1
            control[slot_produced] = seq
            if len(local) > threshold or (deadline_ns is not None and local and now_ns() - local[0][1] >= deadline_ns):
                n = min(batch_size, len(local))
                taken = [local.popleft() for _ in range(n)]
                stamp = now_ns()
                if transform is None:
                    batch = [(wid, s, c, stamp, v) for s, c, v in taken]
                else:
                    batch = [(wid, s, c, stamp, transform(v)) for s, c, v in taken]
                if n == 1:
                    put(batch[0])
                else:
                    put_many(batch)
                forwarded += n
                control[slot_forwarded] = forwarded
    except _ChiefGone:
        # Nobody is left to read what we would flush, and a flush into a full pipe
        # would block for ever: leave at once.
        os._exit(1)
    except BaseException:  # noqa: BLE001 - everything, SystemExit included, goes to the chief
        error = traceback.format_exc()
    _finish(spec, producer, local, transform, seq, forwarded, started_wall, started_cpu, error)


class _ChiefGone(Exception):
    """The chief process died (its pid is no longer our parent)."""


def _check_parent(parent_pid: int) -> None:
    if os.getppid() != parent_pid:
        raise _ChiefGone


def _finish(spec: WorkerSpec, producer: Any, local: Any, transform: Any, produced: int, forwarded: int,
            started_wall: float, started_cpu: float, error: str | None) -> None:
    """Send leftovers and the end-of-stream marker, then flush the producer end."""
    try:
        entries = local.drain() if isinstance(local, _MpLocalQueue) else list(local)
        if entries:
            wid = spec.worker_id
            if spec.on_stop == "forward":
                stamp = time.monotonic_ns()
                apply = transform or (lambda v: v)
                leftovers = [(wid, s, c, stamp, apply(v)) for s, c, v in entries]
            else:
                leftovers = [(wid, s, c, -1, v) for s, c, v in entries]
            producer.put(protocol.Leftovers(wid, leftovers))
        producer.put(protocol.EndOfStream(
            spec.worker_id, produced, forwarded, time.monotonic() - started_wall, time.process_time() - started_cpu,
            os.getpid(), error))
        if isinstance(local, _MpLocalQueue):
            local.close()
    finally:
        producer.close()
