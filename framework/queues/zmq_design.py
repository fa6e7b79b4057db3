"""``zmq``: ZeroMQ PUSH (one per worker) / PULL (the chief) over ``ipc://`` (optional extra ``zmq``).

    worker i: PUSH --connect--> ipc://<run's private temp dir>/zmq-XXXX/chief.sock <--bind-- PULL: chief
              frames: [pickle head, raw buffer, raw buffer, ...]     (pickle protocol 5, out-of-band)

Items are pickled with protocol 5 and a ``buffer_callback``: every numpy array anywhere in an item (a
tuple's value, a chunk's columns) leaves the pickle as a raw frame, sent with ``copy=False`` and rebuilt on
the chief's side over the received frame, so array bytes are never copied into a pickle stream.
``put_many`` sends the batch as one message (one pickle of the list, its arrays still out-of-band).

The socket lives in a directory of its own, created owner-only (0700) inside the run's private temporary
directory (``framework.hygiene``), and removed by ``close()``; if the chief is SIGKILLed, the next run
removes the whole run directory as stale.

**End of stream.** Measured here: when a PUSH socket closes while the receiver is held at its
high-water mark, the tail of the stream vanishes, even with ``LINGER=-1`` (about 200 to 1,000 of 200,000
messages). So a producer never closes on its own word: ``close()`` sends a final marker (its slot and a
token) after its last message and waits, bounded by ``ACK_TIMEOUT_S``, until the consumer has received
the marker, which by per-connection FIFO order means it received everything before it. The consumer
acknowledges by writing the token into a shared array slot (no return socket). Markers are handled inside
``get``/``get_many``; after the chief has stopped reading, ``finish(timeout_s)`` keeps receiving until
every producer whose process is still alive has been acknowledged.
"""

from __future__ import annotations

import os
import pickle
import queue
import shutil
import struct
import tempfile
import time
from collections import deque
from collections.abc import Sequence
from typing import Any

from framework.queues.base import ConsumerEnd, ProducerEnd, QueueDesign, QueueSettings
from framework import hygiene
from framework.queues import rawloop
from framework.queues.rawloop import copies

HWM_MESSAGES = 100
"""Send and receive high-water marks, in messages: bounds what waits in ZeroMQ's own buffers (a message may
be a batch of 1 MiB arrays); the framework keeps the run's real bound itself."""
ACK_TIMEOUT_S = 10.0
"""Longest a closing producer waits for the consumer to acknowledge its end-of-stream marker."""
ACK_POLL_S = 0.001
"""Sleep between two looks at the acknowledgement slot."""
NO_ACK_LINGER_MS = 1000
"""Linger of a socket closed without an acknowledgement (the chief is gone): never hang an exit."""
MAX_SLOTS = 4096
"""Acknowledgement slots: one per producer end handed out (workers and their restarts)."""
_MARKER = struct.Struct("<qq")
"""End-of-stream marker body: (slot, token). A marker's first frame is empty; a pickle never is."""
_PID, _TOKEN, _ACKED = 0, 1, 2
_FIELDS = 3


class _Batch(list):
    """Marks a ``put_many`` message (a user's own list is never unpacked); module-level for unpickling."""

    __slots__ = ()


def _encode(obj: Any) -> list:
    """Pickle protocol 5 with out-of-band buffers: [head, raw buffer...] (contiguous arrays travel as frames)."""
    buffers: list[pickle.PickleBuffer] = []
    head = pickle.dumps(obj, protocol=5, buffer_callback=buffers.append)
    return [head, *(b.raw() for b in buffers)]


def _decode(frames: list) -> Any:
    return pickle.loads(frames[0].buffer, buffers=[f.buffer for f in frames[1:]])


def _new_socket(kind: int, address: str, bind: bool) -> tuple[Any, Any]:
    import zmq

    context = zmq.Context()
    sock = context.socket(kind)
    sock.setsockopt(zmq.SNDHWM if kind == zmq.PUSH else zmq.RCVHWM, HWM_MESSAGES)
    sock.setsockopt(zmq.LINGER, NO_ACK_LINGER_MS)
    if bind:
        sock.bind(address)
    else:
        sock.connect(address)
    return context, sock


def _timeout_ms(block: bool, timeout: float | None) -> int | None:
    if not block:
        return 0
    return None if timeout is None else max(0, int(timeout * 1000))


class _ZmqProducer(ProducerEnd):
    """Picklable: only the address and the shared slots travel; the socket is made in the process that puts."""

    def __init__(self, address: str, slots: Any, slot: int, token: int) -> None:
        self._address, self._slots, self._slot, self._token = address, slots, slot, token
        self._context = self._sock = None
        self._pid = 0

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_context"] = state["_sock"] = None
        state["_pid"] = 0
        return state

    def _socket(self) -> Any:
        if self._sock is None or self._pid != os.getpid():
            # A forked child must not use its parent's context (its I/O threads did not survive the fork).
            self._context, self._sock = _new_socket(_zmq().PUSH, self._address, bind=False)
            self._pid = os.getpid()
            base = self._slot * _FIELDS
            self._slots[base + _PID] = self._pid
            self._slots[base + _TOKEN] = self._token
        return self._sock

    def _send(self, frames: list, block: bool, timeout: float | None) -> None:
        zmq = _zmq()
        sock = self._socket()
        wait_ms = _timeout_ms(block, timeout)
        if wait_ms is not None and not sock.poll(wait_ms, zmq.POLLOUT):
            raise queue.Full
        sock.send_multipart(frames, copy=False)

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        self._send(_encode(item), block, timeout)

    def put_many(self, items: Sequence[Any], block: bool = True, timeout: float | None = None) -> None:
        if items:
            self._send(_encode(_Batch(items)), block, timeout)

    def close(self) -> None:
        """Send the end-of-stream marker and close only once the consumer has it (or ``ACK_TIMEOUT_S`` passed)."""
        if self._sock is None or self._pid != os.getpid():
            return  # never put from this process: nothing in flight
        acked = False
        try:
            self._sock.send_multipart([b"", _MARKER.pack(self._slot, self._token)])
            deadline = time.monotonic() + ACK_TIMEOUT_S
            slot = self._slot * _FIELDS + _ACKED
            while time.monotonic() < deadline:
                if self._slots[slot] == self._token:
                    acked = True
                    break
                time.sleep(ACK_POLL_S)
        finally:
            # Acknowledged: nothing is left in flight, close at once. Not: bounded linger, never hang.
            self._sock.close(linger=0 if acked else NO_ACK_LINGER_MS)
            self._context.term()
            self._sock = self._context = None


class _ZmqConsumer(ConsumerEnd):
    def __init__(self, design: ZmqDesign) -> None:
        self._design = design
        self._buffer: deque = deque()

    def _handle(self, frames: list) -> None:
        if len(frames[0]) == 0:  # an end-of-stream marker: acknowledge it
            slot, token = _MARKER.unpack(frames[1].bytes)
            self._design.slots[slot * _FIELDS + _ACKED] = token
            return
        message = _decode(frames)
        if type(message) is _Batch:
            self._buffer.extend(message)
        else:
            self._buffer.append(message)

    def _fill(self, block: bool, timeout: float | None) -> None:
        """Receive until the buffer holds an item, or raise ``queue.Empty`` when the wait is over."""
        if self._ready():
            return  # a message was there: no poll (a Poller made and registered at every call)
        zmq = _zmq()
        sock = self._design.sock
        deadline = None if (block and timeout is None) else time.monotonic() + (max(0.0, timeout) if block else 0.0)
        while not self._buffer:
            wait_ms = None if deadline is None else max(0, int((deadline - time.monotonic()) * 1000))
            if not sock.poll(wait_ms, zmq.POLLIN):
                raise queue.Empty
            self._handle(sock.recv_multipart(copy=False))

    def _ready(self) -> bool:
        """Receive whatever is there now without waiting; True if the buffer holds an item."""
        zmq = _zmq()
        sock = self._design.sock
        while not self._buffer:
            try:
                frames = sock.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                return False
            self._handle(frames)
        return True

    def get(self, block: bool = True, timeout: float | None = None) -> Any:
        if not self._buffer:
            self._fill(block, timeout)
        return self._buffer.popleft()

    def get_many(self, max_items: int, block: bool = True, timeout: float | None = None) -> list[Any]:
        if max_items < 1:
            raise ValueError(f"max_items must be >= 1, got {max_items}")
        items = [self.get(block, timeout)]
        while len(items) < max_items and (self._buffer or self._ready()):
            take = min(max_items - len(items), len(self._buffer))
            items.extend(self._buffer.popleft() for _ in range(take))
        return items

    def finish(self, timeout_s: float) -> None:
        """Acknowledge the end-of-stream markers still on their way, for at most ``timeout_s``.

        Waits only for producers that have put something, are not acknowledged and whose process is still
        running (a dead worker sends no marker). Items that arrive meanwhile stay buffered for ``get``."""
        import psutil

        zmq = _zmq()
        sock, slots = self._design.sock, self._design.slots
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            pending = []
            for slot in range(self._design.slots_used):
                base = slot * _FIELDS
                pid, token = slots[base + _PID], slots[base + _TOKEN]
                if pid and slots[base + _ACKED] != token and pid != os.getpid():
                    try:
                        alive = psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
                    except psutil.NoSuchProcess:
                        alive = False
                    if alive:
                        pending.append(slot)
            if not pending:
                return
            if sock.poll(10, zmq.POLLIN):
                self._handle(sock.recv_multipart(copy=False))

    def close(self) -> None:
        self._design.close()


def _zmq() -> Any:
    import zmq

    return zmq


class ZmqDesign(QueueDesign):
    """ZeroMQ PUSH/PULL over ipc:// in a private directory; numpy arrays travel as frames, not pickled.

    Caveats: a producer's ``close()`` waits (at most ``ACK_TIMEOUT_S``) for the chief to acknowledge its
    end-of-stream, so the chief must keep reading until then (``ConsumerEnd.finish``); ``maxsize`` is not
    supported (ZeroMQ's high-water mark counts messages per socket, not items).
    """

    name = "zmq"
    requires = ("zmq",)
    install_hint = "pip install 'chiefbench[zmq]'"

    def __init__(self, settings: QueueSettings, n_producers: int, mp_context: Any) -> None:
        super().__init__(settings, n_producers, mp_context)
        import zmq

        self._closed = False
        self.directory = tempfile.mkdtemp(prefix="zmq-", dir=hygiene.claim_tempdir())  # mode 0700
        self.address = f"ipc://{self.directory}/chief.sock"
        # Shared (pid, token, acked) per producer slot; a RawArray travels to spawned workers as a start argument.
        self.slots = mp_context.RawArray("q", MAX_SLOTS * _FIELDS)
        self.slots_used = 0
        self._tokens = 0
        try:
            self.context, self.sock = _new_socket(zmq.PULL, self.address, bind=True)
        except BaseException:
            shutil.rmtree(self.directory, ignore_errors=True)
            raise
        self._consumer: _ZmqConsumer | None = None

    def _new_producer(self) -> ProducerEnd:
        if self.slots_used >= MAX_SLOTS:
            raise RuntimeError(f"zmq: more than {MAX_SLOTS} producer ends in one run")
        self._tokens += 1
        slot, self.slots_used = self.slots_used, self.slots_used + 1
        return _ZmqProducer(self.address, self.slots, slot, self._tokens)

    def producer(self, worker_id: int) -> ProducerEnd:
        return self._new_producer()

    def respawn_producer(self, worker_id: int) -> ProducerEnd:
        return self._new_producer()  # a fresh slot: the dead one's marker never comes

    def consumer(self) -> ConsumerEnd:
        if self._consumer is None:
            self._consumer = _ZmqConsumer(self)
        return self._consumer

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            try:
                self.sock.close(linger=0)
                self.context.term()
            finally:
                shutil.rmtree(self.directory, ignore_errors=True)
                self._consumer = None

    @staticmethod
    def raw_throughput(item: Any, n_producers: int, duration_s: float, batch: int) -> float:
        """Items/s that bare PUSH/PULL sockets move (the same framing and batching), no chiefbench code."""
        return rawloop.measure(_RawZmq, item, n_producers, duration_s, batch)


class _RawZmq:
    """The bare primitive for ``rawloop``: PUSH/PULL over ipc://, protocol-5 frames, one list per batch."""

    def __init__(self, n_producers: int, ctx: Any) -> None:
        import zmq

        self.directory = tempfile.mkdtemp(prefix="zmq-raw-", dir=hygiene.claim_tempdir())
        self.address = f"ipc://{self.directory}/chief.sock"
        self.context, self.sock = _new_socket(zmq.PULL, self.address, bind=True)

    def sender(self, index: int, item: Any, batch: int) -> Any:
        zmq = _zmq()
        context, sock = _new_socket(zmq.PUSH, self.address, bind=False)
        message = item if batch == 1 else _Batch(copies(item, batch))

        def send() -> None:
            # A bounded wait, so that a producer held at the high-water mark still sees the stop flag.
            if sock.poll(50, zmq.POLLOUT):
                sock.send_multipart(_encode(message), copy=False)

        def close() -> None:
            sock.close(linger=0)  # the reference does not need its tail
            context.term()

        send.close = close
        return send

    def receive(self, timeout_s: float) -> int:
        if not self.sock.poll(int(timeout_s * 1000), _zmq().POLLIN):
            return 0
        message = _decode(self.sock.recv_multipart(copy=False))
        return len(message) if type(message) is _Batch else 1

    def close(self) -> None:
        self.sock.close(linger=0)
        self.context.term()
        shutil.rmtree(self.directory, ignore_errors=True)
