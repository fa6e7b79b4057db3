"""Two payloads of one's own: a ``make_source`` function, and a ``PayloadKind`` subclass with a rule of its own.

Items are float64 arrays of ``payload.size`` numbers: the first is ``payload.start`` plus the item's index in
its worker's stream (so a recorded value tells which item it was), the rest are draws from the worker's
generator. The recorded value of an item is its first number.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import numpy as np

from framework.errors import ConfigError
from framework.payloads.base import PayloadKind

DEFAULT_SIZE = 4
DEFAULT_START = 1000.0


def _size(payload: Any) -> int:
    return int(getattr(payload, "size", DEFAULT_SIZE))


def ticks(payload: Any, rng: np.random.Generator) -> Callable[[], np.ndarray]:
    """``make_source(payload, rng)``: item k of a worker is ``[start + k, draws...]``."""
    size, start = _size(payload), float(getattr(payload, "start", DEFAULT_START))
    counter = itertools.count()

    def source() -> np.ndarray:
        item = np.empty(size)
        item[0] = start + next(counter)
        item[1:] = rng.random(size - 1)
        return item

    return source


def _first(item: np.ndarray) -> float:
    return float(item[0])


ticks.value_of = _first
ticks.item_nbytes = lambda payload: 8 * _size(payload)
ticks.payload_name = "ticks"


class TickKind(PayloadKind):
    """The same items as a ``PayloadKind``, with its own rule: ``payload.size`` of at least 1."""

    name = "tick_kind"

    def make_source(self, payload: Any, rng: np.random.Generator) -> Callable[[], np.ndarray]:
        return ticks(payload, rng)

    def value_reader(self, payload: Any) -> Callable[[Any], float]:
        return _first

    def item_nbytes(self, payload: Any) -> int:
        return 8 * _size(payload)

    def check(self, spec: Any) -> None:
        size = getattr(spec.payload, "size", DEFAULT_SIZE)
        if not (isinstance(size, int) and size >= 1):
            raise ConfigError("payload.size", size, "must be a whole number of float64 values per item, at least 1",
                              "e.g. `payload.size=4`")
