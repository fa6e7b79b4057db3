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

from framework.errors import DesignUnavailableError, UnknownDesignError
from framework.plugins import locate

Full = queue.Full
Empty = queue.Empty

DEFAULT_BUFFER_BYTES = 16 << 20
"""faster_fifo's buffer when ``queue.buffer_bytes`` is null: at least 16 MiB (room for a batch of 1 MiB arrays)."""


@dataclass(frozen=True)
class QueueSettings:
    """The resolved ``queue`` config group, as plain values a worker can unpickle."""

    name: str
    """The design's label (``queue.name``: ``mp_queue``, ``pipe``...)."""
    maxsize: int = 0
    """Bound in items; 0 means unbounded (only for designs with ``supports_maxsize``)."""
    buffer_bytes: int | None = None
    """Size of a byte-bounded design's buffer (shm_ring: per worker; faster_fifo: its circular buffer);
    None = sized from ``message_bytes_hint``; other designs ignore it."""
    message_bytes_hint: int = 0
    """The largest message the run expects (items x payload bytes per forward), for sizing buffers."""


@dataclass(frozen=True)
class Sizes:
    """What a design's ``check`` may need to know of a run, computed once by the config checks."""

    item_bytes: int
    """Payload bytes of one item."""
    message_bytes: int
    """The largest message a worker sends (workers.forward_batch items, with framing)."""
    bound_items: int | None
    """The global queue's bound in items (queue.maxsize / queue.max_bytes); None = unbounded."""


class ProducerEnd(ABC):
    """The worker's end of a design: puts items."""

    in_place: bool = False
    """True when the end also offers ``arrays_layout(columns)``, ``reserve_arrays(layout)`` and
    ``commit_arrays(layout, worker, seq, created_ns, forwarded_ns)``: a worker then writes an item's
    arrays straight into the design's buffer (shm_ring does; see ``framework.engine.worker``)."""

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

    lend_views: bool = False
    """The chief sets this True when it reduces every payload before its next ``release``: a design may then
    return views into its own buffer instead of copies (shm_ring does). Designs that always copy ignore it."""
    accept_chunks: bool = False
    """The chief sets this True: a design may then return a run of single-item messages of one worker, with
    consecutive seqs, as one ``protocol.Chunk`` with a forwarded stamp per item (shm_ring does)."""

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

    name: ClassVar[str | None] = None
    """Its label in results (``queue.name``); None = ``module.Class``."""
    backend: ClassVar[str] = "local"
    writes_in_place: ClassVar[bool] = False
    """Its producer ends let a worker write an item's arrays straight into the design's buffer
    (``ProducerEnd.in_place``)."""
    """The backend whose workers it connects: ``local`` processes or ``ray`` actors."""
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

    @classmethod
    def check(cls, spec: Any, sizes: Sizes) -> None:
        """Raise ``framework.errors.ConfigError`` for a config this design cannot run (its own rules, e.g. a
        buffer too small for one message); called before anything starts. The default accepts everything."""

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


def design_class(target: str) -> type[QueueDesign]:
    """Import and return the design class ``target`` names (``module.Class``), checking its extras."""
    try:
        cls = locate(target)
    except ImportError as exc:
        raise UnknownDesignError(f"{target!r} names no importable design: {exc}. Fix: pick a design, e.g. "
                                 f"`queue=mp_queue` (see `chiefbench --designs`), or make {target!r} importable.")
    if not (isinstance(cls, type) and issubclass(cls, QueueDesign)):
        raise UnknownDesignError(f"{target!r} is not a QueueDesign subclass (framework.queues.base). Fix: point "
                                 f"queue._target_ at a class implementing that interface.")
    missing = [m for m in cls.requires if importlib.util.find_spec(m) is None]
    if missing:
        raise DesignUnavailableError(
            f"queue={cls.name or target} needs {', '.join(missing)}, which is not installed. "
            f"Fix: `{cls.install_hint or 'pip install ' + ' '.join(missing)}`, or pick another design."
        )
    return cls
