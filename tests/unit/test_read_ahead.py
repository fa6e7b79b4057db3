"""faster_fifo's chief end reads ahead: one get_many for many messages, handed out in order at the next takes."""

from __future__ import annotations

import multiprocessing
import queue

import pytest

pytest.importorskip("faster_fifo")

from framework.queues import faster_fifo_design  # noqa: E402
from framework.queues.base import QueueSettings  # noqa: E402

pytestmark = pytest.mark.timeout(30)


def test_a_take_of_one_reads_ahead_and_the_next_takes_come_from_what_was_read():
    design = faster_fifo_design.FasterFifoDesign(QueueSettings("faster_fifo", 0, None), 1,
                                                 multiprocessing.get_context("fork"))
    try:
        producer, consumer = design.producer(0), design.consumer()
        total = 3 * faster_fifo_design.READ_AHEAD_MESSAGES
        producer.put_many(list(range(total)))
        assert consumer.get_many(1, timeout=5) == [0]
        assert design._q.qsize() == total - faster_fifo_design.READ_AHEAD_MESSAGES  # read ahead, in one call
        got = [consumer.get(timeout=5) for _ in range(9)] + consumer.get_many(5, timeout=5)
        assert got == list(range(1, 15))
        rest = []
        while len(rest) < total - 15:
            rest += consumer.get_many(1000, timeout=5)
        assert rest == list(range(15, total))  # FIFO across the read-ahead and the queue
        with pytest.raises(queue.Empty):
            consumer.get_many(1, timeout=0.01)
    finally:
        design.close()
