"""Batched forwards travel as columnar chunks: the chief splits them to take exactly what its
rule asks for, records the same values as the per-item path, and (with shm_ring) reads
payloads through views it hands back after each receive."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import FAST

pytestmark = pytest.mark.timeout(120)


def _by_seq(result):
    items = result.items.sort_values(["worker", "seq"], ignore_index=True)
    return items[["worker", "seq", "value"]]


@pytest.mark.parametrize("design", ["shm_ring", "pipe"])
def test_a_chunk_is_split_so_each_check_takes_exactly_take_batch(run_in, design):
    result = run_in(["workers.interval_s=0", "chief.interval_s=0.005", "chief.take_batch=3", "chief.global_threshold=0",
                     "workers.forward_batch=16", "workers.local_threshold=16", "run.duration_s=0.5",
                     "run.progress=false", "run.print_items=false", "run.start_method=fork", f"queue={design}"])
    c = result.counts
    assert result.status == "ok" and c["lost"] == 0 and c["duplicates"] == 0
    consumed = result.items[result.items["state"] == "consumed"]
    # One consumed stamp per receive; a take of 3 may need two receives, never more than 3 items.
    per_receive = consumed.groupby("consumed_ns").size()
    assert per_receive.max() <= 3
    assert c["consumed"] <= 3 * result.summary["rounds"]
    assert c["left_global"] > 0  # the rest of the split chunks stayed queued, and were counted


@pytest.mark.parametrize("payload", [["payload=randint"], ["payload=array", "payload.shape=[3000]"]])
def test_chunks_and_lent_views_record_what_the_per_item_path_records(run_in, payload):
    """Same seed, same items: shm_ring with chunks of 8 (views lent to the chief) against pipe one at a time."""
    common = [*FAST, "run.items=300", "run.seed=7", "run.start_method=fork", "run.on_stop=forward", *payload]
    # A small ring, so that it wraps many times while the recorder still holds earlier chunks.
    ring = run_in([*common, "queue=shm_ring", "workers.forward_batch=8", "workers.local_threshold=8",
                   "queue.buffer_bytes=524288"])
    one = run_in([*common, "queue=pipe", "workers.forward_batch=1"])
    for r in (ring, one):
        assert r.status == "ok" and r.counts["lost"] == 0 and r.counts["produced"] == 600
    a, b = _by_seq(ring), _by_seq(one)
    assert (a[["worker", "seq"]].to_numpy() == b[["worker", "seq"]].to_numpy()).all()
    np.testing.assert_array_equal(a["value"].to_numpy(), b["value"].to_numpy())
    assert set(np.round(a["value"].unique(), 6)) <= {1.1, 2.1, 3.1}
    items = ring.items
    assert (items["created_ns"] <= items["forwarded_ns"]).all()
    taken = items[items["state"] == "consumed"]
    assert len(taken) and (taken["forwarded_ns"] <= taken["consumed_ns"]).all()
