"""Bounded global queues: every on_full policy keeps the bound and the books."""

from __future__ import annotations

import pytest

from framework.queues.catalog import designs

pytestmark = pytest.mark.timeout(90)

# Producers far faster than the chief: the original system's imbalance, sped up. In 0.8 s the workers offer
# over a thousand items against the chief's 40 takes: the counts asserted below are a fraction of that.
OVERLOADED = ["workers.interval_s=0.001", "chief.interval_s=0.02", "chief.take_batch=1", "run.duration_s=0.8",
              "run.progress=false", "run.start_method=fork", "chief.global_threshold=3"]
BOUND = 50


def global_depth_max(result):
    depth = result.depth
    return depth.loc[depth["queue"] == "global", "depth"].max()


def assert_books(result):
    c = result.counts
    assert c["produced"] == c["consumed"] + c["left_in_queues"] + c["dropped"] + c["lost"]
    assert c["lost"] == 0 and c["duplicates"] == 0


@pytest.mark.parametrize("design", designs("local"))  # Ray designs: tests/test_ray.py
def test_block_keeps_the_bound_and_records_time_blocked(run_in, design):
    result = run_in([*OVERLOADED, f"queue={design}", f"queue.maxsize={BOUND}", "queue.on_full=block"])
    assert result.status == "ok", result.summary["errors"]
    assert_books(result)
    # Workers check the counters before each put: two racing workers overshoot by one forward each at most.
    assert global_depth_max(result) <= BOUND + 2
    assert result.summary["blocked_s"]["total"] > 0.5
    assert result.counts["dropped"] == 0
    assert not any("unstable" in w for w in result.summary["warnings"])


def test_without_a_bound_the_queue_grows_and_the_summary_warns(run_in):
    result = run_in(OVERLOADED)
    assert global_depth_max(result) > 4 * BOUND
    assert result.summary["stability"]["unstable"]
    (warning,) = [w for w in result.summary["warnings"] if "unstable" in w]
    assert "queue.maxsize" in warning and "/s" in warning


def test_drop_newest_counts_every_dropped_item(run_in):
    result = run_in([*OVERLOADED, f"queue.maxsize={BOUND}", "queue.on_full=drop_newest"])
    assert result.status == "ok"
    assert_books(result)
    c = result.counts
    assert c["dropped_newest"] > 100 and c["dropped_oldest"] == 0
    dropped = result.items[result.items["state"] == "dropped_newest"]
    assert len(dropped) == c["dropped_newest"] and dropped["forwarded_ns"].isna().all()
    assert global_depth_max(result) <= BOUND + 2
    assert result.summary["blocked_s"]["total"] == 0


def test_drop_oldest_evicts_past_the_bound(run_in):
    result = run_in([*OVERLOADED, f"queue.maxsize={BOUND}", "queue.on_full=drop_oldest"])
    assert result.status == "ok"
    assert_books(result)
    c = result.counts
    assert c["dropped_oldest"] > 100 and c["dropped_newest"] == 0
    # The oldest go first. Each worker's items reach the global queue in seq order, and both the chief's
    # takes and its evictions remove from the head: so, per worker, what left the queue (consumed or
    # evicted) is a run of seqs from 0, every item evicted is older than every item still queued at the
    # stop, and those are older than what the worker still held. (Evicting from the tail, or dropping
    # at the worker, breaks this order; tests/unit/test_chief.py checks which seqs one eviction takes.)
    rank = {"consumed": 0, "dropped_oldest": 0, "left_global": 1, "left_local": 2}
    for w, g in result.items.groupby("worker"):
        g = g.sort_values("seq")
        assert g["seq"].tolist() == list(range(len(g)))  # every item, once (with the books above)
        ranks = g["state"].map(rank).astype(int)
        assert ranks.is_monotonic_increasing, f"worker {w}: {g['state'].tolist()}"
        evicted, queued = g[g["state"] == "dropped_oldest"], g[g["state"] == "left_global"]
        assert len(evicted)
        if len(queued):
            assert evicted["seq"].max() < queued["seq"].min()
    # The chief evicts at every check: the depth sits at the bound (a loaded machine can delay a check).
    depth = result.depth
    settled = depth[(depth["queue"] == "global") & (depth["elapsed_s"] > 0.3)]["depth"]
    assert settled.median() <= BOUND + 2 * 20


def test_fail_stops_the_run_with_a_clear_error(run_in):
    result = run_in([*OVERLOADED, f"queue.maxsize={BOUND}", "queue.on_full=fail"])
    assert result.status == "failed"
    assert any("queue.on_full=fail" in e and f"bound of {BOUND} items" in e for e in result.summary["errors"])
    assert_books(result)


def test_max_bytes_bounds_array_payloads(run_in):
    result = run_in([*OVERLOADED, "payload=array", "payload.shape=[128]", "queue.max_bytes=40960",
                     "queue.on_full=block"])  # 1 KiB items: 40 of them
    assert result.status == "ok"
    assert global_depth_max(result) <= 40 + 2
