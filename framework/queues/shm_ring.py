"""``shm_ring``: one single-producer/single-consumer byte ring per worker in shared memory.

    worker i                       one SharedMemory segment                         chief
    --------        +-------------------------------------------------------+      -----
    put(obj)  ---> | doorbell | ring 0: write_pos | read_pos | data ...      | ---> get_many: scan the
    put_many       |  flag    | ring 1: write_pos | read_pos | data ...      |      rings round-robin,
                   +-------------------------------------------------------+      unpack, advance read_pos
       |  serialise: pickle protocol 5, numpy buffers out of band                    ^
       +--- os.write(bell) only when the chief said it is about to sleep -----------+ (a pipe)

Records. Every record is contiguous and 8-byte aligned, and starts with its length in bytes;
when it does not fit before the end of the data area the producer writes a padding marker
(``PAD``) and wraps. That is why a record may use at most half the ring: it then always
fits once the ring has emptied. Two families follow the length word:

Pickled records (``KIND_ONE``: one object, ``KIND_MANY``: a list from ``put_many``): control
messages, tuples of other shapes, non-numeric payloads, rollout fragments. Pickle protocol 5
with ``buffer_callback``, so the data of every numpy array is *not* pickled: only dtype,
shape and strides go into the small pickle, and each raw buffer is copied once into the ring::

    word 0       1                    2             3 .. 3+k-1       (aligned)  (aligned each)
    [length][kind | k << 8][pickle length][k buffer lengths][pickle...][buffer 0...]...[buffer k-1...]

Fixed-header records (``KIND_ITEM``: an item tuple ``(worker, seq, created_ns, forwarded_ns,
value)`` whose value is an int, a float or a numeric array; ``KIND_COLUMNS``: a
``protocol.Chunk`` whose values are a numeric column, an (n, *shape) array, or a list of
same-shape, same-dtype arrays, stacked straight into the ring). No pickle on either side: the
producer reserves the room, writes the header with one ``struct.pack_into`` and the columns
with one numpy copy each, then commits; the consumer reads the header with one
``struct.unpack_from`` and returns numpy views of the columns (lent until ``release()``, or
copies)::

    word 0       1                                  2       3     4   5             6 .. 9
    [length][kind | dtype code << 8 | ndim << 16][worker][seq0][n][forwarded_ns][item shape, 0-padded]
    word 10 ..          10 + n ..
    [created_ns: n x int64][values: n x prod(shape) x itemsize bytes, padded to 8]

An item's value of ndim 0 is one number: ``dtype code`` says whether it comes back as a Python
int (int64) or float (float64), so a ``KIND_ITEM`` record returns exactly the tuple that was put.

Runs. A one-number ``KIND_ITEM`` record always has the same size; when the chief accepts chunks
(``accept_chunks``), consecutive such records of one worker with consecutive seqs, up to the end of
the data area, are read with one numpy view and returned as one ``Chunk`` whose ``forwarded_ns`` is a
column (a stamp per item): one item per put costs the chief no Python object per item.

Written in place (``KIND_ARRAYS``: one item whose value is a tuple of numeric arrays, a rollout
fragment's columns). The worker asks ``reserve_arrays(layout)`` for views of the columns' room in
the ring, writes into them (a vector env's outputs, step by step: the only copy), and
``commit_arrays`` writes the header with the item's stamps and publishes it. The consumer returns
``(worker, seq, created_ns, forwarded_ns, (array, ...))``, the arrays lent as views::

    word 0       1                  2       3     4            5              6 + 5i              (aligned each)
    [length][kind | k << 8][worker][seq][created_ns][forwarded_ns][k x (code | ndim << 8, 4 dims)][array 0]...

Indices. ``write_pos`` and ``read_pos`` are byte counters that only grow, each written
by one side only, on separate cache lines, through an aligned int64 numpy view: an
8-byte aligned store is atomic on every platform CPython supports, whereas
``struct.pack_into`` first zero-fills and can let the other side read 0. The
producer publishes ``write_pos`` only after the record is complete, so a worker
killed mid-write leaves nothing half-visible, and a restarted worker simply carries
on from ``write_pos`` in the same ring.

Waiting. A consumer with nothing to read spins, then raises the doorbell flag, looks
once more, and sleeps in ``select`` on a pipe for at most ``MAX_SLEEP_S``; a producer
that publishes while the flag is up clears it and writes one byte. The bounded sleep
makes a lost wake-up (the two sides' stores may be seen in either order) cost at most
``MAX_SLEEP_S`` of latency, never a hang. An idle run therefore costs a few syscalls per
item, not a core. The spin adapts as an adaptive mutex's does: it doubles (up to
``SPIN_NS``) when the record came within ``SPIN_NS`` of the wait's start and halves (down
to ``SPIN_MIN_NS``) when it came later, so a trickle of items (1,000/s) pays no 20 us
spin before every sleep while a fast stream still never sleeps between records. A
producer facing a full ring backs off from ``PRODUCER_MIN_SLEEP_S`` to
``PRODUCER_MAX_SLEEP_S``.

Why a pipe and not ``os.eventfd``: at 1,000 wake-ups/s (an idle chief behind two workers at
``workers.interval_s=0.002``) both cost the consumer about 1 % of a core with wake latencies
(p50 9-18 us, p99 30-84 us) inside the noise of each other, while the chief's whole process used
9-20 % over such a run; a pipe end is a picklable ``Connection`` under spawn and forkserver, a
bare eventfd is not. Measured on 2 shared cores; revisit on a quiet machine.
"""

from __future__ import annotations

import itertools
import math
import os
import pickle
import queue
import select
import struct
import time
from collections import deque
from collections.abc import Sequence
from multiprocessing import shared_memory
from typing import Any

import numpy as np

from framework.config.rules import require
from framework.engine.protocol import Chunk
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
"""Longest an empty consumer keeps scanning before it asks to be woken."""
SPIN_MIN_NS = 1_000
"""Shortest scan: about one look at every ring."""
MAX_SLEEP_S = 0.002
"""Longest sleep of a waiting consumer: bounds the cost of a lost wake-up."""
PRODUCER_MIN_SLEEP_S = 0.00005
PRODUCER_MAX_SLEEP_S = 0.001
PAD = -1
"""Record length that means: skip to the start of the data area."""
KIND_ONE, KIND_MANY, KIND_ITEM, KIND_COLUMNS, KIND_ARRAYS = 0, 1, 2, 3, 4
"""Record kinds: pickled one object, pickled list (put_many), fixed-header item tuple, fixed-header chunk,
an item of several arrays written in place."""
_WORD = 8
MAX_ITEM_DIMS = 4
"""Item shape dimensions a fixed header has room for; arrays of more dimensions are pickled."""
FIXED_HEADER_WORDS = 6 + MAX_ITEM_DIMS
"""length, meta, worker, seq0, n, forwarded_ns, item shape: 80 bytes before the created_ns column."""
FIXED_HEADER_BYTES = FIXED_HEADER_WORDS * _WORD
DTYPES = tuple(np.dtype(name) for name in ("float64", "int64", "float32", "float16", "int32", "int16", "int8",
                                            "uint64", "uint32", "uint16", "uint8", "bool"))
"""Dtype codes of fixed-header records (native byte order): the index in this tuple."""
_CODE = {dtype: code for code, dtype in enumerate(DTYPES)}
_F64, _I64 = 0, 1
_INT64_MIN, _INT64_MAX = -(1 << 63), (1 << 63) - 1
_HEADER = struct.Struct(f"={FIXED_HEADER_WORDS}q")
_ITEM_SCALAR = {_F64: struct.Struct(f"={FIXED_HEADER_WORDS + 1}qd"), _I64: struct.Struct(f"={FIXED_HEADER_WORDS + 2}q")}
"""A whole one-number item record, header, created_ns and value, in one pack / unpack."""
_NO_SHAPE = (0,) * MAX_ITEM_DIMS
_SCALAR_ITEM_BYTES = _ITEM_SCALAR[_F64].size
assert _SCALAR_ITEM_BYTES == _ITEM_SCALAR[_I64].size
_SCALAR_ITEM_WORDS = _SCALAR_ITEM_BYTES // 8
_RUN_LOOK = struct.Struct(f"={_SCALAR_ITEM_WORDS - 2 + 4}q")
"""From word 2 of a one-number record: worker and seq, the rest of it, and the next record's first 4 words."""
RUN_FIRST_SCAN = 64
"""Records a run's first numpy look covers; a longer run is then read up to MAX_RUN_ITEMS."""
MAX_RUN_ITEMS = 4096
"""Most items of one run returned as one chunk (bounds a scan: a take asks for at most 1,024 items)."""
_SCALAR_ITEM_META = frozenset((KIND_ITEM | _F64 << 8, KIND_ITEM | _I64 << 8))
"""The meta word of a one-number item record (ndim 0): runs of them may come back as one chunk."""
ARRAYS_HEADER_WORDS = 6
"""length, meta, worker, seq, created_ns, forwarded_ns: then one descriptor per array."""
ARRAY_DESCRIPTOR_WORDS = 1 + MAX_ITEM_DIMS
_ARRAYS_HEADER = struct.Struct(f"={ARRAYS_HEADER_WORDS}q")
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


class ArraysLayout:
    """Where a ``KIND_ARRAYS`` record of these (shape, dtype) columns puts each one, computed once per run."""

    def __init__(self, columns: Sequence[tuple[tuple[int, ...], Any]]) -> None:
        self.columns = [(tuple(int(d) for d in shape), np.dtype(dtype)) for shape, dtype in columns]
        descriptors, offsets = [], []
        at = _WORD * (ARRAYS_HEADER_WORDS + ARRAY_DESCRIPTOR_WORDS * len(self.columns))
        for shape, dtype in self.columns:
            code = _CODE.get(dtype)
            if code is None or len(shape) > MAX_ITEM_DIMS:
                raise ValueError(f"shm_ring writes in place numeric arrays of at most {MAX_ITEM_DIMS} dimensions, "
                                 f"not {dtype} {shape}")
            descriptors.extend((code | len(shape) << 8, *shape, *_NO_SHAPE[len(shape):]))
            offsets.append(at)
            at += _align(math.prod(shape) * dtype.itemsize)
        self.size = at
        """Bytes of the whole record."""
        self.offsets = offsets
        self.descriptors = struct.Struct(f"={len(descriptors)}q"), descriptors


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
        if self._shm is None:
            self._attach()
        kind = type(item)
        if kind is tuple:
            if self._put_item(item, block, timeout):
                return
        elif kind is Chunk:
            if self._put_columns(item, block, timeout):
                return
        self._write(item, KIND_ONE, block, timeout)

    def put_many(self, items: Sequence[Any], block: bool = True, timeout: float | None = None) -> None:
        if items:
            if self._shm is None:
                self._attach()
            self._write(list(items), KIND_MANY, block, timeout)

    def _reserve(self, size: int, block: bool, timeout: float | None) -> int:
        """Room for a record of ``size`` bytes: its offset in the data area. Wraps with a PAD marker
        when the record does not fit before the end; nothing is visible until ``_commit``."""
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
        if size > tail:
            ring.words[offset // _WORD] = PAD
            write += tail
            offset = 0
        self._end = write + size
        return offset

    def _commit(self) -> None:
        """Publish the reserved record (its bytes are all written) and ring the doorbell if asked."""
        self._ring.pos[_Ring.W] = self._end
        if self._doorbell.item(0):
            self._doorbell[0] = 0
            try:
                os.write(self._bell_fd, b"\0")
            except BlockingIOError:
                pass  # the pipe already holds wake-ups the chief has not read

    def _put_item(self, item: tuple, block: bool, timeout: float | None) -> bool:
        """An item tuple as a fixed-header ``KIND_ITEM`` record; False if it has another shape (pickle it)."""
        if len(item) != 5:
            return False
        w, s, c, f, v = item
        # Exact ints only: the consumer rebuilds them as ints, so the tuple comes back exactly as put.
        if not (type(w) is int and type(s) is int and type(c) is int and type(f) is int):
            return False
        value_type = type(v)
        if value_type is float or (value_type is int and _INT64_MIN <= v <= _INT64_MAX):
            code = _F64 if value_type is float else _I64
            record = _ITEM_SCALAR[code]
            offset = self._reserve(record.size, block, timeout)
            record.pack_into(self._ring.data, offset, record.size, KIND_ITEM | code << 8, w, s, 1, f, *_NO_SHAPE, c, v)
            self._commit()
            return True
        if value_type is not np.ndarray:
            return False
        code, ndim = _CODE.get(v.dtype), v.ndim
        if code is None or not 1 <= ndim <= MAX_ITEM_DIMS:
            return False
        size = FIXED_HEADER_BYTES + _WORD + _align(v.nbytes)
        offset = self._reserve(size, block, timeout)
        data = self._ring.data
        _HEADER.pack_into(data, offset, size, KIND_ITEM | code << 8 | ndim << 16, w, s, 1, f,
                          *v.shape, *_NO_SHAPE[ndim:])
        self._ring.words[offset // _WORD + FIXED_HEADER_WORDS] = c
        np.ndarray(v.shape, v.dtype, buffer=data, offset=offset + FIXED_HEADER_BYTES + _WORD)[...] = v
        self._commit()
        return True

    def _put_columns(self, chunk: Chunk, block: bool, timeout: float | None) -> bool:
        """A chunk of numeric columns as a fixed-header ``KIND_COLUMNS`` record; False if it is not one."""
        created, values = chunk.created_ns, chunk.values
        if type(created) is not np.ndarray or created.dtype != np.int64 or created.ndim != 1:
            return False
        if not (type(chunk.worker) is int and type(chunk.seq0) is int and type(chunk.forwarded_ns) is int):
            return False
        n = len(created)
        stack = type(values) is list
        if stack:
            # Same-shape arrays are stacked straight into the ring; np.stack(casting="no") refuses a
            # different dtype or shape below, and the record is then never committed.
            if not values or type(values[0]) is not np.ndarray or len(values) != n \
                    or not all(type(v) is np.ndarray for v in values):
                return False
            dtype, shape = values[0].dtype, values[0].shape
            if not 1 <= len(shape) <= MAX_ITEM_DIMS:
                return False
        elif type(values) is np.ndarray and values.ndim >= 1 and len(values) == n:
            dtype, shape = values.dtype, values.shape[1:]
            if len(shape) > MAX_ITEM_DIMS:
                return False
        else:
            return False
        code = _CODE.get(dtype)
        if code is None:
            return False
        nbytes = n * dtype.itemsize * math.prod(shape)
        size = FIXED_HEADER_BYTES + _WORD * n + _align(nbytes)
        offset = self._reserve(size, block, timeout)
        ring = self._ring
        _HEADER.pack_into(ring.data, offset, size, KIND_COLUMNS | code << 8 | len(shape) << 16, chunk.worker,
                          chunk.seq0, n, chunk.forwarded_ns, *shape, *_NO_SHAPE[len(shape):])
        w = offset // _WORD + FIXED_HEADER_WORDS
        ring.words[w: w + n] = created
        out = np.ndarray((n, *shape), dtype, buffer=ring.data, offset=offset + FIXED_HEADER_BYTES + _WORD * n)
        if stack:
            try:
                np.stack(values, out=out, casting="no")
            except (ValueError, TypeError):
                return False  # mixed shapes or dtypes: pickled instead
        else:
            out[...] = values
        self._commit()
        return True

    in_place = True

    @staticmethod
    def arrays_layout(columns: Sequence[tuple[tuple[int, ...], Any]]) -> ArraysLayout:
        """The record layout of items whose value is arrays of these (shape, dtype): made once per run."""
        return ArraysLayout(columns)

    def reserve_arrays(self, layout: ArraysLayout, block: bool = True,
                       timeout: float | None = None) -> list[np.ndarray]:
        """Room for one ``KIND_ARRAYS`` item: views of its columns in the ring, to be written, then
        published by ``commit_arrays`` (until then nothing of it is visible to the chief)."""
        if self._shm is None:
            self._attach()
        offset = self._reserve(layout.size, block, timeout)
        data = self._ring.data
        self._arrays_at = offset
        return [np.ndarray(shape, dtype, buffer=data, offset=offset + at)
                for (shape, dtype), at in zip(layout.columns, layout.offsets)]

    def commit_arrays(self, layout: ArraysLayout, worker: int, seq: int, created_ns: int, forwarded_ns: int) -> None:
        """Publish the item reserved by ``reserve_arrays``, stamped."""
        data, offset = self._ring.data, self._arrays_at
        _ARRAYS_HEADER.pack_into(data, offset, layout.size, KIND_ARRAYS | len(layout.columns) << 8, worker, seq,
                                 created_ns, forwarded_ns)
        descriptors, values = layout.descriptors
        descriptors.pack_into(data, offset + ARRAYS_HEADER_WORDS * _WORD, *values)
        self._commit()

    def _write(self, obj: Any, kind: int, block: bool, timeout: float | None) -> None:
        """A pickled record (see the module docstring)."""
        buffers: list[pickle.PickleBuffer] = []
        header = _PICKLE(obj, 5, buffer_callback=buffers.append)
        raws = [b.raw() for b in buffers]
        size = _WORD * (3 + len(raws)) + _align(len(header)) + sum(_align(r.nbytes) for r in raws)
        offset = self._reserve(size, block, timeout)
        ring = self._ring
        words, data = ring.words, ring.data
        w = offset // _WORD
        words[w] = size
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
        self._commit()

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
        self._spin_ns = SPIN_NS
        """How long the next wait scans before it sleeps (adapts between SPIN_MIN_NS and SPIN_NS)."""
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
        kind = meta & 0xFF
        lend = self.lend_views
        if meta in _SCALAR_ITEM_META and self.accept_chunks:
            run = self._scalar_run(ring, read, offset, meta, lend)
            if run is not None:
                self._cursors[index] = read + len(run) * _SCALAR_ITEM_BYTES
                if not lend:
                    pos[_Ring.R] = self._cursors[index]
                self._buffer.append(run)
                return True
        if kind >= KIND_ITEM:
            obj = self._read_fixed(ring, offset, meta, kind, lend)
        else:
            n_buffers = meta >> 8
            header_len = words.item(w + 2)
            at = offset + _WORD * (3 + n_buffers)
            header = data[at: at + header_len]
            at += _align(header_len)
            buffers = []
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

    @staticmethod
    def _read_fixed(ring: _Ring, offset: int, meta: int, kind: int, lend: bool) -> Any:
        """A fixed-header record as the item tuple or the Chunk that was put (views if ``lend``)."""
        data = ring.data
        if kind == KIND_ARRAYS:
            return _ShmConsumer._read_arrays(ring, offset, meta >> 8, lend)
        code, ndim = (meta >> 8) & 0xFF, meta >> 16
        if kind == KIND_ITEM and ndim == 0:
            fields = _ITEM_SCALAR[code].unpack_from(data, offset)
            return fields[2], fields[3], fields[-2], fields[5], fields[-1]
        _, _, worker, seq0, n, forwarded, *dims = _HEADER.unpack_from(data, offset)
        shape, dtype = tuple(dims[:ndim]), DTYPES[code]
        at = offset + FIXED_HEADER_BYTES
        if kind == KIND_ITEM:
            value = np.ndarray(shape, dtype, buffer=data, offset=at + _WORD)
            return worker, seq0, ring.words.item(at // _WORD), forwarded, value if lend else value.copy()
        created = np.ndarray((n,), np.int64, buffer=data, offset=at)
        values = np.ndarray((n, *shape), dtype, buffer=data, offset=at + _WORD * n)
        if not lend:
            created, values = created.copy(), values.copy()
        return Chunk(worker, seq0, created, forwarded, values)

    @staticmethod
    def _scalar_run(ring: _Ring, read: int, offset: int, meta: int, lend: bool) -> Chunk | None:
        """Consecutive one-number item records of one worker, with the same meta and consecutive seqs, from
        ``offset`` up to what is written or the end of the data area, as one ``Chunk`` (a forwarded stamp
        per item); None when fewer than two. Fixed-size records: the run is read with one numpy view."""
        avail = min(ring.pos.item(_Ring.W) - read, ring.capacity - offset) // _SCALAR_ITEM_BYTES
        if avail < 2:
            return None
        look = _RUN_LOOK.unpack_from(ring.data, offset + 2 * _WORD)
        worker, seq = look[0], look[1]
        size, meta2, worker2, seq2 = look[-4:]
        if size != _SCALAR_ITEM_BYTES or meta2 != meta or worker2 != worker or seq2 != seq + 1:
            return None  # one look at the next record first: a run of one costs no numpy
        words, w = ring.words, offset // _WORD
        # Short runs cost a short scan: look at RUN_FIRST_SCAN records, then up to MAX_RUN_ITEMS.
        for limit in (RUN_FIRST_SCAN, MAX_RUN_ITEMS):
            scan = min(avail, limit)
            rows = words[w: w + scan * _SCALAR_ITEM_WORDS].reshape(scan, _SCALAR_ITEM_WORDS)
            same = (rows[:, 0] == _SCALAR_ITEM_BYTES) & (rows[:, 1] == meta) & (rows[:, 2] == worker) \
                & (rows[:, 3] == np.arange(seq, seq + scan))  # a PAD marker or a gap ends the run
            n = scan if same.all() else int(same.argmin())
            if n < scan or scan == avail:
                break
        rows = rows[:n] if lend else rows[:n].copy()
        values = rows[:, 11].view(np.float64) if (meta >> 8) & 0xFF == _F64 else rows[:, 11]
        return Chunk(worker, seq, rows[:, 10], rows[:, 5], values)

    @staticmethod
    def _read_arrays(ring: _Ring, offset: int, k: int, lend: bool) -> tuple:
        """A ``KIND_ARRAYS`` record as ``(worker, seq, created_ns, forwarded_ns, (array, ...))``."""
        data, words = ring.data, ring.words
        _, _, worker, seq, created, forwarded = _ARRAYS_HEADER.unpack_from(data, offset)
        w = offset // _WORD + ARRAYS_HEADER_WORDS
        at = offset + _WORD * (ARRAYS_HEADER_WORDS + ARRAY_DESCRIPTOR_WORDS * k)
        arrays = []
        for i in range(k):
            d = w + ARRAY_DESCRIPTOR_WORDS * i
            meta = words.item(d)
            shape = tuple(words[d + 1: d + 1 + (meta >> 8)].tolist())
            dtype = DTYPES[meta & 0xFF]
            array = np.ndarray(shape, dtype, buffer=data, offset=at)
            arrays.append(array if lend else array.copy())
            at += _align(array.nbytes)
        return worker, seq, created, forwarded, tuple(arrays)

    def _poll(self, max_items: int) -> None:
        """Read records round-robin until ``max_items`` are buffered or every ring is empty."""
        rings, n = self._rings, len(self._rings)
        idle = 0
        while len(self._buffer) < max_items and idle < n:
            index = self._next
            self._next = (index + 1) % n
            idle = 0 if self._read_one(rings[index], index) else idle + 1

    def _wait(self, deadline: float | None) -> None:
        start = time.monotonic_ns()
        if self._spin_ns > SPIN_MIN_NS:  # at the shortest spin, the doorbell's own look below is the spin
            spin_until = start + self._spin_ns
            while True:
                self._poll(1)
                if self._buffer:
                    self._spin_ns = min(SPIN_NS, 2 * self._spin_ns)
                    return
                if time.monotonic_ns() >= spin_until:
                    break
        while True:
            self._doorbell[0] = 1
            self._poll(1)
            if self._buffer:
                self._doorbell[0] = 0
                self._adapt_spin(start)
                return
            wait = MAX_SLEEP_S if deadline is None else min(MAX_SLEEP_S, deadline - time.monotonic())
            if wait <= 0:
                self._doorbell[0] = 0
                return
            if select.select([self._bell_fd], [], [], wait)[0]:
                try:
                    os.read(self._bell_fd, 4096)
                except BlockingIOError:
                    pass
            self._poll(1)
            if self._buffer:
                self._doorbell[0] = 0
                self._adapt_spin(start)
                return

    def _adapt_spin(self, wait_start_ns: int) -> None:
        """After a sleep: a record that came within SPIN_NS would have been caught by a longer spin."""
        if time.monotonic_ns() - wait_start_ns < SPIN_NS:
            self._spin_ns = min(SPIN_NS, 2 * self._spin_ns)
        else:
            self._spin_ns = max(SPIN_MIN_NS, self._spin_ns // 2)

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
    writes_in_place = True

    @classmethod
    def check(cls, spec: Any, sizes: Sizes) -> None:
        q, w = spec.queue, spec.workers
        auto = ring_bytes_for(QueueSettings("shm_ring", 0, None, message_bytes_hint=sizes.message_bytes))
        require(q.buffer_bytes is not None or 2 * sizes.message_bytes <= auto, "queue.buffer_bytes", None,
                f"a message of workers.forward_batch={w.forward_batch} items of {sizes.item_bytes:,} bytes needs "
                f"about {sizes.message_bytes:,} bytes, over half of the largest ring sized from the payload "
                f"({MAX_AUTO_RING_BYTES:,} bytes per worker)", "lower workers.forward_batch or the item's size "
                f"(payload.shape, payload.fragment_length x payload.envs_per_worker), or set `queue.buffer_bytes` "
                f"to at least {2 * sizes.message_bytes}")
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
        self.consumer.lend_views = self.consumer.accept_chunks = True  # as the chief reads it

    def sender(self, index: int, item: Any, batch: int) -> Any:
        producer, items = self.design.producer(index), copies(item, batch)
        if batch == 1:
            if type(item) is tuple and len(item) == 5:
                # Each item its own seq, as a worker's: runs of them are read as the chief reads them.
                w, _, c, f, v = item
                seqs = itertools.count()
                return lambda: producer.put((w, next(seqs), c, f, v))
            return lambda: producer.put(items[0])
        return lambda: producer.put_many(items)

    def receive(self, timeout_s: float) -> int:
        try:
            got = sum(1 if type(m) is tuple else len(m) for m in self.consumer.get_many(1 << 16, timeout=timeout_s))
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
