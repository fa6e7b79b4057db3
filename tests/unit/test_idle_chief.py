"""What a chief waiting for a trickle of items does, and what it no longer does: no take after the run's end,
the machine-noise read once a second, shm_ring's spin shortened when items come slowly."""

from __future__ import annotations

import multiprocessing
import queue
import threading
import time

import pytest

from framework.engine import protocol
from framework.engine.chief.loop import NOISE_SAMPLE_NS
from framework.queues.base import QueueSettings
from framework.queues.shm_ring import SPIN_MIN_NS, SPIN_NS, ShmRingDesign
from tests.unit.test_chief import (FakeBackend, FakeConsumer, FakeDesign, chief_rig, item,
                                   make_spec, put)


def test_the_loop_takes_nothing_once_the_run_is_over():
    # Far more forwarded than can be taken in 30 ms: the loop is still taking when the run ends.
    from framework.engine.chief import Chief

    n = 200_000
    spec = make_spec(run__progress=False, chief__interval_s=0, chief__take_batch=1, chief__global_threshold=0,
                     run__duration_s=0.03, run__items=None)
    chief = Chief(spec, FakeDesign(), FakeBackend(), lambda line: None)
    put(chief.books.control, 0, protocol.PRODUCED, n)
    put(chief.books.control, 0, protocol.FORWARDED, n)
    chief.open_intake(FakeConsumer([item(0, s) for s in range(n)]))
    chief.t0 = chief.supervisor.t0 = time.monotonic_ns()
    end_ns = chief.t0 + int(0.03e9)
    starts = []
    take = chief.intake.take

    def timed_take(*args, **kwargs):
        starts.append(time.monotonic_ns())
        take(*args, **kwargs)

    chief.intake.take = timed_take
    chief.loop()
    assert starts and chief.recorder.consumed > 0
    # Every take began before the end: the loop returns at the end, not at the next housekeeping.
    assert max(starts) < end_ns
    assert len(starts) == chief.recorder.consumed  # one item per take, none of them empty


class CountingSampler:
    def __init__(self):
        self.started, self.samples = False, 0

    def start(self):
        self.started = True

    def sample(self):
        self.samples += 1


def test_the_machine_noise_is_read_once_a_second_not_at_every_housekeeping():
    chief, _, _ = chief_rig(0, [])
    chief.noise = sampler = CountingSampler()
    t = chief.t0
    for _ in range(60):  # 3 s of housekeeping every 50 ms
        chief.housekeeping(t)
        t += 50_000_000
    assert sampler.started
    assert sampler.samples == (60 * 50_000_000 - 1) // NOISE_SAMPLE_NS


@pytest.fixture
def ring():
    design = ShmRingDesign(QueueSettings("shm_ring", 0, 1 << 16), 1, multiprocessing.get_context("fork"))
    try:
        yield design.producer(0), design.consumer()
    finally:
        design.close()


@pytest.mark.timeout(30)
def test_shm_ring_shortens_its_spin_when_items_come_slowly_and_keeps_delivering(ring):
    producer, consumer = ring
    assert consumer._spin_ns == SPIN_NS
    with pytest.raises(queue.Empty):
        consumer.get_many(1, timeout=0.005)
    assert consumer._spin_ns == SPIN_NS  # nothing came: nothing learnt

    seen = []
    for k in range(12):
        # The item comes 5 ms into the wait, far past any spin: each wait halves the next spin.
        timer = threading.Timer(0.005, producer.put, args=((0, k, 1, 2, float(k)),))
        timer.start()
        seen.extend(consumer.get_many(1, timeout=10))
        timer.join()
    assert [s[1] for s in seen] == list(range(12))
    assert consumer._spin_ns == SPIN_MIN_NS

    # An item that came within SPIN_NS of the wait's start doubles it back (up to SPIN_NS).
    consumer._adapt_spin(time.monotonic_ns())
    assert consumer._spin_ns == 2 * SPIN_MIN_NS
    for _ in range(10):
        consumer._adapt_spin(time.monotonic_ns())
    assert consumer._spin_ns == SPIN_NS

    producer.put((0, 12, 1, 2, 12.0))  # already there: no wait at all
    assert consumer.get_many(1, timeout=10)[0][1] == 12
    assert consumer._spin_ns == SPIN_NS
