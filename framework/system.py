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

Worker failures. A worker that raises sends ``WorkerError`` on a side channel at once
(then leftovers and ``EndOfStream`` as usual); one that dies shows as an exit code;
one that hangs stops writing its heartbeat (a worker blocked inside a put marks itself
``IN_PUT`` and is not hung). The chief checks every 50 ms and applies
``workers.on_failure``: ``abort`` (stop, status failed), ``continue`` (carry on
without it) or ``restart`` (a new process with the next seed stream of that worker,
its sequence numbers and counters continued, at most ``workers.max_restarts`` times).
What a dead worker held in its local queue is exactly the seqs in
[FORWARDED + DROPPED, PRODUCED) at its death: counted lost with that reason.

Backpressure. With a bound (``queue.maxsize`` / ``queue.max_bytes``, in items) workers
check the counter depth before each forward: ``block`` waits (time recorded),
``drop_newest`` drops the batch (seqs reported in ``EndOfStream``), ``fail`` raises;
under ``drop_oldest`` the chief evicts the oldest items past the bound.
"""

from __future__ import annotations

import gc
import os
import queue
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import psutil

from framework import hygiene, protocol
from framework.backends import run_context
from framework.config import Config, item_bound, message_bytes
from framework.payloads import item_nbytes, value_reader
from framework.queues import QueueSettings, design_class
from framework.protocol import Chunk
from framework.record import DROPPED_NEWEST, DROPPED_OLDEST, LEFT_GLOBAL, LEFT_LOCAL, NO_STAMP, STATES, \
    DepthRecorder, ItemRecorder
from framework.worker import WorkerSpec, run_worker

HOUSEKEEPING_S = 0.05
"""How often the chief samples depth, checks its workers and refreshes progress while idle."""
STARTUP_TIMEOUT_S = 120.0
"""Longest wait for every worker to be ready (spawn imports numpy in each)."""
TAKE_CHUNK_ITEMS = 1024
"""Most items asked of one get_many: bounds how long one call can overrun the run's end."""
JOIN_TIMEOUT_S = 5.0
"""Grace given to a worker to exit after its end-of-stream, before SIGKILL."""
STALL_S = 2.0
"""How long every worker may sit blocked in a put, with the chief not taking, before the run is a deadlock."""
TELL_WRITING_ITEMS = 1_000_000
"""From this many recorded items on, the chief says it is writing them (that takes seconds)."""
FAULT_KINDS = (("kill_worker_after_s", "kill"), ("raise_after_s", "raise"), ("hang_after_s", "hang"))



class RunInterrupted(Exception):
    """Ctrl-C or SIGTERM reached the chief."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum
        self.exit_code = 128 + signum


class WorkerFailed(Exception):
    """A worker raised, died or hung and the policy says stop; the message says which and how."""


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
    warnings: list[str] = field(default_factory=list)
    rounds: int = 0
    exit_code: int = 0
    failures: list[dict] = field(default_factory=list)
    """One entry per worker failure: worker, incarnation, kind, time_s, detail, action."""
    dead_local: list[tuple[int, int, int]] = field(default_factory=list)
    """(worker, first, end): seqs [first, end) were in a dead worker's local queue."""
    blocked_s: dict[int, float] = field(default_factory=dict)
    restarts: dict[int, int] = field(default_factory=dict)
    memory: list[tuple] = field(default_factory=list)
    """(t_ns, role, worker, pid, rss_bytes) samples."""


class _Chief:
    """The main process's side of one run."""

    def __init__(self, spec: Config, design: Any, ctx: Any, echo: Callable[[str], None]) -> None:
        self.spec = spec
        self.design = design
        self.ctx = ctx
        self.echo = echo
        self.n = spec.workers.count
        self.control = protocol.control_block(ctx, self.n)
        self.errors_channel = ctx.SimpleQueue()
        self.items = ItemRecorder(value_reader(spec.payload))
        self.depth = DepthRecorder(self.n)
        self.bound = item_bound(spec)
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
        self.dead_local: list[tuple[int, int, int]] = []
        self.reports: dict[tuple[int, int], protocol.EndOfStream] = {}
        self.errors: list[str] = []
        self.warnings: list[str] = []
        self.evicted = 0
        self.held: list = []
        """Messages received but not yet taken: the rest of a chunk the rule did not ask for."""
        self.forward_batch = spec.workers.forward_batch
        self.in_transit_lost = 0
        self.rounds = 0
        self.t0 = 0
        self.memory: list[tuple] = []
        self.interrupts = _Interrupts()
        self.stalled_since: int | None = None
        self.stop_count = 0
        """Interrupts seen when the stop began: one more means stop at once."""
        self.print_items = spec.run.print_items if spec.run.print_items is not None else spec.chief.interval_s > 0
        self._slots = {f: [protocol.worker_slot(w, f) for w in range(self.n)]
                       for f in (protocol.PRODUCED, protocol.FORWARDED, protocol.DROPPED, protocol.HEARTBEAT_NS,
                                 protocol.READY, protocol.BLOCKED_NS)}
        self.sample_ns = int(spec.run.depth_sample_s * 1e9)
        self._last_sample_ns = 0
        self._last_progress_ns = 0
        self._last_progress_consumed = 0
        self._progress_live = False
        self._last_line_ns = 0
        self._last_memory_ns = 0

    # -- counters ------------------------------------------------------------------
    def counter(self, field: int) -> list[int]:
        return [self.control[s] for s in self._slots[field]]

    def produced(self) -> list[int]:
        return self.counter(protocol.PRODUCED)

    def forwarded(self) -> list[int]:
        return self.counter(protocol.FORWARDED)

    def taken(self) -> int:
        return self.items.consumed + self.evicted + self.in_transit_lost

    def global_depth(self) -> int:
        return sum(self.forwarded()) - self.taken()

    def publish_taken(self) -> None:
        self.control[protocol.TAKEN] = self.taken()

    def sample_depth(self, now: int, force: bool = False) -> None:
        if force or now - self._last_sample_ns >= self.sample_ns:
            produced, forwarded, dropped = self.produced(), self.forwarded(), self.counter(protocol.DROPPED)
            self.depth.add(now, sum(forwarded) - self.taken(),
                           [p - f - d for p, f, d in zip(produced, forwarded, dropped)])
            self._last_sample_ns = now

    def sample_memory(self, now: int) -> None:
        if now - self._last_memory_ns < 1e9:
            return
        self._last_memory_ns = now
        pids = [("chief", -1, os.getpid())] + [("worker", w, p.pid) for w, p in self.procs.items()]
        for role, w, pid in pids:
            try:
                self.memory.append((now, role, w, pid, psutil.Process(pid).memory_info().rss))
            except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
                pass

    # -- workers ---------------------------------------------------------------------
    def start_worker(self, w: int) -> None:
        s, k = self.spec, self.incarnation[w]
        fault = None
        if w == s.faults.worker and k == 0:
            due = [(getattr(s.faults, key), kind) for key, kind in FAULT_KINDS if getattr(s.faults, key) is not None]
            if due:
                at, kind = min(due)
                fault = (kind, at)
        wspec = WorkerSpec(
            worker_id=w, seed=s.run.seed, interval_s=s.workers.interval_s,
            local_threshold=s.workers.local_threshold, forward_batch=s.workers.forward_batch,
            forward_deadline_s=s.workers.forward_deadline_s, local_queue=s.workers.local_queue,
            items=s.run.items, on_stop=s.run.on_stop, payload=s.payload, transform=s.transform,
            n_workers=self.n, bound=self.bound, on_full=s.queue.on_full, incarnation=k,
            seq_start=self.control[self._slots[protocol.PRODUCED][w]],
            forwarded_start=self.control[self._slots[protocol.FORWARDED][w]],
            dropped_start=self.control[self._slots[protocol.DROPPED][w]], fault=fault, chief_pid=os.getpid(),
            start_method=s.run.start_method)
        producer = self.design.producer(w) if k == 0 else self.design.respawn_producer(w)
        # The last life's heartbeat is stale: a new process (importing under spawn) has none yet.
        self.control[self._slots[protocol.HEARTBEAT_NS][w]] = 0
        self.started_ns[w] = time.monotonic_ns()
        p = self.ctx.Process(target=run_worker, args=(wspec, producer, self.control, self.errors_channel),
                             name=f"chiefbench-worker-{w}")
        self.procs[w] = p
        self.awaiting_eos.add((w, k))
        _start_ignoring_signals(p)

    def start(self) -> None:
        for w in range(self.n):
            self.start_worker(w)
        self.design.producers_started()
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while not all(self.control[slot] for slot in self._slots[protocol.READY]):
            self.interrupts.check()
            self.check_workers(time.monotonic_ns(), starting=True)
            if time.monotonic() > deadline:
                raise WorkerFailed(f"workers were not ready within {STARTUP_TIMEOUT_S:.0f} s")
            time.sleep(0.002)

    def check_workers(self, now: int, starting: bool = False) -> None:
        """Find failed workers (side channel, exit codes, heartbeats) and apply the policy."""
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
            beat = self.control[self._slots[protocol.HEARTBEAT_NS][w]]
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
        live = [w for w in range(self.n) if w not in self.dead and w not in self.pending_restart]
        beats = [self.control[self._slots[protocol.HEARTBEAT_NS][w]] for w in live]
        produced = self.produced()
        # A worker done with its run.items cannot deepen the queue either.
        done = [self.spec.run.items is not None and produced[w] >= self.spec.run.items for w in live]
        blocked = protocol.IN_PUT in beats and all(b == protocol.IN_PUT or d for b, d in zip(beats, done))
        depth = self.global_depth()
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
                f"never takes. queue={s.queue.name} cannot hold more items of {item_nbytes(s.payload):,} bytes "
                f"(its pipe buffer is full). Fix: lower chief.global_threshold below {depth}, or use a design that "
                f"buffers (queue=mp_queue)")
            self.errors.append(message)
            raise WorkerFailed(message)

    def read_side_channel(self) -> None:
        while not self.errors_channel.empty():
            e = self.errors_channel.get()
            self.on_failure(e.worker, e.incarnation, "exception", e.traceback)

    def on_failure(self, w: int, k: int, kind: str, detail: str) -> None:
        if (w, k) in self.handled or k != self.incarnation[w]:
            return
        self.handled.add((w, k))
        policy = self.spec.workers.on_failure
        entry = {"worker": w, "incarnation": k, "kind": kind,
                 "time_s": (time.monotonic_ns() - self.t0) / 1e9 if self.t0 else 0.0,
                 "produced_at_failure": self.control[self._slots[protocol.PRODUCED][w]], "detail": detail}
        self.failures.append(entry)
        if kind != "exception":
            # No end-of-stream will come; its local queue is exactly these seqs.
            self.awaiting_eos.discard((w, k))
            produced = self.control[self._slots[protocol.PRODUCED][w]]
            popped = self.control[self._slots[protocol.FORWARDED][w]] + self.control[self._slots[protocol.DROPPED][w]]
            if produced > popped:
                self.dead_local.append((w, popped, produced))
        summary = detail.strip().splitlines()[-1] if detail.strip() else kind
        what = f"worker {w} {'raised' if kind == 'exception' else kind}: {summary}"
        if policy == "restart" and self.restarts[w] < self.spec.workers.max_restarts:
            self.restarts[w] += 1
            self.pending_restart[w] = self.procs[w]
            entry["action"] = f"restart {self.restarts[w]} of {self.spec.workers.max_restarts}"
            self.warnings.append(f"{what} at {entry['time_s']:.2f} s: {entry['action']} (traceback in failures)")
            return
        if policy == "continue":
            self.dead.add(w)
            entry["action"] = "continue without it"
            self.warnings.append(f"{what} at {entry['time_s']:.2f} s: continued without it (details in failures)")
            if len(self.dead) == self.n:
                raise WorkerFailed("every worker has failed (workers.on_failure=continue)")
            return
        entry["action"] = "abort"
        if policy == "restart":
            what += f"; workers.max_restarts={self.spec.workers.max_restarts} reached"
            entry["action"] = "abort (max_restarts reached)"
        self.errors.append(what + ("\n" + detail if kind == "exception" else ""))
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

    # -- the check loop ----------------------------------------------------------------
    def loop(self, consumer: Any) -> None:
        """The check loop of the original program, generalised; returns when the run is over."""
        s = self.spec
        interval_ns = int(s.chief.interval_s * 1e9)
        threshold, take_batch = s.chief.global_threshold, s.chief.take_batch
        end_ns = None if s.run.duration_s is None else self.t0 + int(s.run.duration_s * 1e9)
        items_target = s.run.items
        rounds_limit = s.chief.rounds if (s.run.duration_s is None and items_target is None) else None
        evict = self.bound is not None and s.queue.on_full == "drop_oldest"
        delay_s = s.faults.chief_delay_s
        housekeeping_ns = int(HOUSEKEEPING_S * 1e9)
        now_ns = time.monotonic_ns
        next_check = self.t0  # the original checks at once, then every interval
        next_housekeeping = self.t0
        self.sample_depth(self.t0, force=True)
        while True:
            now = now_ns()
            if now >= next_housekeeping:
                next_housekeeping = now + housekeeping_ns
                self.interrupts.check()
                self.check_workers(now)
                self.sample_depth(now)
                self.sample_memory(now)
                self.progress(now)
                if evict:
                    self.evict(consumer)
                if end_ns is not None and now >= end_ns:
                    return
                if items_target is not None and min(
                        p for w, p in enumerate(self.produced()) if w not in self.dead) >= items_target:
                    return
            if interval_ns:
                if now < next_check:
                    time.sleep(max(0, min(next_check, next_housekeeping) - now) / 1e9)
                    continue
                next_check += interval_ns
            if evict:
                self.evict(consumer)
            if delay_s:
                time.sleep(delay_s)
            depth = self.global_depth()
            if depth > threshold:
                self.take(consumer, depth if take_batch == 0 else min(take_batch, depth), end_ns)
            elif not interval_ns:
                # Checking "at once" must not mean spinning on the counters: sleep in the design
                # until something arrives (or housekeeping is due).
                self.await_arrival(consumer, next_housekeeping)
            self.rounds += 1
            if interval_ns:
                self.sample_depth(now_ns(), force=True)
            if rounds_limit is not None and self.rounds >= rounds_limit:
                return

    def receive(self, consumer: Any, max_items: int, state: int, stamp_consumed: bool) -> list:
        """One get_many: record at most ``max_items`` items (tuples or chunks) and handle the
        messages; return the item-bearing messages; raise queue.Empty if nothing came."""
        if self.held:
            batch, self.held = self.held, []
        else:
            # A message may be a chunk of forward_batch items: ask for about enough of them.
            batch = consumer.get_many(max(1, -(-max_items // self.forward_batch)), timeout=HOUSEKEEPING_S)
        stamp = time.monotonic_ns() if stamp_consumed else NO_STAMP
        items, chunks, others, room = [], [], [], max_items
        for i, message in enumerate(batch):
            kind = type(message)
            if kind is tuple or kind is Chunk:
                if room == 0:
                    self.held = batch[i:]  # the rule asked for no more: keep them queued
                    break
                if kind is tuple:
                    items.append(message)
                    room -= 1
                elif len(message) <= room:
                    chunks.append(message)
                    room -= len(message)
                else:
                    head, tail = message.split(room)
                    chunks.append(head)
                    room = 0
                    self.held = [tail, *batch[i + 1:]]
                    break
            else:
                others.append(message)
        # Record first, and handle every message before raising: a failure under
        # on_failure=abort must not cost the messages that came with it.
        self.items.add(items, stamp, state)
        if chunks:
            self.items.add_chunks(chunks, stamp, state)
        failure = None
        for message in others:
            try:
                self.handle_message(message)
            except WorkerFailed as exc:
                failure = failure or exc
        if failure is not None:
            raise failure
        return [*items, *chunks]

    def await_arrival(self, consumer: Any, until_ns: int) -> None:
        """Wait in the design's own get (no busy loop) for the next message, at most until ``until_ns``.

        What arrives is held, not taken: it stays on the global queue for the chief's rule. One
        message per call, so the chief never reads ahead more than the threshold's worth (a
        design's own backpressure, such as a full pipe, keeps working)."""
        timeout = (until_ns - time.monotonic_ns()) / 1e9
        if timeout <= 0:
            return
        try:
            self.held.extend(consumer.get_many(1, timeout=timeout))
        except queue.Empty:
            pass

    def take(self, consumer: Any, n: int, end_ns: int | None) -> None:
        """Take ``n`` items the counters say were forwarded (they may still be in flight);
        stop early at ``end_ns``, so a long drain cannot stretch ``run.duration_s``."""
        got = 0
        deadline = time.monotonic() + self.spec.run.drain_timeout_s
        while got < n and (end_ns is None or time.monotonic_ns() < end_ns):
            if self.interrupts.count:
                break  # the loop raises at its next safe point; what was taken is recorded
            try:
                received = self.receive(consumer, min(n - got, TAKE_CHUNK_ITEMS), 0, True)
            except queue.Empty:
                self.check_workers(time.monotonic_ns())
                if time.monotonic() > deadline:
                    if self.failures:
                        # A dead worker's last puts never left its process (a feeder thread's
                        # buffer, a half-written message): they are lost in transit.
                        self.in_transit_lost += n - got
                        break
                    raise WorkerFailed(f"{n - got} forwarded items did not arrive within "
                                       f"run.drain_timeout_s={self.spec.run.drain_timeout_s}") from None
                continue
            got += _count(received)
            if self.print_items and received:
                self.clear_progress()
                for w, seq, _, _, value in _as_tuples(received):
                    self.echo(f"[chief] round {self.rounds}: took {value!r:.40} (worker {w}, seq {seq})")
            # At once, not after the take: the rest of it may be waiting for that room.
            self.release(consumer)
        self.publish_taken()

    def release(self, consumer: Any) -> None:
        """Nothing taken is referred to any more: a design that lent views may reuse their room
        (what is held for the next take keeps its room)."""
        if not self.held:
            consumer.release()

    def evict(self, consumer: Any) -> None:
        """queue.on_full=drop_oldest: remove the oldest items past the bound."""
        excess = self.global_depth() - self.bound
        while excess > 0:
            try:
                excess -= _count(self.receive(consumer, min(excess, TAKE_CHUNK_ITEMS), DROPPED_OLDEST, False))
                self.release(consumer)
            except queue.Empty:
                break
        self.evicted = self.items.count(DROPPED_OLDEST)
        self.publish_taken()

    def handle_message(self, message: Any) -> None:
        if type(message) is protocol.EndOfStream:
            key = (message.worker, message.incarnation)
            self.reports[key] = message
            self.awaiting_eos.discard(key)
            if message.dropped:
                w = message.worker
                self.items.add([(w, seq, created, NO_STAMP, float("nan")) for seq, created in message.dropped],
                               NO_STAMP, DROPPED_NEWEST)
            if message.error and key not in self.handled:
                self.on_failure(message.worker, message.incarnation, "exception", message.error)
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
        while self.awaiting_eos and time.monotonic() < deadline:
            self.interrupts.check(self.stop_count + 1)  # one more Ctrl-C while stopping: stop at once
            try:
                self.receive(consumer, 1 << 16, LEFT_GLOBAL, False)
                self.release(consumer)
                deadline = time.monotonic() + self.spec.run.drain_timeout_s
            except queue.Empty:
                if all(p.exitcode is not None for p in self.all_processes()):
                    break  # whoever has not reported is dead: nothing more will come
            except WorkerFailed:
                pass  # a failure reported while stopping is recorded; keep draining the others
        while self.held:  # received, never taken: still on the global queue at the stop
            self.receive(consumer, 1 << 30, LEFT_GLOBAL, False)
        if self.awaiting_eos:
            missing = sorted(w for w, _ in self.awaiting_eos)
            self.errors.append(f"no end-of-stream from worker(s) {missing}: nothing arrived for "
                               f"run.drain_timeout_s={self.spec.run.drain_timeout_s} s")
        for w, k in sorted(self.awaiting_eos):
            produced = self.control[self._slots[protocol.PRODUCED][w]]
            popped = self.control[self._slots[protocol.FORWARDED][w]] + self.control[self._slots[protocol.DROPPED][w]]
            if produced > popped:
                self.dead_local.append((w, popped, produced))

    def all_processes(self) -> list:
        return [*self.retired, *self.procs.values()]

    def reap(self, hard: bool = False) -> None:
        """Step 4: join, then kill. Never leaves a child behind."""
        for p in self.all_processes():
            if p.pid is None:
                continue  # never started
            deadline = time.monotonic() + (0 if hard else JOIN_TIMEOUT_S)
            while p.is_alive() and time.monotonic() < deadline and self.interrupts.count <= self.stop_count:
                p.join(0.05)  # in slices: one more Ctrl-C while stopping kills at once
            if p.is_alive():
                # Workers ignore SIGTERM (the chief alone coordinates a stop): go straight to SIGKILL.
                p.kill()
                p.join()

    def progress(self, now: int) -> None:
        if not self.spec.run.progress or now - self._last_progress_ns < 5e8:
            return
        # The current rate: consumed since the last refresh, not an average since the start.
        since = (now - (self._last_progress_ns or self.t0)) / 1e9
        rate = (self.items.consumed - self._last_progress_consumed) / since if since > 0 else 0.0
        self._last_progress_ns, self._last_progress_consumed = now, self.items.consumed
        elapsed = (now - self.t0) / 1e9
        produced, consumed = sum(self.produced()), self.items.consumed
        where = f"round {self.rounds}/{self.spec.chief.rounds}" if (
            self.spec.run.duration_s is None and self.spec.run.items is None) else f"{elapsed:6.1f} s"
        line = f"[chief] {where}  produced {produced:,}  consumed {consumed:,}  rate {rate:,.4g} items/s"
        if self.failures:
            line += f"  failures {len(self.failures)}"
        if sys.stderr.isatty():
            sys.stderr.write("\r" + line + "\033[K")
            sys.stderr.flush()
            self._progress_live = True
        elif now - self._last_line_ns >= 5e9:
            self._last_line_ns = now
            print(line, file=sys.stderr, flush=True)

    def clear_progress(self) -> None:
        """Erase the live progress line, so that printed items start on a line of their own."""
        if self._progress_live:
            sys.stderr.write("\r\033[K")
            sys.stderr.flush()
            self._progress_live = False

    def process_rows(self, t_end: int) -> list[dict]:
        rows = [{"role": "chief", "worker": -1, "incarnation": 0, "pid": os.getpid(),
                 "wall_s": (time.monotonic_ns() - self.t0) / 1e9 if self.t0 else 0.0,
                 "cpu_s": time.process_time() - self.cpu0, "exitcode": None}]
        for p in self.all_processes():
            w = int(p.name.rsplit("-", 1)[1])
            k = next((k for (ww, k), r in self.reports.items() if ww == w and r.pid == p.pid), None)
            r = self.reports.get((w, k)) if k is not None else None
            rows.append({"role": "worker", "worker": w, "incarnation": k, "pid": p.pid,
                         "wall_s": r.wall_s if r else None, "cpu_s": r.cpu_s if r else None,
                         "exitcode": p.exitcode})
        return rows


def _count(messages: list) -> int:
    """Items in a list of item tuples and chunks."""
    return sum(1 if type(m) is tuple else len(m) for m in messages)


def _as_tuples(messages: list) -> list[tuple]:
    return [t for m in messages for t in ([m] if type(m) is tuple else m.tuples())]


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


class _Interrupts:
    """Ctrl-C and SIGTERM, recorded by the handler and raised by the chief at a safe point.

    Raising from the handler itself could land in the middle of reading a message (a
    pipe left holding half a pickle) or between taking items and recording them.
    """

    def __init__(self) -> None:
        self.count = 0
        self.signum = 0

    def __call__(self, signum: int, frame: Any) -> None:
        self.count += 1
        self.signum = signum

    def check(self, at_least: int = 1) -> None:
        if self.count >= at_least:
            raise RunInterrupted(self.signum)


def run_system(spec: Config, echo: Callable[[str], None] = print) -> RawRun:
    """Run the chief/worker system once; always reaps every process and closes the design."""
    hygiene.remove_stale()
    hygiene.claim_tempdir()
    # Backend hook: a multiprocessing context (local), or a RayContext whose Process is a Ray actor.
    ctx = run_context(spec)
    # The framework keeps the bound itself (in items, for every design), so the design is unbounded.
    settings = QueueSettings(spec.queue.name, 0, spec.queue.buffer_bytes, message_bytes(spec))
    design = None
    try:
        design = design_class(spec.queue.name)(settings, spec.workers.count, ctx)
        chief = getattr(ctx, "chief_class", _Chief)(spec, design, ctx, echo)
    except BaseException:
        # Before the main try below: release the design's segments and pipes, and the backend, here.
        if design is not None:
            design.close()
        if hasattr(ctx, "close"):
            ctx.close()
        raise
    status, exit_code, consumer = "ok", 0, None
    t_end = 0
    chief.cpu0 = time.process_time()
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    in_main_thread = _in_main_thread()
    if in_main_thread:
        for sig in previous:
            signal.signal(sig, chief.interrupts)
    # The cyclic collector paused for the run: the chief makes no cycles, and a full collection
    # over millions of recorded rows stalled it for up to a second (measured with shm_ring).
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        try:
            chief.start()
            consumer = design.consumer()
            # The recorder keeps no payload, so a design may lend views instead of copies.
            consumer.lend_views = hasattr(consumer, "lend_views")
            chief.t0 = time.monotonic_ns()
            chief.cpu0 = time.process_time()
            chief.control[protocol.START_NS] = chief.t0
            chief.loop(consumer)
        except RunInterrupted as exc:
            status, exit_code = "interrupted", exc.exit_code
            chief.errors.append(f"interrupted by {exc}")
        except WorkerFailed as exc:
            status = "failed"
            if not any(str(exc) in e for e in chief.errors):
                chief.errors.append(str(exc))
        t_end = time.monotonic_ns()
        if chief.t0:
            chief.sample_depth(t_end, force=True)
        chief.control[protocol.STOP] = 1
        chief.stop_count = chief.interrupts.count
        chief.clear_progress()
        try:
            if consumer is not None:
                chief.drain(consumer)
                consumer.finish(JOIN_TIMEOUT_S)
            chief.reap()
            chief.interrupts.check(chief.stop_count + 1)
        except RunInterrupted as exc:
            # A second Ctrl-C: stop waiting, but still leave nothing behind.
            status, exit_code = "interrupted", exc.exit_code
            chief.errors.append(f"interrupted again by {exc} while stopping: workers killed")
            chief.reap(hard=True)
    finally:
        if gc_was_enabled:
            gc.enable()
        chief.control[protocol.STOP] = 1
        chief.reap(hard=True)
        design.close()
        chief.errors_channel.close()
        if hasattr(ctx, "close"):
            ctx.close()  # backend hook: the Ray backend stops its actors (and an embedded Ray)
        if in_main_thread:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
    produced = dict(enumerate(chief.produced()))
    forwarded = dict(enumerate(chief.forwarded()))
    blocked = {w: ns / 1e9 for w, ns in enumerate(chief.counter(protocol.BLOCKED_NS))}
    recorded = sum(chief.items.count(state) for state in range(len(STATES)))
    if recorded >= TELL_WRITING_ITEMS:
        # A few seconds per million rows follow (tables, figures, parquet): say so, so that a
        # run stopped with Ctrl-C does not look hung.
        echo(f"[chief] stopped; writing the records of {recorded:,} items...")
    return RawRun(items=chief.items.frame(), depth=chief.depth.frame(chief.t0), t0_ns=chief.t0, t_end_ns=t_end,
                  status=status, produced=produced, forwarded=forwarded, processes=chief.process_rows(t_end),
                  errors=chief.errors, warnings=chief.warnings, rounds=chief.rounds, exit_code=exit_code, failures=chief.failures,
                  dead_local=chief.dead_local, blocked_s=blocked, restarts=dict(enumerate(chief.restarts)),
                  memory=chief.memory)


def _in_main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()
