"""The small vocabulary every config check is written in (used by the core checks and by each design's
and payload's own ``check``)."""

from __future__ import annotations

import math
from typing import Any

from framework.errors import ConfigError

MAX_ITEM_BYTES = 256 * 1024 * 1024
"""Bytes of one item at most."""


def require(ok: bool, key: str, value: Any, rule: str, fix: str) -> None:
    """Raise ``ConfigError(key, value, rule, fix)`` unless ``ok``."""
    if not ok:
        raise ConfigError(key, value, rule, fix)


def finite(x: Any) -> bool:
    """A real number (not a bool), neither infinite nor NaN."""
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)
