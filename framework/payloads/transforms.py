"""What a worker applies to an item between its local queue and the global queue."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np


def make_transform(transform: Any) -> Callable[[Any], Any] | None:
    """The per-item function, or None for the identity (so the hot path skips the call)."""
    if transform.name == "none":
        return None
    if transform.name == "add":
        addend = transform.value

        def add(item: Any) -> Any:
            if type(item) is np.ndarray:
                # In place: the array belongs to this item alone, and a copy would double the cost.
                np.add(item, addend, out=item, casting="unsafe")
                return item
            return item + addend

        return add
    raise ValueError(f"unknown transform {transform.name!r}")
