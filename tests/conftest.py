"""Shared fixtures: fast runs, and a check that no test leaves a process behind."""

from __future__ import annotations

import time

import psutil
import pytest

import framework

# Interpreter-wide helpers that multiprocessing keeps for the life of the test session.
_HELPERS = ("resource_tracker", "forkserver")

FAST = ["workers.interval_s=0", "chief.interval_s=0", "chief.take_batch=0", "run.progress=false"]
"""Overrides for an as-fast-as-possible run that drains everything each check."""


def project_children() -> list[psutil.Process]:
    """Child processes of this test process, multiprocessing's own helpers excepted."""
    found = []
    for child in psutil.Process().children(recursive=True):
        try:
            cmdline = " ".join(child.cmdline())
        except (psutil.NoSuchProcess, psutil.ZombieProcess):
            continue
        if not any(h in cmdline for h in _HELPERS):
            found.append(child)
    return found


@pytest.fixture(autouse=True)
def no_leftover_processes():
    """After every test, no child process of ours may survive."""
    yield
    deadline = time.monotonic() + 2.0
    while project_children() and time.monotonic() < deadline:
        time.sleep(0.05)
    left = project_children()
    for p in left:
        p.kill()
    assert not left, f"processes left behind: {[(p.pid, p.name()) for p in left]}"


@pytest.fixture
def run_in(tmp_path):
    """``run_in(overrides)`` runs chiefbench in-process into a fresh directory under tmp_path."""
    counter = iter(range(1000))

    def _run(overrides, echo=lambda line: None):
        return framework.run(list(overrides), output_dir=tmp_path / f"run{next(counter)}", echo=echo)

    return _run
