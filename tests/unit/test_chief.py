"""The chief's logic without processes: its books, its intake and its supervisor, driven by hand.

The control block is a plain list of ints, the global queue's consumer end a ``FakeConsumer`` that
hands out queued messages, the backend a ``FakeBackend`` whose processes are ``FakeProcess`` objects
a test kills or hangs by setting a field. Time enters only as the ``now`` the chief is handed, or
through a patched constant: nothing here sleeps, and nothing is timed.

The real-process counterparts (that a killed, raising or hung worker is seen as such, end to end)
are in tests/test_faults.py; these tests pin down what the chief then does, case by case.
"""

from __future__ import annotations

import copy
import queue
import time
from types import SimpleNamespace

import pytest

from framework.config.hydra import compose
from framework.config.validate import to_spec
from framework.engine import protocol
from framework.engine.backends.base import Backend
from framework.engine.chief import supervisor as supervisor_module
from framework.engine.chief.books import Books, Notes
from framework.engine.chief.intake import HOUSEKEEPING_S, Intake, count_items
from framework.engine.chief.interrupts import Interrupts
from framework.engine.chief.supervisor import Supervisor
from framework.engine.protocol import Chunk, EndOfStream, Leftovers, WorkerError
from framework.engine.record import (CONSUMED, DROPPED_NEWEST, DROPPED_OLDEST, LEFT_GLOBAL, LEFT_LOCAL, NO_STAMP,
                                     Recorder)
from framework.errors import WorkerFailed

import numpy as np

SECOND = 1_000_000_000
BASE_SPEC = to_spec(compose(["workers.count=2", "workers.heartbeat_timeout_s=0.5", "run.drain_timeout_s=1"]))


def make_spec(**changes):
    """A copy of a real, validated spec with some fields changed: ``make_spec(workers__on_failure="restart")``."""
    spec = copy.deepcopy(BASE_SPEC)
    for dotted, value in changes.items():
        group, key = dotted.split("__")
        setattr(getattr(spec, group), key, value)
    return spec


# ------------------------------------------------------------------------------------------- fakes
def control_block(n: int) -> list[int]:
    return [0] * (protocol.HEADER_SLOTS + n * protocol.WORKER_SLOTS)


def put(control, w, field, value):
    control[protocol.worker_slot(w, field)] = value


class FakeConsumer:
    """The chief's end of the global queue: hands out what a test queued, one message per item asked."""

    def __init__(self, messages=()):
        self.queue = list(messages)
        self.get_calls: list[int] = []
        self.releases = 0

    def get_many(self, max_items, timeout=None, block=True):
        self.get_calls.append(max_items)
        if not self.queue:
            raise queue.Empty
        batch, self.queue = self.queue[:max_items], self.queue[max_items:]
        return batch

    def release(self):
        self.releases += 1

    def finish(self, timeout):
        pass


class FakeProcess:
    """``multiprocessing.Process``'s interface as the chief uses it; a test sets ``exitcode`` to kill it."""

    pids = iter(range(40_000, 50_000))

    def __init__(self, name):
        self.name, self.pid, self.exitcode = name, None, None
        self.kills = self.joins = 0

    def start(self):
        self.pid = next(FakeProcess.pids)

    def is_alive(self):
        return self.pid is not None and self.exitcode is None

    def join(self, timeout=None):
        self.joins += 1

    def kill(self):
        self.kills += 1
        if self.exitcode is None:
            self.exitcode = -9


class FakeSideChannel:
    def __init__(self):
        self.items = []

    def put(self, item):
        self.items.append(item)

    def get(self):
        return self.items.pop(0)

    def empty(self):
        return not self.items

    def close(self):
        pass


class FakeBackend(Backend):
    def __init__(self, stall_possible=True):
        self.started: list[FakeProcess] = []
        self.args: list[tuple] = []
        self._stall_possible = stall_possible
        self.checks = 0

    def control_block(self, n_slots):
        return [0] * n_slots

    def side_channel(self):
        return FakeSideChannel()

    def process(self, target, args, name):
        p = FakeProcess(name)
        self.started.append(p)
        self.args.append(args)
        return p

    def check(self, now_ns, starting, started_ns):
        self.checks += 1

    def stall_possible(self, forwarded_total):
        return self._stall_possible


class FakeDesign:
    def __init__(self):
        self.producers, self.respawned, self.started = [], [], 0

    def producer(self, w):
        self.producers.append(w)
        return f"producer-{w}"

    def respawn_producer(self, w):
        self.respawned.append(w)
        return f"producer-{w}-again"

    def producers_started(self):
        self.started += 1


class FakeSupervisor:
    """Only what the intake asks of a supervisor."""

    def __init__(self, awaiting=(), exited=False):
        self.awaiting_eos = set(awaiting)
        self.failures: list = []
        self.eos: list = []
        self.checks = 0
        self.exited = exited
        self.silent_calls = 0

    def end_of_stream(self, message):
        self.eos.append(message)
        self.awaiting_eos.discard((message.worker, message.incarnation))

    def check_workers(self, now):
        self.checks += 1

    def all_exited(self):
        return self.exited

    def silent_workers(self):
        self.silent_calls += 1


class Rig:
    """A chief's parts wired together around fakes: books, recorder, a real supervisor, an intake."""

    def __init__(self, n=2, messages=(), forward_batch=1, supervisor=None, start=True, **spec_changes):
        self.spec = make_spec(workers__count=n, **spec_changes)
        self.n = n
        self.control = control_block(n)
        self.recorder = Recorder()
        self.books = Books(self.control, n, self.recorder, depth_sample_s=0.1)
        self.notes = Notes()
        self.backend = FakeBackend()
        self.design = FakeDesign()
        if supervisor is None:
            supervisor = Supervisor(self.spec, self.design, self.backend, self.books, self.notes, Interrupts(),
                                    bound=None, item_bytes=8)
            if start:
                for w in range(n):
                    supervisor.start_worker(w)
        self.supervisor = supervisor
        self.consumer = FakeConsumer(messages)
        self.intake = Intake(self.consumer, self.recorder, self.books, supervisor, forward_batch,
                             self.spec.run.drain_timeout_s)

    def forwarded(self, w, n):
        put(self.control, w, protocol.FORWARDED, n)
        put(self.control, w, protocol.PRODUCED, max(n, self.books.slot(w, protocol.PRODUCED)))

    def frame(self):
        return self.recorder.frame().sort_values(["worker", "seq"], ignore_index=True)

    def seqs(self, state=None, worker=None):
        df = self.recorder.frame()
        if state is not None:
            df = df[df["state"] == intake_states[state]]
        if worker is not None:
            df = df[df["worker"] == worker]
        return df["seq"].tolist()


intake_states = {CONSUMED: "consumed", LEFT_GLOBAL: "left_global", LEFT_LOCAL: "left_local",
                 DROPPED_OLDEST: "dropped_oldest", DROPPED_NEWEST: "dropped_newest"}


def item(w, seq, value=None):
    """An item tuple as a worker forwards it: created at 1000 + seq, forwarded at 2000 + seq."""
    return (w, seq, 1000 + seq, 2000 + seq, float(seq) + 0.5 if value is None else value)


def chunk(w, seq0, n, forwarded_ns=5000):
    return Chunk(w, seq0, np.arange(seq0, seq0 + n, dtype=np.int64) + 1000, forwarded_ns,
                 np.arange(seq0, seq0 + n, dtype=np.float64) + 0.25)


# ------------------------------------------------------------------------------------------- books
def test_global_depth_is_forwarded_minus_what_the_chief_took():
    rig = Rig(start=False)
    rig.forwarded(0, 7)
    rig.forwarded(1, 5)
    assert rig.books.global_depth() == 12 and rig.books.taken() == 0
    rig.recorder.add([item(0, 0), item(0, 1), item(1, 0)], 1, CONSUMED)
    rig.recorder.add([item(0, 2)], NO_STAMP, DROPPED_OLDEST)
    rig.recorder.add([item(1, 1)], NO_STAMP, LEFT_GLOBAL)  # left at the stop: not taken by the rule
    rig.books.in_transit_lost = 2
    assert rig.books.taken() == 3 + 1 + 2
    assert rig.books.global_depth() == 12 - 6
    assert rig.control[protocol.TAKEN] == 0  # the workers see it only once published
    rig.books.publish_taken()
    assert rig.control[protocol.TAKEN] == 6


def test_global_depth_reads_a_shared_control_block_live():
    import multiprocessing

    n = 3
    control = protocol.control_block(multiprocessing.get_context("fork"), n)
    recorder = Recorder()
    books = Books(control, n, recorder, depth_sample_s=0.1)
    for w, forwarded in enumerate((4, 0, 9)):
        put(control, w, protocol.FORWARDED, forwarded)
        put(control, w, protocol.PRODUCED, 100 + w)  # the slots beside FORWARDED are not summed
    assert books.global_depth() == 13
    put(control, 1, protocol.FORWARDED, 2)  # a worker forwards after the books were made
    recorder.add([item(0, 0)], 1, CONSUMED)
    assert books.global_depth() == 14 and books.forwarded() == [4, 2, 9]


def test_local_span_and_lose_local_come_from_the_dead_workers_counters():
    rig = Rig(start=False)
    put(rig.control, 1, protocol.PRODUCED, 20)
    put(rig.control, 1, protocol.FORWARDED, 12)
    put(rig.control, 1, protocol.DROPPED, 3)
    assert rig.books.local_span(1) == (15, 20)
    assert rig.books.local_span(0) == (0, 0)
    rig.books.lose_local(0)  # an empty local queue loses nothing
    rig.books.lose_local(1)
    assert rig.books.dead_local == [(1, 15, 20)]


def test_counters_read_each_workers_own_slots():
    rig = Rig(start=False)
    for w in range(2):
        for f in (protocol.PRODUCED, protocol.FORWARDED, protocol.DROPPED, protocol.BLOCKED_NS):
            put(rig.control, w, f, 100 * (w + 1) + f)
    assert rig.books.produced() == [100 + protocol.PRODUCED, 200 + protocol.PRODUCED]
    assert rig.books.forwarded() == [100 + protocol.FORWARDED, 200 + protocol.FORWARDED]
    assert rig.books.blocked_s() == {0: (100 + protocol.BLOCKED_NS) / 1e9, 1: (200 + protocol.BLOCKED_NS) / 1e9}


def test_depth_samples_are_spaced_and_local_depth_excludes_dropped():
    rig = Rig(start=False)
    put(rig.control, 0, protocol.PRODUCED, 10)
    put(rig.control, 0, protocol.FORWARDED, 4)
    put(rig.control, 0, protocol.DROPPED, 1)
    rig.books.sample_depth(SECOND)
    rig.books.sample_depth(SECOND + SECOND // 20)  # within depth_sample_s=0.1: skipped
    rig.books.sample_depth(SECOND + SECOND // 20, force=True)
    rig.books.sample_depth(SECOND + SECOND // 5)
    frame = rig.books.depth.frame(0)
    assert sorted(set(frame["t_ns"])) == [SECOND, SECOND + SECOND // 20, SECOND + SECOND // 5]
    local0 = frame[(frame["queue"] == "local") & (frame["worker"] == 0)]["depth"]
    assert set(local0) == {10 - 4 - 1}
    assert set(frame[frame["queue"] == "global"]["depth"]) == {4}


# ------------------------------------------------------------------------------------------- intake
def test_take_takes_exactly_n_tuples_and_keeps_the_rest_queued():
    rig = Rig(messages=[item(0, s) for s in range(10)], supervisor=FakeSupervisor())
    rig.forwarded(0, 10)
    before = time.monotonic_ns()
    rig.intake.take(4, None)
    after = time.monotonic_ns()
    frame = rig.frame()
    assert frame["seq"].tolist() == [0, 1, 2, 3] and set(frame["state"]) == {"consumed"}
    assert frame["consumed_ns"].between(before, after).all()
    assert frame["created_ns"].tolist() == [1000, 1001, 1002, 1003]
    assert frame["forwarded_ns"].tolist() == [2000, 2001, 2002, 2003]
    assert frame["value"].tolist() == [0.5, 1.5, 2.5, 3.5]
    assert rig.consumer.get_calls == [4]  # asked for no more than the rule wanted
    assert rig.control[protocol.TAKEN] == 4 and rig.books.global_depth() == 6
    assert len(rig.consumer.queue) == 6
    rig.intake.take(6, None)
    assert rig.frame()["seq"].tolist() == list(range(10))


def test_a_chunk_is_split_so_a_take_gets_exactly_n_and_the_rest_waits_for_the_next_take():
    messages = [item(0, 0), chunk(1, 0, 8), item(0, 1)]
    rig = Rig(messages=messages, forward_batch=8, supervisor=FakeSupervisor())
    rig.forwarded(0, 2)
    rig.forwarded(1, 8)
    rig.intake.take(4, None)  # the tuple and three items of the chunk
    assert rig.recorder.count(CONSUMED) == 4
    assert rig.seqs(worker=1) == [0, 1, 2]
    assert rig.consumer.get_calls == [1, 1]  # ceil(4 / 8) messages, then ceil(3 / 8)
    (held,) = rig.intake.held
    assert (held.worker, held.seq0, len(held)) == (1, 3, 5)
    assert held.created_ns.tolist() == [1003, 1004, 1005, 1006, 1007]
    assert rig.consumer.queue == [item(0, 1)]
    # Released after the tuple, not after the split: the held rest may be a view into the design's buffer.
    assert rig.consumer.releases == 1
    assert rig.control[protocol.TAKEN] == 4
    rig.intake.take(6, None)  # the rest of the chunk first (without asking the design), then the last tuple
    assert rig.consumer.get_calls == [1, 1, 1] and rig.intake.held == [] and rig.consumer.queue == []
    assert rig.consumer.releases == 3
    frame = rig.frame()
    assert frame[frame["worker"] == 1]["seq"].tolist() == list(range(8))
    assert frame[frame["worker"] == 1]["value"].tolist() == [s + 0.25 for s in range(8)]
    assert frame[frame["worker"] == 1]["forwarded_ns"].tolist() == [5000] * 8
    assert frame[frame["worker"] == 0]["seq"].tolist() == [0, 1]
    assert rig.books.global_depth() == 0 and rig.control[protocol.TAKEN] == 10


def test_what_follows_a_split_chunk_in_the_same_batch_is_held_too():
    rig = Rig(messages=[chunk(0, 0, 4), item(1, 0), item(1, 1)], supervisor=FakeSupervisor())
    rig.forwarded(0, 4)
    rig.forwarded(1, 2)
    rig.intake.take(2, None)
    assert rig.consumer.get_calls == [2] and rig.seqs(CONSUMED) == [0, 1]
    assert [type(m).__name__ for m in rig.intake.held] == ["Chunk", "tuple"]
    rig.intake.take(4, None)
    assert rig.consumer.get_calls == [2, 1]
    assert rig.seqs(CONSUMED, worker=0) == [0, 1, 2, 3] and rig.seqs(CONSUMED, worker=1) == [0, 1]


def test_a_take_in_chunks_asks_the_design_for_messages_not_items():
    rig = Rig(messages=[chunk(0, 8 * i, 8) for i in range(4)], forward_batch=8, supervisor=FakeSupervisor())
    rig.forwarded(0, 32)
    rig.intake.take(20, None)
    assert rig.consumer.get_calls == [3]  # ceil(20 / 8) chunks
    assert rig.seqs(CONSUMED) == list(range(20))
    assert rig.intake.held[0].seq0 == 20 and count_items(rig.intake.held) == 4


def test_control_messages_among_items_are_handled_not_counted():
    eos = EndOfStream(0, 0, produced=3, forwarded=2, dropped=[(2, 1234)], blocked_s=0.0, wall_s=1.0, cpu_s=0.5, pid=1)
    messages = [item(0, 0), Leftovers(1, [item(1, 5)]), item(0, 1), eos]
    sup = FakeSupervisor(awaiting={(0, 0)})
    rig = Rig(messages=messages, supervisor=sup)
    count, got = rig.intake.receive(10, CONSUMED, True)
    assert count == 2 and got == [item(0, 0), item(0, 1)]
    assert sup.eos == [eos] and sup.awaiting_eos == set()
    frame = rig.frame()
    states = dict(zip(zip(frame["worker"], frame["seq"]), frame["state"]))
    assert states == {(0, 0): "consumed", (0, 1): "consumed", (0, 2): "dropped_newest", (1, 5): "left_local"}
    dropped = frame[frame["state"] == "dropped_newest"].iloc[0]
    assert dropped["created_ns"] == 1234 and pd_na(dropped["forwarded_ns"]) and pd_na(dropped["consumed_ns"])
    assert pd_na(frame[frame["state"] == "left_local"].iloc[0]["consumed_ns"])


def pd_na(value) -> bool:
    import pandas as pd

    return value is pd.NA


def test_an_unknown_message_on_the_global_queue_is_an_error():
    rig = Rig(messages=["what is this"], supervisor=FakeSupervisor())
    with pytest.raises(TypeError, match="unexpected message"):
        rig.intake.receive(1, CONSUMED, True)


def test_a_failure_reported_with_items_does_not_lose_them():
    rig = Rig(n=1, workers__on_failure="abort")
    sup = rig.supervisor
    eos = EndOfStream(0, 0, 2, 2, [], 0.0, 1.0, 0.5, 1, error="Traceback...\nInjectedFault: boom")
    rig.consumer.queue = [item(0, 0), eos, item(0, 1)]
    with pytest.raises(WorkerFailed, match="worker 0 raised"):
        rig.intake.receive(10, CONSUMED, True)
    assert rig.seqs(CONSUMED) == [0, 1]  # recorded before the failure was raised
    assert sup.failures[0]["kind"] == "exception" and (0, 0) in sup.reports


def test_take_stops_at_the_end_of_the_run_and_when_interrupted():
    rig = Rig(messages=[item(0, s) for s in range(5)], supervisor=FakeSupervisor())
    rig.forwarded(0, 5)
    rig.intake.take(5, end_ns=time.monotonic_ns() - 1)
    assert rig.recorder.count(CONSUMED) == 0 and rig.consumer.get_calls == []
    rig.intake.interrupts = SimpleNamespace(count=1)
    rig.intake.take(5, None)
    assert rig.recorder.count(CONSUMED) == 0 and rig.consumer.get_calls == []


def test_items_that_never_arrive_fail_the_take_unless_a_worker_died(monkeypatch):
    sup = FakeSupervisor()
    rig = Rig(messages=[item(0, 0)], supervisor=sup, run__drain_timeout_s=0.0)
    rig.forwarded(0, 3)
    with pytest.raises(WorkerFailed, match="2 forwarded items did not arrive"):
        rig.intake.take(3, None)
    assert sup.checks >= 1  # it looked at the workers while waiting
    assert rig.books.in_transit_lost == 0
    sup.failures.append({"worker": 0})  # a dead worker's last puts never left its process
    rig.consumer.queue = [item(0, 1)]
    rig.intake.take(2, None)
    assert rig.seqs(CONSUMED) == [0, 1]
    assert rig.books.in_transit_lost == 1 and rig.books.global_depth() == 0
    assert rig.control[protocol.TAKEN] == 3


def test_evict_removes_the_oldest_items_past_the_bound():
    rig = Rig(messages=[item(0, s) for s in range(10)], supervisor=FakeSupervisor())
    rig.forwarded(0, 10)
    rig.intake.evict(4)
    frame = rig.frame()
    assert frame["seq"].tolist() == list(range(6)) and set(frame["state"]) == {"dropped_oldest"}
    assert frame["consumed_ns"].isna().all()  # evicted, never consumed
    assert rig.books.global_depth() == 4 and rig.control[protocol.TAKEN] == 6
    assert [m[1] for m in rig.consumer.queue] == [6, 7, 8, 9]  # the newest stay queued
    rig.intake.evict(4)  # at the bound: nothing more goes
    assert rig.recorder.count(DROPPED_OLDEST) == 6
    rig.intake.take(2, None)  # what the chief then consumes is the oldest that remained
    assert rig.seqs(CONSUMED) == [6, 7]


def test_evict_splits_a_chunk_at_the_bound():
    rig = Rig(messages=[chunk(0, 0, 8), chunk(0, 8, 8)], forward_batch=8, supervisor=FakeSupervisor())
    rig.forwarded(0, 16)
    rig.intake.evict(5)
    assert rig.seqs(DROPPED_OLDEST) == list(range(11)) and rig.books.global_depth() == 5
    assert count_items(rig.intake.held) == 5 and rig.intake.held[0].seq0 == 11


def test_await_arrival_holds_one_message_without_taking_it():
    rig = Rig(messages=[item(0, 0), item(0, 1)], supervisor=FakeSupervisor())
    rig.intake.await_arrival(time.monotonic_ns() + SECOND)
    assert rig.consumer.get_calls == [1] and rig.intake.held == [item(0, 0)]
    assert rig.recorder.count(CONSUMED) == 0
    rig.intake.await_arrival(time.monotonic_ns() - 1)  # past its time: does not wait at all
    assert rig.consumer.get_calls == [1]


def test_drain_records_what_is_left_until_every_end_of_stream():
    eos0 = EndOfStream(0, 0, 6, 4, [], 0.0, 1.0, 0.5, 11)
    eos1 = EndOfStream(1, 0, 3, 3, [], 0.0, 1.0, 0.5, 12)
    messages = [item(0, 2), item(0, 3), Leftovers(0, [item(0, 4), item(0, 5)]), eos0, item(1, 2), eos1]
    sup = FakeSupervisor(awaiting={(0, 0), (1, 0)})
    rig = Rig(messages=messages, supervisor=sup)
    rig.intake.held = [item(1, 1)]  # received before the stop, never taken
    rig.recorder.add([item(0, 0), item(0, 1), item(1, 0)], 1, CONSUMED)
    rig.intake.drain(lambda: None)
    frame = rig.frame()
    states = {(w, s): st for w, s, st in zip(frame["worker"], frame["seq"], frame["state"])}
    assert states == {(0, 0): "consumed", (0, 1): "consumed", (0, 2): "left_global", (0, 3): "left_global",
                      (0, 4): "left_local", (0, 5): "left_local", (1, 0): "consumed", (1, 1): "left_global",
                      (1, 2): "left_global"}
    assert frame[frame["state"] != "consumed"]["consumed_ns"].isna().all()
    assert sup.eos == [eos0, eos1] and sup.silent_calls == 1
    assert len(rig.consumer.get_calls) == 1  # every end-of-stream came: it asks for nothing more


def test_drain_records_the_held_rest_of_a_chunk_as_left_global():
    sup = FakeSupervisor(awaiting=set())
    rig = Rig(supervisor=sup)
    rig.intake.held = [chunk(0, 3, 5)]
    rig.intake.drain(lambda: None)
    assert rig.seqs(LEFT_GLOBAL) == [3, 4, 5, 6, 7] and rig.intake.held == []


def test_drain_gives_up_once_every_silent_worker_has_exited():
    sup = FakeSupervisor(awaiting={(1, 0)}, exited=True)
    rig = Rig(messages=[item(1, 0)], supervisor=sup)
    rig.intake.drain(lambda: None)
    assert rig.seqs(LEFT_GLOBAL) == [0] and sup.silent_calls == 1 and sup.awaiting_eos == {(1, 0)}


def test_drain_stops_at_a_second_interrupt():
    sup = FakeSupervisor(awaiting={(0, 0)})
    rig = Rig(messages=[item(0, 0)] * 3, supervisor=sup)

    class Again(Exception):
        pass

    def check():
        raise Again

    with pytest.raises(Again):
        rig.intake.drain(check)
    assert rig.consumer.get_calls == []


def test_drain_with_a_real_supervisor_loses_exactly_a_silent_workers_local_queue():
    rig = Rig(n=2)
    put(rig.control, 1, protocol.PRODUCED, 9)
    put(rig.control, 1, protocol.FORWARDED, 6)
    eos0 = EndOfStream(0, 0, 0, 0, [], 0.0, 1.0, 0.5, rig.backend.started[0].pid)
    rig.consumer.queue = [eos0]
    for p in rig.backend.started:
        p.exitcode = 0
    rig.intake.drain(lambda: None)
    sup = rig.supervisor
    assert sup.awaiting_eos == {(1, 0)} and (0, 0) in sup.reports
    assert rig.books.dead_local == [(1, 6, 9)]
    assert any("no end-of-stream from worker(s) [1]" in e for e in rig.notes.errors)


# ------------------------------------------------------------------------------------------- supervisor
def test_start_worker_hands_each_worker_its_spec_producer_and_control_block():
    rig = Rig(n=2, faults__worker=1, faults__hang_after_s=0.7, faults__kill_worker_after_s=0.3)
    sup = rig.supervisor
    assert [p.name for p in rig.backend.started] == ["chiefbench-worker-0", "chiefbench-worker-1"]
    assert all(p.pid is not None for p in rig.backend.started)  # started, not only made
    (spec0, producer0, control0, errors0), (spec1, *_rest) = rig.backend.args
    assert producer0 == "producer-0" and control0 is rig.control and errors0 is sup.errors_channel
    assert (spec0.worker_id, spec0.incarnation, spec0.fault) == (0, 0, None)
    assert spec1.fault == ("kill", 0.3)  # the earliest fault of the faulty worker
    assert sup.awaiting_eos == {(0, 0), (1, 0)}


def test_abort_records_the_failure_and_what_the_dead_worker_held():
    rig = Rig(n=2, workers__on_failure="abort")
    sup = rig.supervisor
    put(rig.control, 0, protocol.PRODUCED, 10)
    put(rig.control, 0, protocol.FORWARDED, 7)
    with pytest.raises(WorkerFailed, match="worker 0 died: exited with code -9"):
        sup.on_failure(0, 0, "died", "exited with code -9 (pid 1)")
    (failure,) = sup.failures
    assert failure["kind"] == "died" and failure["action"] == "abort" and failure["produced_at_failure"] == 10
    assert rig.books.dead_local == [(0, 7, 10)]
    assert (0, 0) not in sup.awaiting_eos and (1, 0) in sup.awaiting_eos
    assert rig.notes.errors == ["worker 0 died: exited with code -9 (pid 1)"]
    assert sup.restarts == [0, 0] and sup.dead == set()
    # The same failure seen again (by another route), or of a past life, changes nothing.
    sup.on_failure(0, 0, "hung", "again")
    sup.on_failure(1, 5, "died", "not its current life")
    assert len(sup.failures) == 1


def test_an_exception_loses_nothing_and_its_traceback_is_in_the_error():
    rig = Rig(n=2, workers__on_failure="abort")
    put(rig.control, 1, protocol.PRODUCED, 10)
    with pytest.raises(WorkerFailed, match="worker 1 raised: ValueError: bad"):
        rig.supervisor.on_failure(1, 0, "exception", "Traceback (most recent call last):\nValueError: bad\n")
    # Its leftovers and end-of-stream are still to come: it is still awaited, nothing is counted lost.
    assert (1, 0) in rig.supervisor.awaiting_eos and rig.books.dead_local == []
    assert "Traceback (most recent call last)" in rig.notes.errors[0]


def test_continue_carries_on_without_the_worker_until_none_is_left():
    rig = Rig(n=2, workers__on_failure="continue")
    sup = rig.supervisor
    sup.on_failure(0, 0, "died", "exited with code -9 (pid 1)")
    assert sup.dead == {0} and sup.failures[0]["action"] == "continue without it"
    assert rig.notes.errors == [] and "worker 0 died" in rig.notes.warnings[0]
    assert len(rig.backend.started) == 2  # no new process
    with pytest.raises(WorkerFailed, match="every worker has failed"):
        sup.on_failure(1, 0, "hung", "no heartbeat")
    assert sup.dead == {0, 1}


def test_restart_starts_a_new_life_once_the_old_one_has_exited():
    rig = Rig(n=2, workers__on_failure="restart", workers__max_restarts=2, faults__raise_after_s=0.3)
    sup = rig.supervisor
    assert rig.backend.args[0][0].fault == ("raise", 0.3)
    put(rig.control, 0, protocol.PRODUCED, 10)
    put(rig.control, 0, protocol.FORWARDED, 6)
    put(rig.control, 0, protocol.DROPPED, 1)
    put(rig.control, 0, protocol.HEARTBEAT_NS, 12345)
    old = rig.backend.started[0]
    sup.on_failure(0, 0, "exception", "Traceback\nInjectedFault: boom")
    assert sup.restarts == [1, 0] and sup.failures[0]["action"] == "restart 1 of 2"
    assert sup.pending_restart == {0: old} and rig.notes.errors == []
    sup.restart_pending()  # it is still sending its leftovers: wait
    assert len(rig.backend.started) == 2 and sup.incarnation == [0, 0]
    old.exitcode = 1
    sup.restart_pending()
    new = rig.backend.started[2]
    assert sup.procs[0] is new and sup.retired == [old] and sup.incarnation == [1, 0]
    assert rig.design.respawned == [0] and rig.backend.args[2][1] == "producer-0-again"
    wspec = rig.backend.args[2][0]
    # The new life continues the counters and seqs, with the next seed stream, and no injected fault.
    assert (wspec.incarnation, wspec.seq_start, wspec.forwarded_start, wspec.dropped_start) == (1, 10, 6, 1)
    assert wspec.fault is None
    assert rig.books.slot(0, protocol.HEARTBEAT_NS) == 0  # the old life's heartbeat is not the new one's
    assert (0, 1) in sup.awaiting_eos and sup.all_processes() == [old, new, rig.backend.started[1]]


def test_restart_gives_up_after_max_restarts():
    rig = Rig(n=1, workers__on_failure="restart", workers__max_restarts=1)
    sup = rig.supervisor
    sup.on_failure(0, 0, "died", "exited with code -9")
    rig.backend.started[0].exitcode = -9
    sup.restart_pending()
    assert sup.incarnation == [1]
    with pytest.raises(WorkerFailed, match="max_restarts=1 reached"):
        sup.on_failure(0, 1, "died", "exited with code -9")
    assert sup.failures[-1]["action"] == "abort (max_restarts reached)"
    assert sup.restarts == [1] and len(rig.backend.started) == 2


def test_max_restarts_zero_aborts_at_the_first_failure():
    rig = Rig(n=1, workers__on_failure="restart", workers__max_restarts=0)
    with pytest.raises(WorkerFailed, match="max_restarts=0 reached"):
        rig.supervisor.on_failure(0, 0, "exception", "boom")
    assert rig.supervisor.pending_restart == {}


def alive_rig(**changes):
    """Two started workers with fresh heartbeats at ``now``."""
    rig = Rig(n=2, workers__on_failure="continue", **changes)
    now = time.monotonic_ns()
    for w in range(2):
        put(rig.control, w, protocol.HEARTBEAT_NS, now)
    return rig, now


def test_check_workers_leaves_healthy_workers_alone():
    rig, now = alive_rig()
    rig.supervisor.check_workers(now + SECOND // 10)
    assert rig.supervisor.failures == [] and rig.backend.checks == 1
    assert all(p.kills == 0 for p in rig.backend.started)


def test_check_workers_finds_a_dead_process():
    rig, now = alive_rig()
    rig.backend.started[1].exitcode = -9
    rig.supervisor.check_workers(now)
    (failure,) = rig.supervisor.failures
    assert (failure["worker"], failure["kind"]) == (1, "died")
    assert f"exited with code -9 (pid {rig.backend.started[1].pid})" in failure["detail"]
    rig.supervisor.check_workers(now)  # reported once
    assert len(rig.supervisor.failures) == 1


def test_check_workers_prefers_the_traceback_of_a_worker_that_raised_then_exited():
    rig, now = alive_rig()
    rig.supervisor.errors_channel.put(WorkerError(0, 0, "Traceback\nInjectedFault: boom"))
    rig.backend.started[0].exitcode = 1
    rig.supervisor.check_workers(now)
    (failure,) = rig.supervisor.failures
    assert failure["kind"] == "exception" and "InjectedFault" in failure["detail"]


def test_check_workers_kills_a_hung_worker_but_not_one_blocked_in_a_put():
    rig, now = alive_rig()  # heartbeat_timeout_s=0.5
    put(rig.control, 1, protocol.HEARTBEAT_NS, protocol.IN_PUT)
    later = now + int(0.6 * SECOND)
    rig.supervisor.check_workers(later)
    (failure,) = rig.supervisor.failures
    assert (failure["worker"], failure["kind"]) == (0, "hung") and "no heartbeat for 0.6 s" in failure["detail"]
    hung, blocked = rig.backend.started
    assert hung.kills == 1 and hung.joins >= 1 and blocked.kills == 0
    assert rig.books.slot(1, protocol.HEARTBEAT_NS) == protocol.IN_PUT


def test_a_stale_heartbeat_is_not_a_hang_while_starting():
    rig, now = alive_rig()
    rig.supervisor.check_workers(now + 5 * SECOND, starting=True)
    assert rig.supervisor.failures == []


def test_a_worker_never_ready_is_hung_after_the_startup_timeout(monkeypatch):
    rig = Rig(n=1, workers__on_failure="continue")
    sup = rig.supervisor
    started = sup.started_ns[0]
    sup.check_workers(started + SECOND, starting=True)  # no heartbeat yet, still importing
    assert sup.failures == []
    monkeypatch.setattr(supervisor_module, "STARTUP_TIMEOUT_S", 0.5)
    with pytest.raises(WorkerFailed, match="every worker has failed"):
        sup.check_workers(started + SECOND, starting=True)
    assert sup.failures[0]["kind"] == "hung" and "not ready" in sup.failures[0]["detail"]
    assert rig.backend.started[0].kills == 1


def blocked_rig(depth, **changes):
    """Both workers inside a put; the counters say ``depth`` items are on the global queue."""
    rig = Rig(n=2, workers__on_failure="continue", chief__global_threshold=3, **changes)
    for w in range(2):
        put(rig.control, w, protocol.HEARTBEAT_NS, protocol.IN_PUT)
    rig.forwarded(0, depth)
    return rig


def test_check_stall_raises_once_every_worker_was_blocked_for_stall_s():
    rig = blocked_rig(depth=3)
    sup = rig.supervisor
    sup.check_stall(SECOND)
    sup.check_stall(SECOND + int(supervisor_module.STALL_S * SECOND))  # not longer than STALL_S yet
    with pytest.raises(WorkerFailed, match=r"^stalled: .*holds 3 items, not more than chief.global_threshold=3"):
        sup.check_stall(SECOND + int(supervisor_module.STALL_S * SECOND) + 1)
    assert rig.notes.errors[0].startswith("stalled") and "Fix:" in rig.notes.errors[0]


def test_check_stall_follows_the_patched_constant(monkeypatch):
    monkeypatch.setattr(supervisor_module, "STALL_S", 0.001)
    rig = blocked_rig(depth=2)
    rig.supervisor.check_stall(SECOND)
    with pytest.raises(WorkerFailed, match="stalled"):
        rig.supervisor.check_stall(SECOND + 2_000_000)


@pytest.mark.parametrize("case", ["deep enough", "one worker free", "backend says no", "recovered"])
def test_no_stall_when_the_chief_can_still_take_or_a_worker_can_still_move(case):
    rig = blocked_rig(depth=4 if case == "deep enough" else 3)
    sup = rig.supervisor
    if case == "one worker free":
        put(rig.control, 1, protocol.HEARTBEAT_NS, 123)
    if case == "backend says no":
        rig.backend._stall_possible = False
    sup.check_stall(SECOND)
    if case == "recovered":
        assert sup.stalled_since == SECOND
        rig.forwarded(0, 4)  # the chief's rule can take again
        sup.check_stall(2 * SECOND)
    assert sup.stalled_since is None
    sup.check_stall(SECOND + 10 * int(supervisor_module.STALL_S * SECOND))  # whatever time passes
    assert rig.notes.errors == []


def test_a_worker_done_with_its_items_counts_as_blocked():
    rig = blocked_rig(depth=3, run__items=5)
    put(rig.control, 1, protocol.HEARTBEAT_NS, 123)
    put(rig.control, 1, protocol.PRODUCED, 5)
    rig.supervisor.check_stall(SECOND)
    with pytest.raises(WorkerFailed, match="stalled"):
        rig.supervisor.check_stall(SECOND + int(supervisor_module.STALL_S * SECOND) + 1)


def test_end_of_stream_with_an_error_goes_through_the_policy():
    rig = Rig(n=2, workers__on_failure="continue")
    sup = rig.supervisor
    sup.end_of_stream(EndOfStream(0, 0, 4, 4, [], 0.0, 1.0, 0.5, 7))
    assert sup.awaiting_eos == {(1, 0)} and sup.failures == []
    sup.end_of_stream(EndOfStream(1, 0, 4, 2, [], 0.0, 1.0, 0.5, 8, error="Traceback\nValueError: x"))
    assert sup.awaiting_eos == set() and sup.failures[0]["kind"] == "exception" and sup.dead == {1}


def test_reap_joins_then_kills_and_skips_never_started(monkeypatch):
    monkeypatch.setattr(supervisor_module, "JOIN_TIMEOUT_S", 0.0)
    rig = Rig(n=2)
    exited, stuck = rig.backend.started
    exited.exitcode = 0
    never = FakeProcess("chiefbench-worker-1")
    rig.supervisor.retired.append(never)
    rig.supervisor.reap()
    assert exited.kills == 0 and stuck.kills == 1 and never.kills == 0


# ------------------------------------------------------------------------------------------- the check loop
def chief_rig(forwarded, messages, **changes):
    """A Chief on fakes (no worker is started): worker 0's counters say ``forwarded`` items were forwarded."""
    from framework.engine.chief import Chief

    spec = make_spec(run__progress=False, chief__interval_s=0.001, **changes)
    backend, lines = FakeBackend(), []
    chief = Chief(spec, FakeDesign(), backend, lines.append)
    put(chief.books.control, 0, protocol.PRODUCED, forwarded)
    put(chief.books.control, 0, protocol.FORWARDED, forwarded)
    consumer = FakeConsumer(messages)
    chief.open_intake(consumer)
    chief.t0 = chief.supervisor.t0 = time.monotonic_ns()
    return chief, consumer, lines


def test_each_check_takes_take_batch_while_the_queue_is_deeper_than_the_threshold():
    chief, consumer, lines = chief_rig(10, [item(0, s) for s in range(10)], chief__rounds=5,
                                       chief__global_threshold=3, chief__take_batch=2)
    chief.loop()
    # Depths 10, 8, 6, 4: a take of 2 each; then 2, not above the threshold: nothing.
    assert chief.rounds == 5
    assert chief.recorder.count(CONSUMED) == 8 and chief.books.global_depth() == 2
    frame = chief.recorder.frame()
    assert frame["seq"].tolist() == list(range(8))
    assert frame.groupby("consumed_ns").size().max() <= 2  # one stamp per take
    # As the original printed: one line per item taken, with its round.
    assert len(lines) == 8 and lines[0].startswith("[chief] round 0: took 0.5 (worker 0, seq 0)")
    assert lines[-1].startswith("[chief] round 3: took 7.5")


def test_take_batch_zero_takes_everything_above_nothing_at_or_below_the_threshold():
    chief, _, _ = chief_rig(10, [item(0, s) for s in range(10)], chief__rounds=2, chief__global_threshold=3,
                            chief__take_batch=0)
    chief.loop()
    assert chief.recorder.count(CONSUMED) == 10
    chief, consumer, _ = chief_rig(3, [item(0, s) for s in range(3)], chief__rounds=3, chief__global_threshold=3,
                                   chief__take_batch=0)
    chief.loop()
    assert chief.rounds == 3 and chief.recorder.count(CONSUMED) == 0 and consumer.get_calls == []


def test_the_loop_ends_once_every_live_worker_produced_run_items():
    chief, _, _ = chief_rig(0, [], run__items=5)
    put(chief.books.control, 0, protocol.PRODUCED, 5)
    put(chief.books.control, 1, protocol.PRODUCED, 4)
    chief.supervisor.dead.add(1)  # a worker that failed under continue is not waited for
    chief.loop()
    # Every item is made at once: the loop goes on checking (every chief.interval_s=1 ms here) for one
    # more housekeeping period, then ends.
    assert 1 <= chief.rounds <= 2 * HOUSEKEEPING_S / 0.001


def test_the_loop_evicts_past_the_bound_under_drop_oldest():
    chief, consumer, _ = chief_rig(10, [item(0, s) for s in range(10)], chief__rounds=1,
                                   chief__global_threshold=3, chief__take_batch=1, queue__maxsize=4,
                                   queue__on_full="drop_oldest")
    chief.loop()
    assert chief.recorder.count(DROPPED_OLDEST) == 6
    frame = chief.recorder.frame()
    assert frame[frame["state"] == "dropped_oldest"]["seq"].tolist() == list(range(6))
    assert frame[frame["state"] == "consumed"]["seq"].tolist() == [6]


def test_an_interrupt_is_raised_at_the_next_safe_point_and_a_second_one_stops_the_stop():
    import signal

    from framework.errors import RunInterrupted

    interrupts = Interrupts()
    interrupts.check()  # nothing yet
    interrupts(signal.SIGINT, None)  # the handler only records it
    with pytest.raises(RunInterrupted) as info:
        interrupts.check()
    assert info.value.exit_code == 130
    interrupts.check(2)  # while stopping, only one more interrupt stops at once
    interrupts(signal.SIGTERM, None)
    with pytest.raises(RunInterrupted) as info:
        interrupts.check(2)
    assert info.value.exit_code == 143
