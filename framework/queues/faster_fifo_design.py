"""``faster_fifo``: faster-fifo's Queue, the queue Sample Factory uses (optional extra ``fifo``).

    worker i --pickle each item--> put_many(blobs) ==> [ one circular byte buffer in shared memory, ] ==> get_many
                                                        [ one process-shared mutex, two condvars     ]     --unpickle--> chief

faster-fifo is a C++ ring in a ``multiprocessing.RawArray`` guarded by one process-shared mutex, with no
feeder thread: ``put_many`` writes many messages under one lock and ``get_many`` takes many. Two of its
defaults would bite a benchmark, so this design never relies on them:

* **The bound is in bytes** (``max_size_bytes``, 1 MB by default), each message taking its pickled size
  plus an 8-byte length header. A message larger than the whole buffer can never fit: faster-fifo waits for
  the timeout and raises ``queue.Full``, indistinguishable from a full queue. So this design pickles items
  itself (the queue moves the bytes as they are), checks each size against the buffer and raises
  ``MessageTooLargeError`` at once with the fix (``queue.buffer_bytes``), and splits a ``put_many`` batch
  whose total would not fit into several puts of at most the buffer's size.
* **Every blocking call times out after 10 s by default.** Here ``timeout=None`` means "wait for ever", as
  in the standard library, implemented as a loop of ``WAIT_SLICE_S`` waits; every call passes its timeout
  explicitly.

``QueueSettings.maxsize`` maps onto faster-fifo's own bound in messages (each item of a ``put_many`` is one
message). ``put_many`` is native: the items of a batch are separate messages, so ``get_many`` can return
part of a batch, and there is no batch wrapper to unpack.
"""

from __future__ import annotations

import collections
import pickle
import queue
import time
from collections.abc import Sequence
from typing import Any

from framework.config.rules import require
from framework.errors import MessageTooLargeError
from framework.queues import rawloop
from framework.queues.base import DEFAULT_BUFFER_BYTES, ConsumerEnd, ProducerEnd, QueueDesign, QueueSettings, Sizes
from framework.queues.rawloop import copies

PICKLE_MARGIN_BYTES = 512
"""Room for an item's pickle beyond its payload bytes, in the buffer check."""

MESSAGE_HEADER_BYTES = 8
"""faster-fifo stores each message's length in front of it (measured: 992 bytes fit a 1,000-byte buffer)."""
WAIT_SLICE_S = 1.0
"""Longest single wait handed to faster-fifo; a longer (or endless) wait is a loop of these."""
UNBOUNDED_MESSAGES = 1 << 62
"""faster-fifo's ``maxsize`` when ``QueueSettings.maxsize`` is 0 (unbounded in messages; the bytes still bound it)."""
PICKLE_PROTOCOL = pickle.HIGHEST_PROTOCOL
READ_AHEAD_MESSAGES = 64
"""The chief's end asks faster-fifo for at least this many messages per call (what its ``get_many`` is made
for: one lock for many messages) and hands out the rest at the next calls. A chief taking one item per check
otherwise paid a lock, a condvar and a call into C per item, and moved a third of what the bare queue moves.
The messages read ahead are bounded by what the shared buffer held (``queue.buffer_bytes``)."""


def _as_is(blob: bytes) -> bytes:
    """faster-fifo's ``dumps``: items are pickled by the producer end already (module-level: spawn pickles it)."""
    return blob


def _unpickle(view: memoryview) -> Any:
    return pickle.loads(view)


def too_large_message(nbytes: int, buffer_bytes: int) -> str:
    """The one paragraph a user reads when an item cannot fit in the buffer."""
    return (f"Invalid config: queue.buffer_bytes={buffer_bytes}: one item pickles to {nbytes:,} bytes, and with "
            f"faster-fifo's {MESSAGE_HEADER_BYTES}-byte header it needs {nbytes + MESSAGE_HEADER_BYTES:,} bytes, "
            f"more than the queue's whole circular buffer, so it could never be put (faster-fifo itself would wait "
            f"for its timeout and report a full queue). Fix: raise `queue.buffer_bytes` to a few times the item "
            f"size, e.g. `queue.buffer_bytes={_suggest(nbytes)}`, or shrink the payload.")


def _suggest(nbytes: int) -> int:
    mib = 1 << 20
    return max(mib, -(-(4 * (nbytes + MESSAGE_HEADER_BYTES)) // mib) * mib)


def _deadline(block: bool, timeout: float | None) -> float | None:
    """None = wait for ever; a past deadline = one non-blocking try."""
    if not block:
        return time.monotonic()
    return None if timeout is None else time.monotonic() + max(0.0, timeout)


def _slice(deadline: float | None) -> float:
    return WAIT_SLICE_S if deadline is None else max(0.0, min(WAIT_SLICE_S, deadline - time.monotonic()))


class _FifoProducer(ProducerEnd):
    def __init__(self, q: Any, buffer_bytes: int) -> None:
        self._q = q
        self._buffer_bytes = buffer_bytes

    def _blob(self, item: Any) -> bytes:
        blob = pickle.dumps(item, protocol=PICKLE_PROTOCOL)
        if len(blob) + MESSAGE_HEADER_BYTES > self._buffer_bytes:
            raise MessageTooLargeError(too_large_message(len(blob), self._buffer_bytes))
        return blob

    def _put_blobs(self, blobs: list[bytes], block: bool, timeout: float | None) -> None:
        deadline = _deadline(block, timeout)
        while True:
            try:
                # block=False with a past deadline is one try; faster-fifo wants an explicit timeout every time.
                self._q.put_many(blobs, block=block, timeout=_slice(deadline))
                return
            except queue.Full:
                if not block or (deadline is not None and time.monotonic() >= deadline):
                    raise

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        self._put_blobs([self._blob(item)], block, timeout)

    def put_many(self, items: Sequence[Any], block: bool = True, timeout: float | None = None) -> None:
        blobs = [self._blob(item) for item in items]
        # A batch goes in under one lock only if it fits the buffer as a whole: cut it where it would not.
        chunk: list[bytes] = []
        size = 0
        for blob in blobs:
            need = len(blob) + MESSAGE_HEADER_BYTES
            if chunk and size + need > self._buffer_bytes:
                self._put_blobs(chunk, block, timeout)
                chunk, size = [], 0
            chunk.append(blob)
            size += need
        if chunk:
            self._put_blobs(chunk, block, timeout)


class _FifoConsumer(ConsumerEnd):
    """faster-fifo's ``get_many``, reading ahead (``READ_AHEAD_MESSAGES``): what it read and has not handed
    out yet is served first, in order."""

    def __init__(self, q: Any, on_close: Any) -> None:
        self._q = q
        self._on_close = on_close
        self._ahead: collections.deque[Any] = collections.deque()

    def get(self, block: bool = True, timeout: float | None = None) -> Any:
        return self.get_many(1, block, timeout)[0]

    def get_many(self, max_items: int, block: bool = True, timeout: float | None = None) -> list[Any]:
        if max_items < 1:
            raise ValueError(f"max_items must be >= 1, got {max_items}")
        ahead = self._ahead
        if not ahead:
            got = self._get(max(max_items, READ_AHEAD_MESSAGES), block, timeout)
            if len(got) <= max_items:
                return got
            ahead.extend(got)
        if len(ahead) <= max_items:
            got = list(ahead)
            ahead.clear()
            return got
        return [ahead.popleft() for _ in range(max_items)]

    def _get(self, max_messages: int, block: bool, timeout: float | None) -> list[Any]:
        deadline = _deadline(block, timeout)
        while True:
            try:
                return self._q.get_many(block=block, timeout=_slice(deadline), max_messages_to_get=max_messages)
            except queue.Empty:
                if not block or (deadline is not None and time.monotonic() >= deadline):
                    raise

    def close(self) -> None:
        self._on_close()


class FasterFifoDesign(QueueDesign):
    """faster-fifo's ``Queue``: one shared-memory circular buffer of ``queue.buffer_bytes`` bytes.

    Caveats: the buffer bounds the bytes in flight, so an item larger than it raises
    ``MessageTooLargeError`` (with the fix); ``maxsize`` counts items.
    """

    name = "faster_fifo"
    requires = ("faster_fifo",)
    install_hint = "pip install 'chiefbench[fifo]'"
    supports_maxsize = True

    @classmethod
    def check(cls, spec: Any, sizes: Sizes) -> None:
        # An item that cannot fit in the circular buffer would wait for ever; say so before starting.
        # The margin covers the item's pickle (tuple, stamps, array header); a worker checks the exact size.
        q, nbytes = spec.queue, sizes.item_bytes
        require(q.buffer_bytes is None or nbytes + PICKLE_MARGIN_BYTES <= q.buffer_bytes, "queue.buffer_bytes",
                q.buffer_bytes, f"one item of this payload is {nbytes:,} bytes (about {nbytes + PICKLE_MARGIN_BYTES:,} "
                f"pickled), more than faster_fifo's whole circular buffer, so it could never be put",
                f"raise `queue.buffer_bytes` to a few times the item size, e.g. "
                f"`queue.buffer_bytes={max(1 << 20, -(-4 * (nbytes + PICKLE_MARGIN_BYTES) // (1 << 20)) << 20)}`, "
                f"or shrink payload.shape")

    def __init__(self, settings: QueueSettings, n_producers: int, mp_context: Any) -> None:
        super().__init__(settings, n_producers, mp_context)
        import faster_fifo

        self.buffer_bytes = settings.buffer_bytes or max(DEFAULT_BUFFER_BYTES, 4 * settings.message_bytes_hint)
        self._q = faster_fifo.Queue(max_size_bytes=self.buffer_bytes, maxsize=settings.maxsize or UNBOUNDED_MESSAGES,
                                    loads=_unpickle, dumps=_as_is)
        self._consumer: _FifoConsumer | None = None
        self._closed = False

    def producer(self, worker_id: int) -> ProducerEnd:
        return _FifoProducer(self._q, self.buffer_bytes)

    def consumer(self) -> ConsumerEnd:
        if self._consumer is None:
            self._consumer = _FifoConsumer(self._q, self.close)
        return self._consumer

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            # The buffer lives in a multiprocessing heap arena: dropping the last reference frees it.
            self._q.close()
            self._q = self._consumer = None

    @staticmethod
    def raw_throughput(item: Any, n_producers: int, duration_s: float, batch: int) -> float:
        """Items/s that a bare faster-fifo Queue moves (put_many / get_many), no chiefbench code in the loop."""
        return rawloop.measure(_RawFifo, item, n_producers, duration_s, batch)


class _RawFifo:
    """The bare primitive for ``rawloop``: faster-fifo's own pickling, its native put / put_many / get_many."""

    def __init__(self, n_producers: int, ctx: Any) -> None:
        import faster_fifo

        self.q = faster_fifo.Queue(max_size_bytes=RAW_BUFFER_BYTES)

    def sender(self, index: int, item: Any, batch: int) -> Any:
        q, items = self.q, copies(item, batch)

        def send() -> None:
            try:
                if batch == 1:
                    q.put(item, block=True, timeout=WAIT_SLICE_S)
                else:
                    q.put_many(items, block=True, timeout=WAIT_SLICE_S)
            except queue.Full:
                pass  # the loop tries again (and sees the stop flag)
        return send

    def receive(self, timeout_s: float) -> int:
        try:
            return len(self.q.get_many(block=True, timeout=timeout_s))
        except queue.Empty:
            return 0

    def close(self) -> None:
        self.q.close()


RAW_BUFFER_BYTES = DEFAULT_BUFFER_BYTES
"""The raw reference's buffer: the design's default ``queue.buffer_bytes``."""
