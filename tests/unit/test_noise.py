"""framework.noise: the sampler's accounting against real CPU burners, calibration, warnings, graceful degradation."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import time

import psutil
import pytest

from framework import noise
from framework.noise import (CALIBRATION_DRIFT_WARN, MACHINE_NOISE_KEYS, OTHER_CPU_WARN_PCT, REFERENCE_CPU_OPS_PER_S,
                             SAMPLE_COST_BUDGET_S, STEAL_WARN_PCT, NoiseSampler, calibrate, calibration_drift,
                             noise_warnings, normalised, own_pids)

WINDOW_S = 0.6
"""How long the burner tests measure (long against the kernel's 10 ms accounting tick)."""
MIN_BURN_PCT_OF_ONE_CORE = 20.0
"""A burner must show as at least this share of one core (on a 2-core machine shared with other jobs a
busy loop still gets far more): in the machine-wide unit, MIN_BURN_PCT_OF_ONE_CORE / cores."""
ACCOUNTED_SHARE = 0.7
"""At least this share of a burner's own CPU time must appear where the sampler puts it (the rest is
tick granularity and the two snapshots of /proc/stat not being taken at exactly the same instant)."""
BURN = "import time\nwhile True:\n    pass\n"
TIMEOUT_S = 10.0
"""No child of these tests lives longer than this."""


def cpu_s(pid: int) -> float:
    t = psutil.Process(pid).cpu_times()
    return t.user + t.system


def start_burner() -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", BURN])
    deadline = time.monotonic() + TIMEOUT_S
    while cpu_s(proc.pid) == 0 and time.monotonic() < deadline:  # past the interpreter's start
        time.sleep(0.01)
    return proc


def stop(proc: subprocess.Popen) -> None:
    proc.kill()
    proc.wait(timeout=TIMEOUT_S)


needs_proc = pytest.mark.skipif(not os.path.exists("/proc/stat"), reason="needs Linux /proc/stat")


@needs_proc
def test_a_burner_outside_the_run_is_other_cpu_and_inside_it_is_run_cpu():
    """Two samplers over the same window: A counts the burner as part of the run, B does not. The
    machine's busy time is the same for both, so the burner moves from run_cpu to other_cpu."""
    burner = start_burner()
    try:
        inside = NoiseSampler(lambda: [os.getpid(), burner.pid])
        outside = NoiseSampler(lambda: [os.getpid()])
        burned0 = cpu_s(burner.pid)
        inside.start(), outside.start()
        time.sleep(WINDOW_S)
        a, b = inside.stop(), outside.stop()
        burned = cpu_s(burner.pid) - burned0
    finally:
        stop(burner)
    burn_pct = 100.0 * burned / a["capacity_cpu_s"]
    assert burn_pct > MIN_BURN_PCT_OF_ONE_CORE / a["cores"], "the burner hardly ran: the machine is saturated"
    # outside the run: the burner is other processes' CPU, the run (this sleeping test) used little
    assert b["other_cpu_pct"] >= ACCOUNTED_SHARE * burn_pct
    assert b["run_cpu_pct"] < (1 - ACCOUNTED_SHARE) * burn_pct
    # inside the run: the burner is the run's CPU, and other_cpu no longer contains it
    assert a["run_cpu_pct"] >= ACCOUNTED_SHARE * burn_pct
    assert a["other_cpu_pct"] <= a["busy_pct"] - ACCOUNTED_SHARE * burn_pct
    assert b["other_cpu_pct"] - a["other_cpu_pct"] > MIN_BURN_PCT_OF_ONE_CORE / a["cores"]
    assert a["other_cpu_s"] == pytest.approx(max(0.0, a["busy_pct"] / 100 * a["capacity_cpu_s"] - a["run_cpu_s"]))
    assert a["window_s"] >= WINDOW_S and set(MACHINE_NOISE_KEYS) <= set(a)
    assert a["capacity_cpu_s"] == pytest.approx(a["cores"] * a["window_s"], rel=0.25)


@needs_proc
def test_sample_counts_a_worker_that_died_within_the_window():
    """A child of the run starts within the window, burns CPU and exits before stop(): only a sampler
    that sampled while it lived can count it, and it counts the CPU the child burned before it was
    first seen (it was created within the window)."""
    burn_s = 0.3
    script = (f"import time\nwhile time.process_time() < {burn_s}:\n    pass\n"
              f"print(time.process_time())\n")
    child: subprocess.Popen | None = None

    def run_pids():
        return [os.getpid()] + ([child.pid] if child is not None and child.poll() is None else [])

    sampling, blind = NoiseSampler(run_pids), NoiseSampler(run_pids)
    sampling.start(), blind.start()
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + TIMEOUT_S
        while child.poll() is None and cpu_s(child.pid) < burn_s / 2 and time.monotonic() < deadline:
            time.sleep(0.01)  # first seen only half-way through its work
        while child.poll() is None:
            sampling.sample()
            time.sleep(0.01)
        child_cpu_s = float(child.communicate(timeout=TIMEOUT_S)[0])
    finally:
        if child.poll() is None:
            stop(child)
    counted, missed = sampling.stop(), blind.stop()
    assert counted["run_cpu_s"] - missed["run_cpu_s"] >= ACCOUNTED_SHARE * child_cpu_s
    assert counted["run_cpu_s"] >= ACCOUNTED_SHARE * child_cpu_s


def test_sample_is_cheap():
    sampler = NoiseSampler()
    sampler.start()
    costs = []
    for _ in range(200):
        t = time.perf_counter()
        sampler.sample()
        costs.append(time.perf_counter() - t)
    sampler.stop()
    costs.sort()
    assert costs[len(costs) // 2] < SAMPLE_COST_BUDGET_S


def test_own_pids_is_this_process_and_its_descendants():
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        pids = own_pids()
        assert pids[0] == os.getpid() and child.pid in pids
        assert set(pids) == {os.getpid(), *(c.pid for c in psutil.Process().children(recursive=True))}
    finally:
        stop(child)


def fake_stat(user: float, system: float, idle: float, steal: float, cores: int = 2) -> dict:
    row = {"user": user, "nice": 0.0, "system": system, "idle": idle, "iowait": 0.0, "irq": 0.0,
           "softirq": 0.0, "steal": steal}
    return {"all": row, "cores": [{k: v / cores for k, v in row.items()} for _ in range(cores)]}


def test_steal_and_other_cpu_are_shares_of_the_window_from_the_kernel_counters(monkeypatch):
    before = fake_stat(user=100.0, system=50.0, idle=800.0, steal=10.0)
    used, sys_, idle, stolen = 3.0, 1.0, 4.0, 2.0
    after = fake_stat(user=100.0 + used, system=50.0 + sys_, idle=800.0 + idle, steal=10.0 + stolen)
    snaps = iter([before, after])
    monkeypatch.setattr(noise, "_read_cpu_stat", lambda: next(snaps))
    sampler = NoiseSampler(lambda: [])  # no process of the run: everything busy is "other"
    sampler.start()
    m = sampler.stop()
    capacity = used + sys_ + idle + stolen
    assert m["capacity_cpu_s"] == pytest.approx(capacity)
    assert m["steal_pct"] == pytest.approx(100 * stolen / capacity)
    assert m["steal_pct_per_core"] == pytest.approx([100 * stolen / capacity] * 2)
    assert m["other_cpu_pct"] == pytest.approx(100 * (used + sys_) / capacity)
    assert m["run_cpu_s"] == 0 and m["shared_cores"] is True


def test_proc_stat_is_parsed_per_core_and_guest_time_is_not_counted_twice(tmp_path):
    stat = tmp_path / "stat"
    tick = noise._TICKS_PER_S
    stat.write_text("cpu  10 1 5 100 2 0 1 3 7 0\ncpu0 5 1 2 50 1 0 1 2 7 0\ncpu1 5 0 3 50 1 0 0 1 0 0\n"
                    "intr 1 2 3\nctxt 4\n")
    parsed = noise._read_cpu_stat(str(stat))
    assert len(parsed["cores"]) == 2
    assert parsed["all"]["steal"] == pytest.approx(3 / tick)
    assert noise._total(parsed["all"]) == pytest.approx((10 + 1 + 5 + 100 + 2 + 0 + 1 + 3) / tick)
    assert noise._busy(parsed["cores"][1]) == pytest.approx((5 + 0 + 3) / tick)


def test_without_proc_or_psutil_figures_the_sampler_gives_none_and_never_raises(monkeypatch):
    def unavailable(*args, **kwargs):
        raise OSError("not on this platform")

    monkeypatch.setattr(noise, "_read_cpu_stat", lambda: None)
    monkeypatch.setattr(os, "getloadavg", unavailable)
    monkeypatch.setattr(psutil, "cpu_freq", unavailable)
    monkeypatch.setattr(noise, "_governor", lambda: None)
    sampler = NoiseSampler()
    sampler.start()
    sampler.sample()
    m = sampler.stop()
    assert set(MACHINE_NOISE_KEYS) <= set(m)
    for key in ("steal_pct", "iowait_pct", "other_cpu_pct", "run_cpu_pct", "shared_cores", "load_avg",
                "load_avg_start", "governor"):
        assert m[key] is None, key
    assert m["cpu_freq_mhz"]["seen_min"] is None and m["run_cpu_s"] >= 0
    assert noise_warnings(m) == []


def test_without_proc_stat_the_reader_falls_back_to_psutil_then_to_none(tmp_path, monkeypatch):
    missing = str(tmp_path / "no-such-stat")
    fallback = noise._read_cpu_stat(missing)
    assert fallback is not None and noise._total(fallback["all"]) > 0
    monkeypatch.setattr(psutil, "cpu_times", lambda *a, **k: (_ for _ in ()).throw(OSError("unsupported")))
    assert noise._read_cpu_stat(missing) is None


def test_stop_before_start_says_what_to_do_and_start_begins_a_new_window():
    sampler = NoiseSampler()
    with pytest.raises(RuntimeError, match="call start"):
        sampler.stop()
    sampler.start()
    first = sampler.stop()
    sampler.start()
    second = sampler.stop()
    assert second["window_s"] < first["window_s"] + 1.0 and second["run_cpu_s"] >= 0


# -- calibration ------------------------------------------------------------------------------------

def test_calibrate_gives_positive_finite_figures_within_its_budget():
    duration_s = 0.05
    c = calibrate(duration_s)
    for key in ("cpu_ops_per_s", "cpu_loop_ns_per_iter", "memcpy_gb_per_s", "seconds"):
        assert math.isfinite(c[key]) and c[key] > 0, key
    assert c["cpu_ops_per_s"] * c["cpu_loop_ns_per_iter"] == pytest.approx(1e9)
    assert c["seconds"] >= duration_s


def test_calibration_drift_and_its_warning():
    before = {"cpu_ops_per_s": REFERENCE_CPU_OPS_PER_S, "memcpy_gb_per_s": 10.0}
    slower = {k: v * (1 - 2 * CALIBRATION_DRIFT_WARN) for k, v in before.items()}
    steady = {k: v * (1 - CALIBRATION_DRIFT_WARN / 2) for k, v in before.items()}
    assert calibration_drift(before, slower) == pytest.approx({k: -2 * CALIBRATION_DRIFT_WARN for k in before})
    assert calibration_drift(before, {"cpu_ops_per_s": None}) == {"cpu_ops_per_s": None, "memcpy_gb_per_s": None}
    quiet = {"steal_pct": 0.0, "other_cpu_pct": 0.0, "cores": 2}
    warnings = noise_warnings(quiet, before, slower)
    assert len(warnings) == 2 and all("CALIBRATION_DRIFT_WARN" in w and "slower" in w for w in warnings)
    assert noise_warnings(quiet, before, steady) == []


def test_noise_warnings_fire_above_their_thresholds_only():
    loud = {"steal_pct": 2 * STEAL_WARN_PCT, "other_cpu_pct": 2 * OTHER_CPU_WARN_PCT, "cores": 2}
    soft = {"steal_pct": STEAL_WARN_PCT / 2, "other_cpu_pct": OTHER_CPU_WARN_PCT / 2, "cores": 2}
    warnings = noise_warnings(loud)
    assert len(warnings) == 2
    assert f"{2 * STEAL_WARN_PCT:.1f}%" in warnings[0] and "STEAL_WARN_PCT" in warnings[0]
    assert "another virtual machine" in warnings[0] and "normalised" in warnings[0]
    assert "OTHER_CPU_WARN_PCT" in warnings[1] and "close other programs" in warnings[1]
    assert noise_warnings(soft) == [] and noise_warnings(None) == []


def test_normalised_rescales_to_the_reference_machine():
    figure = 1234.0
    assert normalised(figure, {"cpu_ops_per_s": REFERENCE_CPU_OPS_PER_S / 2}) == pytest.approx(2 * figure)
    assert normalised(figure, {"cpu_ops_per_s": REFERENCE_CPU_OPS_PER_S}) == pytest.approx(figure)
    assert normalised(None, {"cpu_ops_per_s": REFERENCE_CPU_OPS_PER_S}) is None
    assert normalised(figure, {}) is None and normalised(figure, None) is None
    assert normalised(figure, {"cpu_ops_per_s": 0}) is None
