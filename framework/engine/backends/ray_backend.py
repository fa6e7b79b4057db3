"""``backend=ray``: the same chief, workers as Ray actors, the chief as the Ray driver.

    chief (driver, framework.engine.chief)       worker actor i (WorkerActor, num_cpus from config)
    ---------------------------------------           -------------------------------------------------
    control mirror  <--merge counters-- pump thread <==poll reply== poll(): counters, outbox, errors
     (a plain list:                      (ray.wait on        ==header==> (STOP, START_NS, TAKEN,
      STOP/START_NS    --set_header-->    one call per actor)              others' FORWARDED)
      broadcast)                              |                  thread: framework.engine.worker.serve, the same
    consumer (buffer) <--items, Leftovers, EndOfStream--                  _loop, with an actor-local
                                                                          control array; a producer end
                                                                          (framework.queues.ray_designs)

The local backend's chief reads its workers' counters from a shared-memory control block,
which cannot span machines. Here the backend the chief is handed (``RayBackend``) gives a
driver-side mirror of that block as ``control_block``, a Ray actor as each ``process`` and a
side channel for worker tracebacks as ``side_channel``; its hooks add memory from the actors'
reports, the pump's health and a bounded wait for the actors. A pump thread on the driver keeps one call in flight per actor (``hello``,
then ``start``, then ``poll`` again and again) and merges what each reply reports: the
actor's own counter slots (heartbeats translated into the driver's clock), its tracebacks,
and under ``ray_batches`` the items themselves. Every item reaches the chief after the
counters that count it, so the chief's books (``framework.engine.chief``, ``framework.results.metrics``)
are the same code as for the local backend, and so are the run directory and the report.

Clocks: stamps are ``time.monotonic_ns()``. An actor on the driver's node shares its clock;
one on another node gets an offset measured at its ``hello`` (half a round trip of error),
and its stamps and heartbeats are translated on arrival.

Failures: a worker that raises reports its traceback in the next poll, then its leftovers
and end-of-stream, as a local worker does. An actor that dies shows as ``RayActorError`` on
its pending call: the process handle gets an exit code and the chief's usual
``workers.on_failure`` policy applies. A restart is a new actor (new seed stream, continued
sequence numbers), not Ray's own actor restart, which would re-run the constructor with
the dead life's arguments. Under ``ray_queue`` the pump first drains the queue, where every
put the dead actor completed already sits, so the books stay exact.

Ray's start and shutdown happen before the chief's t0 and after the run: outside the measured window.
"""

from __future__ import annotations

import logging
import math
import os
import queue
import shutil
import signal
import tempfile
import threading
import time
import traceback
from typing import Any

import psutil

from framework.engine import protocol
from framework.engine.backends.base import Backend
from framework.queues.ray_designs import Outbox
from framework.engine.worker import serve
from framework.errors import RayBackendError, WorkerFailed

POLL_WAIT_S = 0.05
"""How long an actor's poll waits for a first message before replying with counters only."""
PUMP_WAIT_S = 0.05
"""Longest wait of the pump for any reply; bounds how late it sees newly started actors."""
SHUTDOWN_WAIT_S = 15.0
"""Longest wait for an embedded Ray instance's processes to exit after ray.shutdown()."""
RSS_EVERY_NS = 1_000_000_000
"""How often an actor reports its resident memory (the chief samples local workers once a second)."""
ACTOR_CONCURRENCY = 2
"""Calls an actor serves at once: a poll waiting for items must not delay a STOP or START broadcast."""
MERGED = (protocol.PRODUCED, protocol.FORWARDED, protocol.DROPPED, protocol.BLOCKED_NS, protocol.READY)
"""Counter slots merged into the mirror by maximum: they only grow, and replies may overtake queue entries."""


# ----------------------------------------------------------------------------- actor side


class _ActorState:
    """One worker's life inside its actor: the control array, the outbox, the worker thread."""

    def __init__(self, wspec: Any, producer: Any, own: list[int], header: tuple, forwarded: list[int]) -> None:
        self.worker = wspec.worker_id
        self.control = [0] * (protocol.HEADER_SLOTS + wspec.n_workers * protocol.WORKER_SLOTS)
        self.base = protocol.worker_slot(self.worker, 0)
        self.control[self.base:self.base + protocol.WORKER_SLOTS] = own
        self.control[self.base + protocol.READY] = 0
        self.control[self.base + protocol.HEARTBEAT_NS] = 0
        self.set_header(*header, forwarded)
        self.outbox = Outbox()
        self.errors: list = []
        self.done = False
        self._rss_ns = 0
        producer.bind(self)
        self.thread = threading.Thread(target=self._serve, args=(wspec, producer), daemon=True,
                                       name=f"chiefbench-worker-{self.worker}")
        self.thread.start()

    def _serve(self, wspec: Any, producer: Any) -> None:
        try:
            # The driver's death ends every actor it owns (Ray's ownership), so the chief is alive.
            serve(wspec, producer, self.control, self, lambda: True)
        finally:
            self.done = True
            self.outbox.wake()

    def put(self, error: Any) -> None:
        """The side channel: ``serve`` puts its ``WorkerError`` here; the next poll carries it."""
        self.errors.append(error)

    def snapshot(self) -> tuple[int, list[int]]:
        return self.worker, self.control[self.base:self.base + protocol.WORKER_SLOTS]

    def set_header(self, stop: int, start_ns: int, taken: int | None, forwarded: list[int] | None = None) -> None:
        c = self.control
        if stop:
            c[protocol.STOP] = 1
        if start_ns and not c[protocol.START_NS]:
            c[protocol.START_NS] = start_ns
        if taken is not None:
            c[protocol.TAKEN] = taken
        for w, f in enumerate(forwarded or ()):
            if w != self.worker:
                c[protocol.worker_slot(w, protocol.FORWARDED)] = f

    def poll(self, header: tuple, forwarded: list[int], wait_s: float) -> tuple:
        self.set_header(*header, forwarded)
        done = self.done  # read before taking: whatever a finished thread put is in this take
        messages = self.outbox.take(0.0 if done else wait_s)
        errors, self.errors = self.errors, []
        rss = None
        now = time.monotonic_ns()
        if now - self._rss_ns >= RSS_EVERY_NS:
            self._rss_ns = now
            rss = psutil.Process().memory_info().rss
        # Counters after the take: every item handed over is counted in them.
        return self.snapshot()[1], messages, errors, done, rss


class WorkerActor:
    """A Ray actor hosting one worker (one life of it): ``hello``, ``start``, then ``poll``."""

    def __init__(self) -> None:
        self.state: _ActorState | None = None

    def hello(self) -> tuple[str, int, int]:
        import ray

        return ray.get_runtime_context().get_node_id(), os.getpid(), time.monotonic_ns()

    def start(self, wspec: Any, producer: Any, own: list[int], header: tuple, forwarded: list[int]) -> None:
        self.state = _ActorState(wspec, producer, own, header, forwarded)

    def set_header(self, stop: int, start_ns: int) -> None:
        if self.state is not None:  # not started yet: its start call carries the header
            self.state.set_header(stop, start_ns, None)

    def poll(self, header: tuple, forwarded: list[int], wait_s: float) -> tuple:
        return self.state.poll(header, forwarded, wait_s)


# ----------------------------------------------------------------------------- driver side


class _Mirror(list):
    """The chief's control block under Ray: a list the pump fills; STOP and START_NS are broadcast."""

    def __init__(self, size: int, on_header: Any) -> None:
        super().__init__([0] * size)
        self._on_header = on_header

    def __setitem__(self, index: Any, value: Any) -> None:
        list.__setitem__(self, index, value)
        if index in (protocol.STOP, protocol.START_NS):
            self._on_header()


class _SideChannel:
    """Worker tracebacks, put by the pump, read by the chief (the local backend's SimpleQueue)."""

    def __init__(self) -> None:
        self._q: queue.SimpleQueue = queue.SimpleQueue()

    def put(self, item: Any) -> None:
        self._q.put(item)

    def get(self) -> Any:
        return self._q.get()

    def empty(self) -> bool:
        return self._q.empty()

    def close(self) -> None:
        pass


class ActorProcess:
    """What the chief sees of a worker actor: the ``multiprocessing.Process`` calls it makes."""

    def __init__(self, ctx: RayBackend, wspec: Any, producer: Any, name: str) -> None:
        self.ctx, self.wspec, self.producer, self.name = ctx, wspec, producer, name
        self.worker = wspec.worker_id
        self.pid: int | None = None
        self.exitcode: int | None = None
        self.actor: Any = None
        self.offset_ns = 0
        """This actor's monotonic clock minus the driver's (0 on the driver's node)."""
        self.rss: int | None = None
        self._exited = threading.Event()

    def start(self) -> None:
        self.pid = 0  # not None: the chief reaps a started worker even before its hello returns
        self.actor = self.ctx.new_actor(self.worker)
        self.ctx.procs.append(self)
        self.ctx.pump.add(self)

    def is_alive(self) -> bool:
        return self.pid is not None and self.exitcode is None

    def join(self, timeout: float | None = None) -> None:
        self._exited.wait(timeout)

    def kill(self) -> None:
        self.ctx.kill_actor(self)
        self.exited(-signal.SIGKILL)

    def exited(self, code: int) -> None:
        if self.exitcode is None:
            self.exitcode = code
            self._exited.set()


def _shift(messages: list, off: int) -> list:
    """Translate an actor's stamps into the driver's clock (actors on other nodes only)."""
    out = []
    for m in messages:
        if type(m) is tuple:
            w, s, c, f, v = m
            out.append((w, s, c - off, f - off if f >= 0 else f, v))
        elif type(m) is protocol.Chunk:
            out.append(protocol.Chunk(m.worker, m.seq0, m.created_ns - off, m.forwarded_ns - off, m.values))
        elif type(m) is protocol.Leftovers:
            out.append(protocol.Leftovers(m.worker, _shift(m.items, off)))
        elif type(m) is protocol.EndOfStream:
            m.dropped = [(s, c - off) for s, c in m.dropped]
            out.append(m)
        else:
            out.append(m)
    return out


class _Pump:
    """The driver's thread that talks to every actor (and reads the Ray queue under ray_queue)."""

    def __init__(self, ctx: RayBackend) -> None:
        self.ctx = ctx
        self.consumer: Any = None
        """The design's BufferConsumer (set by the design)."""
        self.ray_queue: Any = None
        """The ray.util.queue.Queue under ray_queue (set by the design)."""
        self.error: str | None = None
        self._new: queue.SimpleQueue = queue.SimpleQueue()
        self._pending: dict[Any, tuple[ActorProcess, str, int]] = {}
        self._queue_ref: Any = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="chiefbench-ray-pump", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def add(self, proc: ActorProcess) -> None:
        self._new.put(proc)

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join()

    def _run(self) -> None:
        import ray

        try:
            while not self._stop.is_set():
                self._step(ray)
        except BaseException:  # noqa: BLE001 - the chief must hear of it, not hang
            self.error = traceback.format_exc()

    def _step(self, ray: Any) -> None:
        while not self._new.empty():
            proc = self._new.get()
            self._pending[proc.actor.hello.remote()] = (proc, "hello", time.monotonic_ns())
        if self.ray_queue is not None and self._queue_ref is None:
            self._queue_ref = self.ray_queue.actor.get.remote(PUMP_WAIT_S)
        refs = list(self._pending) + ([self._queue_ref] if self._queue_ref is not None else [])
        if not refs:
            time.sleep(0.005)
            return
        ready, _ = ray.wait(refs, num_returns=1, timeout=PUMP_WAIT_S)
        if not ready:
            return
        ready, _ = ray.wait(refs, num_returns=len(refs), timeout=0)
        queue_ref = self._queue_ref
        for ref in ready:
            if ref == queue_ref:
                if self._queue_ref is queue_ref:  # not already taken by _finish_queue
                    self._queue_ref = None
                    self._read_queue(ray, ref)
            else:
                proc, phase, sent_ns = self._pending.pop(ref)
                self._on_reply(ray, proc, phase, sent_ns, ref)

    def _issue(self, proc: ActorProcess, phase: str, ref: Any) -> None:
        self._pending[ref] = (proc, phase, time.monotonic_ns())

    def _on_reply(self, ray: Any, proc: ActorProcess, phase: str, sent_ns: int, ref: Any) -> None:
        try:
            value = ray.get(ref)
        except ray.exceptions.RayError:
            # The actor died (RayActorError), or a call raised: either way this life is over.
            if self.ray_queue is not None:
                self._finish_queue(ray)  # every put it completed is in the queue: take them first
            proc.exited(-signal.SIGKILL)
            return
        if proc.exitcode is not None:
            return  # killed by the chief meanwhile
        ctx = self.ctx
        if phase == "hello":
            node, pid, clock_ns = value
            proc.pid = pid
            if node != ctx.node_id:
                proc.offset_ns = clock_ns - (sent_ns + time.monotonic_ns()) // 2
            base = protocol.worker_slot(proc.worker, 0)
            own = list(ctx.mirror[base:base + protocol.WORKER_SLOTS])
            self._issue(proc, "start", proc.actor.start.remote(proc.wspec, proc.producer, own, ctx.header(proc),
                                                               ctx.forwarded()))
        elif phase == "start":
            self._poll(proc)
        else:
            own, messages, errors, done, rss = value
            self._merge(proc, own)
            for error in errors:
                ctx.errors.put(error)
            if messages:
                self.consumer.deliver(_shift(messages, proc.offset_ns) if proc.offset_ns else messages)
            if rss is not None:
                proc.rss = rss
            if done:
                if self.ray_queue is not None:
                    # Its last puts (leftovers, end-of-stream) sit in the queue, maybe behind a backlog:
                    # deliver them before the chief sees the exit, which ends its drain.
                    self._finish_queue(ray)
                ctx.kill_actor(proc)  # its thread has finished and everything it sent is delivered
                proc.exited(0)
            else:
                self._poll(proc)

    def _poll(self, proc: ActorProcess) -> None:
        ctx = self.ctx
        self._issue(proc, "poll", proc.actor.poll.remote(ctx.header(proc), ctx.forwarded(), POLL_WAIT_S))

    def _merge(self, proc: ActorProcess, own: list[int]) -> None:
        mirror = self.ctx.mirror
        base = protocol.worker_slot(proc.worker, 0)
        for f in MERGED:
            if own[f] > mirror[base + f]:
                list.__setitem__(mirror, base + f, own[f])
        beat = own[protocol.HEARTBEAT_NS]
        list.__setitem__(mirror, base + protocol.HEARTBEAT_NS, beat - proc.offset_ns if beat > 0 else beat)

    def _read_queue(self, ray: Any, ref: Any = None) -> None:
        """The answer to a pending ``get`` (if any), then everything queued now, in queue order."""
        entries = []
        if ref is not None:
            try:
                entries.append(ray.get(ref))
            except ray.exceptions.RayError:
                pass  # queue.Empty after PUMP_WAIT_S, raised inside the queue actor
        q = self.ray_queue.actor
        n = ray.get(q.qsize.remote())
        if n:
            entries.extend(ray.get(q.get_nowait_batch.remote(n)))
        for w, own, messages in entries:
            proc = self.ctx.current.get(w)
            if proc is None:
                continue
            self._merge(proc, own)
            self.consumer.deliver(_shift(messages, proc.offset_ns) if proc.offset_ns else messages)

    def _finish_queue(self, ray: Any) -> None:
        """Take everything queued now (a dead actor's completed puts are all there)."""
        ref, self._queue_ref = self._queue_ref, None
        self._read_queue(ray, ref)


class RayBackend(Backend):
    """``backend=ray``: worker actors, a pump thread, a driver-side mirror of the control block (see the
    module docstring). Queue designs are built with the backend itself (``design_context``): the Ray designs
    reach the pump through it."""

    name = "ray"

    def __init__(self, spec: Any) -> None:
        import ray

        self.spec = spec
        self.design_context = self
        self._last_forwarded = -1
        self._last_memory_ns = 0
        self.procs: list[ActorProcess] = []
        self.current: dict[int, ActorProcess] = {}
        self.mirror: _Mirror | None = None
        self.errors: _SideChannel | None = None
        self.pg: Any = None
        self.pump: _Pump | None = None
        self.session = _RaySession(spec)
        try:
            self.node_id = ray.get_runtime_context().get_node_id()
            b, n = spec.backend, spec.workers.count
            total = ray.cluster_resources().get("CPU", 0.0)
            need = n * b.num_cpus
            if need > total:
                raise RayBackendError(
                    f"backend=ray: {n} worker actors x backend.num_cpus={b.num_cpus} need {need:g} CPUs, but the Ray "
                    f"cluster has {total:g}, so they could never all start. Fix: lower backend.num_cpus (e.g. 0.5), "
                    f"use fewer workers, or add nodes (`ray start --address=<head>:6379` on each)")
            options: dict[str, Any] = {"num_cpus": b.num_cpus, "max_concurrency": ACTOR_CONCURRENCY,
                                       "max_restarts": 0}
            self.actor_class = ray.remote(**options)(WorkerActor)
            # Inside a sweep job under hydra/launcher=ray (a Ray task), the actors always go into one
            # placement group, waited for with a blocking ray.get: Ray lends the waiting job's own CPU
            # out meanwhile, and a group is placed whole or not at all, so jobs never deadlock holding
            # part of each other's actors. Such a job waits for its turn without a deadline.
            in_task = ray.get_runtime_context().worker.mode == ray.WORKER_MODE
            strategy = b.placement_strategy or ("PACK" if in_task else None)
            if strategy:
                self.pg = _placement_group(ray, n, b, strategy, None if in_task else b.start_timeout_s)
            self.pump = _Pump(self)
            self.pump.start()
        except BaseException:
            self.close()
            raise

    # -- what the chief calls on its backend ------------------------------------------------------
    def get_start_method(self) -> str:
        return "ray"

    def control_block(self, n_slots: int) -> _Mirror:
        self.mirror = _Mirror(n_slots, self.broadcast_header)
        return self.mirror

    def side_channel(self) -> _SideChannel:
        self.errors = _SideChannel()
        return self.errors

    def process(self, target: Any, args: tuple, name: str) -> ActorProcess:
        wspec, producer = args[0], args[1]  # (spec, producer, control, errors) as for run_worker
        proc = ActorProcess(self, wspec, producer, name)
        self.current[wspec.worker_id] = proc
        return proc

    # -- helpers for the pump and the actor handles -----------------------------------------------
    def new_actor(self, worker: int) -> Any:
        options: dict[str, Any] = {}
        if self.pg is not None:
            from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

            options["scheduling_strategy"] = PlacementGroupSchedulingStrategy(
                placement_group=self.pg, placement_group_bundle_index=worker)
        return self.actor_class.options(**options).remote()

    def kill_actor(self, proc: ActorProcess) -> None:
        import ray

        if proc.actor is not None:
            try:
                ray.kill(proc.actor, no_restart=True)
            except Exception:  # noqa: BLE001 - already gone
                pass

    def header(self, proc: ActorProcess) -> tuple[int, int, int]:
        m = self.mirror
        start = m[protocol.START_NS]
        return m[protocol.STOP], start + proc.offset_ns if start else 0, m[protocol.TAKEN]

    def forwarded(self) -> list[int]:
        m = self.mirror
        return [m[protocol.worker_slot(w, protocol.FORWARDED)] for w in range(self.spec.workers.count)]

    def broadcast_header(self) -> None:
        """STOP and the start barrier reach every actor at once, not at its next poll."""
        m = self.mirror
        for proc in list(self.current.values()):
            if proc.is_alive() and proc.actor is not None:
                start = m[protocol.START_NS]
                proc.actor.set_header.remote(m[protocol.STOP], start + proc.offset_ns if start else 0)

    # -- hooks ----------------------------------------------------------------------------------------
    def memory(self, procs: dict[int, Any]) -> list[tuple[str, int, int, int]]:
        """The chief's own, and each actor's as it last reported it (actors may be on other machines)."""
        rows = [("chief", -1, os.getpid(), psutil.Process().memory_info().rss)]
        return rows + [("worker", w, p.pid, p.rss) for w, p in procs.items() if p.rss is not None]

    def stall_possible(self, forwarded_total: int) -> bool:
        # Under ray_queue a worker spends most of its time inside a put (a round trip to the queue
        # actor), so "every worker in a put" is no evidence of a stall while items keep flowing.
        moving = forwarded_total != self._last_forwarded
        self._last_forwarded = forwarded_total
        return not moving

    def check(self, now_ns: int, starting: bool, started_ns: list[int]) -> None:
        """The pump's health, and a bounded wait for the actors to be scheduled."""
        pump = self.pump
        if pump is not None and pump.error:
            message = f"the Ray backend's pump thread failed:\n{pump.error}"
            raise WorkerFailed(message.splitlines()[0] + " " + pump.error.strip().splitlines()[-1])
        b = self.spec.backend
        if starting and now_ns - min(started_ns) > b.start_timeout_s * 1e9:
            import ray

            raise WorkerFailed(
                f"the worker actors were not ready within backend.start_timeout_s={b.start_timeout_s} (cluster: "
                f"{ray.cluster_resources()}, free: {ray.available_resources()}): a busy cluster queues them. Fix: "
                f"free CPUs, lower backend.num_cpus, or raise backend.start_timeout_s")

    def close(self) -> None:
        """Stop the pump, kill every actor, remove the placement group, stop or leave Ray."""
        if self.pump is not None:
            self.pump.stop()
        for proc in self.procs:
            self.kill_actor(proc)
            proc.exited(-signal.SIGKILL)
        if self.pg is not None:
            from ray.util import remove_placement_group

            remove_placement_group(self.pg)
            self.pg = None
        self.session.close()


def _placement_group(ray: Any, n: int, b: Any, strategy: str, wait_s: float | None) -> Any:
    from ray.util import placement_group, remove_placement_group

    pg = placement_group([{"CPU": b.num_cpus}] * n, strategy=strategy)
    try:
        ray.get(pg.ready(), timeout=wait_s)
    except ray.exceptions.GetTimeoutError:
        remove_placement_group(pg)
        raise RayBackendError(
            f"placement strategy {strategy}: no placement of {n} bundles of {b.num_cpus:g} CPU within "
            f"backend.start_timeout_s={b.start_timeout_s} (cluster: {ray.cluster_resources()}, free: "
            f"{ray.available_resources()}). Fix: free or add CPUs, lower backend.num_cpus, or use a looser strategy "
            f"(PACK, SPREAD)") from None
    return pg


class _RaySession:
    """Ray for one run: embedded (started and stopped here), attached (left running), or inherited.

    Inherited: Ray is already initialised in this process (a sweep job under
    ``hydra/launcher=ray``, a notebook, a test module): it is used and left as it is.
    """

    def __init__(self, spec: Any) -> None:
        import ray

        self.connected = False
        self.tempdir: str | None = None
        self.ours: list[psutil.Process] = []
        if ray.is_initialized():
            return
        b = spec.backend
        common = {"log_to_driver": False, "logging_level": logging.WARNING}
        if b.address:
            try:
                ray.init(address=b.address, **common)
            except (ConnectionError, RuntimeError, ValueError) as exc:
                raise RayBackendError(
                    f"backend.address={b.address!r}: no running Ray cluster could be reached ({exc}). Fix: start one "
                    f"(`ray start --head`), check the address, or drop backend.address for an embedded instance"
                ) from None
            self.connected = True
            return
        before = {p.pid for p in psutil.Process().children(recursive=True)}
        # A private temporary directory, named so that chiefbench's hygiene knows it (chiefbench-<pid>-...).
        self.tempdir = tempfile.mkdtemp(prefix=f"chiefbench-{os.getpid()}-ray-")
        cpus = b.cluster_cpus or max(os.cpu_count() or 1, math.ceil(spec.workers.count * b.num_cpus))
        try:
            ray.init(num_cpus=cpus, object_store_memory=b.object_store_memory, include_dashboard=b.include_dashboard,
                     dashboard_host=b.dashboard_host, _temp_dir=self.tempdir, **common)
        except BaseException:
            self.connected = True
            self.close()
            raise
        self.connected = True
        self.ours = [p for p in psutil.Process().children(recursive=True) if p.pid not in before]

    def close(self) -> None:
        import ray

        if not self.connected:
            return
        self.connected = False
        if self.tempdir is not None:
            # Every process of the embedded instance, the actors' workers (the raylet's children) included,
            # must go with it; nothing else (a multiprocessing helper started meanwhile is not Ray's).
            seen = {p.pid for p in self.ours}
            for p in list(self.ours):
                try:
                    self.ours += [c for c in p.children(recursive=True) if c.pid not in seen]
                except psutil.Error:
                    continue
                seen = {q.pid for q in self.ours}
        ray.shutdown()
        if self.tempdir is not None:
            _, alive = psutil.wait_procs(self.ours, timeout=SHUTDOWN_WAIT_S)
            for p in alive:
                try:
                    p.kill()
                except psutil.Error:
                    pass
            psutil.wait_procs(alive, timeout=5)
            shutil.rmtree(self.tempdir, ignore_errors=True)
