"""The chief/worker system end to end: every design and start method, every way a run ends."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from conftest import FAST, expected_values, semaphores_left, sequences
from framework.queues.catalog import designs
from framework.results.io import load_run

pytestmark = pytest.mark.timeout(120)

DESIGNS = designs("local")  # Ray designs: tests/test_ray.py


def assert_balanced(result, workers, per_worker=None):
    c = result.counts
    assert result.status == "ok", result.summary["errors"]
    assert c["lost"] == 0 and c["duplicates"] == 0
    assert c["produced"] == c["consumed"] + c["left_in_queues"] + c["lost"]
    assert len(result.items) == c["produced"]
    assert set(result.items["worker"]) <= set(range(workers))
    if per_worker is not None:
        assert c["produced"] == workers * per_worker
        for w, g in result.items.groupby("worker"):
            assert sorted(g["seq"]) == list(range(per_worker))


@pytest.mark.parametrize("design", DESIGNS)
@pytest.mark.parametrize("start_method", ["fork", "spawn", "forkserver"])
def test_each_design_and_start_method_moves_every_item(run_in, semaphores_named, design, start_method):
    """Every item, once, with the values of its worker's seeded stream (same seed, same values on every
    design and start method). Under spawn and forkserver multiprocessing names its semaphores in /dev/shm
    until they are collected: a run leaves none behind (conftest checks chiefbench's own segments)."""
    import gc

    result = run_in([*FAST, f"queue={design}", f"run.start_method={start_method}", "run.items=300",
                     "workers.forward_batch=4", "run.seed=1234"])
    assert_balanced(result, 2, per_worker=300)
    # Everything but what a worker's local queue still held (at most local_threshold + 1 items) crossed the
    # design, taken by the chief's rule or drained at the stop (how much of each depends on scheduling: a
    # chief descheduled at the start may find run.items already produced and take nothing by its rule).
    crossed = result.items["state"].isin(["consumed", "left_global"])
    assert crossed.sum() >= 2 * (300 - 6)
    assert sequences(result) == {w: expected_values(1234, w, 300) for w in range(2)}
    # At least the side channel's lock is named outside fork: the check below has something to check.
    assert bool(semaphores_named) == (start_method != "fork")
    gc.collect()
    left = semaphores_left(semaphores_named)
    assert not left, f"named semaphores left in /dev/shm: {left}"


@pytest.mark.parametrize("design", DESIGNS)
def test_duration_run_reports_throughput(capacity_run, design):
    # The saturated run of 0.8 s (0.2 s of warm-up) that tests/test_recording.py reads the histograms of.
    result = capacity_run(design)
    assert_balanced(result, 2)
    window = result.summary["window"]
    # From t0 + warm-up to the moment the run was declared over, which is not before run.duration_s.
    assert window["start_ns"] == window["t0_ns"] + int(0.2e9)
    assert window["end_ns"] >= window["t0_ns"] + int(0.8e9)
    assert window["seconds"] == pytest.approx((window["end_ns"] - window["start_ns"]) / 1e9)
    consumed_in_window = result.items[(result.items["state"] == "consumed")
                                      & (result.items["consumed_ns"] >= window["start_ns"])]
    assert window["items"] == len(consumed_in_window) > 0
    assert result.summary["throughput_items_per_s"] == pytest.approx(window["items"] / window["seconds"])


def test_warmup_items_are_kept_in_the_data(run_in):
    # queue=pipe: the default mp_queue at full speed ends with some 250,000 items queued, whose drain takes 2-3 s;
    # what is recorded of the warm-up is the same on every design (each design's window: above).
    result = run_in([*FAST, "queue=pipe", "run.duration_s=0.6", "run.warmup_s=0.3", "run.start_method=fork"])
    start = result.summary["window"]["start_ns"]
    consumed = result.items[result.items["state"] == "consumed"]
    assert (consumed["consumed_ns"] < start).any(), "warm-up items must stay in items.parquet"
    assert result.summary["window"]["items"] < len(consumed)


def test_default_run_scaled_down_behaves_like_the_original(run_in):
    """The original system with its intervals divided by 20: 11 checks, one item per check past 3."""
    lines = []
    result = run_in(["workers.interval_s=0.05", "chief.interval_s=0.1", "run.progress=false"], echo=lines.append)
    assert_balanced(result, 2)
    assert result.summary["rounds"] == 11
    consumed = result.items[result.items["state"] == "consumed"]
    # One item per check at most, and only values the original could print.
    assert len(consumed) <= 11 and consumed["consumed_ns"].is_unique
    assert set(np.round(consumed["value"], 6)) <= {1.1, 2.1, 3.1}
    assert len(lines) == len(consumed) and all("took" in line for line in lines)
    # Producers outrun the chief: the summary says the queue grows without bound.
    assert any("unstable" in w for w in result.summary["warnings"])
    assert result.summary["stability"]["arrival_items_per_s"] > result.summary["stability"]["service_items_per_s"]


def test_chief_takes_only_above_global_threshold(run_in):
    result = run_in(["workers.interval_s=0.01", "chief.interval_s=0.05", "chief.global_threshold=1000",
                     "chief.rounds=5", "run.progress=false", "run.start_method=fork"])
    assert_balanced(result, 2)
    assert result.counts["consumed"] == 0 and result.counts["left_in_queues"] == result.counts["produced"]


def test_local_threshold_holds_items_locally(run_in):
    result = run_in([*FAST, "run.items=50", "workers.local_threshold=10", "run.start_method=fork"])
    assert_balanced(result, 2, per_worker=50)
    assert (result.items["state"] == "left_local").sum() == 2 * 10


def test_take_batch_and_forward_batch(run_in):
    # Producers at 0.2 ms still outrun a chief taking 7 every 20 ms by far; at 0 they leave some 700,000 items
    # queued in the 0.4 s, whose drain at the stop takes seconds.
    result = run_in(["workers.interval_s=0.0002", "chief.interval_s=0.02", "chief.take_batch=7", "chief.rounds=20",
                     "workers.forward_batch=5", "run.progress=false", "run.start_method=fork",
                     "workers.local_threshold=4"])
    assert_balanced(result, 2)
    per_check = result.items[result.items["state"] == "consumed"].groupby("consumed_ns").size()
    assert per_check.max() <= 7 and result.counts["consumed"] > 0
    forwarded = result.items.dropna(subset=["forwarded_ns"])
    per_forward = forwarded[forwarded["state"] != "left_local"].groupby(["worker", "forwarded_ns"]).size()
    assert per_forward.max() == 5


def test_forward_deadline_forwards_below_threshold(run_in):
    result = run_in(["workers.interval_s=0.01", "workers.local_threshold=1000", "workers.forward_deadline_s=0.03",
                     "chief.interval_s=0.01", "chief.global_threshold=0", "run.duration_s=0.5",
                     "run.progress=false", "run.start_method=fork"])
    assert_balanced(result, 2)
    assert result.counts["consumed"] > 10
    assert result.latency.loc["local_wait", "max_ms"] < 200


@pytest.mark.parametrize("on_stop", ["forward", "keep"])
def test_leftovers_are_recorded_per_on_stop(run_in, on_stop):
    result = run_in([*FAST, "run.items=20", "workers.local_threshold=5", f"run.on_stop={on_stop}",
                     "run.start_method=fork"])
    assert_balanced(result, 2, per_worker=20)
    local = result.items[result.items["state"] == "left_local"]
    assert len(local) == 10
    if on_stop == "forward":
        assert local["forwarded_ns"].notna().all()
        assert set(np.round(local["value"], 6)) <= {1.1, 2.1, 3.1}
    else:
        assert local["forwarded_ns"].isna().all()
        assert set(local["value"]) <= {1, 2, 3}


def test_mp_local_queue_like_the_original(run_in):
    result = run_in([*FAST, "run.items=100", "workers.local_queue=mp_queue", "workers.forward_deadline_s=0.5",
                     "run.start_method=fork"])
    assert_balanced(result, 2, per_worker=100)


def test_array_payload(run_in):
    result = run_in([*FAST, "payload=array", "payload.shape=[256,4]", "payload.dtype=float32", "run.items=100",
                     "queue=pipe", "run.start_method=fork"])
    assert_balanced(result, 2, per_worker=100)
    assert result.summary["item_bytes"] == 256 * 4 * 4
    consumed = result.items[result.items["state"] == "consumed"]
    assert set(consumed["value"]) <= {float(np.float32(v)) for v in (1.1, 2.1, 3.1)}
    mbs = result.summary["throughput_mb_per_s"]
    assert mbs == pytest.approx(result.summary["throughput_items_per_s"] * 4096 / 1e6)


def test_run_directory_round_trips(run_in):
    result = run_in([*FAST, "run.items=40", "run.start_method=fork"])
    again = load_run(result.directory)
    pd.testing.assert_frame_equal(again.items, result.items)
    pd.testing.assert_frame_equal(again.depth, result.depth)
    summary = json.loads((result.directory / "summary.json").read_text())
    assert summary["counts"] == result.counts
    for key in ("python", "platform", "cpu_model", "cpu_count", "packages", "start_method", "git_commit",
                "git_dirty", "schema_version"):
        assert key in summary["metadata"]
    assert summary["config"]["run"]["items"] == 40
    assert summary["rerun_command"].startswith("chiefbench ") and "run.seed=0" in summary["rerun_command"]
    roles = [p["role"] for p in summary["processes"]]
    assert roles == ["chief", "worker", "worker"]
    assert all(p["cpu_s"] is not None and p["wall_s"] is not None for p in summary["processes"])
    assert (result.directory / "config.yaml").read_text().count("seed: 0") == 1


def test_depth_comes_from_counters_and_balances(run_in):
    result = run_in(["workers.interval_s=0.01", "chief.interval_s=0.05", "chief.rounds=10", "run.progress=false",
                     "run.start_method=fork"])
    depth = result.depth
    assert set(depth["queue"]) == {"global", "local"}
    assert set(depth.loc[depth["queue"] == "local", "worker"]) == {0, 1}
    assert (depth["depth"] >= 0).all()
    # Local queues never hold more than threshold + 1 items between two forwards.
    assert depth.loc[depth["queue"] == "local", "depth"].max() <= 6
    assert depth["t_ns"].is_monotonic_increasing


@pytest.mark.parametrize("design", DESIGNS)
@pytest.mark.timeout(60)
def test_items_larger_than_a_pipe_buffer_flow(run_in, design):
    """A put bigger than the OS pipe buffer completes only while the chief reads: the counters must
    announce it before the put, or the chief (waiting for depth > threshold) and the worker wait for ever."""
    result = run_in(["workers.interval_s=0", "chief.interval_s=0", "run.progress=false", "run.start_method=fork",
                     f"queue={design}", "payload=array", "payload.shape=[131072]", "run.items=40",
                     "chief.global_threshold=0"])  # 1 MiB items: a pipe holds one in flight per worker
    assert_balanced(result, 2, per_worker=40)
    # Buffered designs let the workers finish early (the rest is left in the queue): flow is all we ask.
    assert result.counts["consumed"] > 0


@pytest.mark.parametrize("design", ["pipe", "simple_queue"])
def test_a_pipe_that_cannot_reach_the_threshold_is_reported_as_a_stall(run_in, design):
    # A chief checking at intervals reads only what it takes (at chief.interval_s=0 it waits on the
    # queue itself, holding up to global_threshold items, which lets a full pipe drain).
    result = run_in(["workers.interval_s=0", "chief.interval_s=0.01", "run.progress=false", "run.start_method=fork",
                     f"queue={design}", "payload=array", "payload.shape=[131072]", "run.duration_s=30"])
    assert result.status == "failed"
    (error,) = [e for e in result.summary["errors"] if e.startswith("stalled")]
    assert "chief.global_threshold=3" in error and "Fix:" in error
    assert result.summary["window"]["seconds"] < 10
    assert result.counts["lost"] == 0
