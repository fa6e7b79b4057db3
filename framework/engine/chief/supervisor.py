"""Supervising the workers: start them, watch them, apply ``workers.on_failure``, reap them.

A worker that raises sends ``WorkerError`` on the side channel at once (then leftovers and
``EndOfStream`` as usual); one that dies shows as an exit code; one that hangs stops writing its
heartbeat (a worker blocked inside a put marks itself ``IN_PUT`` and is not hung). The chief
checks every 50 ms and applies ``workers.on_failure``: ``abort`` (stop, status failed),
``continue`` (carry on without it) or ``restart`` (a new process with the next seed stream of that
worker, its sequence numbers and counters continued, at most ``workers.max_restarts`` times).
"""

from __future__ import annotations

import os
import time
from typing import Any

from framework.engine import protocol
from framework.engine.backends.base import Backend
from framework.engine.chief.books import Books, Notes
from framework.engine.chief.interrupts import Interrupts, start_ignoring_signals
from framework.engine.record import MemoryRecorder
from framework.engine.worker import WorkerSpec, run_worker
from framework.errors import WorkerFailed

STARTUP_TIMEOUT_S = 120.0
"""Longest wait for every worker to be ready (spawn imports numpy in each)."""
JOIN_TIMEOUT_S = 5.0
"""Grace given to a worker to exit after its end-of-stream, before SIGKILL."""
STALL_S = 2.0
"""How long every worker may sit blocked in a put, with the chief not taking, before the run is a deadlock."""
MEMORY_EVERY_NS = 1_000_000_000
"""How often the resident memory of every process is sampled."""
FAULT_KINDS = (("kill_worker_after_s", "kill"), ("raise_after_s", "raise"), ("hang_after_s", "hang"))


class Supervisor:
    """The workers' lives: processes, incarnations, failures, restarts, end-of-stream reports."""

    def __init__(self, spec: Any, design: Any, backend: Backend, books: Books, notes: Notes,
                 interrupts: Interrupts, bound: int | None, item_bytes: int,
                 memory: MemoryRecorder | None = None) -> None:
        self.spec, self.design, self.backend, self.books, self.notes = spec, design, backend, books, notes
        self.interrupts = interrupts
        self.bound, self.item_bytes = bound, item_bytes
        self.n = spec.workers.count
        self.errors_channel = backend.side_channel()
        self.procs: dict[int, Any] = {}
        self.retired: list = []
        self.incarnation = [0] * self.n
        self.started_ns = [0] * self.n
        self.restarts = [0] * self.n
        self.dead: set[int] = set()
        self.pending_restart: dict[int, Any] = {}
        self.awaiting_eos: set[tuple[int, int]] = set()
        self.handled: set[tuple[int, int]] = set()
        self.failures: list[dict] = []
        """One entry per worker failure: worker, incarnation, kind, time_s, detail, action."""
        self.reports: dict[tuple[int, int], protocol.EndOfStream] = {}
        self.memory = memory if memory is not None else MemoryRecorder()
        """Resident memory of every process, sampled once a second (streamed to memory.parquet)."""
        self.t0 = 0
        self.stalled_since: int | None = None
        self._last_memory_ns = 0

    # -- starting ---------------------------------------------------------------------------------
    def worker_spec(self, w: int) -> WorkerSpec:
        s, k, books = self.spec, self.incarnation[w], self.books
        fault = None
        if w == s.faults.worker and k == 0:
            due = [(getattr(s.faults, key), kind) for key, kind in FAULT_KINDS if getattr(s.faults, key) is not None]
            if due:
                at, kind = min(due)
                fault = (kind, at)
        return WorkerSpec(
            worker_id=w, seed=s.run.seed, interval_s=s.workers.interval_s,
            local_threshold=s.workers.local_threshold, forward_batch=s.workers.forward_batch,
            forward_deadline_s=s.workers.forward_deadline_s, local_queue=s.workers.local_queue,
            items=s.run.items, on_stop=s.run.on_stop, payload=s.payload, transform=s.transform,
            n_workers=self.n, bound=self.bound, on_full=s.queue.on_full, incarnation=k,
            seq_start=books.slot(w, protocol.PRODUCED), forwarded_start=books.slot(w, protocol.FORWARDED),
            dropped_start=books.slot(w, protocol.DROPPED), fault=fault, chief_pid=os.getpid(),
            start_method=s.run.start_method)

    def start_worker(self, w: int) -> None:
        k = self.incarnation[w]
        wspec = self.worker_spec(w)
        producer = self.design.producer(w) if k == 0 else self.design.respawn_producer(w)
        # The last life's heartbeat is stale: a new process (importing under spawn) has none yet.
        self.books.control[self.books.slots[protocol.HEARTBEAT_NS][w]] = 0
        self.started_ns[w] = time.monotonic_ns()
        p = self.backend.process(run_worker, (wspec, producer, self.books.control, self.errors_channel),
                                 f"chiefbench-worker-{w}")
        self.procs[w] = p
        self.awaiting_eos.add((w, k))
        start_ignoring_signals(p)

    def start(self) -> None:
        """Start every worker and wait at the barrier until each is ready."""
        for w in range(self.n):
            self.start_worker(w)
        self.design.producers_started()
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        ready = self.books.slots[protocol.READY]
        while not all(self.books.control[slot] for slot in ready):
            self.interrupts.check()
            self.check_workers(time.monotonic_ns(), starting=True)
            if time.monotonic() > deadline:
                raise WorkerFailed(f"workers were not ready within {STARTUP_TIMEOUT_S:.0f} s")
            time.sleep(0.002)

    # -- watching ---------------------------------------------------------------------------------
    def check_workers(self, now: int, starting: bool = False) -> None:
        """Find failed workers (side channel, exit codes, heartbeats) and apply the policy."""
        self.backend.check(now, starting, self.started_ns)
        self.read_side_channel()
        timeout_ns = int(self.spec.workers.heartbeat_timeout_s * 1e9)
        for w, p in list(self.procs.items()):
            k = self.incarnation[w]
            if w in self.dead or w in self.pending_restart or (w, k) in self.handled:
                continue
            if p.exitcode is not None:
                self.read_side_channel()  # its traceback may have landed after our first look
                if (w, k) not in self.handled:
                    self.on_failure(w, k, "died", f"exited with code {p.exitcode} (pid {p.pid})")
                continue
            beat = self.books.slot(w, protocol.HEARTBEAT_NS)
            if beat == 0 and now - self.started_ns[w] > STARTUP_TIMEOUT_S * 1e9:
                p.kill()
                p.join()
                self.on_failure(w, k, "hung", f"not ready {STARTUP_TIMEOUT_S:.0f} s after its start; killed (pid {p.pid})")
            elif not starting and beat != protocol.IN_PUT and beat > 0 and now - beat > timeout_ns:
                p.kill()
                p.join()
                self.on_failure(w, k, "hung", f"no heartbeat for {(now - beat) / 1e9:.1f} s "
                                              f"(workers.heartbeat_timeout_s={self.spec.workers.heartbeat_timeout_s}); "
                                              f"killed (pid {p.pid})")
        self.restart_pending()
        self.check_stall(now)

    def check_stall(self, now: int) -> None:
        """Every live worker blocked inside a put while the chief waits for a deeper queue: a deadlock.

        A transport without a buffer of its own (a pipe) holds at most what fits in the OS pipe
        buffer; if that is not more than chief.global_threshold items, nobody can move again.
        """
        if not self.backend.stall_possible(sum(self.books.forwarded())):
            self.stalled_since = None
            return
        live = [w for w in range(self.n) if w not in self.dead and w not in self.pending_restart]
        beats = [self.books.slot(w, protocol.HEARTBEAT_NS) for w in live]
        produced = self.books.produced()
        # A worker done with its run.items cannot deepen the queue either.
        done = [self.spec.run.items is not None and produced[w] >= self.spec.run.items for w in live]
        blocked = protocol.IN_PUT in beats and all(b == protocol.IN_PUT or d for b, d in zip(beats, done))
        depth = self.books.global_depth()
        if not blocked or depth > self.spec.chief.global_threshold:
            self.stalled_since = None
            return
        if self.stalled_since is None:
            self.stalled_since = now
        elif now - self.stalled_since > STALL_S * 1e9:
            s = self.spec
            message = (
                f"stalled: every worker has been blocked in a put (or done) for {STALL_S:.0f} s while the global queue holds "
                f"{depth} items, not more than chief.global_threshold={s.chief.global_threshold}, so the chief "
                f"never takes. queue={s.queue.name} cannot hold more items of {self.item_bytes:,} bytes "
                f"(its pipe buffer is full). Fix: lower chief.global_threshold below {depth}, or use a design that "
                f"buffers (queue=mp_queue)")
            self.notes.errors.append(message)
            raise WorkerFailed(message)

    def read_side_channel(self) -> None:
        while not self.errors_channel.empty():
            e = self.errors_channel.get()
            self.on_failure(e.worker, e.incarnation, "exception", e.traceback)

    def on_failure(self, w: int, k: int, kind: str, detail: str) -> None:
        """Record a failure of worker ``w``'s ``k``-th life and apply ``workers.on_failure``."""
        if (w, k) in self.handled or k != self.incarnation[w]:
            return
        self.handled.add((w, k))
        policy = self.spec.workers.on_failure
        entry = {"worker": w, "incarnation": k, "kind": kind,
                 "time_s": (time.monotonic_ns() - self.t0) / 1e9 if self.t0 else 0.0,
                 "produced_at_failure": self.books.slot(w, protocol.PRODUCED), "detail": detail}
        self.failures.append(entry)
        if kind != "exception":
            # No end-of-stream will come; its local queue is exactly these seqs.
            self.awaiting_eos.discard((w, k))
            self.books.lose_local(w)
        summary = detail.strip().splitlines()[-1] if detail.strip() else kind
        what = f"worker {w} {'raised' if kind == 'exception' else kind}: {summary}"
        if policy == "restart" and self.restarts[w] < self.spec.workers.max_restarts:
            self.restarts[w] += 1
            self.pending_restart[w] = self.procs[w]
            entry["action"] = f"restart {self.restarts[w]} of {self.spec.workers.max_restarts}"
            self.notes.warnings.append(f"{what} at {entry['time_s']:.2f} s: {entry['action']} (traceback in failures)")
            return
        if policy == "continue":
            self.dead.add(w)
            entry["action"] = "continue without it"
            self.notes.warnings.append(f"{what} at {entry['time_s']:.2f} s: continued without it (details in failures)")
            if len(self.dead) == self.n:
                raise WorkerFailed("every worker has failed (workers.on_failure=continue)")
            return
        entry["action"] = "abort"
        if policy == "restart":
            what += f"; workers.max_restarts={self.spec.workers.max_restarts} reached"
            entry["action"] = "abort (max_restarts reached)"
        self.notes.errors.append(what + ("\n" + detail if kind == "exception" else ""))
        raise WorkerFailed(what)

    def restart_pending(self) -> None:
        for w, old in list(self.pending_restart.items()):
            if old.exitcode is None:
                continue  # a worker that raised is still sending its leftovers
            del self.pending_restart[w]
            self.retired.append(old)
            self.incarnation[w] += 1
            self.start_worker(w)
            self.design.producers_started()

    def end_of_stream(self, message: protocol.EndOfStream) -> None:
        """A worker's last message: its account; a failure it reports goes through the policy."""
        key = (message.worker, message.incarnation)
        self.reports[key] = message
        self.awaiting_eos.discard(key)
        if message.error and key not in self.handled:
            self.on_failure(message.worker, message.incarnation, "exception", message.error)

    def all_exited(self) -> bool:
        return all(p.exitcode is not None for p in self.all_processes())

    def silent_workers(self) -> None:
        """At the end of the drain: whoever sent no end-of-stream lost what its local queue held."""
        if self.awaiting_eos:
            missing = sorted(w for w, _ in self.awaiting_eos)
            self.notes.errors.append(f"no end-of-stream from worker(s) {missing}: nothing arrived for "
                                     f"run.drain_timeout_s={self.spec.run.drain_timeout_s} s")
        for w, _ in sorted(self.awaiting_eos):
            self.books.lose_local(w)

    def sample_memory(self, now: int) -> None:
        if now - self._last_memory_ns < MEMORY_EVERY_NS:
            return
        self._last_memory_ns = now
        for row in self.backend.memory(self.procs):
            self.memory.add(now, *row)

    # -- stopping ---------------------------------------------------------------------------------
    def all_processes(self) -> list:
        return [*self.retired, *self.procs.values()]

    def reap(self, hard: bool = False, stop_count: int = 0) -> None:
        """Join, then kill. Never leaves a child behind."""
        for p in self.all_processes():
            if p.pid is None:
                continue  # never started
            deadline = time.monotonic() + (0 if hard else JOIN_TIMEOUT_S)
            while p.is_alive() and time.monotonic() < deadline and self.interrupts.count <= stop_count:
                p.join(0.05)  # in slices: one more Ctrl-C while stopping kills at once
            if p.is_alive():
                # Workers ignore SIGTERM (the chief alone coordinates a stop): go straight to SIGKILL.
                p.kill()
                p.join()

    def process_rows(self, t0: int, chief_cpu_s: float, chief_end_ns: int) -> list[dict]:
        """Wall and CPU time of the chief (from the start barrier ``t0`` to ``chief_end_ns``, the end of its
        shutdown) and of every worker process (from its end-of-stream)."""
        rows = [{"role": "chief", "worker": -1, "incarnation": 0, "pid": os.getpid(),
                 "wall_s": (chief_end_ns - t0) / 1e9 if t0 else 0.0, "cpu_s": chief_cpu_s, "exitcode": None}]
        for p in self.all_processes():
            w = int(p.name.rsplit("-", 1)[1])
            k = next((k for (ww, k), r in self.reports.items() if ww == w and r.pid == p.pid), None)
            r = self.reports.get((w, k)) if k is not None else None
            rows.append({"role": "worker", "worker": w, "incarnation": k, "pid": p.pid,
                         "wall_s": r.wall_s if r else None, "cpu_s": r.cpu_s if r else None,
                         "exitcode": p.exitcode})
        return rows
