"""The chief: starts the workers, runs the check loop, stops everything, keeps the books.

Data flow (one run)::

                      shared control block (int64 slots, one writer each)
          +------------------------------------------------------------------+
          | STOP  START_NS  CONSUMED | worker i: PRODUCED FORWARDED HEARTBEAT |
          +------------------------------------------------------------------+
               ^ chief writes                ^ worker i writes
    worker i                                                     chief (main process)
    --------                                                     --------------------
    source() --> local queue --(threshold/deadline)--> put ==> global queue ==> get_many
     seeded      (deque |       transform, stamp         queue design      every chief.interval_s,
     stream i     mp_queue)     forwarded_ns             (framework.       if depth > global_threshold:
     created_ns                                           queues)          take, stamp consumed_ns,
                                                                           record (ItemRecorder)

Queue depths are computed from the counters (global = sum(FORWARDED) - CONSUMED,
local i = PRODUCED_i - FORWARDED_i), never from ``qsize()``.

Shutdown protocol:

1. The chief decides the run is over (rounds, ``run.duration_s``, ``run.items``, a worker
   failure, Ctrl-C or SIGTERM) and stamps ``t_end``: the measured window is closed.
2. It sets STOP. Each worker leaves its loop within one sleep slice (50 ms), puts a
   ``Leftovers`` message with what its local queue holds (forwarded through the
   transform, or kept as drawn, per ``run.on_stop``), then ``EndOfStream`` with its
   own account (and its traceback if it failed), then flushes and closes its end.
3. The chief drains the global queue while waiting for every ``EndOfStream`` (items
   drained are ``left_global``), for at most ``run.drain_timeout_s``: draining while
   joining is what keeps a ``multiprocessing.Queue`` feeder thread from hanging the exit.
4. It joins each worker; a straggler is terminated, then killed. The design closes.
5. Accounting by sequence numbers: for each worker, every seq in [0, produced) must
   appear exactly once among consumed + left items; otherwise the run is failed and
   the summary says which worker lost or duplicated what.

A second Ctrl-C during the drain kills the workers at once (still reaped, still closed).
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from framework import protocol
from framework.config import Config
from framework.payloads import item_nbytes, value_reader
from framework.queues import QueueSettings, design_class
from framework.record import LEFT_GLOBAL, LEFT_LOCAL, NO_STAMP, DepthRecorder, ItemRecorder
from framework.worker import WorkerSpec, run_worker

HOUSEKEEPING_S = 0.05
"""How often the chief samples depth, checks its workers and refreshes progress while idle."""
STARTUP_TIMEOUT_S = 120.0
"""Longest wait for every worker to be ready (spawn imports numpy in each)."""
TAKE_CHUNK_ITEMS = 1024
"""Most items asked of one get_many: bounds how long one call can overrun the run's end."""
JOIN_TIMEOUT_S = 5.0
"""Grace given to a worker to exit after its end-of-stream, before terminate, then kill."""


class RunInterrupted(Exception):
    """Ctrl-C or SIGTERM reached the chief."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum
        self.exit_code = 128 + signum


class WorkerFailed(Exception):
    """A worker raised or died; the message names which and how."""


@dataclass
class RawRun:
    """What the chief measured, before any figure is computed."""

    items: pd.DataFrame
    depth: pd.DataFrame
    t0_ns: int
    t_end_ns: int
    status: str
    produced: dict[int, int]
    forwarded: dict[int, int]
    processes: list[dict]
    errors: list[str] = field(default_factory=list)
    rounds: int = 0
    exit_code: int = 0


def _live_processes(procs: list) -> None:
    for wid, p in enumerate(procs):
        if p.exitcode is not None:
            raise WorkerFailed(f"worker {wid} (pid {p.pid}) exited with code {p.exitcode} before the run ended")


class _Chief:
    """The main process's side of one run."""

    def __init__(self, spec: Config, echo: Callable[[str], None]) -> None:
        self.spec = spec
        self.echo = echo
        self.n = spec.workers.count
        self.ctx = multiprocessing.get_context(spec.run.start_method)
        self.control = protocol.control_block(self.ctx, self.n)
        self.items = ItemRecorder(value_reader(spec.payload), item_nbytes(spec.payload))
        self.depth = DepthRecorder(self.n)
        self.procs: list = []
        self.reports: dict[int, protocol.EndOfStream] = {}
        self.errors: list[str] = []
        self.rounds = 0
        self.print_items = spec.run.print_items if spec.run.print_items is not None else spec.chief.interval_s > 0
        self._produced_slots = [protocol.worker_slot(w, protocol.PRODUCED) for w in range(self.n)]
        self._forwarded_slots = [protocol.worker_slot(w, protocol.FORWARDED) for w in range(self.n)]
        self._last_sample_ns = 0
        self._last_progress_ns = 0

    # -- counters ------------------------------------------------------------------
    def produced(self) -> list[int]:
        return [self.control[s] for s in self._produced_slots]

    def forwarded(self) -> list[int]:
        return [self.control[s] for s in self._forwarded_slots]

    def global_depth(self) -> int:
        return sum(self.forwarded()) - self.items.consumed

    def sample_depth(self, now: int, force: bool = False) -> None:
        if force or now - self._last_sample_ns >= self.sample_ns:
            produced, forwarded = self.produced(), self.forwarded()
            self.depth.add(now, sum(forwarded) - self.items.consumed, [p - f for p, f in zip(produced, forwarded)])
            self._last_sample_ns = now

    # -- life cycle ------------------------------------------------------------------
    def start(self, design: Any) -> None:
        s = self.spec
        for wid in range(self.n):
            wspec = WorkerSpec(
                worker_id=wid, seed=s.run.seed, interval_s=s.workers.interval_s,
                local_threshold=s.workers.local_threshold, forward_batch=s.workers.forward_batch,
                forward_deadline_s=s.workers.forward_deadline_s, local_queue=s.workers.local_queue,
                items=s.run.items, on_stop=s.run.on_stop, payload=s.payload, transform=s.transform)
            p = self.ctx.Process(target=run_worker, args=(wspec, design.producer(wid), self.control),
                                 name=f"chiefbench-worker-{wid}")
            self.procs.append(p)
            _start_ignoring_signals(p)
        design.producers_started()
        ready_slots = [protocol.worker_slot(w, protocol.READY) for w in range(self.n)]
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while not all(self.control[slot] for slot in ready_slots):
            _live_processes(self.procs)
            if time.monotonic() > deadline:
                raise WorkerFailed(f"workers were not ready within {STARTUP_TIMEOUT_S:.0f} s")
            time.sleep(0.002)

    def loop(self, consumer: Any) -> None:
        """The check loop of the original program, generalised; returns when the run is over."""
        s = self.spec
        interval_ns = int(s.chief.interval_s * 1e9)
        threshold, take_batch = s.chief.global_threshold, s.chief.take_batch
        end_ns = None if s.run.duration_s is None else self.t0 + int(s.run.duration_s * 1e9)
        items_target = s.run.items
        rounds_limit = s.chief.rounds if (s.run.duration_s is None and items_target is None) else None
        self.sample_ns = int(s.run.depth_sample_s * 1e9)
        housekeeping_ns = int(HOUSEKEEPING_S * 1e9)
        now_ns = time.monotonic_ns
        next_check = self.t0  # the original checks at once, then every interval
        next_housekeeping = self.t0
        self.sample_depth(self.t0, force=True)
        while True:
            now = now_ns()
            if now >= next_housekeeping:
                next_housekeeping = now + housekeeping_ns
                _live_processes(self.procs)
                self.sample_depth(now)
                self.progress(now)
                if end_ns is not None and now >= end_ns:
                    return
                if items_target is not None and min(self.produced()) >= items_target:
                    return
            if interval_ns:
                if now < next_check:
                    time.sleep(max(0, min(next_check, next_housekeeping) - now) / 1e9)
                    continue
                next_check += interval_ns
            depth = self.global_depth()
            if depth > threshold:
                self.take(consumer, depth if take_batch == 0 else min(take_batch, depth), end_ns)
            self.rounds += 1
            if interval_ns:
                self.sample_depth(now_ns(), force=True)
            if rounds_limit is not None and self.rounds >= rounds_limit:
                return

    def take(self, consumer: Any, n: int, end_ns: int | None) -> None:
        """Take ``n`` items the counters say were forwarded (they may still be in flight);
        stop early at ``end_ns``, so a long drain cannot stretch ``run.duration_s``."""
        got = 0
        deadline = time.monotonic() + self.spec.run.drain_timeout_s
        while got < n and (end_ns is None or time.monotonic_ns() < end_ns):
            try:
                batch = consumer.get_many(min(n - got, TAKE_CHUNK_ITEMS), timeout=HOUSEKEEPING_S)
            except queue.Empty:
                _live_processes(self.procs)
                if time.monotonic() > deadline:
                    raise WorkerFailed(f"{n - got} forwarded items did not arrive within "
                                       f"run.drain_timeout_s={self.spec.run.drain_timeout_s}") from None
                continue
            stamp = time.monotonic_ns()
            items = [m for m in batch if type(m) is tuple]
            if len(items) != len(batch):
                for message in batch:
                    if type(message) is not tuple:
                        self.handle_message(message)
            self.items.add(items, stamp)
            got += len(items)
            if self.print_items:
                for w, seq, _, _, value in items:
                    self.echo(f"[chief] round {self.rounds}: took {value!r:.40} (worker {w}, seq {seq})")
        self.control[protocol.CONSUMED] = self.items.consumed

    def handle_message(self, message: Any) -> None:
        if type(message) is protocol.EndOfStream:
            self.reports[message.worker] = message
            if message.error:
                self.errors.append(f"worker {message.worker} raised:\n{message.error}")
                raise WorkerFailed(f"worker {message.worker} raised an exception (traceback in the summary)")
        elif type(message) is protocol.Leftovers:
            self.items.add(message.items, NO_STAMP, LEFT_LOCAL)
        else:
            raise TypeError(f"unexpected message on the global queue: {type(message).__name__}")

    def drain(self, consumer: Any) -> None:
        """Step 3 of the protocol: take everything left until each worker's EndOfStream.

        The timeout counts from the last message received: a long backlog that keeps
        flowing is drained to the end, a silent worker is given up on.
        """
        deadline = time.monotonic() + self.spec.run.drain_timeout_s
        while len(self.reports) < self.n and time.monotonic() < deadline:
            try:
                batch = consumer.get_many(1 << 16, timeout=HOUSEKEEPING_S)
                deadline = time.monotonic() + self.spec.run.drain_timeout_s
            except queue.Empty:
                if all(p.exitcode is not None for w, p in enumerate(self.procs) if w not in self.reports):
                    # Whoever has not reported is dead: nothing more will come.
                    break
                continue
            items = [m for m in batch if type(m) is tuple]
            self.items.add(items, NO_STAMP, LEFT_GLOBAL)
            for message in batch:
                if type(message) is not tuple:
                    try:
                        self.handle_message(message)
                    except WorkerFailed:
                        pass  # already recorded in self.errors; keep draining the others
        missing = [w for w in range(self.n) if w not in self.reports]
        if missing:
            self.errors.append(f"no end-of-stream from worker(s) {missing}: nothing arrived for "
                               f"run.drain_timeout_s={self.spec.run.drain_timeout_s} s")

    def reap(self, hard: bool = False) -> None:
        """Step 4: join, then terminate, then kill. Never leaves a child behind."""
        for p in self.procs:
            if not hard:
                p.join(JOIN_TIMEOUT_S)
            if p.is_alive():
                # Workers ignore SIGTERM (the chief alone coordinates a stop): go straight to SIGKILL.
                p.kill()
                p.join()

    def progress(self, now: int) -> None:
        if not self.spec.run.progress or now - self._last_progress_ns < 5e8:
            return
        self._last_progress_ns = now
        elapsed = (now - self.t0) / 1e9
        produced, consumed = sum(self.produced()), self.items.consumed
        where = f"round {self.rounds}/{self.spec.chief.rounds}" if (
            self.spec.run.duration_s is None and self.spec.run.items is None) else f"{elapsed:6.1f} s"
        rate = consumed / elapsed if elapsed > 0 else 0.0
        line = f"[chief] {where}  produced {produced:,}  consumed {consumed:,}  rate {rate:,.4g} items/s"
        if sys.stderr.isatty():
            sys.stderr.write("\r" + line + "\033[K")
            sys.stderr.flush()
        elif now - getattr(self, "_last_line_ns", 0) >= 5e9:
            self._last_line_ns = now
            print(line, file=sys.stderr, flush=True)


def _start_ignoring_signals(process: Any) -> None:
    """Start a worker that ignores Ctrl-C and SIGTERM from its first instruction on.

    A terminal's Ctrl-C (or a group-wide SIGTERM) reaches every process of the group.
    A spawned interpreter that starts with the signal ignored keeps ignoring it, so no
    worker dies mid-stream or prints a traceback of its own, even while importing: the
    chief alone stops the run (and kills a straggler with SIGKILL).
    """
    if not _in_main_thread():
        process.start()
        return
    previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        process.start()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise RunInterrupted(signum)


def run_system(spec: Config, echo: Callable[[str], None] = print) -> RawRun:
    """Run the chief/worker system once; always reaps every process and closes the design."""
    chief = _Chief(spec, echo)
    design = design_class(spec.queue.name)(QueueSettings(spec.queue.name, spec.queue.maxsize),
                                           chief.n, chief.ctx)
    status, exit_code, consumer = "ok", 0, None
    chief.t0 = t_end = 0
    chief.cpu0 = time.process_time()
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    in_main_thread = _in_main_thread()
    if in_main_thread:
        for sig in previous:
            signal.signal(sig, _raise_interrupt)
    try:
        try:
            chief.start(design)
            consumer = design.consumer()
            chief.t0 = time.monotonic_ns()
            chief.cpu0 = time.process_time()
            chief.control[protocol.START_NS] = chief.t0
            chief.loop(consumer)
        except RunInterrupted as exc:
            status, exit_code = "interrupted", exc.exit_code
            chief.errors.append(f"interrupted by {exc}")
        except WorkerFailed as exc:
            status = "failed"
            chief.errors.append(str(exc))
        t_end = time.monotonic_ns()
        if chief.t0:
            chief.sample_depth(t_end, force=True)
        chief.control[protocol.STOP] = 1
        if spec.run.progress and sys.stderr.isatty():
            sys.stderr.write("\n")
        try:
            if consumer is not None:
                chief.drain(consumer)
            chief.reap()
        except RunInterrupted as exc:
            # A second Ctrl-C: stop waiting, but still leave nothing behind.
            status, exit_code = "interrupted", exc.exit_code
            chief.errors.append(f"interrupted again by {exc} while stopping: workers killed")
            chief.reap(hard=True)
    finally:
        chief.control[protocol.STOP] = 1
        chief.reap(hard=True)
        design.close()
        if in_main_thread:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
    counters = chief.produced()
    produced = {w: (chief.reports[w].produced if w in chief.reports else counters[w]) for w in range(chief.n)}
    fwd_counters = chief.forwarded()
    forwarded = {w: (chief.reports[w].forwarded if w in chief.reports else fwd_counters[w]) for w in range(chief.n)}
    processes = [{"role": "chief", "worker": -1, "pid": os.getpid(),
                  "wall_s": (time.monotonic_ns() - chief.t0) / 1e9 if chief.t0 else 0.0,
                  "cpu_s": time.process_time() - chief.cpu0}]
    for w in range(chief.n):
        r = chief.reports.get(w)
        processes.append({"role": "worker", "worker": w, "pid": r.pid if r else chief.procs[w].pid if w < len(
            chief.procs) else None, "wall_s": r.wall_s if r else None, "cpu_s": r.cpu_s if r else None,
            "exitcode": chief.procs[w].exitcode if w < len(chief.procs) else None})
    return RawRun(items=chief.items.frame(), depth=chief.depth.frame(chief.t0), t0_ns=chief.t0, t_end_ns=t_end,
                  status=status, produced=produced, forwarded=forwarded, processes=processes,
                  errors=chief.errors, rounds=chief.rounds, exit_code=exit_code)


def _in_main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()
