"""A worker's loop: generate, keep locally, forward past the threshold, stop cleanly.

    payload source --created_ns--> local queue --(len > local_threshold
        or oldest older than forward_deadline_s)--> [bound check] --> transform
        --forwarded_ns--> put / put_many

At ``workers.interval_s=0`` (with ``workers.local_queue=deque`` and a payload that has a block source:
randint, array, without ``payload.work_us``) the worker generates in blocks instead (``_loop_blocks``):
one numpy call draws ``block`` items (the same values, in the same order, as one at a time), they get one
``created_ns`` stamp *per block*, and enter the local queue as columns (``_Columns``). The forwarding rules
are then played item by item in arithmetic, not in Python per item: after each virtual append the
threshold / deadline rule is evaluated exactly as in ``_loop``, so the messages (how many items per put,
which seqs), the counters, on_full and the leftovers are those of the per-item loop; only the created
stamps are shared by a block, and the stop flag is read once per block. A forward of several items leaves
as a ``Chunk`` of column slices (no tuple per item); a forward of one item is the item tuple, as before.
The summary says which: ``created_stamps`` is ``per_block`` or ``per_item``. When every item leaves by
itself as it is made (``local_threshold=0``, ``forward_batch=1``, no deadline, no bound) and the items are
numbers, the block skips the local queue: its numbers are read as Python numbers in one call, and the loop
over them does only what one put per item needs (the counters, the in-put mark, the tuple, the put).

Written in place (``_loop_in_place``): when the design's producer end writes in place (shm_ring) and
the source fills preallocated columns (the rollout payload), and each item leaves as soon as it is made
(``workers.interval_s=0``, ``local_threshold=0``, ``forward_batch=1``, no transform, no bound, no
``payload.work_us``), the worker reserves the item's room in the ring, steps its env(s) straight into
it and commits: no local queue, no fragment object, no pickle. ``created_ns`` is the first step's
time, ``forwarded_ns`` the commit's. Time spent waiting for room in a full ring counts as blocked.

The loop reads the stop flag and writes its counters in the shared control block;
it never logs and never touches pandas. When the global queue is bounded
(``queue.maxsize`` / ``queue.max_bytes``) the worker checks the depth from the
counters before each forward and applies ``queue.on_full``. On stop it sends what its
local queue holds (``Leftovers``), then ``EndOfStream``, then flushes its producer end.
A failure goes to the chief twice: at once on the side channel (``WorkerError``), and
in the ``EndOfStream`` that still follows.
"""

from __future__ import annotations

import gc
import os
import signal
import time
import traceback
from collections import deque
from dataclasses import dataclass
from typing import Any

import numpy as np

from framework.engine import protocol
from framework.payloads.base import item_nbytes, make_block_source, make_source, scalar_payload
from framework.payloads.seeding import worker_stream
from framework.payloads.transforms import make_transform
from framework.errors import InjectedFault, QueueFullError


SLEEP_SLICE_S = 0.05
"""Longest uninterrupted sleep: bounds how late a worker sees the stop flag or a dead chief."""
HEARTBEAT_NS = 50_000_000
"""How often a busy worker writes its heartbeat and checks that the chief is alive."""
BLOCKED_POLL_S = 0.0005
"""Sleep between two looks at a full queue under queue.on_full=block."""
NEVER_NS = 1 << 62
BLOCKED_AFTER_NS = 20_000
"""A reservation that took longer than this waited for room (a full ring), and counts as blocked."""
CHIEF_WATCH_S = 0.1
"""How often a worker's watchdog thread checks that the chief is alive."""
BLOCK_ITEMS = 256
"""Items per generated block at workers.interval_s=0 (at least workers.forward_batch): amortises the
per-block work (stop flag, heartbeat, one draw call) while a stop overshoots by at most one block."""
BLOCK_BYTES = 1 << 20
"""...but no more payload bytes than this per block (array payloads), unless one forward needs more."""


def blocks_enabled(interval_s: float, local_queue: str, payload: Any) -> bool:
    """Whether a worker with these settings generates in blocks (see the module docstring)."""
    return interval_s == 0 and local_queue == "deque" and \
        make_block_source(payload, np.random.default_rng(0)) is not None


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
    n_workers: int = 1
    bound: int | None = None
    """The global queue's bound in items (None = unbounded)."""
    on_full: str = "block"
    incarnation: int = 0
    """0 for the first process of this worker, k for its k-th restart."""
    seq_start: int = 0
    forwarded_start: int = 0
    dropped_start: int = 0
    fault: tuple[str, float] | None = None
    """(kind, seconds after start) for an injected fault: kill, raise or hang."""
    chief_pid: int = 0
    start_method: str = "spawn"


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

    def appendleft(self, entry: tuple) -> None:
        raise TypeError("put-back needs workers.local_queue=deque")

    def __len__(self) -> int:
        return len(self._created)

    def __getitem__(self, index: int) -> tuple:
        return (None, self._created[index], None)

    def drain(self) -> list:
        return [self.popleft() for _ in range(len(self))]

    def close(self) -> None:
        self._q.close()
        self._q.join_thread()


class _ChiefGone(Exception):
    """The chief process died (our parent pid changed)."""


def _watch_chief(chief_alive: Any) -> None:
    """Leave at once when the chief dies, whatever the main thread is blocked in.

    A put into a full pipe, or the final flush of a multiprocessing.Queue (whose pipe
    the other orphaned workers still hold open), would otherwise wait for ever."""
    import threading

    def watch() -> None:
        while chief_alive():
            time.sleep(CHIEF_WATCH_S)
        os._exit(1)

    threading.Thread(target=watch, name="chiefbench-chief-watch", daemon=True).start()


def run_worker(spec: WorkerSpec, producer: Any, control: Any, errors: Any) -> None:
    """Process entry point. Never raises: a failure travels to the chief as a traceback."""
    # The chief coordinates Ctrl-C and SIGTERM; a worker must not die of them mid-stream.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    gc.enable()  # a forked worker inherits the chief's paused collector; its payloads may make cycles
    chief_alive = protocol.chief_alive_probe(spec.chief_pid, spec.start_method)
    _watch_chief(chief_alive)
    serve(spec, producer, control, errors, chief_alive)


def serve(spec: WorkerSpec, producer: Any, control: Any, errors: Any, chief_alive: Any) -> None:
    """A worker's life once its process is set up: ready, wait for the start, loop, finish.

    ``run_worker`` calls it in a worker process; the Ray backend calls it in a thread of a
    Ray actor, with an actor-local control array (``framework.engine.backends.ray_backend``)."""
    state = _State(spec, control)
    local: Any = deque() if spec.local_queue == "deque" else _MpLocalQueue()
    error = None
    transform = None
    try:
        rng = worker_stream(spec.seed, spec.worker_id, spec.incarnation)
        block_source = make_block_source(spec.payload, rng) \
            if spec.interval_s == 0 and spec.local_queue == "deque" else None
        if block_source is not None:
            local = _Columns()
        source = make_source(spec.payload, rng) if block_source is None else None
        transform = make_transform(spec.transform)
        control[state.slot_heartbeat] = time.monotonic_ns()
        control[protocol.worker_slot(spec.worker_id, protocol.READY)] = 1
        while control[protocol.START_NS] == 0 and not control[protocol.STOP]:
            if not chief_alive():
                raise _ChiefGone
            time.sleep(0.001)
        if block_source is not None:
            _loop_blocks(spec, state, local, block_source, transform, producer, control, chief_alive)
        elif writes_in_place(spec, source, transform, producer):
            _loop_in_place(spec, state, source, producer, control, chief_alive)
        else:
            _loop(spec, state, local, source, transform, producer, control, chief_alive)
    except _ChiefGone:
        # Nobody is left to read what we would flush, and a flush into a full pipe
        # would block for ever: leave at once.
        os._exit(1)
    except BaseException:  # noqa: BLE001 - everything, SystemExit included, goes to the chief
        error = traceback.format_exc()
        if not chief_alive():
            os._exit(1)
        errors.put(protocol.WorkerError(spec.worker_id, spec.incarnation, error))
    _finish(spec, state, producer, local, transform, error)


class _State:
    """The worker's counters, mirrored into its control-block slots."""

    def __init__(self, spec: WorkerSpec, control: Any) -> None:
        wid = spec.worker_id
        self.slot_produced = protocol.worker_slot(wid, protocol.PRODUCED)
        self.slot_forwarded = protocol.worker_slot(wid, protocol.FORWARDED)
        self.slot_dropped = protocol.worker_slot(wid, protocol.DROPPED)
        self.slot_heartbeat = protocol.worker_slot(wid, protocol.HEARTBEAT_NS)
        self.slot_blocked = protocol.worker_slot(wid, protocol.BLOCKED_NS)
        self.forwarded_slots = [protocol.worker_slot(w, protocol.FORWARDED) for w in range(spec.n_workers)]
        self.seq, self.forwarded, self.dropped_count = spec.seq_start, spec.forwarded_start, spec.dropped_start
        self.dropped: list[tuple[int, int]] = []
        self.blocked_ns = control[self.slot_blocked]
        self.started_wall, self.started_cpu = time.monotonic(), time.process_time()


def _inject(kind: str, chief_alive: Any) -> None:
    if kind == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    if kind == "raise":
        raise InjectedFault("injected by faults.raise_after_s")
    while True:  # hang: no items, no heartbeat; still leave if the chief dies
        time.sleep(SLEEP_SLICE_S)
        if not chief_alive():
            os._exit(1)


def _loop(spec: WorkerSpec, st: _State, local: Any, source: Any, transform: Any, producer: Any, control: Any,
          chief_alive: Any) -> None:
    wid = spec.worker_id
    t0 = control[protocol.START_NS]
    st.started_wall, st.started_cpu = time.monotonic(), time.process_time()
    interval_ns = int(spec.interval_s * 1e9)
    deadline_ns = None if spec.forward_deadline_s is None else int(spec.forward_deadline_s * 1e9)
    threshold, batch_size, limit, bound = spec.local_threshold, spec.forward_batch, spec.items, spec.bound
    fault_ns = t0 + int(spec.fault[1] * 1e9) if spec.fault else NEVER_NS
    now_ns = time.monotonic_ns
    next_ns = max(t0, now_ns() if spec.incarnation else t0)
    next_beat = 0
    put = producer.put
    scalar = scalar_payload(spec.payload)
    slot_hb, slot_produced, slot_forwarded = st.slot_heartbeat, st.slot_produced, st.slot_forwarded
    while not control[protocol.STOP]:
        now = now_ns()
        if now >= next_beat:
            control[slot_hb] = now
            next_beat = now + HEARTBEAT_NS
            if not chief_alive():
                raise _ChiefGone
        if now >= fault_ns:
            _inject(spec.fault[0], chief_alive)
        if limit is not None and st.seq >= limit:
            time.sleep(SLEEP_SLICE_S)  # done producing: wait for the chief's stop, still beating
            continue
        if interval_ns:
            if now < next_ns:
                time.sleep(min((next_ns - now) / 1e9, SLEEP_SLICE_S))
                continue
            # After a stall (a full queue, a slow put) start afresh instead of bursting to catch up.
            next_ns = next_ns + interval_ns if now - next_ns < interval_ns else now + interval_ns
        local.append((st.seq, now, source()))
        st.seq += 1
        control[slot_produced] = st.seq
        if len(local) > threshold or (deadline_ns is not None and local and now - local[0][1] >= deadline_ns):
            n = min(batch_size, len(local))
            taken = [local.popleft() for _ in range(n)]
            if bound is not None and not _admit(spec, st, control, n, lambda: [(s, c) for s, c, _ in taken],
                                                lambda: _put_back(local, taken)):
                continue
            stamp = now_ns()
            if n == 1:
                s, c, v = taken[0]
                message = (wid, s, c, stamp, v if transform is None else transform(v))
            else:
                message = _chunk(wid, taken, stamp, transform, scalar)
            # Counted before the put: a put larger than a pipe's buffer completes only while
            # the chief reads, and the chief reads only what the counters announce.
            st.forwarded += n
            control[slot_forwarded] = st.forwarded
            control[slot_hb] = protocol.IN_PUT
            put(message)
            control[slot_hb] = now_ns()


def _steps(spec: WorkerSpec, st: _State, control: Any, chief_alive: Any) -> Any:
    """The head of a per-block (or per-fragment) loop: yields the time of each step until the stop. Between
    steps: the heartbeat and a look at the chief every HEARTBEAT_NS, the injected fault when due, and, once
    run.items are made, a wait for the stop that still beats. (``_loop`` inlines the same lines: it runs them
    once per item.)"""
    fault_ns = control[protocol.START_NS] + int(spec.fault[1] * 1e9) if spec.fault else NEVER_NS
    limit = spec.items
    now_ns = time.monotonic_ns
    next_beat = 0
    while not control[protocol.STOP]:
        now = now_ns()
        if now >= next_beat:
            control[st.slot_heartbeat] = now
            next_beat = now + HEARTBEAT_NS
            if not chief_alive():
                raise _ChiefGone
        if now >= fault_ns:
            _inject(spec.fault[0], chief_alive)
        if limit is not None and st.seq >= limit:
            time.sleep(SLEEP_SLICE_S)  # done producing: wait for the chief's stop, still beating
            continue
        yield now


def in_place_rules(interval_s: float, local_threshold: int, forward_batch: int, forward_deadline_s: float | None,
                   transform_name: str, bound: int | None) -> bool:
    """The worker settings under which an item may be written in place: each item leaves as it is made."""
    return (interval_s == 0 and local_threshold == 0 and forward_batch == 1 and forward_deadline_s is None
            and transform_name == "none" and bound is None)


def writes_in_place(spec: WorkerSpec, source: Any, transform: Any, producer: Any) -> bool:
    """Whether this worker takes ``_loop_in_place`` (see the module docstring)."""
    return (getattr(producer, "in_place", False) and hasattr(source, "fill") and hasattr(source, "layout")
            and transform is None and spec.local_queue == "deque"
            and in_place_rules(spec.interval_s, spec.local_threshold, spec.forward_batch, spec.forward_deadline_s,
                               "none", spec.bound))


def _loop_in_place(spec: WorkerSpec, st: _State, source: Any, producer: Any, control: Any,
                   chief_alive: Any) -> None:
    """``_loop`` for an item made straight into the design's buffer: reserve, fill, commit."""
    wid = spec.worker_id
    st.started_wall, st.started_cpu = time.monotonic(), time.process_time()
    now_ns = time.monotonic_ns
    layout = producer.arrays_layout(source.layout)
    reserve, commit, fill = producer.reserve_arrays, producer.commit_arrays, source.fill
    slot_hb, slot_produced, slot_forwarded, slot_blocked = (st.slot_heartbeat, st.slot_produced,
                                                              st.slot_forwarded, st.slot_blocked)
    for now in _steps(spec, st, control, chief_alive):
        control[slot_hb] = protocol.IN_PUT  # waiting for room in a full ring is alive
        columns = reserve(layout)
        created = now_ns()
        if created - now > BLOCKED_AFTER_NS:
            st.blocked_ns += created - now
            control[slot_blocked] = st.blocked_ns
        control[slot_hb] = created
        fill(*columns)
        del columns  # the views go before the room is handed over
        seq = st.seq
        st.seq = seq + 1
        st.forwarded += 1
        control[slot_produced] = st.seq
        # Counted before the commit, as before a put: the chief reads what the counters announce.
        control[slot_forwarded] = st.forwarded
        commit(layout, wid, seq, created, now_ns())


def _put_back(local: Any, taken: list) -> None:
    for entry in reversed(taken):
        local.appendleft(entry)


class _Columns:
    """The local queue of a block-generating worker: blocks of columns, oldest first.

    A block is ``[seq0, created_ns (int64 array), values (array: k numbers or k stacked arrays), start]``;
    items before ``start`` have left. ``take`` slices (one block) or concatenates (a forward spanning
    blocks); nothing here runs once per item except ``__iter__``, which only the stop uses."""

    def __init__(self) -> None:
        self._blocks: deque[list] = deque()
        self._len = 0

    def __len__(self) -> int:
        return self._len

    def push(self, seq0: int, created: np.ndarray, values: np.ndarray) -> None:
        self._blocks.append([seq0, created, values, 0])
        self._len += len(values)

    def oldest_created(self) -> int:
        block = self._blocks[0]
        return block[1].item(block[3])

    def take(self, n: int) -> tuple[int, np.ndarray, np.ndarray]:
        """The oldest ``n`` items: (first seq, created_ns column, values)."""
        blocks = self._blocks
        first = blocks[0]
        seq0, start = first[0] + first[3], first[3]
        if len(first[2]) - start >= n:
            created, values = first[1][start: start + n], first[2][start: start + n]
            first[3] = start + n
            if first[3] == len(first[2]):
                blocks.popleft()
        else:
            created_parts, value_parts, need = [], [], n
            while need:
                block = blocks[0]
                start = block[3]
                k = min(need, len(block[2]) - start)
                created_parts.append(block[1][start: start + k])
                value_parts.append(block[2][start: start + k])
                block[3] = start + k
                if block[3] == len(block[2]):
                    blocks.popleft()
                need -= k
            created, values = np.concatenate(created_parts), np.concatenate(value_parts)
        self._len -= n
        return seq0, created, values

    def take_one(self) -> tuple[int, int, Any]:
        """The oldest item: (seq, created_ns, value), without slicing its block (one item per put)."""
        block = self._blocks[0]
        start = block[3]
        values = block[2]
        value = values.item(start) if values.ndim == 1 else values[start]
        block[3] = start + 1
        if start + 1 == len(values):
            self._blocks.popleft()
        self._len -= 1
        return block[0] + start, block[1].item(start), value

    def put_back(self, seq0: int, created: np.ndarray, values: np.ndarray) -> None:
        self._blocks.appendleft([seq0, created, values, 0])
        self._len += len(values)

    def drop_newest(self, n: int) -> None:
        """Forget the newest ``n`` items (generated, never counted as produced)."""
        while n:
            block = self._blocks[-1]
            k = min(n, len(block[2]) - block[3])
            block[1], block[2] = block[1][:len(block[2]) - k], block[2][:len(block[2]) - k]
            if block[3] == len(block[2]):
                self._blocks.pop()
            self._len -= k
            n -= k

    def __iter__(self) -> Any:
        """(seq, created_ns, value) per item, as the per-item local queue holds them (for the stop)."""
        for seq0, created, values, start in self._blocks:
            # Arrays copied: a block source's broadcast view is read-only, and a transform adds in place.
            rows = values[start:].tolist() if values.ndim == 1 else list(np.array(values[start:]))
            for i in range(start, len(values)):
                yield seq0 + i, created.item(i), rows[i - start]


def _loop_blocks(spec: WorkerSpec, st: _State, local: _Columns, block_source: Any, transform: Any, producer: Any,
                 control: Any, chief_alive: Any) -> None:
    """``_loop`` at workers.interval_s=0, a block at a time (see the module docstring)."""
    wid = spec.worker_id
    st.started_wall, st.started_cpu = time.monotonic(), time.process_time()
    deadline_ns = None if spec.forward_deadline_s is None else int(spec.forward_deadline_s * 1e9)
    threshold, batch_size, limit, bound = spec.local_threshold, spec.forward_batch, spec.items, spec.bound
    block_items = max(batch_size, min(BLOCK_ITEMS, max(1, BLOCK_BYTES // max(1, item_nbytes(spec.payload)))))
    now_ns = time.monotonic_ns
    put = producer.put
    scalar = scalar_payload(spec.payload)
    slot_hb, slot_produced, slot_forwarded = st.slot_heartbeat, st.slot_produced, st.slot_forwarded
    pending = 0
    """Items of the current block not yet appended in the per-item sense (not counted as produced)."""
    straight_out = threshold == 0 and batch_size == 1 and deadline_ns is None
    """workers.local_threshold=0, workers.forward_batch=1: each item is forwarded by itself as it is made."""
    materialise = transform is not None or not getattr(producer, "in_place", False)
    """A design that writes in place (shm_ring) copies a block source's broadcast view straight into its
    buffer; every other design, and a transform (in place on the arrays), gets contiguous arrays."""
    try:
        for now in _steps(spec, st, control, chief_alive):
            k = block_items if limit is None else min(block_items, limit - st.seq)
            values = block_source(k)
            # One number per item and no admission to ask: a forward of one item takes no slice.
            one_number = bound is None and values.ndim == 1
            if one_number and straight_out and not len(local):
                # Every item leaves as it is made (the original shape at full speed): no local queue at all,
                # the block transformed in one call (as a chunk's forward is) and read as Python numbers in
                # one call, one put per item.
                if transform is not None:
                    values = transform(np.array(values, np.float64))
                for v in values.tolist():
                    seq = st.seq
                    st.seq = seq + 1
                    control[slot_produced] = seq + 1
                    st.forwarded += 1
                    control[slot_forwarded] = st.forwarded
                    control[slot_hb] = protocol.IN_PUT
                    put((wid, seq, now, now_ns(), v))
                    control[slot_hb] = now_ns()
                continue
            # One stamp per block: every item of it was created by this one call.
            local.push(st.seq, np.full(k, now, np.int64), values)
            pending = k
            length = len(local) - k
            """The local queue's length in the per-item loop: what it holds of earlier blocks and the
            items of this block appended so far."""
            while pending:
                # The per-item rule after each append: forward once len > threshold, or once the oldest
                # item is deadline_s old. Neither changes between two forwards within a block (one stamp),
                # so the number of appends until the next forward is arithmetic.
                if deadline_ns is not None and now - (local.oldest_created() if length else now) >= deadline_ns:
                    appends = 1
                else:
                    appends = max(1, threshold + 1 - length)
                if appends > pending:
                    st.seq += pending
                    length += pending
                    pending = 0
                    break
                st.seq += appends
                length += appends
                pending -= appends
                control[slot_produced] = st.seq
                n = min(batch_size, length)
                if n == 1 and one_number:
                    # One number per put (the original shape): no slices, no arrays, one tuple.
                    seq0, created0, v = local.take_one()
                    length -= 1
                    message = (wid, seq0, created0, now_ns(), v if transform is None else transform(v))
                    st.forwarded += 1
                    control[slot_forwarded] = st.forwarded
                    control[slot_hb] = protocol.IN_PUT
                    put(message)
                    control[slot_hb] = now_ns()
                    continue
                seq0, created, taken = local.take(n)
                if bound is not None and not _admit(
                        spec, st, control, n, lambda: list(zip(range(seq0, seq0 + n), created.tolist())),
                        lambda: local.put_back(seq0, created, taken)):
                    if control[protocol.STOP]:
                        break  # put back under on_full=block: the loop ends, the rest of the block unmade
                    length -= n  # drop_newest: gone
                    continue
                length -= n
                stamp = now_ns()
                if materialise and not taken.flags.c_contiguous:
                    taken = np.ascontiguousarray(taken)  # a broadcast view of arrays, written out once here
                if n == 1:
                    v = taken.item(0) if taken.ndim == 1 else taken[0]
                    message = (wid, seq0, created.item(0), stamp, v if transform is None else transform(v))
                else:
                    if scalar:
                        taken = np.asarray(taken, np.float64)
                    if transform is not None:
                        taken = transform(taken)  # one vectorised call (arrays: in place, this forward's rows)
                    message = protocol.Chunk(wid, seq0, created, stamp, taken)
                st.forwarded += n
                control[slot_forwarded] = st.forwarded
                control[slot_hb] = protocol.IN_PUT
                put(message)
                control[slot_hb] = now_ns()
            control[slot_produced] = st.seq
    finally:
        if pending:
            local.drop_newest(pending)  # drawn but never appended: not produced, not leftovers


def _chunk(wid: int, taken: list, stamp: int, transform: Any, scalar: bool) -> protocol.Chunk:
    """Several forwarded items as one columnar message (see protocol.Chunk)."""
    n = len(taken)
    if taken[-1][0] - taken[0][0] != n - 1:
        # A chunk names its items by their first seq; the FIFO local queue guarantees this.
        raise RuntimeError(f"worker {wid}: a forward of {n} items is not consecutive "
                           f"(seqs {taken[0][0]}..{taken[-1][0]}): a chunk cannot carry it")
    created = np.fromiter([c for _, c, _ in taken], np.int64, n)
    if scalar:
        values = np.fromiter([v for _, _, v in taken], np.float64, n)
        if transform is not None:
            values = transform(values)  # one vectorised call for the whole batch
    else:
        values = [v for _, _, v in taken] if transform is None else [transform(v) for _, _, v in taken]
    return protocol.Chunk(wid, taken[0][0], created, stamp, values)


def _admit(spec: WorkerSpec, st: _State, control: Any, n: int, dropped: Any, put_back: Any) -> bool:
    """Apply queue.on_full when the bound would be exceeded; True if the batch may be put.

    ``dropped()`` lists the batch's (seq, created_ns); ``put_back()`` returns it to the front of the
    local queue (it was not forwarded)."""
    def depth() -> int:
        return sum(control[s] for s in st.forwarded_slots) - control[protocol.TAKEN]

    if depth() + n <= spec.bound or spec.on_full == "drop_oldest":
        return True  # drop_oldest: the chief evicts the oldest items once the bound is passed
    if spec.on_full == "drop_newest":
        st.dropped.extend(dropped())
        st.dropped_count += n
        control[st.slot_dropped] = st.dropped_count
        return False
    if spec.on_full == "fail":
        put_back()
        raise QueueFullError(
            f"worker {spec.worker_id}: the global queue reached its bound of {spec.bound} items and queue.on_full=fail. "
            f"Fix: raise queue.maxsize / queue.max_bytes, make the chief faster (chief.take_batch=0, "
            f"chief.interval_s), or choose queue.on_full=block")
    start = time.monotonic_ns()
    while depth() + n > spec.bound:
        now = time.monotonic_ns()
        control[st.slot_heartbeat] = now  # blocked on a full queue is alive
        if control[protocol.STOP]:
            put_back()  # not forwarded: they are leftovers of the local queue
            st.blocked_ns += now - start
            control[st.slot_blocked] = st.blocked_ns
            return False
        time.sleep(BLOCKED_POLL_S)
    st.blocked_ns += time.monotonic_ns() - start
    control[st.slot_blocked] = st.blocked_ns
    return True


def _finish(spec: WorkerSpec, st: _State, producer: Any, local: Any, transform: Any, error: str | None) -> None:
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
            # In pieces no larger than a forward: a design bounded in bytes is sized for those.
            step = max(1, spec.forward_batch)
            for i in range(0, len(leftovers), step):
                producer.put(protocol.Leftovers(wid, leftovers[i:i + step]))
        producer.put(protocol.EndOfStream(
            spec.worker_id, spec.incarnation, st.seq, st.forwarded, st.dropped, st.blocked_ns / 1e9,
            time.monotonic() - st.started_wall, time.process_time() - st.started_cpu, os.getpid(), error))
        if isinstance(local, _MpLocalQueue):
            local.close()
    finally:
        producer.close()
