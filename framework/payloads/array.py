"""``payload=array``: a numpy array per item, filled with one randint draw (the recorded value)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from framework.config.rules import MAX_ITEM_BYTES, require
from framework.config.schema import ArrayPayload
from framework.errors import ConfigError
from framework.payloads.base import PayloadKind
from framework.payloads.randint import DrawBlocks, check_draw_bounds, draws


def _first(item: Any) -> Any:
    # Rows of dropped items carry NaN instead of the array.
    return item.flat[0] if type(item) is np.ndarray else item


def _first_column(values: np.ndarray) -> np.ndarray:
    # A column block of n items, shape (n, *payload.shape): each item's first element, in one numpy call.
    return values.reshape(len(values), -1)[:, 0]


class Array(PayloadKind):
    """Arrays of ``payload.shape`` and ``payload.dtype``, for payload-size studies."""

    name = "array"
    schema = ArrayPayload

    def make_source(self, payload: Any, rng: np.random.Generator) -> Callable[[], Any]:
        shape, dtype = tuple(payload.shape), np.dtype(payload.dtype)
        draw = draws(rng, payload.low, payload.high)
        return lambda: np.full(shape, draw(), dtype)

    def make_block_source(self, payload: Any, rng: np.random.Generator) -> Callable[[int], np.ndarray]:
        shape, dtype = tuple(payload.shape), np.dtype(payload.dtype)
        block = DrawBlocks(rng, payload.low, payload.high)
        spread = (slice(None),) + (None,) * len(shape)  # one draw per item, broadcast over its elements

        def arrays(k: int) -> np.ndarray:
            # A read-only broadcast view (no bytes of its own): the arrays are written once, where they go.
            # shm_ring writes them straight into its ring; the worker makes them contiguous for other designs.
            return np.broadcast_to(block(k).astype(dtype)[spread], (k, *shape))

        return arrays

    def value_reader(self, payload: Any) -> Callable[[Any], float]:
        return _first

    def column_reader(self, payload: Any) -> Callable[[np.ndarray], np.ndarray]:
        return _first_column

    def item_nbytes(self, payload: Any) -> int:
        return math.prod(payload.shape) * np.dtype(payload.dtype).itemsize

    def check(self, spec: Any) -> None:
        p = spec.payload
        check_draw_bounds(p)
        require(len(p.shape) >= 1 and all(isinstance(d, int) and d >= 1 for d in p.shape), "payload.shape",
                p.shape, "must be a non-empty list of positive integers", "e.g. `payload.shape=[1024]`")
        try:
            dtype = np.dtype(p.dtype)
        except TypeError:
            raise ConfigError("payload.dtype", p.dtype, "is not a numpy dtype name",
                              "e.g. `payload.dtype=float64` or `payload.dtype=uint8`") from None
        require(dtype.kind in "iuf", "payload.dtype", p.dtype, "must be an integer or floating dtype",
                "e.g. `payload.dtype=float32`")
        nbytes = self.item_nbytes(p)
        require(nbytes <= MAX_ITEM_BYTES, "payload.shape", p.shape,
                f"makes {nbytes:,} bytes per item, over the {MAX_ITEM_BYTES:,}-byte limit", "use a smaller shape")
        t = spec.transform
        require(not (t.name == "add" and dtype.kind in "iu" and float(t.value) != int(t.value)), "transform.value",
                t.value, f"a non-integer addend would be truncated to {int(t.value)} in a {p.dtype} array",
                "use a floating dtype (`payload.dtype=float64`), an integer addend, or `transform=none`")
