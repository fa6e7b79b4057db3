"""Where workers run: ``backend=local`` (processes on this machine) or ``backend=ray`` (Ray actors).

The chief (``framework.system``) is the same code for both. It is handed a *run context*:
for ``local`` the ``multiprocessing`` context of ``run.start_method``; for ``ray`` a
``RayContext`` (``framework.backends.ray_backend``) that looks like one to the chief (its
``Process`` is a Ray actor, its ``RawArray`` a driver-side mirror of the control block)
and brings its own chief class and ``close``. Ray is imported only when ``backend=ray``.
"""

from __future__ import annotations

import multiprocessing
from typing import Any


class BackendError(RuntimeError):
    """A backend that cannot run here (Ray not reachable, never enough CPUs); the message says the fix."""


def run_context(spec: Any) -> Any:
    """The context one run's chief starts its workers with (Ray is started or attached here)."""
    if spec.backend.name == "ray":
        from framework.backends.ray_backend import RayContext

        return RayContext(spec)
    return multiprocessing.get_context(spec.run.start_method)
