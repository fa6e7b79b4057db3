"""The standard library's ways to move objects between processes, as queue designs.

All four share one wire format: ``put`` sends the item itself, ``put_many`` sends the
whole batch as one ``_Batch`` message (one pickle, one syscall, one lock round), and
the consumer unpacks batches into a local buffer so ``get`` still returns single
items. Only the transport differs, so each design supplies a "send one message" and
a "receive one message" callable and the buffering lives in one place.
"""

from __future__ import annotations

import collections
import math
import os
import queue
import select
import time
from collections.abc import Callable, Sequence
from multiprocessing.connection import wait
from typing import Any

from framework.queues.base import ConsumerEnd, ProducerEnd, QueueDesign, QueueSettings
from framework.queues import rawloop
from framework.queues.rawloop import copies
from framework.engine.protocol import chief_alive_probe


class _Batch(list):
    """Marks a ``put_many`` message; a private type, so a user's own list is never unpacked.

    Module-level so the receiving process can unpickle it.
    """

    __slots__ = ()


def _close_mp_queue(q: Any) -> None:
    # join_thread waits for this process's feeder to flush what it was given, so no
    # put item is lost; cancel_join_thread would drop them silently.
    q.close()
    q.join_thread()
    # Queue.close only stops the feeder; the chief (which usually never put, so has
    # no feeder) would otherwise hold the pipe's descriptors until garbage collection.
    q._reader.close()
    q._writer.close()


# --------------------------------------------------------------------------- producers


class _MessageProducer(ProducerEnd):
    """Turns put / put_many into single messages for ``_send(message, block, timeout)``."""

    def _send(self, message: Any, block: bool, timeout: float | None) -> None:
        raise NotImplementedError

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        self._send(item, block, timeout)

    def put_many(self, items: Sequence[Any], block: bool = True, timeout: float | None = None) -> None:
        if items:
            # An empty batch would wake the consumer for nothing.
            self._send(_Batch(items), block, timeout)


class _QueueProducer(_MessageProducer):
    """Puts into anything with ``Queue.put(obj, block, timeout)`` semantics."""

    def __init__(self, q: Any) -> None:
        self._q = q

    def _send(self, message: Any, block: bool, timeout: float | None) -> None:
        self._q.put(message, block, timeout)


FEEDER_AHEAD_MESSAGES = 4
"""mp_queue: a worker lets its feeder thread catch up once this many of its messages wait in its own process.

A worker that only puts keeps the GIL from its feeder thread: the messages pile up in the worker's memory (without
bound: 64 KiB arrays by the gigabyte), the pipe stays starved, and the chief measures that starvation, not the queue.
"""
FEEDER_WAIT_MAX_S = 0.002
"""mp_queue: the longest one put waits for the feeder thread. A feeder that moves nothing for this long is blocked
on a full pipe (a chief that is not taking), and then the put goes on, so a chief waiting for a deeper queue
(``chief.global_threshold``) still gets it, as with the standard ``multiprocessing.Queue``."""
FEEDER_YIELD_S = 0.0001
"""mp_queue: one nap of a worker waiting for its feeder thread (the GIL goes to the feeder meanwhile)."""


class _MpQueueProducer(_QueueProducer):
    """Puts like ``multiprocessing.Queue.put``, then lets the feeder thread catch up (``FEEDER_AHEAD_MESSAGES``)."""

    def _send(self, message: Any, block: bool, timeout: float | None) -> None:
        q = self._q
        q.put(message, block, timeout)
        waiting = q._buffer  # the messages this process's feeder thread has yet to write into the pipe
        if waiting is not None and len(waiting) > FEEDER_AHEAD_MESSAGES:
            _let_feeder_catch_up(waiting)

    def close(self) -> None:
        # Meant for the worker's own copy: closing the chief's copy would close the
        # chief's reader too once it has put something itself.
        self._q.close()
        self._q.join_thread()


def _let_feeder_catch_up(waiting: collections.deque) -> None:
    deadline = time.monotonic() + FEEDER_WAIT_MAX_S
    while len(waiting) > FEEDER_AHEAD_MESSAGES and time.monotonic() < deadline:
        time.sleep(FEEDER_YIELD_S)


class _SimpleQueueProducer(_MessageProducer):
    """``block`` and ``timeout`` are ignored: ``SimpleQueue.put`` writes straight into
    the OS pipe, whose buffer (typically 64 KiB) is the only bound, and blocks when
    it is full."""

    def __init__(self, q: Any) -> None:
        self._q = q

    def _send(self, message: Any, block: bool, timeout: float | None) -> None:
        self._q.put(message)


class _PipeProducer(_MessageProducer):
    """``block`` and ``timeout`` are ignored: ``Connection.send`` blocks while the OS
    pipe buffer (typically 64 KiB) is full, and cannot time out."""

    def __init__(self, conn: Any) -> None:
        self._conn = conn

    def _send(self, message: Any, block: bool, timeout: float | None) -> None:
        self._conn.send(message)

    def close(self) -> None:
        self._conn.close()


# --------------------------------------------------------------------------- consumer


class _ReadyPipes:
    """The reading ends of several pipes and one ``select.poll`` over them, made once.

    ``multiprocessing.connection.wait`` builds a selector and registers every connection at each call:
    2.7 us a call against 0.3 us for a poll object kept between calls (measured on the 2-core VM), at
    every message a chief takes one at a time. Where ``select.poll`` is missing, ``wait`` serves.
    """

    def __init__(self, conns: Sequence[Any]) -> None:
        self._poll = select.poll() if hasattr(select, "poll") else None
        self._by_fd: dict[int, Any] = {}
        self.live: list[Any] = []
        for conn in conns:
            self.add(conn)

    def add(self, conn: Any) -> None:
        self.live.append(conn)
        if self._poll is not None:
            self._by_fd[conn.fileno()] = conn
            self._poll.register(conn.fileno(), select.POLLIN)

    def remove(self, conn: Any) -> None:
        """Stop watching ``conn`` (it reported end-of-file); the caller closes it."""
        self.live.remove(conn)
        if self._poll is not None:
            fd = conn.fileno()
            self._poll.unregister(fd)
            del self._by_fd[fd]

    def ready(self, timeout_s: float | None) -> list[Any]:
        """The pipes with something to read (or at end-of-file), waiting at most ``timeout_s`` (None: for ever)."""
        if self._poll is None:
            return wait(self.live, timeout_s)
        by_fd = self._by_fd
        # poll() takes milliseconds; round a short wait up, so that a timeout never spins at 0.
        return [by_fd[fd] for fd, _ in self._poll.poll(None if timeout_s is None else math.ceil(timeout_s * 1000))]

    def clear(self) -> None:
        for conn in list(self.live):
            self.remove(conn)



class _BufferedConsumer(ConsumerEnd):
    """Unpacks ``_Batch`` messages into a local buffer.

    ``recv(timeout)`` returns one message or raises ``queue.Empty``; ``timeout`` is
    ``None`` (wait forever) or seconds >= 0, where 0 means "only what is there now".
    """

    def __init__(self, recv: Callable[[float | None], Any], on_close: Callable[[], None]) -> None:
        self._recv = recv
        self._on_close = on_close
        self._buffer: collections.deque[Any] = collections.deque()

    def _fill(self, timeout: float | None) -> None:
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._buffer:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            message = self._recv(remaining)
            if type(message) is _Batch:
                # An empty batch (from a producer that is not ours) just loops.
                self._buffer.extend(message)
            else:
                self._buffer.append(message)

    def get(self, block: bool = True, timeout: float | None = None) -> Any:
        if not self._buffer:
            if not block:
                self._fill(0.0)  # queue.Queue semantics: block=False ignores timeout
            else:
                self._fill(None if timeout is None else max(0.0, timeout))
        return self._buffer.popleft()

    def get_many(self, max_items: int, block: bool = True, timeout: float | None = None) -> list[Any]:
        if max_items < 1:
            raise ValueError(f"max_items must be >= 1, got {max_items}")
        items = [self.get(block, timeout)]
        while len(items) < max_items:
            if not self._buffer:
                try:
                    self._fill(0.0)
                except queue.Empty:
                    break
            take = min(max_items - len(items), len(self._buffer))
            items.extend(self._buffer.popleft() for _ in range(take))
        return items

    def close(self) -> None:
        self._on_close()


class _BufferedDesign(QueueDesign):
    """A design whose chief end is a ``_BufferedConsumer`` over ``self._recv``."""

    _consumer: _BufferedConsumer | None = None

    def _recv(self, timeout: float | None) -> Any:
        # For anything with Queue.get(block, timeout) semantics; pipe designs override it.
        return self._q.get(False) if timeout == 0 else self._q.get(True, timeout)

    def consumer(self) -> ConsumerEnd:
        if self._consumer is None:
            self._consumer = _BufferedConsumer(self._recv, self.close)
        return self._consumer


# --------------------------------------------------------------------------- designs


class MpQueueDesign(_BufferedDesign):
    """``multiprocessing.Queue``: a pipe plus a feeder thread per putting process.

    With ``maxsize`` the bound counts messages, so one ``put_many`` batch takes one
    slot however many items it holds.
    """

    name = "mp_queue"
    supports_maxsize = True

    def __init__(self, settings: QueueSettings, n_producers: int, mp_context: Any) -> None:
        super().__init__(settings, n_producers, mp_context)
        self._q = mp_context.Queue(settings.maxsize)
        self._closed = False

    def producer(self, worker_id: int) -> ProducerEnd:
        return _MpQueueProducer(self._q)


    def close(self) -> None:
        if not self._closed:
            self._closed = True
            _close_mp_queue(self._q)
            # Under spawn and forkserver the queue's semaphores keep their names in /dev/shm
            # until the queue is collected: drop our references so that happens now.
            self._q = self._consumer = None


class SimpleQueueDesign(_BufferedDesign):
    """``multiprocessing.SimpleQueue``: a locked pipe, no feeder thread.

    Caveat: ``put`` cannot time out and ignores ``block``; the OS pipe buffer
    (typically 64 KiB) is the only bound, and a put blocks while it is full.
    """

    name = "simple_queue"

    def __init__(self, settings: QueueSettings, n_producers: int, mp_context: Any) -> None:
        super().__init__(settings, n_producers, mp_context)
        self._q = mp_context.SimpleQueue()
        self._readable: _ReadyPipes | None = None
        self._closed = False

    def producer(self, worker_id: int) -> ProducerEnd:
        return _SimpleQueueProducer(self._q)

    def _recv(self, timeout: float | None) -> Any:
        if self._readable is None:
            self._readable = _ReadyPipes([self._q._reader])
        # Polling then reading is only race-free because the chief is the sole reader.
        if not self._readable.ready(timeout):
            raise queue.Empty
        return self._q.get()


    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._q.close()
            self._q = self._consumer = self._readable = None  # frees the named lock, as for mp_queue


class PipeDesign(_BufferedDesign):
    """One ``multiprocessing.Pipe`` per producer; the chief waits on all of them.

    FIFO per producer; across producers the chief takes turns among the pipes that
    are ready. A pipe whose every write end is closed (its worker exited) drops out;
    once all have, ``get`` raises ``queue.Empty`` at once. Under the fork start method
    every worker inherits every pipe's write end (all pipes exist before the first
    worker starts), so a pipe's end-of-file shows only once all workers have exited;
    the chief relies on the end-of-stream message, not on end-of-file.

    Caveat: ``put`` ignores ``block``/``timeout``; the OS pipe buffer is the only bound.
    """

    name = "pipe"

    def __init__(self, settings: QueueSettings, n_producers: int, mp_context: Any) -> None:
        super().__init__(settings, n_producers, mp_context)
        pairs = [mp_context.Pipe(duplex=False) for _ in range(n_producers)]
        self._readers = [r for r, _ in pairs]
        self._writers = [w for _, w in pairs]
        # The consumer's wait set; shrinks as producers hang up.
        self._live = _ReadyPipes(self._readers)
        self._ready: collections.deque[Any] = collections.deque()
        """Messages read after one wait from every pipe it found ready, not yet returned."""
        self._closed = False

    def producer(self, worker_id: int) -> ProducerEnd:
        return _PipeProducer(self._writers[worker_id])

    def producers_started(self) -> None:
        # Until the chief drops its copies, no pipe can ever report end-of-file.
        for w in self._writers:
            w.close()

    def respawn_producer(self, worker_id: int) -> ProducerEnd:
        # A fresh pipe: the dead worker's may end in a half-written message. The old
        # reader stays in the wait set until it reports end-of-file.
        reader, writer = self.mp_context.Pipe(duplex=False)
        self._readers.append(reader)
        self._writers.append(writer)
        self._live.add(reader)
        return _PipeProducer(writer)  # the chief's copy closes in the next producers_started()

    def _recv(self, timeout: float | None) -> Any:
        if self._ready:
            return self._ready.popleft()
        deadline = None if timeout is None else time.monotonic() + timeout
        live = self._live
        while live.live:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            ready = live.ready(remaining)
            if not ready:
                if remaining == 0.0 or (deadline is not None and time.monotonic() >= deadline):
                    raise queue.Empty
                continue
            # One message from every ready pipe per wait (a wait is a syscall: as the bare loop does); each
            # pipe stays FIFO, and no busy pipe can starve another.
            for conn in ready:
                try:
                    self._ready.append(conn.recv())
                except EOFError:
                    live.remove(conn)
                    conn.close()
            if self._ready:
                return self._ready.popleft()
        raise queue.Empty

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._live.clear()
            for conn in self._readers + self._writers:
                conn.close()


def _exit_with_parent(chief_pid: int, start_method: str) -> None:
    """Manager initializer: a daemon thread that ends the server when the chief is gone."""
    import signal
    import threading

    chief_alive = chief_alive_probe(chief_pid, start_method)
    # The chief coordinates Ctrl-C; the server must outlive the drain that follows it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    def watch() -> None:
        while chief_alive():
            time.sleep(0.2)
        # os._exit skips the finalizer that removes the server's socket directory.
        import multiprocessing
        import shutil

        tempdir = multiprocessing.current_process()._config.get("tempdir")
        if tempdir:
            shutil.rmtree(tempdir, ignore_errors=True)
        os._exit(0)

    threading.Thread(target=watch, name="chiefbench-parent-watch", daemon=True).start()


class ManagerQueueDesign(_BufferedDesign):
    """A ``queue.Queue`` living in a ``multiprocessing.Manager`` server process.

    Every put and get is a round trip to the server. With ``maxsize`` the bound
    counts messages, so one ``put_many`` batch takes one slot.
    """

    name = "manager_queue"
    supports_maxsize = True

    def __init__(self, settings: QueueSettings, n_producers: int, mp_context: Any) -> None:
        super().__init__(settings, n_producers, mp_context)
        from multiprocessing.managers import SyncManager

        # Started by hand so that the server watches its parent: if the chief is
        # SIGKILLed, no atexit hook runs, and a plain Manager would outlive it.
        self._manager = SyncManager(ctx=mp_context)
        self._manager.start(_exit_with_parent, (os.getpid(), mp_context.get_start_method()))
        try:
            self._q = self._manager.Queue(settings.maxsize)
        except BaseException:
            self._manager.shutdown()
            raise
        self._closed = False

    def producer(self, worker_id: int) -> ProducerEnd:
        # The proxy pickles at any time (not only at spawn) and reconnects on its own.
        return _QueueProducer(self._q)


    def close(self) -> None:
        if not self._closed:
            self._closed = True
            # shutdown() stops and joins the server process.
            self._manager.shutdown()


# --------------------------------------------------------------------------- raw-primitive references
#
# Each channel below is the bare primitive of one design for ``framework.queues.rawloop``: the same
# transport and the same batching (one ``_Batch`` list per message), no chiefbench code in the loop.


def _message(item: Any, batch: int) -> Any:
    return item if batch == 1 else _Batch(copies(item, batch))


def _count(message: Any) -> int:
    return len(message) if type(message) is _Batch else 1


class _RawQueueReceiver:
    """``receive`` for channels whose consumer side is a queue with ``get(block, timeout)`` in ``self.q``."""

    q: Any

    def receive(self, timeout_s: float) -> int:
        try:
            return _count(self.q.get(True, timeout_s))
        except queue.Empty:
            return 0


class _RawMpQueue(_RawQueueReceiver):
    def __init__(self, n_producers: int, ctx: Any) -> None:
        self.q = ctx.Queue()

    def sender(self, index: int, item: Any, batch: int) -> Callable[[], None]:
        q, message = self.q, _message(item, batch)

        def send() -> None:
            q.put(message)
            # As the design's producer does: a loop that only puts measures its own feeder's starvation.
            if q._buffer is not None and len(q._buffer) > FEEDER_AHEAD_MESSAGES:
                _let_feeder_catch_up(q._buffer)
        return send

    def close(self) -> None:
        _close_mp_queue(self.q)


class _RawSimpleQueue:
    def __init__(self, n_producers: int, ctx: Any) -> None:
        self.q = ctx.SimpleQueue()
        self.readable: _ReadyPipes | None = None

    def sender(self, index: int, item: Any, batch: int) -> Callable[[], None]:
        put, message = self.q.put, _message(item, batch)
        return lambda: put(message)

    def receive(self, timeout_s: float) -> int:
        if self.readable is None:
            self.readable = _ReadyPipes([self.q._reader])  # made in the receiving process
        if not self.readable.ready(timeout_s):
            return 0
        return _count(self.q.get())

    def close(self) -> None:
        self.q.close()


class _RawPipe:
    def __init__(self, n_producers: int, ctx: Any) -> None:
        pairs = [ctx.Pipe(duplex=False) for _ in range(n_producers)]
        self.readers = [r for r, _ in pairs]
        self.writers = [w for _, w in pairs]
        self.live = _ReadyPipes(self.readers)

    def sender(self, index: int, item: Any, batch: int) -> Callable[[], None]:
        send, message = self.writers[index].send, _message(item, batch)
        return lambda: send(message)

    def producers_started(self) -> None:
        for w in self.writers:
            w.close()

    def receive(self, timeout_s: float) -> int:
        # One message from every ready pipe per wait, as the design reads.
        got = 0
        for conn in self.live.ready(timeout_s):
            try:
                got += _count(conn.recv())
            except EOFError:
                self.live.remove(conn)
        return got

    def close(self) -> None:
        for conn in self.readers + self.writers:
            conn.close()


class _RawManagerQueue(_RawQueueReceiver):
    def __init__(self, n_producers: int, ctx: Any) -> None:
        from multiprocessing.managers import SyncManager

        self.manager = SyncManager(ctx=ctx)
        self.manager.start(_exit_with_parent, (os.getpid(), ctx.get_start_method()))
        self.q = self.manager.Queue()

    def sender(self, index: int, item: Any, batch: int) -> Callable[[], None]:
        put, message = self.q.put, _message(item, batch)
        return lambda: put(message)

    def close(self) -> None:
        self.manager.shutdown()


def _raw(channel: type) -> Callable[[Any, int, float, int], float]:
    def raw_throughput(item: Any, n_producers: int, duration_s: float, batch: int) -> float:
        return rawloop.measure(channel, item, n_producers, duration_s, batch)

    raw_throughput.__doc__ = f"Items/s of the bare primitive ({channel.__name__}), no chiefbench code in the loop."
    return staticmethod(raw_throughput)


MpQueueDesign.raw_throughput = _raw(_RawMpQueue)
SimpleQueueDesign.raw_throughput = _raw(_RawSimpleQueue)
PipeDesign.raw_throughput = _raw(_RawPipe)
ManagerQueueDesign.raw_throughput = _raw(_RawManagerQueue)
