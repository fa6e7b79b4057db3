"""What workers generate: a per-worker source of items drawn from a seeded stream.

A payload turns a worker's ``numpy.random.Generator`` into a zero-argument callable
that returns the next item, and tells the recorder how to reduce an item to the one
number stored in ``items.parquet`` (the drawn value, after the transform).
"""

from __future__ import annotations

import itertools
import math
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


def make_source(payload: Any, rng: np.random.Generator) -> Callable[[], Any]:
    """The callable a worker calls once per item."""
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


def value_reader(payload: Any) -> Callable[[Any], float] | None:
    """How the recorder reduces an item to its recorded value; None means the item is the value."""
    if payload.name == "array":
        # Rows of dropped items carry NaN instead of the array.
        return lambda item: item.flat[0] if type(item) is np.ndarray else item
    return None


def item_nbytes(payload: Any) -> int:
    """Bytes of data one item carries (used for MB/s)."""
    if payload.name == "array":
        return math.prod(payload.shape) * np.dtype(payload.dtype).itemsize
    return SCALAR_NBYTES
