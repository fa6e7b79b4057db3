"""A worker generating in blocks (workers.interval_s=0) sends exactly the messages of the per-item loop.

Both loops run in this process against a list for a producer and a control block that raises the stop
flag once ``limit`` items are produced; the messages are compared item by item (which seqs travel
together, with which values), then the local queue's leftovers and the counters. Only created stamps
may differ (one per block)."""

from __future__ import annotations

from collections import deque
from types import SimpleNamespace

import numpy as np
import pytest

from framework.engine import protocol, worker

LIMIT = 1000
"""Items per run: several blocks of BLOCK_ITEMS, so that forwards span blocks."""


class _Control(list):
    """The control block; reads STOP as set once worker 0 has produced LIMIT items."""

    def __getitem__(self, index):
        if index == protocol.STOP:
            return int(list.__getitem__(self, protocol.worker_slot(0, protocol.PRODUCED)) >= LIMIT)
        return list.__getitem__(self, index)


class _Producer:
    def __init__(self):
        self.messages = []

    def put(self, message):
        self.messages.append(message)


PAYLOADS = {
    "randint": SimpleNamespace(_target_="framework.payloads.randint.Randint", low=1, high=1000),
    "array": SimpleNamespace(_target_="framework.payloads.array.Array", low=1, high=200, shape=[3, 2],
                             dtype="uint8"),
}


def _run(blocks: bool, payload, transform, threshold: int, batch: int, deadline_s):
    spec = worker.WorkerSpec(worker_id=0, seed=5, interval_s=0, local_threshold=threshold, forward_batch=batch,
                             forward_deadline_s=deadline_s, local_queue="deque", items=LIMIT, on_stop="forward",
                             payload=payload, transform=transform)
    control = _Control([0] * (protocol.HEADER_SLOTS + protocol.WORKER_SLOTS))
    control[protocol.START_NS] = 1
    state, producer = worker._State(spec, control), _Producer()
    rng = worker.worker_stream(spec.seed, 0)
    make = worker.make_transform(transform)
    if blocks:
        local = worker._Columns()
        worker._loop_blocks(spec, state, local, worker.make_block_source(payload, rng), make, producer, control,
                            lambda: True)
    else:
        local = deque()
        worker._loop(spec, state, local, worker.make_source(payload, rng), make, producer, control, lambda: True)
    return producer.messages, list(local), state


def _flat(messages):
    """Per message: its (seq, value) pairs, values as plain numbers / lists."""
    out = []
    for m in messages:
        if type(m) is tuple:
            v = m[4]
            out.append([(m[1], v.tolist() if isinstance(v, np.ndarray) else v)])
        else:
            values = m.values.tolist() if isinstance(m.values, np.ndarray) else [v.tolist() for v in m.values]
            out.append([(m.seq0 + i, v) for i, v in enumerate(values)])
    return out


@pytest.mark.parametrize("payload", list(PAYLOADS))
@pytest.mark.parametrize("transform", ["none", "add"])
@pytest.mark.parametrize("threshold,batch,deadline_s", [
    (0, 1, None), (0, 64, None), (5, 3, None), (63, 64, None), (100, 7, None), (5, 3, 0.0), (300, 64, 0.0),
    (2, 1000, None),
])
def test_blocks_send_the_messages_of_the_per_item_loop(payload, transform, threshold, batch, deadline_s):
    t = SimpleNamespace(name=transform, value=2)
    p = PAYLOADS[payload]
    one, left_one, st_one = _run(False, p, t, threshold, batch, deadline_s)
    block, left_block, st_block = _run(True, p, t, threshold, batch, deadline_s)
    assert [type(m) for m in block] == [type(m) for m in one]
    assert _flat(block) == _flat(one)
    assert [(s, np.asarray(v).tolist()) for s, _, v in left_block] == \
        [(s, np.asarray(v).tolist()) for s, _, v in left_one]
    assert (st_block.seq, st_block.forwarded) == (st_one.seq, st_one.forwarded) == (LIMIT, st_one.forwarded)
    for m in block:  # one created stamp per block: never after the forward
        created = [m[2]] if type(m) is tuple else m.created_ns.tolist()
        assert all(c <= m[3] if type(m) is tuple else c <= m.forwarded_ns for c in created)
