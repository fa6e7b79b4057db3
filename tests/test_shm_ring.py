"""shm_ring under any interleaving: hypothesis drives sizes, batches and wrap-arounds.

The property: whatever mix of put / put_many / get_many the producer and consumer
perform on a small ring (so records wrap and the ring fills), and whatever mix of
pickled records (arrays, bytes, odd tuples) and fixed-header records (item tuples,
column chunks) it carries, with views lent or copies, every item comes out exactly
once, in order, with its content intact, and a record larger than half the ring is
refused with the fix in the message.
"""

from __future__ import annotations

import multiprocessing
import queue

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from framework.engine.protocol import Chunk
from framework.queues.base import QueueSettings
from framework.queues.shm_ring import MessageTooLargeError, ShmRingDesign

RING_BYTES = 8192
"""Small, so that a few dozen items wrap the ring and fill it."""


def _design(ring_bytes: int = RING_BYTES, n: int = 1) -> ShmRingDesign:
    return ShmRingDesign(QueueSettings("shm_ring", 0, ring_bytes), n, multiprocessing.get_context("fork"))


KINDS = ["array", "bytes", "tuple", "item_float", "item_int", "item_array", "chunk_scalar", "chunk_2d",
         "chunk_list", "chunk_mixed"]
"""Pickled: array, bytes, tuple (not an item's shape), chunk_mixed (arrays of two dtypes).
Fixed-header: item_* (an item tuple), chunk_scalar / chunk_2d / chunk_list (a Chunk's columns)."""


def _item(i: int, size: int, kind: str):
    """Item i of `size` bytes (about) and of the given kind, all derived from i."""
    data = (np.arange(size, dtype=np.uint8) + i).astype(np.uint8)
    if kind == "array":
        return data
    if kind == "bytes":
        return data.tobytes()
    if kind == "tuple":
        return (i, data[: size // 2], {"i": i})
    if kind == "item_float":
        return (i % 3, i, 1000 + i, 2000 + i, i / 7)
    if kind == "item_int":
        return (i % 3, i, 1000 + i, 2000 + i, i - (1 << 62) if i % 2 else i)
    if kind == "item_array":
        return (i % 3, i, 1000 + i, 2000 + i, data.reshape(-1, 2) if size % 2 == 0 else data)
    n, width = 1 + size % 16, size // 48  # at most 16 rows of 62 elements: a put_many of 6 fits half the ring
    created = np.arange(n, dtype=np.int64) + 1000 * i
    if kind == "chunk_scalar":
        return Chunk(i % 3, i, created, 5000 + i, np.arange(n, dtype=np.float64) / (i + 1))
    rows = [np.full(width, (i + j) % 251, np.int16 if kind == "chunk_mixed" and j % 2 else np.uint8)
            for j in range(n)]
    if kind == "chunk_2d":
        return Chunk(i % 3, i, created, 5000 + i, np.stack(rows))
    return Chunk(i % 3, i, created, 5000 + i, rows)


def _same(a, b) -> bool:
    if isinstance(a, np.ndarray):
        return isinstance(b, np.ndarray) and a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b)
    if isinstance(a, tuple):
        return isinstance(b, tuple) and len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, Chunk):
        values = a.values
        if isinstance(values, list) and not isinstance(getattr(b, "values", None), list):
            # put() stacks a list of same-shape, same-dtype arrays into the ring (put_many pickles it)
            assert len({v.dtype for v in values}) == 1
            values = np.stack(values)
        return isinstance(b, Chunk) and (a.worker, a.seq0, a.forwarded_ns) == (b.worker, b.seq0, b.forwarded_ns) \
            and _same(a.created_ns, b.created_ns) and _same(values, b.values)
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and a == b


def _own(x):
    """A deep copy of what the consumer returned (its arrays may be views lent until release())."""
    if isinstance(x, np.ndarray):
        return x.copy()
    if isinstance(x, tuple):
        return tuple(_own(y) for y in x)
    if isinstance(x, list):
        return [_own(y) for y in x]
    if isinstance(x, Chunk):
        return Chunk(x.worker, x.seq0, _own(x.created_ns), x.forwarded_ns, _own(x.values))
    return x


operations = st.lists(
    st.one_of(
        st.tuples(st.just("put"), st.integers(0, 3000), st.sampled_from(KINDS)),
        st.tuples(st.just("put_many"), st.lists(st.integers(0, 400), min_size=1, max_size=6),
                  st.sampled_from(KINDS)),
        st.tuples(st.just("get_many"), st.integers(1, 10), st.just("")),
    ),
    min_size=1, max_size=80)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=operations, lend=st.booleans())
def test_any_interleaving_keeps_order_content_and_count(ops, lend):
    design = _design()
    try:
        producer, consumer = design.producer(0), design.consumer()
        consumer.lend_views = lend
        sent, received = [], []

        def get(n):
            got = consumer.get_many(n, block=False)
            received.extend(_own(x) for x in got)
            if lend:
                consumer.release()  # the room of lent views goes back only now

        for op, arg, kind in ops:
            if op == "get_many":
                try:
                    get(arg)
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
                    get(1)
            sent.extend(batch)
        while len(received) < len(sent):
            get(1000)
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


@pytest.mark.parametrize("message", [
    (0, 0, 1, 2, np.zeros(RING_BYTES // 2, np.uint8)),
    Chunk(0, 0, np.zeros(64, np.int64), 2, np.zeros((64, RING_BYTES // 128), np.uint8)),
    Chunk(0, 0, np.zeros(64, np.int64), 2, [np.zeros(RING_BYTES // 128, np.uint8)] * 64),
], ids=["item", "chunk_2d", "chunk_list"])
def test_a_fixed_header_record_over_half_the_ring_is_refused_with_the_fix(message):
    design = _design()
    try:
        with pytest.raises(MessageTooLargeError, match="queue.buffer_bytes"):
            design.producer(0).put(message)
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


@pytest.mark.parametrize("lend", [False, True])
def test_runs_of_single_items_come_back_as_one_chunk_when_the_chief_accepts_chunks(lend):
    """A run of one-number item records of one worker with consecutive seqs is read as one chunk, a stamp
    per item; a gap in the seqs, a value of another type or the ring's wrap ends a run; the items are the
    ones that were put, in order."""
    design = _design(RING_BYTES, 2)
    try:
        producer = design.producer(1)
        consumer = design.consumer()
        consumer.lend_views, consumer.accept_chunks = lend, True
        put = [(1, s, 1000 + s, 2000 + s, float(s) / 4) for s in range(10)]
        put += [(1, s, 1000 + s, 2000 + s, s) for s in range(10, 14)]  # ints: another run
        put += [(1, s, 1000 + s, 2000 + s, s) for s in range(20, 23)]  # a gap in the seqs: another run
        put += [(1, 30, 1030, 2030, 30)]  # alone: a tuple
        for item in put:
            producer.put(item)
        got = consumer.get_many(100, timeout=1)
        assert [type(m) for m in got] == [Chunk, Chunk, Chunk, tuple]
        assert [len(m) if type(m) is Chunk else 1 for m in got] == [10, 4, 3, 1]
        tuples = [t for m in got for t in ([m] if type(m) is tuple else m.tuples())]
        assert tuples == put and all(type(t[4]) is type(p[4]) for t, p in zip(tuples, put))
        consumer.release()
        # Many more than the ring holds: runs end at the wrap, nothing is lost or repeated.
        seq, seen = 100, []
        for _ in range(20):
            for _ in range(30):
                producer.put((1, seq, seq, seq, float(seq)))
                seq += 1
            seen += [t[1] for m in consumer.get_many(1000, timeout=1)
                     for t in ([m] if type(m) is tuple else m.tuples())]
            consumer.release()
        assert seen == list(range(100, seq))
        # Not accepted: item tuples as they were put.
        consumer.accept_chunks = False
        for item in put[:3]:
            producer.put(item)
        assert consumer.get_many(10, timeout=1) == put[:3]
        producer.close()
    finally:
        design.close()
