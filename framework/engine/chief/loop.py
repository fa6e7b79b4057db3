"""The chief's check loop and one run from start to stop (see the package docstring for the protocol)."""

from __future__ import annotations

import gc
import random
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from framework import hygiene
from framework.config.schema import Config
from framework.config.validate import item_bound, message_bytes, resolve_design
from framework.engine import heap, protocol
from framework.engine.backends import open_backend
from framework.engine.chief.books import Books, Notes
from framework.engine.chief.intake import HOUSEKEEPING_S, Intake
from framework.engine.chief.interrupts import Interrupts, in_main_thread
from framework.engine.chief.progress import Progress
from framework.engine.chief.supervisor import JOIN_TIMEOUT_S, Supervisor
from framework.engine.record import NEVER_NS, DepthRecorder, MemoryRecorder, Recorder, WindowTally
from framework.errors import RunInterrupted, WorkerFailed
from framework.noise import NoiseSampler, calibrate, own_pids
from framework.payloads.base import column_reader, detail_readers, item_nbytes, value_reader
from framework.queues.base import QueueSettings
from framework.results.latency import StageHistograms
from framework.results.seqbooks import SeqBooks

CALIBRATION_S = 0.02
"""Seconds of the reference workload timed before and after each run (best of its repetitions)."""
OBSERVE_NS = 5_000_000
"""While the chief sleeps between checks, it observes the global depth at least this often (ns)."""
GIL_SWITCH_S = 0.0002
"""The chief's GIL switch interval during a run (s): how long a writer thread may keep the chief waiting."""
NOISE_SAMPLE_NS = 1_000_000_000
"""How often the chief reads the run's processes' CPU times for the machine-noise figures (ns): a read of
every process costs about half a millisecond, too much for every housekeeping period."""


@dataclass
class RawRun:
    """What the chief measured, before any figure is computed: counts, books and tallies, never a row per
    item (those were streamed to the run directory as the run went)."""

    t0_ns: int
    t_end_ns: int
    status: str
    produced: dict[int, int]
    forwarded: dict[int, int]
    processes: list[dict]
    counts: dict[str, int]
    """Items recorded in each state (consumed, left_global, left_local, dropped_oldest, dropped_newest)."""
    books: SeqBooks
    """Every recorded seq of every worker, as ranges per state (the accounting reads them)."""
    histograms: StageHistograms
    """Latency per stage over the measured window."""
    window: WindowTally
    """Items consumed and forwarded in the measured window, and their time in the global queue."""
    depth_edges: tuple[int | None, int | None] = (None, None)
    """The global depth at the first and at the last sample of the measured window."""
    depth_area: tuple[float | None, float] = (None, 0.0)
    """The integral of the global depth (item x ns) from t0 to the window's start, and to its end."""
    memory: list[dict] = field(default_factory=list)
    """Per process: first, last and peak resident memory."""
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    rounds: int = 0
    exit_code: int = 0
    failures: list[dict] = field(default_factory=list)
    """One entry per worker failure: worker, incarnation, kind, time_s, detail, action."""
    dead_local: list[tuple[int, int, int]] = field(default_factory=list)
    """(worker, first, end): seqs [first, end) were in a dead worker's local queue."""
    blocked_s: dict[int, float] = field(default_factory=dict)
    restarts: dict[int, int] = field(default_factory=dict)
    machine_noise: dict[str, Any] | None = None
    """What else the machine did over the measured window (``framework.noise.NoiseSampler``)."""
    calibration: dict[str, Any] = field(default_factory=dict)
    """``before`` and ``after``: the reference workload timed right before and right after the run."""
    directory: Path | None = None
    """Where the records were streamed (items.parquet, depth.parquet, memory.parquet)."""
    record_wait_s: float = 0.0
    """Seconds the chief waited for the items table's writer (it had fallen behind)."""
    detail_sums: dict[str, int] = field(default_factory=dict)
    """Per detail column of the payload (rollout: episode_ends), its sum over the window's consumed items."""


class Chief:
    """The main process's side of one run: its parts, and the check loop that drives them."""

    def __init__(self, spec: Config, design: Any, backend: Any, echo: Callable[[str], None],
                 directory: Path | None = None) -> None:
        self.spec = spec
        self.design = design
        self.directory = directory
        self.n = spec.workers.count
        self.bound = item_bound(spec)
        self.interrupts = Interrupts()
        self.notes = Notes()
        rec = spec.record
        self.recorder = Recorder(value_reader(spec.payload), directory, rec.items, rec.sample_every, rec.flush_s,
                                 column_of=column_reader(spec.payload), details=detail_readers(spec.payload))
        self.depth = DepthRecorder(self.n, directory, rec.flush_s)
        self.memory = MemoryRecorder(directory, rec.flush_s)
        control = backend.control_block(protocol.HEADER_SLOTS + self.n * protocol.WORKER_SLOTS)
        self.books = Books(control, self.n, self.recorder, spec.run.depth_sample_s, self.depth)
        self.supervisor = Supervisor(spec, design, backend, self.books, self.notes, self.interrupts, self.bound,
                                     item_nbytes(spec.payload), self.memory)
        self.rounds_limit = spec.chief.rounds if (spec.run.duration_s is None and spec.run.items is None) else None
        self.progress = Progress(spec.run.progress, self.rounds_limit)
        print_items = spec.run.print_items if spec.run.print_items is not None else spec.chief.interval_s > 0

        def echo_item(line: str) -> None:
            self.progress.clear()
            echo(line)

        self.echo_item = echo_item if print_items else None
        self.intake: Intake | None = None
        self.noise = NoiseSampler(self.run_pids)
        self.noise_from_ns = 0
        """When the measured window starts (after the warm-up): the noise sampler starts then."""
        self._last_noise_ns = 0
        self.flush_ns = int(spec.record.flush_s * 1e9 / 2)
        self._last_flush_ns = 0
        self.t0 = 0
        self.rounds = 0
        self.stop_count = 0
        """Interrupts seen when the stop began: one more means stop at once."""

    def open_intake(self, consumer: Any) -> Intake:
        intake = Intake(consumer, self.recorder, self.books, self.supervisor, self.spec.workers.forward_batch,
                        self.spec.run.drain_timeout_s, self.echo_item)
        intake.interrupts = self.interrupts
        self.intake = intake
        return intake

    def run_pids(self) -> list[int]:
        """The run's processes: the chief, its children (workers, a manager) and every worker handle's pid."""
        pids = set(own_pids())
        pids.update(p.pid for p in self.supervisor.all_processes() if p.pid)
        return sorted(pids)

    def housekeeping(self, now: int) -> None:
        """Every HOUSEKEEPING_S: Ctrl-C, the workers' health, depth, memory and noise samples, progress."""
        if now >= self.noise_from_ns:
            if not self.noise.started:
                self.noise.start()
                self._last_noise_ns = now
            elif now - self._last_noise_ns >= NOISE_SAMPLE_NS:
                self.noise.sample()
                self._last_noise_ns = now
        self.interrupts.check()
        self.supervisor.check_workers(now)
        self.books.sample_depth(now)
        self.supervisor.sample_memory(now)
        if now - self._last_flush_ns >= self.flush_ns:  # records reach the disk at least every record.flush_s
            self._last_flush_ns = now
            self.recorder.flush()
            self.depth.flush()
            self.memory.flush()
        self.progress.update(now, self.t0, self.rounds, sum(self.books.produced()), self.recorder.consumed,
                             len(self.supervisor.failures))

    def loop(self) -> None:
        """The check loop of the original program, generalised; returns when the run is over."""
        s, books, intake, supervisor = self.spec, self.books, self.intake, self.supervisor
        interval_ns = int(s.chief.interval_s * 1e9)
        threshold, take_batch = s.chief.global_threshold, s.chief.take_batch
        end_ns = None if s.run.duration_s is None else self.t0 + int(s.run.duration_s * 1e9)
        stop_ns = end_ns if end_ns is not None else NEVER_NS
        items_target = s.run.items
        rounds_limit = self.rounds_limit
        take_all = take_batch == 0
        echo = intake.echo is not None
        evict = self.bound is not None and s.queue.on_full == "drop_oldest"
        delay_s = s.faults.chief_delay_s
        housekeeping_ns = int(HOUSEKEEPING_S * 1e9)
        jitter = random.Random(s.run.seed).random
        now_ns = time.monotonic_ns
        next_check = self.t0  # the original checks at once, then every interval
        next_housekeeping = self.t0
        produced_all = False
        books.sample_depth(self.t0, force=True)
        while True:
            now = now_ns()
            if now >= next_housekeeping or now >= stop_ns:
                # Jittered: samples at a fixed phase would lock onto periodic workers (a worker that forwards
                # every 50 ms just after each sample) and bias the time-averaged depth (Little's law).
                next_housekeeping = now + int(housekeeping_ns * (0.5 + jitter()))
                self.housekeeping(now)
                if evict:
                    intake.evict(self.bound)
                if now >= stop_ns:
                    # At once, not at the next housekeeping: a take stops at the end, and the loop must not
                    # spin on takes that can no longer receive.
                    return
                if items_target is not None and min(
                        p for w, p in enumerate(books.produced()) if w not in supervisor.dead) >= items_target:
                    # Every item is made: the chief checks for one more housekeeping period, so that what
                    # was forwarded last meets the rule at least once, then the run ends.
                    if produced_all:
                        return
                    produced_all = True
            if interval_ns:
                if now < next_check:
                    # Between checks the depth is still observed every OBSERVE_S (a counter read): the
                    # time-averaged depth must not miss what the workers forward while the chief sleeps.
                    time.sleep(max(0, min(next_check, next_housekeeping, now + OBSERVE_NS) - now) / 1e9)
                    books.observe(now_ns(), books.global_depth())
                    continue
                next_check += interval_ns
            if evict:
                intake.evict(self.bound)
            if delay_s:
                time.sleep(delay_s)
            depth = books.global_depth()
            books.observe(now_ns(), depth)
            if depth > threshold:
                if echo:
                    intake.round = self.rounds
                intake.take(depth if take_all or depth < take_batch else take_batch, end_ns, observed=True)
            elif not interval_ns:
                # Checking "at once" must not mean spinning on the counters: sleep in the design
                # until something arrives (or housekeeping is due).
                intake.await_arrival(next_housekeeping)
            self.rounds += 1
            if interval_ns:
                books.sample_depth(now_ns(), force=True)
            if rounds_limit is not None and self.rounds >= rounds_limit:
                return

    def open_window(self, t0: int) -> None:
        """The barrier opened at ``t0``: the measured window starts after the warm-up."""
        self.t0 = self.supervisor.t0 = self.depth.t0_ns = t0
        start = t0 + int(self.spec.run.warmup_s * 1e9)
        self.noise_from_ns = self.books.window_start_ns = self.depth.window_start_ns = start
        self.recorder.window.start_ns = start

    def close_window(self, t_end: int) -> None:
        """The loop ended at ``t_end``: what is recorded from now on (the drain) is tallied against it."""
        self.recorder.flush()
        self.recorder.window.end_ns = t_end

    def close_records(self) -> None:
        """Flush and close the streamed tables (only their last parts are written now)."""
        recorders = (self.recorder, self.depth, self.memory)
        for recorder in recorders:  # the three writers finish their last parts at once
            try:
                recorder.stop()
            except Exception as exc:  # noqa: BLE001 - a disk that fills up must not lose the summary
                self.notes.errors.append(f"records could not all be written: {exc}")
        for recorder in recorders:
            try:
                recorder.close()
            except Exception as exc:  # noqa: BLE001 - a disk that fills up must not lose the summary
                self.notes.errors.append(f"records could not all be written: {exc}")

    def raw_run(self, status: str, exit_code: int, t_end: int, cpu_s: float, end_ns: int) -> RawRun:
        """What the run measured; ``cpu_s`` and ``end_ns``: the chief's CPU seconds from the start barrier and
        the moment its shutdown ended."""
        books, supervisor, notes, recorder = self.books, self.supervisor, self.notes, self.recorder
        return RawRun(t0_ns=self.t0, t_end_ns=t_end, status=status, produced=dict(enumerate(books.produced())),
                      forwarded=dict(enumerate(books.forwarded())),
                      processes=supervisor.process_rows(self.t0, cpu_s, end_ns),
                      counts=recorder.counts(), books=recorder.books, histograms=recorder.histograms,
                      window=recorder.window, depth_edges=(self.depth.window_first, self.depth.window_last),
                      depth_area=(books.area_at_start, books.area), memory=self.memory.summary(),
                      errors=notes.errors, warnings=notes.warnings, rounds=self.rounds, exit_code=exit_code,
                      failures=supervisor.failures, dead_local=books.dead_local, blocked_s=books.blocked_s(),
                      restarts=dict(enumerate(supervisor.restarts)), directory=self.directory,
                      record_wait_s=recorder.wait_s, detail_sums=dict(recorder.detail_sums))


def run_system(spec: Config, echo: Callable[[str], None] = print, directory: Path | None = None) -> RawRun:
    """Run the chief/worker system once, streaming its records into ``directory`` (None: keep none); always
    reaps every process, closes the design and the streams."""
    hygiene.remove_stale()
    hygiene.claim_tempdir()
    # The reference workload before anything of the run starts (the record writers' threads warm up as
    # soon as they exist): what the machine could do at that moment.
    calibration = {"before": calibrate(CALIBRATION_S)}
    backend = open_backend(spec)
    # The framework keeps the bound itself (in items, for every design), so the design is unbounded.
    settings = QueueSettings(spec.queue.name, 0, spec.queue.buffer_bytes, message_bytes(spec))
    design = None
    try:
        design = resolve_design(spec)(settings, spec.workers.count, backend.design_context)
        chief = Chief(spec, design, backend, echo, directory)
    except BaseException:
        # Before the main try below: release the design's segments and pipes, and the backend, here.
        if design is not None:
            design.close()
        backend.close()
        raise
    supervisor, notes = chief.supervisor, chief.notes
    status, exit_code, intake = "ok", 0, None
    machine_noise = None
    t_end = 0
    cpu0 = time.process_time()
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    main_thread = in_main_thread()
    if main_thread:
        for sig in previous:
            signal.signal(sig, chief.interrupts)
    # The cyclic collector paused for the run: the chief makes no cycles, and a full collection
    # over millions of recorded rows stalled it for up to a second (measured with shm_ring).
    heap.keep_blocks_on_the_heap()  # a block's numpy temporaries must not pay page faults at every flush
    gc_was_enabled = gc.isenabled()
    gc.disable()
    # The record writers' threads hold the GIL while they build a part: at the default 5 ms switch
    # interval an item that arrives then waits up to 5 ms for the chief (its p99 at 1,000 items/s).
    switch_interval = sys.getswitchinterval()
    sys.setswitchinterval(GIL_SWITCH_S)
    try:
        try:
            supervisor.start()
            consumer = design.consumer()
            # The recorder keeps no payload, so a design may lend views instead of copies.
            consumer.lend_views = True
            consumer.accept_chunks = True  # the intake takes chunks: runs of single items may come as one
            intake = chief.open_intake(consumer)
            if not spec.run.warmup_s:
                chief.noise.start()  # before the barrier opens: the first check must not wait for it
            chief.open_window(time.monotonic_ns())
            cpu0 = time.process_time()
            chief.books.control[protocol.START_NS] = chief.t0
            chief.loop()
        except RunInterrupted as exc:
            status, exit_code = "interrupted", exc.exit_code
            notes.errors.append(f"interrupted by {exc}")
        except WorkerFailed as exc:
            status = "failed"
            if not any(str(exc) in e for e in notes.errors):
                notes.errors.append(str(exc))
        t_end = time.monotonic_ns()
        if chief.t0:
            chief.books.sample_depth(t_end, force=True)
        chief.close_window(t_end)
        if chief.noise.started:
            machine_noise = chief.noise.stop()
        chief.books.control[protocol.STOP] = 1
        chief.stop_count = chief.interrupts.count
        chief.progress.clear()
        try:
            if intake is not None:
                intake.drain(lambda: chief.interrupts.check(chief.stop_count + 1))
                intake.consumer.finish(JOIN_TIMEOUT_S)
            supervisor.reap(stop_count=chief.stop_count)
            chief.interrupts.check(chief.stop_count + 1)
        except RunInterrupted as exc:
            # A second Ctrl-C: stop waiting, but still leave nothing behind.
            status, exit_code = "interrupted", exc.exit_code
            notes.errors.append(f"interrupted again by {exc} while stopping: workers killed")
            supervisor.reap(hard=True)
    finally:
        if gc_was_enabled:
            gc.enable()
        sys.setswitchinterval(switch_interval)
        chief.books.control[protocol.STOP] = 1
        supervisor.reap(hard=True)
        design.close()
        supervisor.errors_channel.close()
        backend.close()  # the Ray backend stops its actors (and an embedded Ray)
        chief.close_records()
        if main_thread:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
    # The chief's own time ends with the shutdown: the calibration below is a measurement of the machine,
    # a busy loop that would count as the chief's CPU (about 5 % of a core over a 1 s run).
    chief_cpu_s, chief_end_ns = time.process_time() - cpu0, time.monotonic_ns()
    calibration["after"] = calibrate(CALIBRATION_S)  # every worker is gone: the machine as the run left it
    raw = chief.raw_run(status, exit_code, t_end, chief_cpu_s, chief_end_ns)
    raw.machine_noise, raw.calibration = machine_noise, calibration
    return raw
