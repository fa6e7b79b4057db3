"""What workers generate: a per-worker source of items drawn from a seeded stream.

A payload turns a worker's ``numpy.random.Generator`` into a zero-argument callable
that returns the next item, and tells the recorder how to reduce an item to the one
number stored in ``items.parquet`` (the drawn value, after the transform; for
``rollout``, the fragment's reward sum). ``payload.work_us`` wraps any source in a busy
loop that burns that much CPU per item (an expensive environment step); at 0 the source
is returned unwrapped, so the hot path pays nothing.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np

DRAW_BLOCK_ITEMS = 4096
"""Draws are taken from the generator in blocks: one numpy call per block, not per item."""

SCALAR_NBYTES = 8
"""Bytes counted for a scalar item (a 64-bit number) in MB/s figures."""


def _draws(rng: np.random.Generator, low: int, high: int) -> Callable[[], int]:
    blocks = iter(lambda: rng.integers(low, high + 1, size=DRAW_BLOCK_ITEMS).tolist(), None)
    return itertools.chain.from_iterable(blocks).__next__


def _base_source(payload: Any, rng: np.random.Generator) -> Callable[[], Any]:
    if payload.name == "rollout":
        from framework.rollout import make_rollout_source

        return make_rollout_source(payload, rng)
    draw = _draws(rng, payload.low, payload.high)
    if payload.name == "randint":
        return draw
    if payload.name == "array":
        shape, dtype = tuple(payload.shape), np.dtype(payload.dtype)
        return lambda: np.full(shape, draw(), dtype)
    raise ValueError(f"unknown payload {payload.name!r}")


def scalar_payload(payload: Any) -> bool:
    """Whether an item is one number (batches of them travel as one float64 column)."""
    return payload.name == "randint"


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
    """The callable a worker calls once per item."""
    source = _base_source(payload, rng)
    work_us = getattr(payload, "work_us", 0)
    return with_cpu_cost(source, work_us) if work_us else source


def value_reader(payload: Any) -> Callable[[Any], float] | None:
    """How the recorder reduces an item to its recorded value; None means the item is the value."""
    if payload.name == "array":
        # Rows of dropped items carry NaN instead of the array.
        return lambda item: item.flat[0] if type(item) is np.ndarray else item
    if payload.name == "rollout":
        from framework.rollout import fragment_value

        return fragment_value
    return None


def item_nbytes(payload: Any) -> int:
    """Bytes of data one item carries (used for MB/s)."""
    if payload.name == "array":
        return math.prod(payload.shape) * np.dtype(payload.dtype).itemsize
    if payload.name == "rollout":
        from framework.rollout import fragment_nbytes

        return fragment_nbytes(payload)
    return SCALAR_NBYTES


def item_units(payload: Any) -> tuple[str, int] | None:
    """What one item counts in the payload's own unit, for figures in that unit: ``("transitions",
    fragment_length)`` for ``rollout`` (the summary then reports ``transitions_per_s``); None = items only."""
    if payload.name == "rollout":
        return "transitions", payload.fragment_length
    return None
