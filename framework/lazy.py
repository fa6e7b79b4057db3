"""A module imported on first use: what a run's start-up does not need, it does not pay for.

    pd = lazy_module("pandas")      # at the top of a module; pandas is imported at the first pd.<name>

pandas alone costs a chief or a worker a third to half a second of start-up; a single run reads no
table, so the reading side holds pandas through this proxy.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any


class _LazyModule(ModuleType):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.__dict__["_target"] = None

    def __getattr__(self, attr: str) -> Any:
        target = self.__dict__["_target"]
        if target is None:
            target = self.__dict__["_target"] = importlib.import_module(self.__name__)
        return getattr(target, attr)


def lazy_module(name: str) -> Any:
    """A stand-in for ``import name`` that imports the module at its first attribute access."""
    return _LazyModule(name)
