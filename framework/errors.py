"""Every error chiefbench raises on purpose, in one place (this module imports nothing of the project).

Each message is one paragraph a user reads: what is wrong, the rule, and the fix.
"""

from __future__ import annotations

import signal
from typing import Any


class ConfigError(ValueError):
    """A config value that breaks a rule; the message is the one paragraph users read."""

    def __init__(self, key: str, value: Any, rule: str, fix: str) -> None:
        self.key, self.value, self.rule, self.fix = key, value, rule, fix
        super().__init__(f"Invalid config: {key}={value!r}: {rule}. Fix: {fix}")


class UnknownDesignError(ValueError):
    """A queue design that names nothing importable."""


class DesignUnavailableError(ImportError):
    """A queue design whose optional extra is not installed."""


class MessageTooLargeError(ValueError):
    """A message larger than a byte-bounded design can ever hold."""


class ResultsWriteError(OSError):
    """The run directory could not be written; nothing half-written is left looking complete."""


class ComparisonError(ValueError):
    """Two sets of results that cannot be compared honestly (different machines, concurrency or noise)."""


class BackendError(RuntimeError):
    """A backend that cannot run here (Ray not reachable, never enough CPUs); the message says the fix."""


class RunInterrupted(Exception):
    """Ctrl-C or SIGTERM reached the chief."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum
        self.exit_code = 128 + signum


class WorkerFailed(Exception):
    """A worker raised, died or hung and the policy says stop; the message says which and how."""


class QueueFullError(RuntimeError):
    """queue.on_full=fail and the global queue reached its bound."""


class InjectedFault(RuntimeError):
    """The exception that faults.raise_after_s raises."""


class UnsupportedSpaceError(TypeError):
    """An env whose action or observation space a fragment cannot hold or random actions cannot sample."""


class TargetNotFound(ImportError):
    """A ``_target_`` that names nothing importable; the message says what was tried."""


class RawLoopError(RuntimeError):
    """The bare primitive moved nothing, or a producer failed."""


class RayBackendError(BackendError):
    """Ray could not be started or reached, or cannot ever place the actors; the message says the fix."""


class StreamError(RuntimeError):
    """A ColumnStream was used against its rules or its writer thread failed."""
