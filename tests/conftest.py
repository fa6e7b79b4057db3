"""Shared fixtures and helpers: fast runs (``run_in``), the chiefbench command, seeded streams, named
semaphores, and a check after every test that it left no process, segment or temp directory of its own."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import pytest

import framework
from framework import hygiene

# Interpreter-wide helpers that multiprocessing keeps for the life of the test session.
_HELPERS = ("resource_tracker", "forkserver")

FAST = ["workers.interval_s=0", "chief.interval_s=0", "chief.take_batch=0", "run.progress=false"]
"""Overrides for an as-fast-as-possible run that drains everything each check."""
CAPACITY = [*FAST, "run.print_items=false", "run.start_method=fork"]
"""A saturated run: workers and chief as fast as they go, nothing printed."""
CAPACITY_RUN = [*CAPACITY, "run.duration_s=0.8", "run.warmup_s=0.2"]
"""The saturated run that ``capacity_run`` shares: a 0.6 s window after 0.2 s of warm-up."""

ROOT = Path(__file__).resolve().parent.parent
"""The checkout under test."""
BIN = Path(sys.executable).parent
CHIEFBENCH = str(BIN / "chiefbench")
"""The installed commands (chiefbench, chiefbench-report, ...) beside the interpreter running the tests."""


def chiefbench(*args, cwd, timeout=150, **kwargs):
    """Run the chiefbench command as a user does; its CompletedProcess (text output captured)."""
    return subprocess.run([CHIEFBENCH, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, **kwargs)


# Commands started by the tests (chiefbench, experiments/*.py) import this checkout's framework, not whatever
# checkout the environment's editable install points at (a worktree sharing another checkout's .venv).
os.environ["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])


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


OUR_TEMP_PREFIXES = ("chiefbench-",)
"""chiefbench names its temp directories chiefbench-<pid>-*: one whose process is dead leaked.
(multiprocessing's own pymp-* directories are not checked: other programs on the machine make them too.)"""
OUR_SHM_MARKERS = ("chiefbench",)
"""Segments chiefbench names itself. multiprocessing's own named semaphores (sem.mp-*) live
until their owner object is collected; tests/test_system.py checks them after real runs."""


_SHM_OWNER = re.compile(r"chiefbench-[a-z]+-(\d+)-")


STARTED: set[int] = set()
"""Every process this test session started with subprocess (the chiefbench commands among them)."""
_popen_init = subprocess.Popen.__init__


def _recording_popen_init(self, *args, **kwargs):
    _popen_init(self, *args, **kwargs)
    STARTED.add(self.pid)


subprocess.Popen.__init__ = _recording_popen_init


def ours(pid: int) -> bool:
    """A temporary directory or segment named with ``pid`` is this session's to clean: made by this process
    (an in-process run) or by a command it started that is gone now. Those of other programs on the machine
    (a test run in another checkout, whose killed chiefs leave theirs for a later clean-up) are not."""
    return pid == os.getpid() or (pid in STARTED and not hygiene._alive(pid))


def _owner_gone_or_us(name: str) -> bool:
    match = _SHM_OWNER.search(name)
    if match is None:
        return True
    return ours(int(match.group(1)))


_TEMP_OWNER = re.compile(r"^chiefbench-(\d+)-")
"""chiefbench-<pid>-*: a run's private directory. Others (chiefbench-rescue-*, kept on purpose; names other
programs choose) are not named after a process."""


def leaked_temp(before: set[str]) -> set[str]:
    """chiefbench temporary directories made since ``before`` by a command of ours that has exited (this
    process's own lives as long as it does)."""
    leaked = set()
    for name in temp_entries() - before:
        match = _TEMP_OWNER.match(name)
        if match and int(match.group(1)) != os.getpid() and ours(int(match.group(1))):
            leaked.add(name)
    return leaked


def temp_entries() -> set[str]:
    tmp = Path(tempfile.gettempdir())
    return {p.name for p in tmp.iterdir() if p.name.startswith(OUR_TEMP_PREFIXES)}


def shm_entries() -> set[str]:
    shm = Path("/dev/shm")
    return {p.name for p in shm.iterdir() if any(m in p.name for m in OUR_SHM_MARKERS)} if shm.is_dir() else set()


@pytest.fixture(autouse=True)
def no_leftover_processes(tmp_path_factory, monkeypatch):
    """After every test, no child process, shared-memory segment or socket directory of ours may survive.

    Each test gets a temporary directory of its own (TMPDIR, for its child processes too), so what
    another test run on the machine leaves in /tmp is not taken for ours."""
    own_tmp = tmp_path_factory.mktemp("tmpdir")
    monkeypatch.setenv("TMPDIR", str(own_tmp))
    monkeypatch.setattr(tempfile, "tempdir", str(own_tmp))
    shm_before, temp_before = shm_entries(), temp_entries()
    yield
    deadline = time.monotonic() + 2.0
    while project_children() and time.monotonic() < deadline:
        time.sleep(0.05)
    left = project_children()
    for p in left:
        p.kill()
    assert not left, f"processes left behind: {[(p.pid, p.name()) for p in left]}"
    # A segment is ours when its creator (named in it) is this process or has died: segments of other
    # live processes (a test run in another checkout) are theirs to clean.
    left_shm = {n for n in shm_entries() - shm_before if _owner_gone_or_us(n)}
    assert not left_shm, f"shared-memory segments left: {left_shm}"
    leaked = leaked_temp(temp_before)
    assert not leaked, f"temporary directories left: {leaked}"


@pytest.fixture(scope="session")
def capacity_run(tmp_path_factory):
    """``capacity_run(design)``: one CAPACITY_RUN of ``design`` for the whole session, shared by the tests that
    check different figures of it (its window and throughput, its histograms and Little's law). The first test
    that asks for it runs it, inside its own call, so that its checks for leftovers cover the run."""
    runs = {}

    def _get(design):
        if design not in runs:
            runs[design] = framework.run([*CAPACITY_RUN, f"queue={design}"],
                                         output_dir=tmp_path_factory.mktemp(f"capacity-{design}"), echo=lambda line: None)
        return runs[design]

    return _get


@pytest.fixture
def run_in(tmp_path):
    """``run_in(overrides)`` runs chiefbench in-process into a fresh directory under tmp_path."""
    counter = iter(range(1000))

    def _run(overrides, echo=lambda line: None):
        return framework.run(list(overrides), output_dir=tmp_path / f"run{next(counter)}", echo=echo)

    return _run


def sequences(result) -> dict[int, list[float]]:
    """worker -> its values in sequence order (consumed and left alike)."""
    return {w: g.sort_values("seq")["value"].round(9).tolist() for w, g in result.items.groupby("worker")}


def expected_values(seed, worker, n, low=1, high=3, addend=0.1) -> list[float]:
    """A worker's stream computed independently of the framework's payload code (randint + add)."""
    from framework.payloads.seeding import worker_stream

    draws = worker_stream(seed, worker).integers(low, high + 1, size=n)
    return [round(float(v) + addend, 9) for v in draws]


@pytest.fixture
def semaphores_named(monkeypatch):
    """The names of the semaphores multiprocessing names in /dev/shm (spawn, forkserver) in this process.

    Recorded as they are made, so that the check is about this test's run only: other programs on the
    machine (a test run in another checkout) make and remove theirs meanwhile."""
    import multiprocessing.synchronize as synchronize

    names: list[str] = []
    real = synchronize.SemLock.__init__

    def init(self, *args, **kwargs):
        real(self, *args, **kwargs)
        if self._semlock.name is not None:
            names.append(self._semlock.name)

    monkeypatch.setattr(synchronize.SemLock, "__init__", init)
    return names


def semaphores_left(names) -> list[str]:
    """Those of ``names`` (recorded by ``semaphores_named``) still in /dev/shm."""
    return [n for n in names if Path("/dev/shm", "sem." + n.lstrip("/")).exists()]
