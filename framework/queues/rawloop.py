"""The raw-primitive reference: a design's bare transport driven by a minimal loop, no chiefbench code.

    producer 0 (forked) --while not stop: send()--\\
    producer i (forked) --while not stop: send()---+--> [ bare primitive ] --receive(timeout) -> n items--> this process
                                                                                 count for duration_s after a warm-up

``measure`` does the shared part: it creates the channel in this process, forks ``n_producers``
processes that each call ``send()`` (one message of ``batch`` copies of the item) as fast as they can,
waits for the first message, lets the flow settle for ``WARMUP_S``, counts the items received for
``duration_s``, then sets the stop flag, keeps draining until every producer has exited (a producer
blocked in a full pipe or a feeder thread flushing at exit only finishes while somebody reads), joins or
kills them, and closes the channel. The items/s it returns is the ceiling for what chiefbench can move
with the same design, item and batch: ``framework/raw`` in ``make bench`` is chiefbench's own overhead.

A channel is any object with::

    Channel(n_producers, mp_context)        # in this process, before the fork: the OS resources
    channel.sender(i, item, batch) -> send  # in producer i, after the fork: send() puts one message
                                            # (a batch is ``copies(item, batch)``, made once)
    channel.receive(timeout_s) -> int       # here: items received by one get (0 when none came in time)
    channel.close()                         # here, after every producer is gone

The producers are forked (not spawned): the loop is about the transport, not about start-up, and fork
lets a channel hand closures to its producers.
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
import time
from typing import Any
from framework.errors import RawLoopError

WARMUP_S = 0.15
"""Seconds of flow before counting starts (page faults, buffers filling, the first reconnects)."""
FIRST_MESSAGE_TIMEOUT_S = 30.0
"""Longest wait for the first message: past it the primitive is broken, not slow."""
RECEIVE_SLICE_S = 0.05
"""One receive's timeout while counting and draining."""
DRAIN_TIMEOUT_S = 2.0
"""After stop, how long producers get to finish their last send before they are killed."""


def copies(item: Any, n: int) -> list:
    """``n`` distinct deep copies of ``item``: a batch of the same object twice would pickle as one object and
    one back-reference (pickle's memo), flattering every pickling transport."""
    blob = pickle.dumps(item, protocol=pickle.HIGHEST_PROTOCOL)
    return [pickle.loads(blob) for _ in range(n)]


def _produce(channel: Any, index: int, item: Any, batch: int, stop: Any) -> None:
    send = channel.sender(index, item, batch)
    while not stop.value:
        send()
    close = getattr(send, "close", None)
    if close is not None:
        close()


def measure(channel_class: Any, item: Any, n_producers: int, duration_s: float, batch: int,
            warmup_s: float = WARMUP_S) -> float:
    """Items/s the bare primitive moves from ``n_producers`` forked processes to this one."""
    if n_producers < 1 or batch < 1 or duration_s <= 0:
        raise ValueError(f"need n_producers >= 1, batch >= 1, duration_s > 0; got {n_producers}, {batch}, "
                         f"{duration_s}")
    ctx = multiprocessing.get_context("fork")
    stop = ctx.RawValue("b", 0)
    channel = channel_class(n_producers, ctx)
    procs = [ctx.Process(target=_produce, args=(channel, i, item, batch, stop), daemon=True,
                         name=f"chiefbench-raw-{i}") for i in range(n_producers)]
    try:
        for p in procs:
            p.start()
        started = getattr(channel, "producers_started", None)
        if started is not None:
            started()
        deadline = time.monotonic() + FIRST_MESSAGE_TIMEOUT_S
        while not channel.receive(RECEIVE_SLICE_S):
            if time.monotonic() > deadline or not any(p.is_alive() for p in procs):
                raise RawLoopError(f"{channel_class.__name__}: no message within {FIRST_MESSAGE_TIMEOUT_S:.0f} s "
                                   f"(producer exit codes {[p.exitcode for p in procs]})")
        end_warmup = time.monotonic() + warmup_s
        while time.monotonic() < end_warmup:
            channel.receive(RECEIVE_SLICE_S)
        count = 0
        t0 = time.perf_counter()
        end = t0 + duration_s
        now = t0
        while now < end:
            count += channel.receive(RECEIVE_SLICE_S)
            now = time.perf_counter()
        elapsed = now - t0
    finally:
        stop.value = 1
        drain_until = time.monotonic() + DRAIN_TIMEOUT_S
        while any(p.is_alive() for p in procs if p.pid is not None) and time.monotonic() < drain_until:
            try:
                channel.receive(0.01)
            except Exception:  # noqa: BLE001 - a broken channel: the producers are killed below
                break
        for p in procs:
            if p.pid is None:
                continue
            p.join(0.5)
            if p.is_alive():
                p.kill()
                p.join()
        channel.close()
    # A producer killed after the drain timeout (negative code) is not an error of the measure.
    failed = [p.exitcode for p in procs if p.exitcode is not None and p.exitcode > 0]
    if failed:
        raise RawLoopError(f"{channel_class.__name__}: a producer exited with {failed} (pid {os.getpid()} is the "
                           f"consumer)")
    return count / elapsed
