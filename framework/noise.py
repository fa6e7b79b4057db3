"""The machine while a run happens: how much of it the run had, and how fast it was.

A throughput measured on a shared or virtual machine is only as honest as the machine was quiet.
This module is the running side of that question. ``NoiseSampler`` snapshots the kernel's CPU
accounting when a run starts and when it stops (and, if the chief calls ``sample()`` now and then,
the run's own processes in between) and describes the window between: the share of CPU time the
hypervisor stole, the share other processes on the machine used, the CPU frequency and governor,
thermal throttling and the load average. ``calibrate()`` times a fixed tiny reference workload (a
pure-Python loop and a numpy memory copy), once before and once after a run: a machine that got
slower in between shows as calibration drift, and ``normalised()`` rescales a figure to what a
reference machine would have measured. ``noise_warnings()`` turns all of it into sentences that say
the rule that was broken and what to do about it.

Everything degrades gracefully: where /proc, /sys or a psutil call is missing (macOS, Windows, a
locked-down container) the figure is None; nothing here raises because the platform lacks it.

"The machine" is what /proc/stat describes: the whole host or virtual machine, not a container's
cgroup share of it. This module imports nothing from ``framework``.
"""

from __future__ import annotations

import glob
import math
import os
import time
from typing import Any, Callable, Iterable

import numpy as np
import psutil

STEAL_WARN_PCT = 5.0
"""CPU steal over this percentage of the window's CPU time is called out (another VM on the host)."""
OTHER_CPU_WARN_PCT = 10.0
"""Other processes using over this percentage of the machine's CPU capacity (all cores) are called out."""
CALIBRATION_DRIFT_WARN = 0.10
"""A calibration figure that moved by more than this fraction between before and after is called out."""
SHARED_CORES_PCT = 2.0
"""Other processes busy over this percentage of the run's cores' capacity means the run shared its cores."""
REFERENCE_CPU_OPS_PER_S = 1.0e7
"""Iterations per second of the calibration loop on the reference machine (a round figure of the order
a current x86 core reaches under CPython 3.11); ``normalised`` rescales figures to this machine."""
CALIBRATION_LOOP_ITERS = 20_000
"""Iterations of the pure-Python calibration loop in one repetition (about 1-2 ms on a current core)."""
CALIBRATION_MEMCPY_BYTES = 8 * 1024 * 1024
"""Bytes one repetition of the calibration's numpy copy moves (8 MiB: larger than most L2 caches)."""
CALIBRATION_MIN_REPEATS = 3
"""Each calibration workload runs at least this many times; the best repetition is reported."""
FREQ_SAMPLE_INTERVAL_S = 1.0
"""``sample()`` reads the CPU frequencies at most once per this many seconds (the read can be slow on
machines with many cores); start and stop always read them."""
SAMPLE_COST_BUDGET_S = 0.001
"""What one ``sample()`` may cost, in seconds, for a handful of processes (the chief calls it in its loop)."""

_STAT_FIELDS = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")
# guest and guest_nice (fields 9-10) are already included in user and nice: not added to the total.
_BUSY_FIELDS = ("user", "nice", "system", "irq", "softirq")


def _clock_ticks() -> float:
    try:
        return float(os.sysconf("SC_CLK_TCK"))
    except (AttributeError, ValueError, OSError):
        return 100.0


_TICKS_PER_S = _clock_ticks()


# --------------------------------------------------------------------------------------------------
# Readers: each returns None where the platform does not provide the figure.

def _read_cpu_stat(path: str = "/proc/stat") -> dict[str, Any] | None:
    """The aggregate and per-core CPU times from /proc/stat, in seconds per field.

    Returns {"all": {field: s}, "cores": [{field: s}, ...]}, or, without /proc, psutil's cpu_times
    (which lacks steal and iowait off Linux), or None when neither is available.
    """
    try:
        with open(path, "rb") as f:
            text = f.read().decode("ascii", "replace")
    except OSError:
        return _psutil_cpu_stat()
    agg, cores = None, {}
    for line in text.splitlines():
        if not line.startswith("cpu"):
            continue
        parts = line.split()
        values = [float(v) / _TICKS_PER_S for v in parts[1:1 + len(_STAT_FIELDS)]]
        row = dict(zip(_STAT_FIELDS, values))  # older kernels lack the later fields: they stay absent
        if parts[0] == "cpu":
            agg = row
        elif parts[0][3:].isdigit():
            cores[int(parts[0][3:])] = row
    if agg is None:
        return _psutil_cpu_stat()
    return {"all": agg, "cores": [cores[k] for k in sorted(cores)]}


def _psutil_cpu_stat() -> dict[str, Any] | None:
    def row(t: Any) -> dict[str, float]:
        return {f: float(getattr(t, f)) for f in _STAT_FIELDS if getattr(t, f, None) is not None}

    try:
        return {"all": row(psutil.cpu_times()), "cores": [row(t) for t in psutil.cpu_times(percpu=True)]}
    except Exception:  # noqa: BLE001 - an unsupported platform gives no figure, never an error
        return None


def _total(row: dict[str, float]) -> float:
    return sum(row.get(f, 0.0) for f in _STAT_FIELDS)


def _busy(row: dict[str, float]) -> float:
    return sum(row.get(f, 0.0) for f in _BUSY_FIELDS)


def _loadavg() -> float | None:
    try:
        return float(os.getloadavg()[0])
    except (AttributeError, OSError):
        return None


def _governor(path: str = "/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor") -> str | None:
    try:
        with open(path) as f:
            return f.read().strip() or None
    except OSError:
        return None


def _throttle_files() -> list[str]:
    return sorted(glob.glob("/sys/devices/system/cpu/cpu*/thermal_throttle/*_throttle_count"))


def _throttle_total(files: list[str]) -> int | None:
    if not files:
        return None
    total = 0
    for path in files:
        try:
            with open(path) as f:
                total += int(f.read().strip() or 0)
        except (OSError, ValueError):
            continue
    return total


def _freqs_mhz() -> tuple[list[float], float | None, float | None]:
    """The current frequency of each core, and the rated min and max (None where not reported)."""
    try:
        freqs = psutil.cpu_freq(percpu=True) or []
    except Exception:  # noqa: BLE001 - cpu_freq is missing or fails on some platforms and containers
        return [], None, None
    current = [float(f.current) for f in freqs if f.current]
    rated_min = min((float(f.min) for f in freqs if f.min), default=None)
    rated_max = max((float(f.max) for f in freqs if f.max), default=None)
    return current, rated_min, rated_max


def _children_pids(pid: int) -> list[int] | None:
    """Direct children of pid from /proc/<pid>/task/*/children (cheap: no scan of every process).

    [] for a process that has gone; None where the kernel has no such files (no /proc, or
    CONFIG_PROC_CHILDREN off): the caller then asks psutil, which scans every process.
    """
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return [] if os.path.isdir("/proc/self/task") else None
    out: list[int] = []
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                out.extend(int(c) for c in f.read().split())
        except FileNotFoundError:
            if tid == str(pid) and os.path.isdir(f"/proc/{pid}/task/{tid}"):
                return None  # the thread is there but not its children file: the kernel lacks them
        except (OSError, ValueError):
            continue  # a thread that ended while we read
    return out


def own_pids() -> list[int]:
    """The calling process and all its descendants: the default idea of "the run's processes"."""
    me = os.getpid()
    pids, frontier = [me], [me]
    while frontier:
        kids: list[int] = []
        for pid in frontier:
            found = _children_pids(pid)
            if found is None:
                try:
                    return [me, *(c.pid for c in psutil.Process(me).children(recursive=True))]
                except Exception:  # noqa: BLE001
                    return [me]
            kids.extend(found)
        pids.extend(kids)
        frontier = kids
    return pids


def _affinity(pid: int) -> set[int] | None:
    try:
        return set(os.sched_getaffinity(pid))
    except (AttributeError, OSError):
        try:
            return set(psutil.Process(pid).cpu_affinity())
        except Exception:  # noqa: BLE001 - not supported on macOS
            return None


def _create_time_now() -> float:
    """Now, on the clock psutil's create_time() uses.

    On Linux that clock is the boot time from /proc/stat (whole seconds) plus the process's start in
    ticks since boot, so it can be up to a second away from time.time(); boot time + /proc/uptime is
    on the same clock. Elsewhere, time.time().
    """
    try:
        with open("/proc/uptime") as f:
            return psutil.boot_time() + float(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return time.time()


def _pct(part: float | None, whole: float | None) -> float | None:
    if part is None or not whole or whole <= 0:
        return None
    return 100.0 * part / whole


# --------------------------------------------------------------------------------------------------

class NoiseSampler:
    """Measures the machine between ``start()`` and ``stop()``; ``stop()`` returns ``machine_noise``.

    ``pids_fn()`` returns the pids that belong to the run now (default: this process and all its
    descendants, ``own_pids``). Their CPU time is read at start, at stop and at every ``sample()``;
    the last value seen per process is kept, so a worker that starts and dies within the window is
    counted up to the last sample before it died. Call ``sample()`` about once a second from the
    chief's loop; it costs tens of microseconds for a handful of processes.

    Accounting of a process's CPU time within the window: a process seen at ``start()`` counts from
    its CPU time then; one first seen later counts from zero if it was created within the window,
    else from its CPU time when first seen (its time before that sample is missed). A process whose
    last work falls after the last sample before it died has that work counted as "other".
    """

    def __init__(self, pids_fn: Callable[[], Iterable[int]] | None = None) -> None:
        self._pids_fn = pids_fn or own_pids
        self._reset()
        self._started = False

    def _reset(self) -> None:
        self._procs: dict[int, psutil.Process] = {}
        self._base: dict[tuple[int, float], float] = {}   # (pid, create time) -> CPU s at window start
        self._last: dict[tuple[int, float], float] = {}   # (pid, create time) -> last CPU s seen
        self._affinity: set[int] = set()
        self._affinity_known = True
        self._freq_seen: list[float] = []
        self._freq_last: list[float] = []
        self._freq_at = -math.inf
        self._start_on_create_clock = _create_time_now()

    # -- sampling the run's processes -------------------------------------------------------------

    def _proc(self, pid: int) -> psutil.Process | None:
        proc = self._procs.get(pid)
        if proc is None:
            try:
                proc = psutil.Process(pid)
            except (psutil.Error, ValueError):
                return None
            self._procs[pid] = proc
        return proc

    def _read_run(self, at_start: bool = False) -> None:
        try:
            pids = list(self._pids_fn())
        except Exception:  # noqa: BLE001 - a failing pids_fn loses one sample, not the run
            return
        for pid in pids:
            proc = self._proc(pid)
            if proc is None:
                continue
            try:
                t = proc.cpu_times()
                cpu = t.user + t.system
                key = (pid, proc.create_time())  # cached by psutil: no read
            except psutil.Error:
                self._procs.pop(pid, None)
                continue
            last = self._last.get(key)
            if last is not None and cpu < last:   # a reused pid slipped past create_time's resolution
                self._procs.pop(pid, None)
                continue
            if key not in self._base:
                new_in_window = not at_start and key[1] >= self._start_on_create_clock - 1.0 / _TICKS_PER_S
                self._base[key] = 0.0 if new_in_window else cpu
                aff = _affinity(pid)
                if aff is None:
                    self._affinity_known = False
                else:
                    self._affinity |= aff
            self._last[key] = cpu

    def _read_freq(self) -> tuple[float | None, float | None]:
        current, rated_min, rated_max = _freqs_mhz()
        self._freq_seen.extend(current)
        self._freq_last = current
        self._freq_at = time.monotonic()
        return rated_min, rated_max

    @property
    def started(self) -> bool:
        """Whether a window is open (``start()`` was called and ``stop()`` not yet)."""
        return self._started

    def start(self) -> None:
        """Snapshot the machine and the run's processes: the window begins."""
        self._reset()  # a sampler can be reused: start forgets the previous window
        self._started = True
        self._t0 = time.monotonic()
        self._stat0 = _read_cpu_stat()
        self._load0 = _loadavg()
        self._throttle_paths = _throttle_files()
        self._throttle0 = _throttle_total(self._throttle_paths)
        self._read_freq()
        self._read_run(at_start=True)

    def sample(self) -> None:
        """Read the run's processes' CPU times now (call it about once a second during the run)."""
        if not self._started:
            return
        self._read_run()
        if time.monotonic() - self._freq_at >= FREQ_SAMPLE_INTERVAL_S:
            self._read_freq()

    def stop(self) -> dict[str, Any]:
        """Snapshot again and describe the window: the ``machine_noise`` dict (see ``describe``)."""
        if not self._started:
            raise RuntimeError("NoiseSampler.stop() before start(): call start() when the run begins")
        self._read_run()
        rated_min, rated_max = self._read_freq()
        window_s = time.monotonic() - self._t0
        stat1 = _read_cpu_stat()
        throttle1 = _throttle_total(self._throttle_paths)
        self._started = False
        run_cpu_s = sum(max(0.0, self._last[k] - self._base[k]) for k in self._last)
        noise: dict[str, Any] = {
            "window_s": window_s,
            "cores": os.cpu_count(),
            "steal_pct": None, "iowait_pct": None, "steal_pct_per_core": None,
            "busy_pct": None, "run_cpu_pct": None, "other_cpu_pct": None,
            "run_cpu_s": run_cpu_s, "other_cpu_s": None, "capacity_cpu_s": None,
            "shared_cores": None,
            "load_avg_start": self._load0, "load_avg": _loadavg(),
            "cpu_freq_mhz": {"seen_min": min(self._freq_seen, default=None),
                             "seen_max": max(self._freq_seen, default=None),
                             "current": float(np.mean(self._freq_last)) if self._freq_last else None,
                             "rated_min": rated_min, "rated_max": rated_max},
            "governor": _governor(),
            "throttle_count": (throttle1 - self._throttle0
                               if throttle1 is not None and self._throttle0 is not None else None),
        }
        if self._stat0 is None or stat1 is None:
            return noise
        a0, a1 = self._stat0["all"], stat1["all"]
        d = {f: a1[f] - a0[f] for f in _STAT_FIELDS if f in a0 and f in a1}
        capacity = sum(d.values())
        if capacity <= 0:
            return noise
        busy = sum(d.get(f, 0.0) for f in _BUSY_FIELDS)
        other = max(0.0, busy - run_cpu_s)
        noise.update({
            "steal_pct": _pct(d.get("steal"), capacity),
            "iowait_pct": _pct(d.get("iowait"), capacity),
            "busy_pct": _pct(busy, capacity),
            "run_cpu_pct": _pct(run_cpu_s, capacity),
            "other_cpu_pct": _pct(other, capacity),
            "other_cpu_s": other,
            "capacity_cpu_s": capacity,
        })
        c0, c1 = self._stat0["cores"], stat1["cores"]
        if c0 and len(c0) == len(c1):
            per_core = []
            for r0, r1 in zip(c0, c1):
                cap = _total(r1) - _total(r0)
                per_core.append(_pct(r1.get("steal", 0.0) - r0.get("steal", 0.0), cap)
                                if "steal" in r0 and "steal" in r1 else None)
            noise["steal_pct_per_core"] = per_core
            noise["shared_cores"] = self._shared(c0, c1, run_cpu_s)
        return noise

    def _shared(self, c0: list[dict], c1: list[dict], run_cpu_s: float) -> bool | None:
        """Whether other processes were busy on the cores the run may use.

        An approximation: the kernel does not say which process ran on which core, but the run's
        processes can only have run on the cores of their CPU affinity. The busy time of those cores
        minus the run's whole CPU time is the least other processes used there; over
        SHARED_CORES_PCT of those cores' capacity means the run shared its cores. Affinity changed
        during the window is not seen; unknown affinity counts as all cores.
        """
        cores = range(len(c0))
        if self._affinity_known and self._affinity:
            cores = [c for c in sorted(self._affinity) if c < len(c0)] or cores
        busy = sum(_busy(c1[c]) - _busy(c0[c]) for c in cores)
        capacity = sum(_total(c1[c]) - _total(c0[c]) for c in cores)
        if capacity <= 0:
            return None
        return bool(100.0 * max(0.0, busy - run_cpu_s) / capacity > SHARED_CORES_PCT)


MACHINE_NOISE_KEYS = {
    "window_s": "seconds between start() and stop()",
    "cores": "logical CPUs of the machine (os.cpu_count())",
    "steal_pct": "CPU time the hypervisor gave to other virtual machines, % of all CPU time (all cores)",
    "iowait_pct": "CPU time idle while waiting for disk I/O, % of all CPU time",
    "steal_pct_per_core": "steal per core (cpuN lines of /proc/stat), % of that core's time",
    "busy_pct": "the whole machine's busy CPU time (user+nice+system+irq+softirq), % of all CPU time",
    "run_cpu_pct": "CPU time of the run's processes, % of all CPU time (100 = every core busy with the run)",
    "other_cpu_pct": "busy CPU time not used by the run's processes, % of all CPU time",
    "run_cpu_s": "CPU seconds of the run's processes within the window",
    "other_cpu_s": "CPU seconds of everything else within the window (busy minus the run, at least 0)",
    "capacity_cpu_s": "CPU seconds the machine had in the window (all cores, all states, from /proc/stat)",
    "shared_cores": "whether other processes were busy on the run's cores (see NoiseSampler._shared)",
    "load_avg_start": "1-minute load average at start()",
    "load_avg": "1-minute load average at stop()",
    "cpu_freq_mhz": "core frequencies seen in the window (seen_min, seen_max, current mean at stop) and "
                    "the rated range (rated_min, rated_max)",
    "governor": "the CPU frequency governor of cpu0 (performance, powersave, ...)",
    "throttle_count": "thermal throttling events in the window, all cores",
}
"""What each key of ``machine_noise`` means; a key is None where the platform does not report it."""


# --------------------------------------------------------------------------------------------------
# Calibration: a fixed tiny workload, timed before and after a run.

def _cpu_loop(n: int) -> int:
    x = 1
    for _ in range(n):
        x = (x * 1103515245 + 12345) & 0xFFFFFFFF
    return x


def calibrate(duration_s: float = 0.05) -> dict[str, float]:
    """Time the reference workload; the best of a few repetitions of each part.

    Two parts, each repeated CALIBRATION_MIN_REPEATS times and then until half of ``duration_s`` is
    spent: a pure-Python loop of CALIBRATION_LOOP_ITERS iterations (an LCG step: interpreter speed,
    a proxy for core speed) and a numpy copy of CALIBRATION_MEMCPY_BYTES between two arrays already
    touched (memory bandwidth). The best repetition is kept: a calibration measures capacity, and
    interruptions only make a repetition slower. Returns ``cpu_ops_per_s`` (loop iterations per
    second), ``cpu_loop_ns_per_iter``, ``memcpy_gb_per_s`` (bytes copied per second / 1e9, each byte
    counted once) and ``seconds`` (the calibration's own wall time).
    """
    t_begin = time.perf_counter()
    half = max(0.0, duration_s) / 2
    best = math.inf
    reps, t0 = 0, time.perf_counter()
    while reps < CALIBRATION_MIN_REPEATS or time.perf_counter() - t0 < half:
        t = time.perf_counter()
        _cpu_loop(CALIBRATION_LOOP_ITERS)
        best = min(best, time.perf_counter() - t)
        reps += 1
    n = CALIBRATION_MEMCPY_BYTES // 8
    src = np.ones(n, dtype=np.float64)
    dst = np.zeros(n, dtype=np.float64)
    best_copy = math.inf
    reps, t0 = 0, time.perf_counter()
    while reps < CALIBRATION_MIN_REPEATS or time.perf_counter() - t0 < half:
        t = time.perf_counter()
        np.copyto(dst, src)
        best_copy = min(best_copy, time.perf_counter() - t)
        reps += 1
    best = max(best, 1e-9)
    best_copy = max(best_copy, 1e-9)
    return {"cpu_ops_per_s": CALIBRATION_LOOP_ITERS / best,
            "cpu_loop_ns_per_iter": best / CALIBRATION_LOOP_ITERS * 1e9,
            "memcpy_gb_per_s": CALIBRATION_MEMCPY_BYTES / best_copy / 1e9,
            "seconds": time.perf_counter() - t_begin}


_CALIBRATION_FIGURES = ("cpu_ops_per_s", "memcpy_gb_per_s")


def _number(x: Any) -> float | None:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def calibration_drift(before: dict | None, after: dict | None) -> dict[str, float | None]:
    """Relative change of each calibration figure, (after - before) / before: -0.2 = 20 % slower.

    None for a figure missing from either side, or zero before.
    """
    out: dict[str, float | None] = {}
    for key in _CALIBRATION_FIGURES:
        b = _number((before or {}).get(key))
        a = _number((after or {}).get(key))
        out[key] = (a - b) / b if a is not None and b is not None and b > 0 else None
    return out


def normalised(figure: float | None, calibration: dict | None) -> float | None:
    """The figure rescaled to the reference machine: figure x (REFERENCE_CPU_OPS_PER_S / cpu_ops_per_s).

    A figure measured while the calibration loop ran half as fast as on the reference machine is
    doubled. The rescaling assumes the figure is bound by the same thing as the loop (a core running
    the Python interpreter); for a memory- or I/O-bound figure it is a rough correction only.
    None when the figure or the calibration is missing.
    """
    value = _number(figure)
    ops = _number((calibration or {}).get("cpu_ops_per_s"))
    if value is None or ops is None or ops <= 0:
        return None
    return value * (REFERENCE_CPU_OPS_PER_S / ops)


def noise_warnings(machine_noise: dict | None, before: dict | None = None,
                   after: dict | None = None) -> list[str]:
    """Warnings, one paragraph each, for a window in which the machine was not quiet.

    Rules: steal over STEAL_WARN_PCT; other processes over OTHER_CPU_WARN_PCT of the machine;
    a calibration figure (before vs after the run) that moved by more than CALIBRATION_DRIFT_WARN.
    """
    noise = machine_noise or {}
    out: list[str] = []
    steal = _number(noise.get("steal_pct"))
    if steal is not None and steal > STEAL_WARN_PCT:
        out.append(f"CPU steal took {steal:.1f}% of the window (more than STEAL_WARN_PCT={STEAL_WARN_PCT:g}%): "
                   f"another virtual machine on this host was using the CPUs. Figures from this run are low; "
                   f"repeat it at a quieter time or on a dedicated machine, and compare normalised figures.")
    other = _number(noise.get("other_cpu_pct"))
    if other is not None and other > OTHER_CPU_WARN_PCT:
        cores = _number(noise.get("cores"))
        of_cores = f" (about {other / 100 * cores:.1f} of {cores:g} cores)" if cores else ""
        out.append(f"Other processes used {other:.1f}% of the machine's CPU during the run{of_cores}, more than "
                   f"OTHER_CPU_WARN_PCT={OTHER_CPU_WARN_PCT:g}%: the run competed with them for the cores. "
                   f"Figures from this run are low and noisy; close other programs, run one job at a time, "
                   f"or repeat on a quieter machine.")
    for key, change in calibration_drift(before, after).items():
        if change is not None and abs(change) > CALIBRATION_DRIFT_WARN:
            what = "the Python loop" if key == "cpu_ops_per_s" else "the memory copy"
            out.append(f"The calibration moved between before and after the run: {what} ({key}) ran "
                       f"{abs(change):.0%} {'slower' if change < 0 else 'faster'} after it (more than "
                       f"CALIBRATION_DRIFT_WARN={CALIBRATION_DRIFT_WARN:.0%}): the machine's speed changed "
                       f"during the run (other load, frequency scaling or throttling). Repeat the run, and "
                       f"compare normalised figures rather than raw ones.")
    return out
