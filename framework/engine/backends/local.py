"""``backend=local``: worker processes on this machine, started with ``run.start_method``."""

from __future__ import annotations

import multiprocessing
from typing import Any

from framework.engine.backends.base import Backend


class LocalBackend(Backend):
    """Processes of a ``multiprocessing`` context (fork, spawn or forkserver)."""

    name = "local"

    def __init__(self, spec: Any) -> None:
        self.design_context = multiprocessing.get_context(spec.run.start_method)

    def control_block(self, n_slots: int) -> Any:
        return self.design_context.RawArray("q", n_slots)

    def side_channel(self) -> Any:
        return self.design_context.SimpleQueue()

    def process(self, target: Any, args: tuple, name: str) -> Any:
        return self.design_context.Process(target=target, args=args, name=name)
