"""Takes of a few items out of a long chunk (chief.take_batch=1 behind shm_ring's runs): recorded as item tuples,
exactly as the chunk path records them, the rest held in order."""

from __future__ import annotations

import numpy as np
import pytest

from framework.engine.chief.intake import TUPLE_TAKE_ITEMS
from framework.engine.protocol import Chunk
from framework.engine.record import CONSUMED
from tests.unit.test_chief import FakeSupervisor, Rig


def run_chunk(n: int) -> Chunk:
    """A run of single-item messages as shm_ring returns it: a forwarded stamp per item, int values."""
    return Chunk(0, 10, np.arange(n, dtype=np.int64) + 1000, np.arange(n, dtype=np.int64) + 3000,
                 np.arange(n, dtype=np.int64) * 7)


@pytest.mark.parametrize("take", [1, TUPLE_TAKE_ITEMS, TUPLE_TAKE_ITEMS + 1])
def test_a_long_chunk_taken_a_few_items_at_a_time_records_every_item_once_and_exactly(take):
    n = 23
    rig = Rig(n=1, messages=[run_chunk(n)], forward_batch=1, supervisor=FakeSupervisor())
    rig.forwarded(0, n)
    while rig.recorder.count(CONSUMED) < n:
        before = rig.recorder.count(CONSUMED)
        rig.intake.take(min(take, n - before), None)
        assert rig.recorder.count(CONSUMED) == min(n, before + take)
        if rig.intake.held:
            (held,) = rig.intake.held
            assert held.seq0 == 10 + before + take and len(held) == n - before - take
    assert len(rig.consumer.get_calls) == 1  # one message from the design; every later take from what was held
    frame = rig.frame()
    assert frame["seq"].tolist() == list(range(10, 10 + n))
    assert frame["created_ns"].tolist() == list(range(1000, 1000 + n))
    assert frame["forwarded_ns"].tolist() == list(range(3000, 3000 + n))
    assert frame["value"].tolist() == [7.0 * i for i in range(n)]
    assert rig.books.global_depth() == 0


def test_a_chunk_received_before_the_split_one_keeps_the_arrival_order():
    first = Chunk(0, 0, np.arange(3, dtype=np.int64) + 1000, 5000, np.arange(3, dtype=np.float64))
    rig = Rig(n=1, messages=[first, run_chunk(20)], forward_batch=8, supervisor=FakeSupervisor())
    rig.forwarded(0, 23)
    rig.intake.take(4, None)  # the whole first chunk and one item of the second
    assert rig.recorder.frame()["seq"].tolist() == [0, 1, 2, 10]
