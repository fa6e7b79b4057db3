"""What workers generate: a payload *kind* turns a worker's seeded stream into items.

    payload config (_target_ = a PayloadKind class, or a make_source function)
        |
        v
    PayloadKind: make_source(payload, rng) -> source()   one item per call, in the worker
                 value_reader(payload)                  item -> the number items.parquet records
                 column_reader(payload)                 (n, *shape) block of items -> n numbers
                 item_nbytes(payload)                   bytes per item (MB/s, buffer sizes, bounds)
                 units(payload)                         ("transitions", 64): figures in the payload's unit
                 check(spec)                            its own config rules (ConfigError)

The built-in kinds (``randint``, ``array``, ``rollout``) are found the same way as yours: the
``_target_`` of ``conf/payload/<name>.yaml``. Bring your own with ``payload._target_=my_pkg.MyKind``
(a ``PayloadKind`` subclass) or ``payload._target_=my_pkg.make_source``: a function
``make_source(payload, rng) -> source`` that may carry ``value_of(item) -> float`` and
``item_nbytes(payload) -> int`` as attributes of itself.

``payload.work_us`` wraps any source in a busy loop that burns that much CPU per item (an expensive
environment step); at 0 the source is returned unwrapped, so the hot path pays nothing.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from functools import lru_cache
from typing import Any, ClassVar

import numpy as np

from framework.plugins import locate, target_name

SCALAR_NBYTES = 8
"""Bytes counted for a scalar item (a 64-bit number) in MB/s figures."""


class PayloadKind:
    """A kind of payload: everything the worker, the recorder and the checks need to know of it."""

    name: ClassVar[str | None] = None
    """Its label in results (``payload.name``); None = ``module.Class``."""
    schema: ClassVar[type | None] = None
    """The dataclass of its config keys (validated by Hydra/OmegaConf); None = any keys, kept as given."""

    def make_source(self, payload: Any, rng: np.random.Generator) -> Callable[[], Any]:
        """The zero-argument callable a worker calls once per item, drawing from ``rng`` only."""
        raise NotImplementedError

    def make_block_source(self, payload: Any, rng: np.random.Generator) -> Callable[[int], np.ndarray] | None:
        """The vectorised source a worker uses at ``workers.interval_s=0``: ``block(k)`` returns the next ``k``
        items of the very stream ``make_source`` would give (same seed, same values) as one array: k numbers,
        or k stacked arrays of shape (k, *shape), which may be a read-only view (a broadcast: the worker
        writes it out where it goes). None (the default) = items one call at a time."""
        return None

    def fills_in_place(self, payload: Any) -> bool:
        """Whether ``make_source`` returns a source that can also write an item into given arrays: a ``layout``
        attribute ((shape, dtype) per array) and ``fill(*arrays)`` (the rollout payload). A design that writes
        in place (shm_ring) then gets the item's arrays without any copy but the source's own writes."""
        return False

    def detail_readers(self, payload: Any) -> dict[str, Callable[[Any], int]]:
        """Integer columns recorded per item beside its value, name -> reader of an item's payload (the
        rollout payload: ``episode_ends``); the summary gives each one's sum over the window. None by default."""
        return {}

    def value_reader(self, payload: Any) -> Callable[[Any], float] | None:
        """How the recorder reduces an item to its recorded value; None = the item is the value (a number)."""
        return None

    def column_reader(self, payload: Any) -> Callable[[np.ndarray], np.ndarray] | None:
        """The vectorised ``value_reader``: a block of n array items stacked as one (n, *shape) array -> the n
        recorded values. None = the recorder applies ``value_reader`` to each row (a Python step per item)."""
        return None

    def item_nbytes(self, payload: Any) -> int:
        """Bytes of data one item carries."""
        return SCALAR_NBYTES

    def scalar(self, payload: Any) -> bool:
        """Whether an item is one number (batches of them travel as one float64 column)."""
        return False

    def units(self, payload: Any) -> tuple[str, int] | None:
        """``(unit, per item)`` when items count in a unit of their own (rollout: transitions); else None."""
        return None

    def check(self, spec: Any) -> None:
        """Raise ``ConfigError`` for a value of ``spec.payload`` that breaks a rule of this kind."""


class FunctionKind(PayloadKind):
    """A ``make_source(payload, rng)`` function as a payload kind (``payload._target_=my_pkg.make_source``)."""

    def __init__(self, function: Callable[[Any, np.random.Generator], Callable[[], Any]]) -> None:
        self.function = function
        self.name = getattr(function, "payload_name", None) or target_name(function)

    def make_source(self, payload: Any, rng: np.random.Generator) -> Callable[[], Any]:
        return self.function(payload, rng)

    def value_reader(self, payload: Any) -> Callable[[Any], float] | None:
        return getattr(self.function, "value_of", None) or _number_or_nan

    def item_nbytes(self, payload: Any) -> int:
        nbytes = getattr(self.function, "item_nbytes", None)
        return int(nbytes(payload)) if callable(nbytes) else SCALAR_NBYTES


def _number_or_nan(item: Any) -> float:
    """A plug-in's item recorded as itself when it is a number, else NaN (no value reader given)."""
    try:
        return float(item)
    except (TypeError, ValueError):
        return math.nan


@lru_cache(maxsize=64)
def kind_of_target(target: str) -> PayloadKind:
    """The payload kind a ``_target_`` names (an instance, made once per process)."""
    obj = locate(target)
    if isinstance(obj, type) and issubclass(obj, PayloadKind):
        return obj()
    if isinstance(obj, PayloadKind):
        return obj
    if callable(obj):
        return FunctionKind(obj)
    raise TypeError(f"{target!r} is neither a PayloadKind nor a make_source(payload, rng) function")


def payload_kind(payload: Any) -> PayloadKind:
    """The kind behind a resolved payload config (its ``_target_``)."""
    return kind_of_target(payload._target_)


def with_cpu_cost(source: Callable[[], Any], work_us: float) -> Callable[[], Any]:
    """``source`` that first burns ``work_us`` microseconds of CPU per call: a busy loop on the
    monotonic clock (not a sleep, which would free the core and model nothing)."""
    cost_ns = int(work_us * 1000)
    clock = time.monotonic_ns

    def costly() -> Any:
        end = clock() + cost_ns
        while clock() < end:
            pass
        return source()

    return costly


def make_source(payload: Any, rng: np.random.Generator) -> Callable[[], Any]:
    """The callable a worker calls once per item (with ``payload.work_us`` of CPU per call, if set)."""
    source = payload_kind(payload).make_source(payload, rng)
    work_us = getattr(payload, "work_us", 0)
    return with_cpu_cost(source, work_us) if work_us else source


def make_block_source(payload: Any, rng: np.random.Generator) -> Callable[[int], np.ndarray] | None:
    """The payload's block source (see ``PayloadKind.make_block_source``); None where it has none or where
    ``payload.work_us`` asks for a CPU cost per item."""
    if getattr(payload, "work_us", 0):
        return None
    return payload_kind(payload).make_block_source(payload, rng)


def fills_in_place(payload: Any) -> bool:
    """Whether the payload's source fills given arrays (``PayloadKind.fills_in_place``); never with
    ``payload.work_us`` (its CPU cost wraps the source)."""
    return not getattr(payload, "work_us", 0) and payload_kind(payload).fills_in_place(payload)


def detail_readers(payload: Any) -> dict[str, Callable[[Any], int]]:
    """The payload's detail columns (``PayloadKind.detail_readers``)."""
    return payload_kind(payload).detail_readers(payload)


def value_reader(payload: Any) -> Callable[[Any], float] | None:
    """How the recorder reduces an item to its recorded value; None means the item is the value."""
    return payload_kind(payload).value_reader(payload)


def column_reader(payload: Any) -> Callable[[np.ndarray], np.ndarray] | None:
    """How the recorder reduces a stacked block of array items to their values; None = row by row."""
    return payload_kind(payload).column_reader(payload)


def item_nbytes(payload: Any) -> int:
    """Bytes of data one item carries (used for MB/s)."""
    return payload_kind(payload).item_nbytes(payload)


def scalar_payload(payload: Any) -> bool:
    """Whether an item is one number (batches of them travel as one float64 column)."""
    return payload_kind(payload).scalar(payload)


def item_units(payload: Any) -> tuple[str, int] | None:
    """What one item counts in the payload's own unit: ``("transitions", fragment_length)`` for ``rollout``
    (the summary then reports ``transitions_per_s``); None = items only."""
    return payload_kind(payload).units(payload)
