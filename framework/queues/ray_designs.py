"""The Ray backend's queue designs: how items travel from worker actors to the chief (the Ray driver).

    worker actor i                                   chief (Ray driver)
    --------------                                   ------------------
    _loop --put/put_many--> ray_batches: outbox ==poll reply (object ref, ray.wait)==> pump thread
                            ray_queue:   ray.util.queue.Queue.put ==> queue actor ==> pump thread
                                                                           |
                                                         local buffer --> ConsumerEnd.get_many --> chief

* ``ray_batches``: each worker actor keeps an outbox; the driver's pump thread keeps one ``poll`` call in
  flight per actor and collects the replies with ``ray.wait``. A reply carries everything the outbox held
  (a batch of items as one object ref) plus the actor's counters, so the batch size adapts to the rate by
  itself: the fastest Ray path.
* ``ray_queue``: every ``put`` is one ``ray.util.queue.Queue.put``, a round trip to the queue actor, so
  one item at a time it moves a few hundred items/s; ``put_many`` (``workers.forward_batch`` > 1) sends
  the batch as one queue entry. ``QueueSettings.maxsize`` bounds the Ray queue in entries (for direct use
  of the interface; in a run the framework keeps ``queue.maxsize`` itself, as for every design).

Both designs run only under ``backend=ray``: the producer ends are bound to their actor
(``bind``) inside the actor, and the chief's end is the pump's buffer
(``framework.engine.backends.ray_backend``). Every queue entry and poll reply carries the actor's
counters, so the driver never sees an item before it sees it counted.
"""

from __future__ import annotations

import collections
import queue
import threading
import time
from collections.abc import Sequence
from typing import Any

from framework.queues.base import ConsumerEnd, ProducerEnd, QueueDesign, QueueSettings

INSTALL_HINT = "pip install 'chiefbench[ray]'"


class RayBatchesProducer(ProducerEnd):
    """Appends to the actor's outbox; the actor's ``poll`` hands the outbox to the driver."""

    def __init__(self) -> None:
        self._outbox: Any = None

    def bind(self, actor_state: Any) -> None:
        self._outbox = actor_state.outbox

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        self._outbox.append([item])

    def put_many(self, items: Sequence[Any], block: bool = True, timeout: float | None = None) -> None:
        if items:
            self._outbox.append(list(items))


class RayQueueProducer(ProducerEnd):
    """One ``ray.util.queue.Queue.put`` per put or put_many: ``(worker, counters, [messages])``."""

    def __init__(self, q: Any) -> None:
        self._q = q
        self._snapshot: Any = None

    def bind(self, actor_state: Any) -> None:
        self._snapshot = actor_state.snapshot

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        self._q.put((*self._snapshot(), [item]), block, timeout)

    def put_many(self, items: Sequence[Any], block: bool = True, timeout: float | None = None) -> None:
        if items:
            self._q.put((*self._snapshot(), list(items)), block, timeout)


class Outbox:
    """An actor's outbox: lists of messages appended by the worker thread, taken whole by ``poll``."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._lists: list[list] = []

    def append(self, messages: list) -> None:
        with self._cond:
            self._lists.append(messages)
            self._cond.notify()

    def take(self, wait_s: float) -> list:
        """Everything queued, waiting up to ``wait_s`` for the first message."""
        with self._cond:
            if not self._lists and wait_s > 0:
                self._cond.wait(wait_s)
            lists, self._lists = self._lists, []
        return [m for messages in lists for m in messages]

    def wake(self) -> None:
        with self._cond:
            self._cond.notify_all()


class BufferConsumer(ConsumerEnd):
    """The chief's end: a local buffer that the driver's pump thread fills."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._buffer: collections.deque = collections.deque()

    def deliver(self, messages: list) -> None:
        if messages:
            with self._cond:
                self._buffer.extend(messages)
                self._cond.notify()

    def get(self, block: bool = True, timeout: float | None = None) -> Any:
        return self.get_many(1, block, timeout)[0]

    def get_many(self, max_items: int, block: bool = True, timeout: float | None = None) -> list[Any]:
        if max_items < 1:
            raise ValueError(f"max_items must be >= 1, got {max_items}")
        with self._cond:
            if not self._buffer and block:
                deadline = None if timeout is None else time.monotonic() + timeout
                while not self._buffer:
                    remaining = None if deadline is None else deadline - time.monotonic()
                    if remaining is not None and remaining <= 0:
                        break
                    self._cond.wait(remaining)
            if not self._buffer:
                raise queue.Empty
            n = min(max_items, len(self._buffer))
            return [self._buffer.popleft() for _ in range(n)]


class _RayDesign(QueueDesign):
    """Shared by both Ray designs: the chief's end is the pump's buffer of the run's Ray backend."""

    backend = "ray"
    requires = ("ray",)
    install_hint = INSTALL_HINT

    def __init__(self, settings: QueueSettings, n_producers: int, mp_context: Any) -> None:
        super().__init__(settings, n_producers, mp_context)
        if not hasattr(mp_context, "pump"):
            raise TypeError(f"queue={settings.name} runs only under backend=ray (it needs the run's Ray backend), "
                            f"not with a multiprocessing context")
        self._consumer = BufferConsumer()
        mp_context.pump.consumer = self._consumer

    def consumer(self) -> ConsumerEnd:
        return self._consumer


class RayBatchesDesign(_RayDesign):
    """Actors return batches of items as object refs; the driver collects them with ``ray.wait``."""

    name = "ray_batches"

    def producer(self, worker_id: int) -> ProducerEnd:
        return RayBatchesProducer()


class RayQueueDesign(_RayDesign):
    """``ray.util.queue.Queue`` (an asyncio queue in its own actor); ``maxsize`` bounds it in entries."""

    name = "ray_queue"
    supports_maxsize = True

    def __init__(self, settings: QueueSettings, n_producers: int, mp_context: Any) -> None:
        super().__init__(settings, n_producers, mp_context)
        from ray.util.queue import Queue

        # The queue actor takes no CPU of its own, so it never competes with the worker actors.
        self._q = Queue(maxsize=settings.maxsize, actor_options={"num_cpus": 0})
        mp_context.pump.ray_queue = self._q
        self._closed = False

    def producer(self, worker_id: int) -> ProducerEnd:
        return RayQueueProducer(self._q)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self.mp_context.pump.stop()  # nothing may read the queue while it goes
            self._q.shutdown(force=True)
