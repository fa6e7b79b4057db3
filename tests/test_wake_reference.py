"""The bare wake reference of the bench's latency table: a machine's floor for an idle consumer."""

from __future__ import annotations

import multiprocessing
import os

import pytest

from framework.queues.rawloop import wake_reference


@pytest.mark.timeout(60)
def test_the_wake_reference_reads_every_stamp_and_leaves_nothing_behind():
    fds_before = set(os.listdir("/proc/self/fd"))
    figures = wake_reference(2, 0.005, 0.3, warmup_s=0.05)
    # 2 producers x 200 stamps/s: about 400 messages/s, each read after it was written.
    assert 250 < figures["messages_per_s"] < 500
    assert 0 < figures["p50_us"] <= figures["p99_us"]
    assert figures["cpu_percent"] >= 0
    assert multiprocessing.active_children() == []
    assert set(os.listdir("/proc/self/fd")) == fds_before


def test_the_wake_reference_refuses_a_rate_it_cannot_have():
    with pytest.raises(ValueError, match="interval_s > 0"):
        wake_reference(2, 0, 1.0)
