"""What a worker's messages cost on the wire, without processes: a chunk pickles as its columns' bytes (under
every protocol, in band and out of band), and an mp_queue worker lets its feeder thread catch up without ever
waiting for a pipe nobody reads."""

from __future__ import annotations

import multiprocessing
import pickle
import threading

import numpy as np
import pytest

from framework.engine.protocol import Chunk
from framework.queues import stdlib

pytestmark = pytest.mark.timeout(60)

STAMP = 1_700_000_000_000_000_000


def _chunk(values) -> Chunk:
    n = len(values)
    return Chunk(3, 1_000, STAMP + np.arange(n, dtype=np.int64) * 1_000, STAMP + 10**6, values)


def _same(a: Chunk, b: Chunk) -> None:
    assert (a.worker, a.seq0, a.forwarded_ns) == (b.worker, b.seq0, b.forwarded_ns)
    assert a.created_ns.dtype == np.int64 and np.array_equal(a.created_ns, b.created_ns)
    if isinstance(b.values, np.ndarray):
        assert a.values.dtype == b.values.dtype and a.values.shape == b.values.shape
        assert np.array_equal(a.values, b.values)
    else:
        assert a.values == b.values


VALUES = {
    "floats": lambda: np.random.default_rng(1).random(64),
    "one float": lambda: np.array([2.5]),
    "arrays": lambda: np.random.default_rng(2).random((4, 1024)),
    "bytes images": lambda: np.arange(64 * 12, dtype=np.uint8).reshape(64, 3, 4),
    "a strided column": lambda: np.random.default_rng(3).random((16, 3))[:, 1],
    "a list of objects": lambda: [{"a": i} for i in range(5)],
    "object array": lambda: np.array([{"a": 1}, "b"], dtype=object),
}


@pytest.mark.parametrize("protocol", [4, 5])
@pytest.mark.parametrize("kind", VALUES)
def test_a_chunk_comes_back_whole_under_every_protocol(kind, protocol):
    chunk = _chunk(VALUES[kind]())
    _same(pickle.loads(pickle.dumps(chunk, protocol=protocol)), chunk)


def test_numeric_columns_travel_as_bytes_not_as_numpy_pickles():
    chunk = _chunk(np.random.default_rng(4).random(64))
    blob = pickle.dumps(chunk, protocol=4)
    # numpy's own pickle of an array names its reconstructor; the columns' bytes need none.
    assert b"_reconstruct" not in blob and b"frombuffer" not in blob
    assert len(blob) < 64 * 8 + 64 * 8 + 200


def test_out_of_band_buffers_carry_the_columns_without_a_copy_into_the_stream():
    chunk = _chunk(np.random.default_rng(5).random((8, 4096)))
    buffers: list[pickle.PickleBuffer] = []
    blob = pickle.dumps(chunk, protocol=5, buffer_callback=buffers.append)
    assert len(buffers) == 2 and len(blob) < 1_000
    _same(pickle.loads(blob, buffers=[b.raw() for b in buffers]), chunk)


def test_a_chief_side_chunk_with_a_stamp_per_item_pickles_as_it_is():
    chunk = Chunk(0, 5, np.arange(3, dtype=np.int64), np.arange(3, dtype=np.int64) + 7, np.ones(3))
    back = pickle.loads(pickle.dumps(chunk))
    assert np.array_equal(back.forwarded_ns, chunk.forwarded_ns) and np.array_equal(back.values, chunk.values)


# --------------------------------------------------------------------------- mp_queue's feeder


BIG = np.zeros(64 * 1024, np.uint8)
"""One message the size of a whole pipe buffer: a feeder writes it only while somebody reads."""


def test_an_mp_queue_put_waits_for_its_feeder_while_somebody_reads(monkeypatch):
    monkeypatch.setattr(stdlib, "FEEDER_WAIT_MAX_S", 30.0)  # only the feeder's progress ends a wait here
    q = multiprocessing.get_context("fork").Queue()
    producer = stdlib._MpQueueProducer(q)
    received = []
    reader = threading.Thread(target=lambda: received.extend(q.get(timeout=10) for _ in range(40)), daemon=True)
    reader.start()
    most_waiting = 0
    for _ in range(40):
        producer.put(BIG)
        most_waiting = max(most_waiting, len(q._buffer))
    reader.join(20)
    assert len(received) == 40
    assert most_waiting <= stdlib.FEEDER_AHEAD_MESSAGES
    producer.close()


def test_an_mp_queue_put_goes_on_when_nobody_reads(monkeypatch):
    """A chief waiting for a deeper queue (chief.global_threshold) must still see it grow: no deadlock."""
    monkeypatch.setattr(stdlib, "FEEDER_WAIT_MAX_S", 0.01)
    q = multiprocessing.get_context("fork").Queue()
    producer = stdlib._MpQueueProducer(q)
    for _ in range(3 * stdlib.FEEDER_AHEAD_MESSAGES):
        producer.put(BIG)
    assert q.qsize() == 3 * stdlib.FEEDER_AHEAD_MESSAGES
    assert len(q._buffer) > stdlib.FEEDER_AHEAD_MESSAGES  # the pipe is full, the rest waits in the feeder
    for _ in range(3 * stdlib.FEEDER_AHEAD_MESSAGES):
        assert q.get(timeout=10).nbytes == BIG.nbytes
    producer.close()
