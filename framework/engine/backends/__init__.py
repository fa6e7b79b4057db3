"""Where workers run: ``backend=local`` (processes on this machine) or ``backend=ray`` (Ray actors).

The chief (``framework.engine.chief``) is the same code for both: it is handed a ``Backend``
(``framework.engine.backends.base``) and calls its methods and hooks. Ray is imported only when
``backend=ray``.
"""

from __future__ import annotations

from typing import Any

from framework.engine.backends.base import Backend
from framework.engine.backends.local import LocalBackend


def open_backend(spec: Any) -> Backend:
    """The backend one run's chief starts its workers with (Ray is started or attached here)."""
    if spec.backend.name == "ray":
        from framework.engine.backends.ray_backend import RayBackend  # the ray extra

        return RayBackend(spec)
    return LocalBackend(spec)
