"""The `chiefbench` command as a user runs it: a subprocess, its exit code, its files."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import psutil
import pytest

from conftest import CHIEFBENCH, chiefbench
from framework import hygiene

pytestmark = pytest.mark.timeout(180)


def test_default_run_scaled_down_writes_the_three_files(tmp_path):
    out = tmp_path / "run"
    proc = chiefbench("workers.interval_s=0.05", "chief.interval_s=0.1", f"hydra.run.dir={out}", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "took" in proc.stdout and "status        ok" in proc.stdout and "lost 0" in proc.stdout
    for name in ("items.parquet", "depth.parquet", "summary.json", "config.yaml"):
        assert (out / name).exists()  # the tables are directories of streamed parts
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "ok" and summary["rounds"] == 11


def test_default_output_directory_is_under_outputs_and_unique(tmp_path):
    # Two runs started at once (the same second): their default directories must still differ.
    args = [CHIEFBENCH, "run.items=5", "workers.interval_s=0", "chief.interval_s=0", "run.start_method=fork"]
    procs = [subprocess.Popen(args, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    for p in procs:
        _, stderr = p.communicate(timeout=150)
        assert p.returncode == 0, stderr
    runs = sorted(p.parent for p in (tmp_path / "outputs" / "runs").rglob("summary.json"))
    assert len(runs) == 2 and runs[0] != runs[1]


@pytest.mark.parametrize("override, key", [
    ("workers.count=-3", "workers.count"),
    ("queue.name=nope", "queue.name"),
    ("queue._target_=nope.Nope", "queue._target_"),
    ("run.start_method=threads", "run.start_method"),
])
def test_bad_config_is_one_paragraph_and_exit_2(tmp_path, override, key):
    proc = chiefbench(override, cwd=tmp_path)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr + proc.stdout
    message = proc.stderr.strip()
    assert message.startswith(f"Invalid config: {key}=") and "Fix:" in message and "\n" not in message
    assert not (tmp_path / "outputs" / "runs").exists() or not list((tmp_path / "outputs").rglob("summary.json"))


def test_designs_lists_what_is_installed(tmp_path):
    proc = chiefbench("--designs", cwd=tmp_path)
    assert proc.returncode == 0
    for name in ("mp_queue", "simple_queue", "pipe", "manager_queue"):
        assert f"{name}" in proc.stdout and "available" in proc.stdout


@pytest.mark.parametrize("signum, code, args", [
    (signal.SIGINT, 130, ["workers.interval_s=0.01", "chief.interval_s=0.05"]),
    (signal.SIGTERM, 143, ["workers.interval_s=0.01", "chief.interval_s=0.05"]),
    # The chief is inside get_many almost all the time: the signal must not cut a message in two.
    (signal.SIGTERM, 143, ["queue=pipe", "workers.interval_s=0", "chief.interval_s=0", "chief.take_batch=0",
                           "workers.forward_batch=16", "run.print_items=false"]),
])
def test_ctrl_c_and_sigterm_stop_cleanly_and_keep_the_results(tmp_path, signum, code, args):
    out = tmp_path / "run"
    log = tmp_path / "stderr.log"
    with open(log, "w") as err:
        proc = subprocess.Popen([CHIEFBENCH, *args, "run.duration_s=60", f"hydra.run.dir={out}"], cwd=tmp_path,
                                stdout=subprocess.PIPE, stderr=err, text=True, start_new_session=True)
    # The chief's first progress line comes at the start barrier: the workers are producing.
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and "[chief]" not in log.read_text():
        time.sleep(0.1)
    workers = psutil.Process(proc.pid).children()
    time.sleep(0.5)
    # As a terminal does: the signal reaches the chief and every worker.
    os.killpg(proc.pid, signum)
    stdout, _ = proc.communicate(timeout=60)
    stderr = log.read_text()
    assert proc.returncode == code, stderr
    assert "Traceback" not in stderr + stdout
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "interrupted"
    assert summary["counts"]["lost"] == 0 and summary["counts"]["produced"] > 0
    gone, alive = psutil.wait_procs(workers, timeout=5)
    assert not alive


def test_multirun_runs_each_job(tmp_path):
    # No report (a second of matplotlib): tests/test_report.py checks the one a multirun writes by default.
    proc = chiefbench("-m", "queue=pipe,simple_queue", "run.items=20", "workers.interval_s=0", "chief.interval_s=0",
                      "run.start_method=fork", f"hydra.sweep.dir={tmp_path / 'sweep'}",
                      "hydra.callbacks.gather.report=false", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    summaries = sorted((tmp_path / "sweep").glob("*/summary.json"))
    assert len(summaries) == 2
    assert {json.loads(p.read_text())["config"]["queue"]["name"] for p in summaries} == {"pipe", "simple_queue"}


@pytest.mark.parametrize("design, start_method", [
    ("mp_queue", "fork"), ("pipe", "spawn"), ("pipe", "forkserver"), ("manager_queue", "spawn"),
    ("manager_queue", "forkserver")])
def test_sigkill_of_the_chief_leaves_no_process_behind(tmp_path, design, start_method):
    """Workers (and the manager process) notice that the chief is gone and exit on their own.

    Each start method's way of watching the chief (its pid as parent under fork and spawn, the parent's
    sentinel under forkserver), a design with a feeder thread (mp_queue) and without (pipe: a worker
    blocked writing to a dead reader), and the manager's own process under both spawn and forkserver."""
    log = tmp_path / "stderr.log"
    with open(log, "w") as err:
        proc = subprocess.Popen([CHIEFBENCH, f"queue={design}", f"run.start_method={start_method}",
                                 "workers.interval_s=0.001", "chief.interval_s=0.05",
                                 "run.duration_s=60", f"hydra.run.dir={tmp_path / 'run'}"], cwd=tmp_path,
                                stdout=subprocess.DEVNULL, stderr=err)
    chief = psutil.Process(proc.pid)
    # The chief's first progress line comes at the start barrier: every worker is up and producing (a spawned
    # one has finished importing). Half a second more at this pace is some 1,000 items, more than a pipe's
    # 64 KiB holds while the chief takes one per check.
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and "[chief]" not in log.read_text():
        time.sleep(0.05)
    time.sleep(0.5)
    descendants = chief.children(recursive=True)
    assert len(descendants) >= 2
    proc.kill()
    proc.wait(10)
    # Orphans are re-parented to a PID 1 that may never reap them: a zombie has exited all the same.
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and (alive := running(descendants)):
        time.sleep(0.1)
    for p in alive:
        p.kill()
    assert not alive, f"still running after the chief's SIGKILL: {[(p.pid, p.name()) for p in alive]}"
    # The dead chief's socket directory is stale; the next run's clean-up removes it, and only it.
    stale = [p for p in Path(tempfile.gettempdir()).glob(f"chiefbench-{proc.pid}-*")]
    removed = hygiene.remove_stale()
    assert set(stale) <= set(removed)
    assert all(p.name.startswith("chiefbench-") for p in removed)


def running(processes):
    alive = []
    for p in processes:
        try:
            if p.status() != psutil.STATUS_ZOMBIE:
                alive.append(p)
        except psutil.NoSuchProcess:
            pass
    return alive


def test_a_second_ctrl_c_while_stopping_stops_at_once(tmp_path):
    """The first Ctrl-C starts a long drain (a manager queue's backlog, one round trip per item); the second ends
    it."""
    out = tmp_path / "run"
    log = tmp_path / "stderr.log"
    with open(log, "w") as err:
        proc = subprocess.Popen([CHIEFBENCH, "queue=manager_queue", "workers.interval_s=0", "chief.interval_s=0.002",
                                 "run.duration_s=120",
                                 "run.print_items=false", f"hydra.run.dir={out}"], cwd=tmp_path,
                                stdout=subprocess.PIPE, stderr=err, text=True, start_new_session=True)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and "[chief]" not in log.read_text():
        time.sleep(0.1)
    workers = psutil.Process(proc.pid).children()
    # Producers outrun a chief taking one item every 2 ms: the manager's queue grows by about 20,000 items/s
    # (2-core machine), and its drain takes about as long as it took to build (2.5 s of it, 52,000 items, in
    # 2.5 s), so it outlasts the 1 s until the second Ctrl-C three times over.
    time.sleep(3.0)
    os.killpg(proc.pid, signal.SIGINT)
    time.sleep(1.0)
    os.killpg(proc.pid, signal.SIGINT)
    started = time.monotonic()
    stdout, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert time.monotonic() - started < 15
    assert "Traceback" not in stdout + log.read_text()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "interrupted"
    assert any("interrupted again" in e for e in summary["errors"])
    gone, alive = psutil.wait_procs(workers, timeout=10)
    assert not running(alive)
