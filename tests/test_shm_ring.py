"""shm_ring under any interleaving: hypothesis drives sizes, batches and wrap-arounds.

The property: whatever mix of put / put_many / get_many the producer and consumer
perform on a small ring (so records wrap and the ring fills), every item comes out
exactly once, in order, with its content intact, and a record larger than half the
ring is refused with the fix in the message.
"""

from __future__ import annotations

import multiprocessing
import queue

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from framework.queues.base import QueueSettings
from framework.queues.shm_ring import MessageTooLargeError, ShmRingDesign

RING_BYTES = 8192
"""Small, so that a few dozen items wrap the ring and fill it."""


def _design(ring_bytes: int = RING_BYTES, n: int = 1) -> ShmRingDesign:
    return ShmRingDesign(QueueSettings("shm_ring", 0, ring_bytes), n, multiprocessing.get_context("fork"))


def _item(i: int, size: int, kind: str):
    """Item i: an array of `size` bytes, a bytes object, or a tuple holding both, all derived from i."""
    data = (np.arange(size, dtype=np.uint8) + i).astype(np.uint8)
    if kind == "array":
        return data
    if kind == "bytes":
        return data.tobytes()
    return (i, data[: size // 2], {"i": i})


def _same(a, b) -> bool:
    if isinstance(a, np.ndarray):
        return isinstance(b, np.ndarray) and a.dtype == b.dtype and np.array_equal(a, b)
    if isinstance(a, tuple):
        return isinstance(b, tuple) and len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b


operations = st.lists(
    st.one_of(
        st.tuples(st.just("put"), st.integers(0, 3000), st.sampled_from(["array", "bytes", "tuple"])),
        st.tuples(st.just("put_many"), st.lists(st.integers(0, 400), min_size=1, max_size=6),
                  st.sampled_from(["array", "bytes", "tuple"])),
        st.tuples(st.just("get_many"), st.integers(1, 10), st.just("")),
    ),
    min_size=1, max_size=80)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=operations)
def test_any_interleaving_keeps_order_content_and_count(ops):
    design = _design()
    try:
        producer, consumer = design.producer(0), design.consumer()
        sent, received = [], []
        for op, arg, kind in ops:
            if op == "get_many":
                try:
                    received.extend(consumer.get_many(arg, block=False))
                except queue.Empty:
                    pass
                continue
            sizes = [arg] if op == "put" else arg
            batch = [_item(len(sent) + j, size, kind) for j, size in enumerate(sizes)]
            while True:
                try:
                    if op == "put":
                        producer.put(batch[0], block=False)
                    else:
                        producer.put_many(batch, block=False)
                    break
                except queue.Full:
                    # The ring is full: the consumer makes the least room it can (one item), so
                    # the ring stays nearly full and every wrap-around happens under pressure.
                    received.extend(consumer.get_many(1, block=False))
            sent.extend(batch)
        while len(received) < len(sent):
            received.extend(consumer.get_many(1000, block=False))
        assert len(received) == len(sent)
        assert all(_same(a, b) for a, b in zip(sent, received))
        with pytest.raises(queue.Empty):
            consumer.get_many(1, block=False)
        producer.close()
    finally:
        design.close()


def test_a_record_over_half_the_ring_is_refused_with_the_fix():
    design = _design()
    try:
        with pytest.raises(MessageTooLargeError, match="queue.buffer_bytes"):
            design.producer(0).put(np.zeros(RING_BYTES // 2, np.uint8))
    finally:
        design.close()


def _produce(producer, worker: int, n: int) -> None:
    rng = np.random.default_rng(worker)
    for i in range(n):
        size = int(rng.integers(0, 1200))
        if i % 3:
            producer.put((worker, i, np.full(size, i % 251, np.uint8)))
        else:
            producer.put_many([(worker, i, np.full(size, i % 251, np.uint8))])
    producer.close()


@pytest.mark.timeout(60)
def test_concurrent_producers_wrap_a_tiny_ring_without_loss():
    """Real processes, a ring that fills every few items: producers wait, nothing is lost or reordered."""
    n_workers, n_items = 2, 3000
    design = _design(n=n_workers)
    procs = []
    try:
        ctx = multiprocessing.get_context("fork")
        procs = [ctx.Process(target=_produce, args=(design.producer(w), w, n_items)) for w in range(n_workers)]
        for p in procs:
            p.start()
        consumer = design.consumer()
        got = {w: [] for w in range(n_workers)}
        while sum(map(len, got.values())) < n_workers * n_items:
            for w, i, data in consumer.get_many(64, timeout=10):
                assert not data.size or (data == i % 251).all()
                got[w].append(i)
        assert all(got[w] == list(range(n_items)) for w in got)
    finally:
        for p in procs:
            p.join(10)
            if p.is_alive():
                p.kill()
                p.join()
        design.close()


@pytest.mark.timeout(30)
def test_an_idle_consumer_sleeps_instead_of_spinning():
    """Waiting on an empty ring costs well under a core (the doorbell, not a busy loop)."""
    import time

    design = _design()
    try:
        consumer = design.consumer()
        cpu0, wall0 = time.process_time(), time.monotonic()
        with pytest.raises(queue.Empty):
            consumer.get_many(1, timeout=0.5)
        cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
        assert wall >= 0.45
        assert cpu < 0.5 * wall, f"waiting used {cpu / wall:.0%} of a core"
    finally:
        design.close()
