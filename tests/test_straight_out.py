"""The original shape at full speed (workers.interval_s=0, workers.local_threshold=0, workers.forward_batch=1):
each item leaves its worker as it is made, one put each, with the values of the worker's seeded stream."""

from __future__ import annotations

import pytest

from conftest import FAST, expected_values, sequences

pytestmark = pytest.mark.timeout(120)


@pytest.mark.parametrize("design", ["shm_ring", "pipe"])
def test_each_item_goes_out_by_itself_with_its_streams_value(run_in, design):
    result = run_in([*FAST, f"queue={design}", "run.items=700", "run.seed=99", "workers.local_threshold=0",
                     "workers.forward_batch=1", "run.start_method=fork"])
    c = result.counts
    assert result.status == "ok" and c["lost"] == 0 and c["duplicates"] == 0 and c["produced"] == 1400
    items = result.items
    # Nothing waited in a local queue: every item crossed the design (taken, or drained at the stop).
    assert items["state"].isin(["consumed", "left_global"]).all()
    assert sequences(result) == {w: expected_values(99, w, 700) for w in range(2)}
    assert (items["created_ns"] <= items["forwarded_ns"]).all()
    taken = items[items["state"] == "consumed"]
    assert len(taken) and (taken["forwarded_ns"] <= taken["consumed_ns"]).all()
    # One stamp per generated block (of 256 items): an item was made with its block, forwarded on its own.
    for _, g in items.groupby("worker"):
        g = g.sort_values("seq")
        assert g["created_ns"].nunique() == -(-700 // 256)
        assert g["forwarded_ns"].is_monotonic_increasing
