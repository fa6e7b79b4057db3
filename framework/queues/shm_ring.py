"""``shm_ring``: one single-producer/single-consumer byte ring per worker in shared memory.

    worker i                       one SharedMemory segment                         chief
    --------        +-------------------------------------------------------+      -----
    put(obj)  ---> | doorbell | ring 0: write_pos | read_pos | data ...      | ---> get_many: scan the
    put_many       |  flag    | ring 1: write_pos | read_pos | data ...      |      rings round-robin,
                   +-------------------------------------------------------+      unpack, advance read_pos
       |  serialise: pickle protocol 5, numpy buffers out of band                    ^
       +--- os.write(bell) only when the chief said it is about to sleep -----------+ (a pipe)

Records. An object is pickled with protocol 5 and ``buffer_callback``, so the data of
every numpy array in it (an item's payload, a chunk's columns, a rollout fragment)
is *not* pickled: only dtype, shape and strides go into the small pickle, and each
raw buffer is copied once, straight into the ring. A record is contiguous
(``[length][kind | n_buffers][pickle length][buffer lengths...][pickle][buffers...]``, every
part 8-byte aligned); when it does not fit before the end of the data area the
producer writes a padding marker and wraps. That is why a record may use at most
half the ring: it then always fits once the ring has emptied.

Indices. ``write_pos`` and ``read_pos`` are byte counters that only grow, each written
by one side only, on separate cache lines, through an aligned int64 numpy view: an
8-byte aligned store is atomic on every platform CPython supports, whereas
``struct.pack_into`` first zero-fills and can let the other side read 0. The
producer publishes ``write_pos`` only after the record is complete, so a worker
killed mid-write leaves nothing half-visible, and a restarted worker simply carries
on from ``write_pos`` in the same ring.

Waiting. A consumer with nothing to read spins for ``SPIN_NS``, then raises the
doorbell flag, looks once more, and sleeps in ``select`` on a pipe for at most
``MAX_SLEEP_S``; a producer that publishes while the flag is up clears it and writes
one byte. The bounded sleep makes a lost wake-up (the two sides' stores may be seen
in either order) cost at most ``MAX_SLEEP_S`` of latency, never a hang. An idle run
therefore costs a few syscalls per item, not a core. A producer facing a full ring
backs off from ``PRODUCER_MIN_SLEEP_S`` to ``PRODUCER_MAX_SLEEP_S``.
"""

from __future__ import annotations

import os
import pickle
import queue
import select
import time
from collections import deque
from collections.abc import Sequence
from multiprocessing import shared_memory
from typing import Any

import numpy as np

from framework.config.rules import require
from framework.queues.base import ConsumerEnd, ProducerEnd, QueueDesign, QueueSettings, Sizes
from framework.errors import MessageTooLargeError
from framework.queues import rawloop
from framework.queues.rawloop import copies

CACHE_LINE_BYTES = 64
HEADER_BYTES = 2 * CACHE_LINE_BYTES
"""Per ring: write_pos on one cache line, read_pos on the next."""
DOORBELL_BYTES = CACHE_LINE_BYTES
DEFAULT_RING_BYTES = 8 * 1024 * 1024
"""Data area per worker when queue.buffer_bytes is not set and items are small."""
MAX_AUTO_RING_BYTES = 256 * 1024 * 1024
SPIN_NS = 20_000
"""How long an empty consumer keeps scanning before it asks to be woken."""
MAX_SLEEP_S = 0.002
"""Longest sleep of a waiting consumer: bounds the cost of a lost wake-up."""
PRODUCER_MIN_SLEEP_S = 0.00005
PRODUCER_MAX_SLEEP_S = 0.001
PAD = -1
"""Record length that means: skip to the start of the data area."""
KIND_ONE, KIND_MANY = 0, 1
_WORD = 8
_PICKLE = pickle.dumps
_LOADS = pickle.loads


def _align(n: int) -> int:
    return (n + 7) & ~7


def ring_bytes_for(settings: QueueSettings) -> int:
    """The data area per worker: queue.buffer_bytes, or room for 8 of the largest expected messages."""
    if settings.buffer_bytes:
        return _align(settings.buffer_bytes)
    message = settings.message_bytes_hint + 4096
    return _align(min(MAX_AUTO_RING_BYTES, max(DEFAULT_RING_BYTES, 8 * message)))


def _too_large(size: int, capacity: int) -> MessageTooLargeError:
    return MessageTooLargeError(
        f"queue.buffer_bytes={capacity}: a message of {size} bytes does not fit in the shm_ring ring of one "
        f"worker (a message may use at most half the ring, {capacity // 2} bytes, so that it always fits once "
        f"the ring is empty). A message is one item, or workers.forward_batch items sent together. Fix: set "
        f"queue.buffer_bytes to at least {2 * _align(size)} (or null to size the ring from the payload), or "
        f"lower workers.forward_batch.")


class _Ring:
    """Views onto one worker's ring inside the shared segment."""

    def __init__(self, buf: memoryview, offset: int, capacity: int) -> None:
        self.pos = np.ndarray((HEADER_BYTES // _WORD,), np.int64, buffer=buf, offset=offset)
        self.data = buf[offset + HEADER_BYTES: offset + HEADER_BYTES + capacity]
        self.words = np.ndarray((capacity // _WORD,), np.int64, buffer=buf, offset=offset + HEADER_BYTES)
        self.capacity = capacity

    # write_pos lives in word 0, read_pos in word 8 (the next cache line)
    W, R = 0, CACHE_LINE_BYTES // _WORD


class _ShmProducer(ProducerEnd):
    """Worker ``worker_id``'s end: attaches to the segment by name (picklable under spawn)."""

    def __init__(self, segment: str, worker_id: int, n_workers: int, capacity: int, bell: Any) -> None:
        self._segment, self._worker_id, self._n, self._capacity, self._bell = segment, worker_id, n_workers, \
            capacity, bell
        self._shm: shared_memory.SharedMemory | None = None

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_shm"] = None
        for key in ("_ring", "_doorbell", "_bell_fd"):
            state.pop(key, None)
        return state

    def _attach(self) -> None:
        self._shm = shared_memory.SharedMemory(self._segment)
        offset = DOORBELL_BYTES + self._worker_id * (HEADER_BYTES + self._capacity)
        self._ring = _Ring(self._shm.buf, offset, self._capacity)
        self._doorbell = np.ndarray((1,), np.int64, buffer=self._shm.buf, offset=0)
        self._bell_fd = self._bell.fileno()

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        self._write(item, KIND_ONE, block, timeout)

    def put_many(self, items: Sequence[Any], block: bool = True, timeout: float | None = None) -> None:
        if items:
            self._write(list(items), KIND_MANY, block, timeout)

    def _write(self, obj: Any, kind: int, block: bool, timeout: float | None) -> None:
        if self._shm is None:
            self._attach()
        buffers: list[pickle.PickleBuffer] = []
        header = _PICKLE(obj, 5, buffer_callback=buffers.append)
        raws = [b.raw() for b in buffers]
        size = _WORD * (3 + len(raws)) + _align(len(header)) + sum(_align(r.nbytes) for r in raws)
        ring = self._ring
        cap = ring.capacity
        if size > cap // 2:
            raise _too_large(size, cap)
        pos = ring.pos
        write = pos.item(_Ring.W)
        offset = write % cap
        tail = cap - offset
        need = size if size <= tail else tail + size
        if write + need - pos.item(_Ring.R) > cap:
            self._wait_for_room(write + need - cap, block, timeout)
        words, data = ring.words, ring.data
        if size > tail:
            words[offset // _WORD] = PAD
            write += tail
            offset = 0
        w = offset // _WORD
        words[w + 1] = kind | (len(raws) << 8)
        words[w + 2] = len(header)
        for i, r in enumerate(raws):
            words[w + 3 + i] = r.nbytes
        at = offset + _WORD * (3 + len(raws))
        data[at: at + len(header)] = header
        at += _align(len(header))
        for r in raws:
            data[at: at + r.nbytes] = r
            at += _align(r.nbytes)
        words[w] = size  # the length last: a reader never follows a record before it is whole
        pos[_Ring.W] = write + size  # publish
        if self._doorbell.item(0):
            self._doorbell[0] = 0
            try:
                os.write(self._bell_fd, b"\0")
            except BlockingIOError:
                pass  # the pipe already holds wake-ups the chief has not read

    def _wait_for_room(self, read_needed: int, block: bool, timeout: float | None) -> None:
        pos = self._ring.pos
        if not block:
            raise queue.Full
        deadline = None if timeout is None else time.monotonic() + timeout
        sleep = PRODUCER_MIN_SLEEP_S
        while pos.item(_Ring.R) < read_needed:
            if deadline is not None and time.monotonic() >= deadline:
                raise queue.Full
            time.sleep(sleep)
            sleep = min(sleep * 2, PRODUCER_MAX_SLEEP_S)

    def _detach(self) -> None:
        if self._shm is not None:
            self._ring = self._doorbell = None  # release the views before the mapping
            shm, self._shm = self._shm, None
            try:
                shm.close()
            except BufferError:
                # A traceback still holds a frame with a view: the mapping goes with the process.
                shm._mmap = None

    def close(self) -> None:
        self._detach()
        self._bell.close()

    def __del__(self) -> None:
        # Runs before the attributes are cleared, so the views go before the mapping
        # (the other order makes SharedMemory.__del__ fail on exported buffers).
        self._detach()


class _ShmConsumer(ConsumerEnd):
    """The chief's end: reads every worker's ring, oldest record first per ring."""

    def __init__(self, shm: shared_memory.SharedMemory, n_workers: int, capacity: int, bell_reader: Any) -> None:
        self._rings = [_Ring(shm.buf, DOORBELL_BYTES + w * (HEADER_BYTES + capacity), capacity)
                       for w in range(n_workers)]
        self._doorbell = np.ndarray((1,), np.int64, buffer=shm.buf, offset=0)
        self._bell = bell_reader
        self._bell_fd = bell_reader.fileno()
        os.set_blocking(self._bell_fd, False)
        self._buffer: deque[Any] = deque()
        self._next = 0
        self._cursors = [0] * n_workers
        """Per ring, the end of what this side has read; published as read_pos when released."""
        self.lend_views = False
        """True: arrays in returned items are views into the ring, valid until ``release()``
        (no copy on the chief's side). False (the default): every item owns its data."""

    def release(self) -> None:
        """Hand the room of everything returned so far back to the producers (lend_views mode).

        Items still buffered here (read, not yet returned) keep their records."""
        if self._buffer:
            return
        for ring, cursor in zip(self._rings, self._cursors):
            if ring.pos.item(_Ring.R) != cursor:
                ring.pos[_Ring.R] = cursor

    def _read_one(self, ring: _Ring, index: int) -> bool:
        """Move one record of ``ring`` into the buffer; False if the ring is empty."""
        pos = ring.pos
        read = self._cursors[index]
        if read == pos.item(_Ring.W):
            return False
        cap = ring.capacity
        words, data = ring.words, ring.data
        offset = read % cap
        size = words.item(offset // _WORD)
        if size == PAD:
            read += cap - offset
            offset = 0
            size = words.item(0)
        w = offset // _WORD
        meta = words.item(w + 1)
        kind, n_buffers = meta & 0xFF, meta >> 8
        header_len = words.item(w + 2)
        at = offset + _WORD * (3 + n_buffers)
        header = data[at: at + header_len]
        at += _align(header_len)
        buffers = []
        lend = self.lend_views
        for i in range(n_buffers):
            n = words.item(w + 3 + i)
            # Lent: a view, valid until release(). Otherwise a copy, as the room is handed back below.
            buffers.append(data[at: at + n] if lend else bytearray(data[at: at + n]))
            at += _align(n)
        obj = _LOADS(header, buffers=buffers)
        self._cursors[index] = read + size
        if not lend:
            pos[_Ring.R] = read + size
        if kind == KIND_MANY:
            self._buffer.extend(obj)
        else:
            self._buffer.append(obj)
        return True

    def _poll(self, max_items: int) -> None:
        """Read records round-robin until ``max_items`` are buffered or every ring is empty."""
        rings, n = self._rings, len(self._rings)
        idle = 0
        while len(self._buffer) < max_items and idle < n:
            index = self._next
            self._next = (index + 1) % n
            idle = 0 if self._read_one(rings[index], index) else idle + 1

    def _wait(self, deadline: float | None) -> None:
        spin_until = time.monotonic_ns() + SPIN_NS
        while time.monotonic_ns() < spin_until:
            self._poll(1)
            if self._buffer:
                return
        while True:
            self._doorbell[0] = 1
            self._poll(1)
            if self._buffer:
                self._doorbell[0] = 0
                return
            wait = MAX_SLEEP_S if deadline is None else min(MAX_SLEEP_S, deadline - time.monotonic())
            if wait <= 0:
                self._doorbell[0] = 0
                return
            select.select([self._bell_fd], [], [], wait)
            try:
                os.read(self._bell_fd, 4096)
            except BlockingIOError:
                pass
            self._poll(1)
            if self._buffer:
                self._doorbell[0] = 0
                return

    def get(self, block: bool = True, timeout: float | None = None) -> Any:
        return self.get_many(1, block, timeout)[0]

    def get_many(self, max_items: int, block: bool = True, timeout: float | None = None) -> list[Any]:
        if len(self._buffer) < max_items:
            self._poll(max_items)
        if not self._buffer and block:
            self._wait(None if timeout is None else time.monotonic() + timeout)
            self._poll(max_items)
        if not self._buffer:
            raise queue.Empty
        buffer = self._buffer
        if len(buffer) <= max_items:
            self._buffer = deque()
            return list(buffer)
        return [buffer.popleft() for _ in range(max_items)]

    def close(self) -> None:
        self._rings = []
        self._doorbell = None
        self._bell.close()


class ShmRingDesign(QueueDesign):
    """See the module docstring. Unbounded in items; each ring is bounded in bytes."""

    name = "shm_ring"

    @classmethod
    def check(cls, spec: Any, sizes: Sizes) -> None:
        q, w = spec.queue, spec.workers
        require(q.buffer_bytes is None or 2 * sizes.message_bytes <= q.buffer_bytes, "queue.buffer_bytes",
                q.buffer_bytes, f"a message of workers.forward_batch={w.forward_batch} items of {sizes.item_bytes:,} "
                f"bytes needs about {sizes.message_bytes:,} bytes and may use at most half of each worker's ring",
                f"set `queue.buffer_bytes` to at least {2 * sizes.message_bytes}, or null to size it from the "
                f"payload, or lower workers.forward_batch")

    def __init__(self, settings: QueueSettings, n_producers: int, mp_context: Any) -> None:
        super().__init__(settings, n_producers, mp_context)
        self.capacity = ring_bytes_for(settings)
        size = DOORBELL_BYTES + n_producers * (HEADER_BYTES + self.capacity)
        self._shm: shared_memory.SharedMemory | None = shared_memory.SharedMemory(
            name=f"chiefbench-ring-{os.getpid()}-{os.urandom(4).hex()}", create=True, size=size)
        # Fresh pages read as zero: every ring is empty and the doorbell is down.
        self._bell_reader, self._bell_writer = mp_context.Pipe(duplex=False)
        os.set_blocking(self._bell_writer.fileno(), False)
        self._consumer: _ShmConsumer | None = None

    def producer(self, worker_id: int) -> ProducerEnd:
        return _ShmProducer(self._shm.name, worker_id, self.n_producers, self.capacity, self._bell_writer)

    def consumer(self) -> ConsumerEnd:
        if self._consumer is None:
            self._consumer = _ShmConsumer(self._shm, self.n_producers, self.capacity, self._bell_reader)
        return self._consumer

    def close(self) -> None:
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None
        self._bell_writer.close()
        self._bell_reader.close()
        if self._shm is not None:
            shm, self._shm = self._shm, None
            try:
                shm.unlink()
            finally:
                try:
                    shm.close()
                except BufferError:
                    # A caller still holds an array from the ring's views: the mapping goes when it does.
                    shm._mmap = None

    def __del__(self) -> None:
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None


# --------------------------------------------------------------------------- raw reference

RAW_RING_BYTES = 64 * 1024 * 1024
"""The raw reference's ring per producer: room for batches of 1 MiB arrays."""


class _RawShmRing:
    """The ring alone, for ``rawloop.measure``: producers put (or put_many) copies of one item;
    the consumer takes everything there, through lent views released at once, as the chief does."""

    def __init__(self, n_producers: int, ctx: Any) -> None:
        self.design = ShmRingDesign(QueueSettings("shm_ring", 0, RAW_RING_BYTES), n_producers, ctx)
        self.consumer = self.design.consumer()
        self.consumer.lend_views = True

    def sender(self, index: int, item: Any, batch: int) -> Any:
        producer, items = self.design.producer(index), copies(item, batch)
        if batch == 1:
            return lambda: producer.put(items[0])
        return lambda: producer.put_many(items)

    def receive(self, timeout_s: float) -> int:
        try:
            got = len(self.consumer.get_many(1 << 16, timeout=timeout_s))
        except queue.Empty:
            return 0
        self.consumer.release()
        return got

    def close(self) -> None:
        self.design.close()


def _raw_throughput(item: Any, n_producers: int, duration_s: float, batch: int) -> float:
    """Items/s of the bare ring (no chiefbench worker or chief in the loop)."""
    return rawloop.measure(_RawShmRing, item, n_producers, duration_s, batch)


ShmRingDesign.raw_throughput = staticmethod(_raw_throughput)
