"""Ctrl-C and SIGTERM: recorded when they arrive, raised by the chief at a safe point; workers ignore them."""

from __future__ import annotations

import signal
import threading
from typing import Any

from framework.errors import RunInterrupted


class Interrupts:
    """Ctrl-C and SIGTERM, recorded by the handler and raised by the chief at a safe point.

    Raising from the handler itself could land in the middle of reading a message (a
    pipe left holding half a pickle) or between taking items and recording them.
    """

    def __init__(self) -> None:
        self.count = 0
        self.signum = 0

    def __call__(self, signum: int, frame: Any) -> None:
        self.count += 1
        self.signum = signum

    def check(self, at_least: int = 1) -> None:
        """Raise ``RunInterrupted`` once ``at_least`` interrupts have arrived."""
        if self.count >= at_least:
            raise RunInterrupted(self.signum)


def in_main_thread() -> bool:
    """Signal handlers can be set from the main thread only."""
    return threading.current_thread() is threading.main_thread()


def start_ignoring_signals(process: Any) -> None:
    """Start a worker that ignores Ctrl-C and SIGTERM from its first instruction on.

    A terminal's Ctrl-C (or a group-wide SIGTERM) reaches every process of the group.
    A spawned interpreter that starts with the signal ignored keeps ignoring it, so no
    worker dies mid-stream or prints a traceback of its own, even while importing: the
    chief alone stops the run (and kills a straggler with SIGKILL).
    """
    if not in_main_thread():
        process.start()
        return
    previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        process.start()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
