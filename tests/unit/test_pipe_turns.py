"""The pipe design's chief end reads one message from every ready pipe per wait: FIFO per producer, turns
across producers, and a producer that hangs up drops out."""

from __future__ import annotations

import multiprocessing
import queue

import pytest

from framework.queues.base import QueueSettings
from framework.queues.stdlib import PipeDesign


@pytest.mark.timeout(30)
def test_every_ready_pipe_gives_one_message_per_wait_in_turns_and_in_order():
    design = PipeDesign(QueueSettings("pipe", 0, None), 3, multiprocessing.get_context("fork"))
    try:
        producers = [design.producer(w) for w in range(3)]
        consumer = design.consumer()
        for k in range(4):
            for w, producer in enumerate(producers):
                if not (w == 2 and k >= 1):  # producer 2 sends one message only
                    producer.put((w, k))
        got = consumer.get_many(100, timeout=5)
        assert sorted(got) == sorted((w, k) for w in range(3) for k in range(4) if not (w == 2 and k >= 1))
        for w in range(3):
            assert [k for ww, k in got if ww == w] == sorted(k for ww, k in got if ww == w)  # FIFO per pipe
        # Turns: the first three messages come from the three pipes, not three from the first.
        assert {w for w, _ in got[:3]} == {0, 1, 2}
        with pytest.raises(queue.Empty):
            consumer.get_many(1, timeout=0.05)
    finally:
        design.close()


@pytest.mark.timeout(30)
def test_a_producer_that_hangs_up_drops_out_and_a_wait_ends_at_its_timeout():
    design = PipeDesign(QueueSettings("pipe", 0, None), 2, multiprocessing.get_context("fork"))
    try:
        producers = [design.producer(w) for w in range(2)]  # in this process, the only writing ends
        consumer = design.consumer()
        producers[0].put("last words")
        producers[0].close()
        assert consumer.get_many(10, timeout=5) == ["last words"]
        with pytest.raises(queue.Empty):
            consumer.get_many(1, timeout=0.02)  # reads the end-of-file, then waits on the other pipe
        assert design._live.live == [design._readers[1]]
        producers[1].put("still here")
        assert consumer.get(timeout=5) == "still here"
        producers[1].close()
        with pytest.raises(queue.Empty):
            consumer.get(timeout=0.02)
        assert design._live.live == []
    finally:
        design.close()
