"""Finding the code a config names: ``_target_: module.Name`` (Hydra's idiom), built-in or a user's own.

    queue._target_=my_pkg.designs.MyDesign      a class implementing framework.queues.base.QueueDesign
    payload._target_=my_pkg.make_source         a PayloadKind class, or a make_source(payload, rng) function
"""

from __future__ import annotations

import importlib
from functools import lru_cache
from typing import Any
from framework.errors import TargetNotFound


@lru_cache(maxsize=None)
def locate(target: str) -> Any:
    """The object ``target`` names: ``package.module.Name`` or ``package.module:Name``.

    The longest importable module prefix is imported, the rest are attributes of it.
    """
    if not isinstance(target, str) or not target.strip():
        raise TargetNotFound(f"{target!r} is not a dotted path such as my_pkg.module.Name")
    module_path, _, attrs = target.partition(":")
    parts = module_path.split(".")
    if attrs:
        module, rest = importlib.import_module(module_path), attrs.split(".")
    else:
        module, rest, error = None, [], None
        for cut in range(len(parts), 0, -1):
            try:
                module = importlib.import_module(".".join(parts[:cut]))
            except ModuleNotFoundError as exc:
                # Only "this prefix is not a module" means try a shorter one; a module that fails to
                # import because *it* imports something missing is an error of its own.
                if exc.name is None or not ".".join(parts[:cut]).startswith(exc.name):
                    raise
                error = exc
                continue
            rest = parts[cut:]
            break
        if module is None:
            raise TargetNotFound(f"no module of {target!r} can be imported ({error})")
    obj = module
    for name in rest:
        try:
            obj = getattr(obj, name)
        except AttributeError:
            raise TargetNotFound(f"{module.__name__!r} has no attribute {name!r} (looking up {target!r})") from None
    return obj


def target_name(obj: Any) -> str:
    """``module.Name`` of a class or function (its label in results when it gives no ``name``)."""
    return f"{obj.__module__}.{obj.__qualname__}"
