"""Injected worker faults in real processes: each fault kind under each on_failure policy, and each queue
design with a killed worker restarted. What is recovered, what is lost, and why.

The policies themselves (abort, continue, restart and max_restarts, every worker dead under continue),
how a dead or hung worker is found, and the books of a dead worker's local queue are tested without
processes in tests/unit/test_chief.py. Here: that real kills, exceptions and hangs are seen as such,
and that every design survives losing a producer mid-stream and giving a new life its producer end
(``respawn_producer``, pickled under spawn).
"""

from __future__ import annotations

import numpy as np
import pytest

from framework.payloads.seeding import worker_stream
from framework.queues.catalog import designs

pytestmark = pytest.mark.timeout(90)

FAULT_AT_S = 0.4
BASE = ["workers.interval_s=0.004", "chief.interval_s=0.01", "chief.take_batch=0", "run.progress=false",
        "workers.heartbeat_timeout_s=0.5", "run.seed=11", "faults.worker=0"]
FAULTS = {"kill": "faults.kill_worker_after_s", "raise": "faults.raise_after_s", "hang": "faults.hang_after_s"}
KINDS = {"kill": "died", "raise": "exception", "hang": "hung"}
POLICIES = ("abort", "restart", "continue")
DURATION_S = {"abort": 30.0, "restart": 2.0, "continue": 1.6}
"""abort must end the run long before its 30 s; a restart under spawn re-imports everything (its first item came
0.1-0.2 s after the failure on a 2-core machine; 50 more items take 0.2 s)."""
HANG_FOUND_S = 0.5
"""A hang is found a heartbeat timeout (workers.heartbeat_timeout_s) after it begins: a restart after a hang
gets that much longer, so that its new life has as long to produce as after a kill."""
MAIN = "mp_queue"
"""The default design: every fault kind under every policy."""
CASES = ([(fault, MAIN, policy) for fault in sorted(FAULTS) for policy in POLICIES]
         + [("kill", design, "restart") for design in designs("local") if design != MAIN])  # Ray: tests/test_ray.py


@pytest.mark.parametrize("fault, design, policy", CASES)
def test_fault(run_in, fault, design, policy):
    # Restarts under spawn: the new life's producer end is pickled, and its first heartbeat is late.
    start_method = "spawn" if policy == "restart" else "fork"
    duration = DURATION_S[policy] + (HANG_FOUND_S if (fault, policy) == ("hang", "restart") else 0)
    result = run_in([*BASE, f"run.start_method={start_method}", f"run.duration_s={duration}", f"queue={design}",
                     f"workers.on_failure={policy}", f"{FAULTS[fault]}={FAULT_AT_S}"])
    s, c = result.summary, result.counts
    (failure,) = s["failures"]
    assert failure["worker"] == 0 and failure["kind"] == KINDS[fault]
    assert FAULT_AT_S <= failure["time_s"] < duration
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
        assert s["window"]["seconds"] < duration / 2  # stopped by the failure, not by run.duration_s
        assert failure["action"] == "abort"
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
            pids = {p["pid"] for p in s["processes"] if p["role"] == "worker" and p["worker"] == 0}
            assert len(pids) == 2
        else:
            assert c["restarts"] == 0 and failure["action"] == "continue without it"
            assert worker0["seq"].max() < produced_at_failure + 1
            assert result.items[result.items["worker"] == 1]["seq"].max() > 2 * produced_at_failure


def test_every_design_and_fault_kind_is_covered():
    """The matrix above is smaller than designs x faults x policies, but leaves none of them out."""
    assert {f for f, _, _ in CASES} == set(FAULTS) and {p for _, _, p in CASES} == set(POLICIES)
    assert {d for _, d, _ in CASES} == set(designs("local"))
    assert {(f, p) for f, d, p in CASES if d == MAIN} == {(f, p) for f in FAULTS for p in POLICIES}


def test_slow_chief_fault(run_in):
    # Every check sleeps faults.chief_delay_s first: at most duration / delay + 1 checks fit in the run
    # (without it, chief.interval_s=0.01 allows 100).
    result = run_in([*BASE, "run.start_method=fork", "run.duration_s=1", "faults.chief_delay_s=0.05"])
    assert result.status == "ok" and result.counts["lost"] == 0
    assert 0 < result.summary["rounds"] <= 1 / 0.05 + 1
    assert result.counts["consumed"] > 0
