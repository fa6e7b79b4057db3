"""A queue design written against ``framework.queues.base`` alone: one pipe per worker, the chief waiting on all.

Each worker writes into its own ``multiprocessing`` pipe; the chief reads whichever pipes are ready
(``multiprocessing.connection.wait``), one message from each per wait, so no worker starves the others.
``put_many`` sends the whole batch as one message (a private list type, so a user's own list put with
``put`` is never unpacked); the consumer unpacks it into a local buffer.
"""

from __future__ import annotations

import collections
import queue
import time
from collections.abc import Sequence
from multiprocessing.connection import wait
from typing import Any

from framework.errors import ConfigError
from framework.queues.base import ConsumerEnd, ProducerEnd, QueueDesign, QueueSettings, Sizes

MAX_WORKERS = 64
"""Workers at most: each holds a pipe (two descriptors, the chief keeps the read ends of all of them)."""


class _Batch(list):
    """One ``put_many`` message (module level, so the chief can unpickle it)."""

    __slots__ = ()


class ExampleProducer(ProducerEnd):
    """A worker's write end. ``block``/``timeout`` are ignored: a send blocks while the OS pipe buffer is full."""

    def __init__(self, conn: Any) -> None:
        self._conn = conn

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        self._conn.send(item)

    def put_many(self, items: Sequence[Any], block: bool = True, timeout: float | None = None) -> None:
        if items:
            self._conn.send(_Batch(items))

    def close(self) -> None:
        self._conn.close()


class ExampleConsumer(ConsumerEnd):
    """The chief's end: the read ends of every pipe, and a buffer of unpacked items."""

    def __init__(self, design: ExamplePipeDesign) -> None:
        self._design = design
        self._buffer: collections.deque[Any] = collections.deque()

    def _fill(self, timeout: float | None) -> None:
        """Read at least one message, waiting at most ``timeout`` (None: for ever); raise ``queue.Empty``."""
        deadline = None if timeout is None else time.monotonic() + timeout
        live = self._design._live
        while not self._buffer:
            if not live:
                raise queue.Empty  # every pipe has hung up
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            ready = wait(live, remaining)
            if not ready:
                raise queue.Empty
            for conn in ready:
                try:
                    message = conn.recv()
                except EOFError:
                    live.remove(conn)
                    conn.close()
                    continue
                if type(message) is _Batch:
                    self._buffer.extend(message)
                else:
                    self._buffer.append(message)

    def get(self, block: bool = True, timeout: float | None = None) -> Any:
        if not self._buffer:
            self._fill(0.0 if not block else timeout)
        return self._buffer.popleft()

    def close(self) -> None:
        self._design.close()


class ExamplePipeDesign(QueueDesign):
    """One ``multiprocessing.Pipe`` per worker, read with ``multiprocessing.connection.wait``."""

    name = "example_pipe"

    @classmethod
    def check(cls, spec: Any, sizes: Sizes) -> None:
        if spec.workers.count > MAX_WORKERS:
            raise ConfigError("workers.count", spec.workers.count,
                              f"queue={cls.name} opens one pipe per worker and allows at most {MAX_WORKERS} workers",
                              f"use at most {MAX_WORKERS} workers, e.g. `workers.count={MAX_WORKERS}`, or another "
                              f"design, e.g. `queue=mp_queue`")

    def __init__(self, settings: QueueSettings, n_producers: int, mp_context: Any) -> None:
        super().__init__(settings, n_producers, mp_context)
        pairs = [mp_context.Pipe(duplex=False) for _ in range(n_producers)]
        self._readers = [r for r, _ in pairs]
        self._writers = [w for _, w in pairs]
        self._live = list(self._readers)
        self._consumer: ExampleConsumer | None = None
        self._closed = False

    def producer(self, worker_id: int) -> ProducerEnd:
        return ExampleProducer(self._writers[worker_id])

    def consumer(self) -> ConsumerEnd:
        if self._consumer is None:
            self._consumer = ExampleConsumer(self)
        return self._consumer

    def producers_started(self) -> None:
        # The chief's copies of the write ends: closed, so a pipe whose worker exits reports end-of-file.
        for conn in self._writers:
            conn.close()

    def respawn_producer(self, worker_id: int) -> ProducerEnd:
        # A fresh pipe: the dead worker's may end in half a message. The old one leaves at its end-of-file.
        reader, writer = self.mp_context.Pipe(duplex=False)
        self._readers.append(reader)
        self._writers.append(writer)
        self._live.append(reader)
        return ExampleProducer(writer)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._live.clear()
            for conn in self._readers + self._writers:
                conn.close()
