"""The chief's intake: taking items off the global queue, exactly as many as the rule asks, and recording them.

A message on the global queue is an item tuple, a ``Chunk`` of items, or a control message
(``Leftovers``, ``EndOfStream``). ``receive`` records the items at once (their payloads reduced
to values, so a design may lend views that are reused after ``release``), hands control
messages to the supervisor, and holds back whatever the rule did not ask for: the rest of a
chunk stays "on the queue" for the next take.
"""

from __future__ import annotations

import queue
import time
from collections.abc import Callable
from typing import Any

from framework.engine import protocol
from framework.engine.chief.books import Books
from framework.engine.chief.supervisor import Supervisor
from framework.engine.protocol import Chunk
from framework.engine.record import CONSUMED, DROPPED_NEWEST, DROPPED_OLDEST, LEFT_GLOBAL, LEFT_LOCAL, NO_STAMP
from framework.errors import WorkerFailed

HOUSEKEEPING_S = 0.05
"""How often the chief samples depth, checks its workers and refreshes progress while idle."""
TAKE_CHUNK_ITEMS = 1024
"""Most items asked of one get_many: bounds how long one call can overrun the run's end."""
TUPLE_TAKE_ITEMS = 4
"""A take of at most this many items of a longer chunk records them as item tuples (about 2 us less per
take at chief.take_batch=1 than a chunk of their own, whose recording makes a few numpy arrays)."""


class _NoInterrupts:
    count = 0


_NO_INTERRUPTS = _NoInterrupts()


class Intake:
    """Takes from the design's consumer end and records what it takes."""

    def __init__(self, consumer: Any, recorder: Any, books: Books, supervisor: Supervisor, forward_batch: int,
                 drain_timeout_s: float, echo: Callable[[str], None] | None = None) -> None:
        self.consumer = consumer
        self.items = recorder
        self.books = books
        self.supervisor = supervisor
        self.forward_batch = forward_batch
        self.drain_timeout_s = drain_timeout_s
        self.echo = echo
        """Called with a line per consumed item (the original program printed them); None = silent."""
        self.held: list = []
        """Messages received but not yet taken: the rest of a chunk the rule did not ask for."""
        self.interrupts: Any = _NO_INTERRUPTS
        """The chief's Ctrl-C counter (``count``): a take stops early once it is non-zero."""
        self.round = 0

    def receive(self, max_items: int, state: int, stamp_consumed: bool, observed: bool = False) -> tuple[int, list]:
        """One get_many: record at most ``max_items`` items (tuples or chunks) and handle the messages;
        return how many items were recorded and the item-bearing messages; raise queue.Empty if nothing
        came. ``observed``: the caller observed the depth just now (the wait starts from that observation)."""
        books = self.books
        if self.held:
            batch, self.held = self.held, []
        else:
            if stamp_consumed and not observed:
                # What was forwarded while the chief recorded: the depth before the wait (Little's law).
                books.observe(time.monotonic_ns(), books.global_depth())
            # A message may be a chunk of forward_batch items: ask for about enough of them (max_items >= 1).
            batch = self.consumer.get_many(-(-max_items // self.forward_batch), timeout=HOUSEKEEPING_S)
        if stamp_consumed:
            stamp = time.monotonic_ns()
            # The depth peaks now (received, not yet recorded) and drops by what is taken at this stamp:
            # observing both edges of that sawtooth keeps the time-averaged depth unbiased (Little's law).
            peak = books.global_depth()
        else:
            stamp = NO_STAMP
        if len(batch) == 1 and type(batch[0]) is tuple:
            # One item, as a take of one at a time gets it from every design: nothing to sort or hold back.
            items, chunks, others, room = batch, None, None, max_items - 1
        else:
            items, chunks, others, room = self.split_batch(batch, max_items)
        # Record first, and handle every message before raising: a failure under
        # on_failure=abort must not cost the messages that came with it.
        self.items.add(items, stamp, state)
        if chunks:
            self.items.add_chunks(chunks, stamp, state)
            items = [*items, *chunks]
        count = max_items - room
        if stamp_consumed:
            books.observe(stamp, peak, peak - count)
        if others:
            self.handle_messages(others)
        return count, items

    def split_batch(self, batch: list, max_items: int) -> tuple[list, list, list, int]:
        """Item tuples, chunks and control messages of ``batch``, at most ``max_items`` items (the rest is held
        back for the next take), and the room left."""
        items, chunks, others, room = [], [], [], max_items
        for i, message in enumerate(batch):
            kind = type(message)
            if kind is tuple or kind is Chunk:
                if room == 0:
                    self.held = batch[i:]  # the rule asked for no more: keep them queued
                    break
                if kind is tuple:
                    items.append(message)
                    room -= 1
                elif len(message) <= room:
                    chunks.append(message)
                    room -= len(message)
                else:
                    if room <= TUPLE_TAKE_ITEMS and not chunks:
                        # A few items of a long chunk: as tuples, recorded (before any chunk) in arrival order.
                        items.extend(message.tuples(room))
                        tail = message.rest(room)
                    else:
                        head, tail = message.split(room)
                        chunks.append(head)
                    room = 0
                    self.held = [tail, *batch[i + 1:]]
                    break
            else:
                others.append(message)
        return items, chunks, others, room

    def handle_messages(self, messages: list) -> None:
        """Handle every control message, then raise the first worker failure among them."""
        failure = None
        for message in messages:
            try:
                self.handle_message(message)
            except WorkerFailed as exc:
                failure = failure or exc
        if failure is not None:
            raise failure

    def handle_message(self, message: Any) -> None:
        if type(message) is protocol.EndOfStream:
            if message.dropped:
                w = message.worker
                self.items.add([(w, seq, created, NO_STAMP, float("nan")) for seq, created in message.dropped],
                               NO_STAMP, DROPPED_NEWEST)
            self.supervisor.end_of_stream(message)
        elif type(message) is protocol.Leftovers:
            self.items.add(message.items, NO_STAMP, LEFT_LOCAL)
        else:
            raise TypeError(f"unexpected message on the global queue: {type(message).__name__}")

    def await_arrival(self, until_ns: int) -> None:
        """Wait in the design's own get (no busy loop) for the next message, at most until ``until_ns``.

        What arrives is held, not taken: it stays on the global queue for the chief's rule. One
        message per call, so the chief never reads ahead more than the threshold's worth (a
        design's own backpressure, such as a full pipe, keeps working)."""
        timeout = (until_ns - time.monotonic_ns()) / 1e9
        if timeout <= 0:
            return
        try:
            self.held.extend(self.consumer.get_many(1, timeout=timeout))
        except queue.Empty:
            pass

    def take(self, n: int, end_ns: int | None, observed: bool = False) -> None:
        """Take ``n`` items the counters say were forwarded (they may still be in flight);
        stop early at ``end_ns``, so a long drain cannot stretch ``run.duration_s``. ``observed``: the
        caller observed the depth just now (``Books.observe``), so the first get need not again."""
        got = 0
        deadline = None  # set when nothing comes: a take that keeps receiving pays no clock read for it
        interrupts = self.interrupts
        while got < n and (end_ns is None or time.monotonic_ns() < end_ns):
            if interrupts.count:
                break  # the loop raises at its next safe point; what was taken is recorded
            try:
                count, received = self.receive(min(n - got, TAKE_CHUNK_ITEMS), CONSUMED, True, observed)
            except queue.Empty:
                now = time.monotonic_ns()
                self.books.observe(now, self.books.global_depth())  # counted forwarded, not arrived yet
                self.supervisor.check_workers(now)
                if deadline is None:
                    deadline = time.monotonic() + self.drain_timeout_s
                if time.monotonic() >= deadline:
                    if self.supervisor.failures:
                        # A dead worker's last puts never left its process (a feeder thread's
                        # buffer, a half-written message): they are lost in transit.
                        self.books.in_transit_lost += n - got
                        break
                    raise WorkerFailed(f"{n - got} forwarded items did not arrive within "
                                       f"run.drain_timeout_s={self.drain_timeout_s}") from None
                continue
            observed = False
            got += count
            if self.echo is not None and received:
                for w, seq, _, _, value in as_tuples(received):
                    self.echo(f"[chief] round {self.round}: took {value!r:.40} (worker {w}, seq {seq})")
            # At once, not after the take: the rest of it may be waiting for that room.
            if not self.held:
                self.consumer.release()  # what release() does, without a call at every take
        self.books.publish_taken()

    def release(self) -> None:
        """Nothing taken is referred to any more: a design that lent views may reuse their room
        (what is held for the next take keeps its room)."""
        if not self.held:
            self.consumer.release()

    def evict(self, bound: int) -> None:
        """queue.on_full=drop_oldest: remove the oldest items past the bound."""
        excess = self.books.global_depth() - bound
        while excess > 0:
            try:
                excess -= self.receive(min(excess, TAKE_CHUNK_ITEMS), DROPPED_OLDEST, False)[0]
                self.release()
            except queue.Empty:
                break
        self.books.publish_taken()

    def drain(self, check_interrupts: Callable[[], None]) -> None:
        """Step 3 of the shutdown protocol: take everything left until each worker's EndOfStream.

        The timeout counts from the last message received: a long backlog that keeps
        flowing is drained to the end, a silent worker is given up on.
        """
        supervisor = self.supervisor
        deadline = time.monotonic() + self.drain_timeout_s
        while supervisor.awaiting_eos and time.monotonic() < deadline:
            check_interrupts()  # one more Ctrl-C while stopping: stop at once
            try:
                self.receive(1 << 16, LEFT_GLOBAL, False)
                self.release()
                deadline = time.monotonic() + self.drain_timeout_s
            except queue.Empty:
                if supervisor.all_exited():
                    break  # whoever has not reported is dead: nothing more will come
            except WorkerFailed:
                pass  # a failure reported while stopping is recorded; keep draining the others
        while self.held:  # received, never taken: still on the global queue at the stop
            self.receive(1 << 30, LEFT_GLOBAL, False)
        supervisor.silent_workers()


def count_items(messages: list) -> int:
    """Items in a list of item tuples and chunks."""
    return sum(1 if type(m) is tuple else len(m) for m in messages)


def as_tuples(messages: list) -> list[tuple]:
    return [t for m in messages for t in ([m] if type(m) is tuple else m.tuples())]
