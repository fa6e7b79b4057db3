"""The queue-design interface: one way to move items from N workers to one chief.

    worker 0 --ProducerEnd.put / put_many--\\
    worker 1 --ProducerEnd.put / put_many---+--> [ design ] --ConsumerEnd.get / get_many--> chief
    worker i --ProducerEnd.put / put_many--/

A design knows nothing of the chief, the workers or the recorder: it moves opaque
Python objects. It feels like the standard library's queues: ``put``/``get`` take
``block`` and ``timeout`` and raise ``queue.Full`` / ``queue.Empty``; ``put_many`` and
``get_many`` move many items per call (designs without native batching send one
list as one message, which is itself the cheapest emulation).

Life cycle, all driven by the chief process:

1. ``design = DesignClass(settings, n_producers, mp_context)`` creates the OS
   resources (queues, pipes, managers, segments).
2. ``design.producer(i)`` is handed to worker process ``i`` as a start argument, so
   it must be picklable under the spawn and forkserver start methods.
3. ``design.producers_started()`` runs once every worker process has started: the
   chief drops its own copies of producer-side handles (so a dead worker shows up
   as end-of-file instead of a silent hang). ``design.respawn_producer(i)`` hands a
   restarted worker its end.
4. ``design.consumer()`` is used by the chief alone.
5. ``design.close()`` releases everything; it is idempotent and is called from a
   ``finally`` block, also after a crash.
"""

from __future__ import annotations

import importlib
import importlib.util
import queue
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

Full = queue.Full
Empty = queue.Empty

DEFAULT_BUFFER_BYTES = 16 << 20
"""faster_fifo's buffer when ``queue.buffer_bytes`` is null: at least 16 MiB (room for a batch of 1 MiB arrays)."""


@dataclass(frozen=True)
class QueueSettings:
    """The resolved ``queue`` config group, as plain values a worker can unpickle."""

    name: str
    """Registered design name (``mp_queue``, ``pipe``...)."""
    maxsize: int = 0
    """Bound in items; 0 means unbounded (only for designs with ``supports_maxsize``)."""
    buffer_bytes: int | None = None
    """Size of a byte-bounded design's buffer (shm_ring: per worker; faster_fifo: its circular buffer);
    None = sized from ``message_bytes_hint``; other designs ignore it."""
    message_bytes_hint: int = 0
    """The largest message the run expects (items x payload bytes per forward), for sizing buffers."""


class ProducerEnd(ABC):
    """The worker's end of a design: puts items."""

    @abstractmethod
    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        """Put one item; raise ``queue.Full`` if the design is bounded and stays full."""

    def put_many(self, items: Sequence[Any], block: bool = True, timeout: float | None = None) -> None:
        """Put several items, in order, as one message where the design allows it."""
        for item in items:
            self.put(item, block, timeout)

    def close(self) -> None:
        """Flush and release this end; the chief drains while a worker closes."""


class ConsumerEnd(ABC):
    """The chief's end of a design: gets items, oldest first per producer."""

    @abstractmethod
    def get(self, block: bool = True, timeout: float | None = None) -> Any:
        """Get one item; raise ``queue.Empty`` when none arrives in time."""

    def get_many(self, max_items: int, block: bool = True, timeout: float | None = None) -> list[Any]:
        """Wait (per ``block``/``timeout``) for at least one item, then return up to
        ``max_items`` that are available without further waiting."""
        items = [self.get(block, timeout)]
        while len(items) < max_items:
            try:
                items.append(self.get(False))
            except queue.Empty:
                break
        return items

    def release(self) -> None:
        """The caller no longer refers to anything returned so far (designs that lend views
        into their buffers reuse the room now; the others have nothing to do)."""

    def close(self) -> None:
        """Release this end."""

    def finish(self, timeout_s: float) -> None:
        """Called once the chief has every end-of-stream and reads no more, before it joins the workers.

        A design whose producers wait for the consumer's word before they may close (``zmq``) answers
        them here, for at most ``timeout_s``; the default does nothing."""


class QueueDesign(ABC):
    """Owns the OS resources of one design for one run; see the module docstring."""

    name: ClassVar[str]
    requires: ClassVar[tuple[str, ...]] = ()
    """Modules that must import for the design to be available (optional extras)."""
    install_hint: ClassVar[str | None] = None
    """The command that installs what ``requires`` names."""
    supports_maxsize: ClassVar[bool] = False
    """Whether ``QueueSettings.maxsize`` bounds the design."""
    raw_throughput: ClassVar[Any] = None
    """The raw-primitive reference: a staticmethod ``(item, n_producers, duration_s, batch) -> items/s`` that
    drives the bare primitive from ``n_producers`` forked processes with no chiefbench code in the loop
    (see ``framework.queues.rawloop``); None where a design has none."""

    def __init__(self, settings: QueueSettings, n_producers: int, mp_context: Any) -> None:
        self.settings = settings
        self.n_producers = n_producers
        self.mp_context = mp_context

    @abstractmethod
    def producer(self, worker_id: int) -> ProducerEnd:
        """The picklable end handed to worker ``worker_id``."""

    @abstractmethod
    def consumer(self) -> ConsumerEnd:
        """The chief's end."""

    def producers_started(self) -> None:
        """Called once all worker processes have started, and again after each restart."""

    def respawn_producer(self, worker_id: int) -> ProducerEnd:
        """A producer end for a restarted worker ``worker_id`` (its old process is dead).

        Shared designs hand out the same end again; a design with one channel per worker
        makes a new one (the old channel may hold a half-written message)."""
        return self.producer(worker_id)

    def close(self) -> None:
        """Release every OS resource; idempotent."""


# name -> "module:Class". Modules are imported only when a design is used, so an
# optional extra that is not installed costs nothing until somebody asks for it.
REGISTRY: dict[str, str] = {
    "mp_queue": "framework.queues.stdlib:MpQueueDesign",
    "simple_queue": "framework.queues.stdlib:SimpleQueueDesign",
    "pipe": "framework.queues.stdlib:PipeDesign",
    "manager_queue": "framework.queues.stdlib:ManagerQueueDesign",
    "shm_ring": "framework.queues.shm_ring:ShmRingDesign",
    "faster_fifo": "framework.queues.faster_fifo_design:FasterFifoDesign",
    "zmq": "framework.queues.zmq_design:ZmqDesign",
    "ray_batches": "framework.queues.ray_designs:RayBatchesDesign",
    "ray_queue": "framework.queues.ray_designs:RayQueueDesign",
}

DESIGN_BACKEND: dict[str, str] = {"ray_batches": "ray", "ray_queue": "ray"}
"""The backend a design runs on, where it is not ``local`` (Ray designs move items between Ray actors)."""


def designs(backend: str = "local") -> list[str]:
    """The registered designs that run on ``backend``, sorted."""
    return sorted(name for name in REGISTRY if DESIGN_BACKEND.get(name, "local") == backend)


class UnknownDesignError(ValueError):
    """A queue name that is not registered."""


class DesignUnavailableError(ImportError):
    """A registered design whose optional extra is not installed."""


def design_class(name: str) -> type[QueueDesign]:
    """Import and return the class registered as ``name``."""
    try:
        target = REGISTRY[name]
    except KeyError:
        raise UnknownDesignError(
            f"queue={name!r} is not a known queue design. Known designs: "
            f"{', '.join(sorted(REGISTRY))}. Fix: pick one of them, e.g. `queue=mp_queue`."
        ) from None
    module_name, class_name = target.split(":")
    cls: type[QueueDesign] = getattr(importlib.import_module(module_name), class_name)
    missing = [m for m in cls.requires if importlib.util.find_spec(m) is None]
    if missing:
        raise DesignUnavailableError(
            f"queue={name!r} needs {', '.join(missing)}, which is not installed. "
            f"Fix: `{cls.install_hint or 'pip install ' + ' '.join(missing)}`, or pick another design."
        )
    return cls


def availability() -> dict[str, str]:
    """Each registered design -> "available" or the reason it is not (with the fix)."""
    status = {}
    for name in sorted(REGISTRY):
        try:
            design_class(name)
            status[name] = "available"
        except DesignUnavailableError as exc:
            status[name] = str(exc)
    return status
