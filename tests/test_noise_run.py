"""Machine noise recorded with real runs, and Little's law checked by the instrument itself."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from framework.noise import OTHER_CPU_WARN_PCT
from framework.results.checks import LITTLE_TOLERANCE

CAPACITY = ["workers.interval_s=0", "chief.interval_s=0", "chief.take_batch=0", "run.progress=false",
            "run.print_items=false", "run.start_method=fork"]
NOISE_WORDS = ("Other processes", "CPU steal", "calibration moved")


def _noise_warnings(summary: dict) -> list[str]:
    return [w for w in summary["warnings"] if any(word in w for word in NOISE_WORDS)]


@pytest.mark.timeout(120)
def test_a_cpu_burner_beside_the_run_shows_in_machine_noise_and_warnings(run_in):
    quiet = run_in([*CAPACITY, "workers.count=1", "workers.interval_s=0.001", "run.duration_s=1.5"]).summary
    # Another program: started through a shell that exits at once, so that it is no descendant of this
    # process (the run, here in-process, counts its own descendants as its own).
    pid = int(subprocess.run(["sh", "-c", f"'{sys.executable}' -c 'while True: pass' >/dev/null 2>&1 & echo $!"],
                             capture_output=True, text=True, timeout=10).stdout)
    try:
        time.sleep(0.2)  # the burner is spinning before the window opens
        noisy = run_in([*CAPACITY, "workers.count=1", "workers.interval_s=0.001", "run.duration_s=1.5"]).summary
    finally:
        os.kill(pid, signal.SIGKILL)
    noise = noisy["machine_noise"]
    assert {"steal_pct", "other_cpu_pct", "load_avg"} <= set(noise)
    # The burner spins one whole core of the machine's cores for the whole window.
    assert noise["other_cpu_pct"] > OTHER_CPU_WARN_PCT
    assert noise["other_cpu_pct"] > quiet["machine_noise"]["other_cpu_pct"] + 20
    assert any("Other processes" in w for w in noisy["warnings"]), noisy["warnings"]
    assert not _noise_warnings(quiet), quiet["warnings"]
    for summary in (quiet, noisy):
        assert summary["calibration"]["before"]["cpu_ops_per_s"] > 0
        assert summary["normalised"]["throughput_items_per_s"] > 0


@pytest.mark.timeout(120)
def test_littles_law_holds_on_the_default_run_counting_items_still_queued(run_in):
    # The original system, twenty times faster: the queue grows, and what is left counts with its time so far.
    summary = run_in(["workers.interval_s=0.05", "chief.interval_s=0.1", "run.progress=false",
                      "run.print_items=false", "run.start_method=fork"]).summary
    law = summary["littles_law"]
    assert summary["counts"]["left_global"] > 0
    assert law["relative_error"] <= LITTLE_TOLERANCE, law
    assert not any("Little's law" in w for w in summary["warnings"])
