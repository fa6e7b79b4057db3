"""The built-in designs by name: the options of ``conf/queue/`` and the classes their ``_target_`` names.

    chiefbench --designs       each built-in design, "available" or how to install it
"""

from __future__ import annotations

from framework.config.hydra import builtin_designs
from framework.errors import DesignUnavailableError, UnknownDesignError
from framework.plugins import locate
from framework.queues.base import QueueDesign, design_class


def design_named(name: str) -> type[QueueDesign]:
    """The class of the built-in design ``name`` (``queue=<name>``)."""
    known = builtin_designs()
    if name not in known:
        raise UnknownDesignError(
            f"queue={name!r} is not a known queue design. Known designs: {', '.join(sorted(known))}. Fix: pick one "
            f"of them, e.g. `queue=mp_queue`, or name your own class with `queue._target_=my_pkg.MyDesign`.")
    return design_class(known[name])


def _backend_of(target: str) -> str | None:
    try:
        return design_class(target).backend
    except DesignUnavailableError:
        # Not installed: its module still says where it runs (the extra is imported lazily).
        return locate(target).backend


def designs(backend: str = "local") -> list[str]:
    """The built-in designs that run on ``backend`` (installed or not), sorted."""
    return sorted(name for name, target in builtin_designs().items() if _backend_of(target) == backend)


def availability() -> dict[str, str]:
    """Each built-in design -> "available" or the reason it is not (with the fix)."""
    status = {}
    for name in sorted(builtin_designs()):
        try:
            design_named(name)
            status[name] = "available"
        except DesignUnavailableError as exc:
            status[name] = str(exc)
    return status
