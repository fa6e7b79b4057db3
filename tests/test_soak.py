"""Soak: the fastest design at saturation, bounded, for a while. Memory, books, latency, descriptors.

CI runs about a minute; `make soak` runs it for 10 minutes (CHIEFBENCH_SOAK_S).
"""

from __future__ import annotations

import gc
import os

import numpy as np
import pytest

from conftest import semaphores_left

SOAK_S = float(os.environ.get("CHIEFBENCH_SOAK_S", "45"))
RECORD_BYTES_PER_ITEM = 45
"""What the chief keeps per recorded item (int32 + 5 x int64 + int8 columns)."""
SLACK_BYTES = 64 * 1024 * 1024

pytestmark = [pytest.mark.slow, pytest.mark.timeout(int(SOAK_S) + 240)]


def open_fds() -> dict[int, str]:
    """This process's open descriptors and what each is (a pipe, a socket, a file)."""
    fds = {}
    for fd in os.listdir("/proc/self/fd"):
        try:
            fds[int(fd)] = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:  # closed meanwhile (the listing's own descriptor)
            continue
    return fds


def test_soak_saturated_bounded_pipe(run_in, semaphores_named):
    # multiprocessing opens a few descriptors once per interpreter (its shared-memory heap
    # arena, the resource tracker's pipe): a short run first, so only leaks are counted.
    run_in(["queue=pipe", "run.items=10", "workers.interval_s=0", "chief.interval_s=0", "run.progress=false"])
    fds = open_fds()
    # Producers as fast as they go, a chief that takes one item per check: the original
    # imbalance at full speed, held by a bound with backpressure.
    result = run_in(["queue=pipe", "workers.interval_s=0", "chief.interval_s=0", "chief.take_batch=1",
                     "queue.maxsize=5000", "queue.on_full=block", f"run.duration_s={SOAK_S}", "run.warmup_s=3",
                     "run.progress=false", "run.start_method=spawn"])
    s, c = result.summary, result.counts
    assert result.status == "ok", s["errors"]
    assert c["lost"] == 0 and c["duplicates"] == 0
    assert c["produced"] == c["consumed"] + c["left_in_queues"] + c["dropped"]
    assert c["consumed"] > 1000 * SOAK_S

    # Memory: workers stay flat; the chief grows only by the records it keeps.
    memory = result.memory
    for (role, worker), g in memory.groupby(["role", "worker"]):
        rss = g.sort_values("t_ns")["rss_bytes"].to_numpy()
        assert len(rss) >= SOAK_S / 2
        allowed = SLACK_BYTES + (RECORD_BYTES_PER_ITEM * len(result.items) if role == "chief" else 0)
        assert rss.max() - rss[len(rss) // 4] <= allowed, (role, worker, rss[len(rss) // 4], rss.max())

    # Latency does not drift upward: the last quarter is no slower than the second.
    consumed = result.items[result.items["state"] == "consumed"]
    start, end = s["window"]["start_ns"], s["window"]["end_ns"]
    consumed = consumed[consumed["consumed_ns"] >= start]
    quarter = (end - start) // 4
    e2e = (consumed["consumed_ns"] - consumed["created_ns"]).to_numpy(dtype=np.int64) / 1e6
    when = consumed["consumed_ns"].to_numpy(dtype=np.int64)
    second = np.median(e2e[(when >= start + quarter) & (when < start + 2 * quarter)])
    last = np.median(e2e[when >= start + 3 * quarter])
    assert last <= 1.5 * second + 5.0, (second, last)

    # The bound held the whole time.
    depth = result.depth
    assert depth.loc[depth["queue"] == "global", "depth"].max() <= 5000 + 2

    # Nothing leaked: no more descriptors than before (the new ones are named if any), no named semaphore of
    # this run left in /dev/shm (conftest checks chiefbench's own segments after every test).
    gc.collect()
    now = open_fds()
    assert len(now) <= len(fds), {fd: what for fd, what in now.items() if fds.get(fd) != what}
    assert semaphores_named and not semaphores_left(semaphores_named)
