"""Injected worker faults x queue design x on_failure policy: what is recovered, what is lost, and why."""

from __future__ import annotations

import numpy as np
import pytest

from framework.queues.catalog import designs
from framework.payloads.seeding import worker_stream

pytestmark = pytest.mark.timeout(90)

FAULT_AT_S = 0.4
BASE = ["workers.interval_s=0.004", "chief.interval_s=0.01", "chief.take_batch=0", "run.duration_s=1.6",
        "run.progress=false", "workers.heartbeat_timeout_s=0.5", "run.seed=11"]
FAULTS = {"kill": "faults.kill_worker_after_s", "raise": "faults.raise_after_s", "hang": "faults.hang_after_s"}
KINDS = {"kill": "died", "raise": "exception", "hang": "hung"}


@pytest.mark.parametrize("policy", ["abort", "restart", "continue"])
@pytest.mark.parametrize("design", designs("local"))  # Ray designs: tests/test_ray.py
@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_fault_matrix(run_in, fault, design, policy):
    # A restart under spawn re-imports everything: the case that finds stale heartbeats.
    timing = ["run.start_method=spawn", "run.duration_s=2.5"] if policy == "restart" else ["run.start_method=fork"]
    result = run_in([*BASE, *timing, f"queue={design}", f"workers.on_failure={policy}",
                     f"{FAULTS[fault]}={FAULT_AT_S}", "faults.worker=0"])
    s, c = result.summary, result.counts
    (failure,) = s["failures"]
    assert failure["worker"] == 0 and failure["kind"] == KINDS[fault]
    # Detected within a bounded time: the heartbeat timeout plus a few housekeeping rounds.
    assert FAULT_AT_S <= failure["time_s"] < FAULT_AT_S + 0.5 + 0.5
    # The books balance for every item, and every loss has a reason.
    assert c["produced"] == c["consumed"] + c["left_in_queues"] + c["dropped"] + c["lost"]
    assert c["lost_unexplained"] == 0 and c["duplicates"] == 0 and c["unexpected"] == 0
    assert c["lost"] == c["lost_dead_worker_local"] + c["lost_in_transit"]
    worker0 = result.items[result.items["worker"] == 0]
    if fault == "raise":
        # A worker that raises still sends what it held: nothing is lost.
        assert c["lost"] == 0
        assert "InjectedFault" in failure["detail"] and "Traceback" in failure["detail"]
    else:
        # What the dead process held locally is lost, exactly: at most local_threshold + 1 items.
        assert 1 <= c["lost_dead_worker_local"] <= 6
        if design in ("pipe", "simple_queue", "manager_queue"):
            assert c["lost_in_transit"] == 0  # no feeder thread: a returned put has left the process
    if policy == "abort":
        assert result.status == "failed"
        assert any("worker 0" in e for e in s["errors"])
        assert s["window"]["seconds"] < 1.4  # stopped early, not at run.duration_s
    else:
        assert result.status == "ok", s["errors"]
        assert any("worker 0" in w for w in s["warnings"])
        produced_at_failure = failure["produced_at_failure"]
        if policy == "restart":
            assert c["restarts"] == 1 and failure["action"].startswith("restart 1")
            # The new process continues the sequence numbers with the next seed stream.
            after = worker0[worker0["seq"] >= produced_at_failure].sort_values("seq")
            assert len(after) > 50
            draws = worker_stream(11, 0, incarnation=1).integers(1, 4, size=len(after))
            assert np.allclose(after["value"].to_numpy(), draws + 0.1)
        else:
            assert c["restarts"] == 0
            assert worker0["seq"].max() < produced_at_failure + 1
            assert result.items[result.items["worker"] == 1]["seq"].max() > 2 * produced_at_failure


def test_restarts_are_capped(run_in):
    result = run_in([*BASE, "run.start_method=fork", "workers.on_failure=restart", "workers.max_restarts=0", "faults.raise_after_s=0.3"])
    assert result.status == "failed"
    assert any("max_restarts=0 reached" in e for e in result.summary["errors"])


def test_every_worker_dead_under_continue_ends_the_run(run_in):
    result = run_in([*BASE, "run.start_method=fork", "workers.count=1", "workers.on_failure=continue", "faults.kill_worker_after_s=0.3"])
    assert result.status == "failed"
    assert any("every worker has failed" in e for e in result.summary["errors"])


def test_slow_chief_fault(run_in):
    fast = run_in([*BASE, "run.start_method=fork", "run.duration_s=1"])
    slow = run_in([*BASE, "run.start_method=fork", "run.duration_s=1", "faults.chief_delay_s=0.05"])
    assert slow.summary["rounds"] < fast.summary["rounds"] / 2
    assert slow.latency.loc["global_wait", "p50_ms"] > fast.latency.loc["global_wait", "p50_ms"]
    assert slow.status == "ok" and slow.counts["lost"] == 0
