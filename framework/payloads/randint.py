"""``payload=randint``: a random integer from [low, high] per item, as the original program drew."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import numpy as np

from framework.config.rules import require
from framework.config.schema import RandintPayload
from framework.payloads.base import PayloadKind

DRAW_BLOCK_ITEMS = 4096
"""Draws are taken from the generator in blocks: one numpy call per block, not per item."""
MAX_EXACT_DRAW = 2**53
"""Draws stay within +-2**53 so that float64 records them exactly."""


def draws(rng: np.random.Generator, low: int, high: int) -> Callable[[], int]:
    """The next integer of [low, high] per call, drawn from ``rng`` in blocks."""
    blocks = iter(lambda: rng.integers(low, high + 1, size=DRAW_BLOCK_ITEMS).tolist(), None)
    return itertools.chain.from_iterable(blocks).__next__


class DrawBlocks:
    """The same stream as ``draws`` (the generator is asked for the same blocks, in the same order),
    handed out ``k`` at a time as one int64 array: ``block(k)``."""

    def __init__(self, rng: np.random.Generator, low: int, high: int) -> None:
        self._rng, self._low, self._high = rng, low, high
        self._buffer = np.empty(0, np.int64)
        self._at = 0

    def __call__(self, k: int) -> np.ndarray:
        parts = []
        while k:
            if self._at == len(self._buffer):
                self._buffer, self._at = self._rng.integers(self._low, self._high + 1, size=DRAW_BLOCK_ITEMS), 0
            take = min(k, len(self._buffer) - self._at)
            parts.append(self._buffer[self._at: self._at + take])
            self._at += take
            k -= take
        return parts[0] if len(parts) == 1 else np.concatenate(parts)


def check_draw_bounds(p: Any) -> None:
    """The rules of ``payload.low`` and ``payload.high`` (shared by randint and array)."""
    require(p.low <= p.high, "payload.low", p.low, f"must not exceed payload.high ({p.high})",
            "swap them, e.g. `payload.low=1 payload.high=3`")
    require(abs(p.low) <= MAX_EXACT_DRAW and abs(p.high) <= MAX_EXACT_DRAW, "payload.high", p.high,
            "draws must stay within +-2**53 so that they are recorded exactly as float64", "use smaller bounds")


class Randint(PayloadKind):
    """One integer per item; batches travel as one float64 column."""

    name = "randint"
    schema = RandintPayload

    def make_source(self, payload: Any, rng: np.random.Generator) -> Callable[[], Any]:
        return draws(rng, payload.low, payload.high)

    def make_block_source(self, payload: Any, rng: np.random.Generator) -> Callable[[int], np.ndarray]:
        return DrawBlocks(rng, payload.low, payload.high)

    def scalar(self, payload: Any) -> bool:
        return True

    def check(self, spec: Any) -> None:
        check_draw_bounds(spec.payload)
