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

import mmap
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


def _reap(procs: list) -> list[int | None]:
    """Join each started producer (killed after half a second), close it (its sentinel pipe now, not at some
    later collection); their exit codes, None for one never started."""
    codes: list[int | None] = []
    for p in procs:
        if p.pid is None:
            codes.append(None)
            continue
        p.join(0.5)
        if p.is_alive():
            p.kill()
            p.join()
        codes.append(p.exitcode)
        p.close()
    return codes


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
        codes = _reap(procs)
        channel.close()
    # A producer killed after the drain timeout (negative code) is not an error of the measure.
    failed = [code for code in codes if code is not None and code > 0]
    if failed:
        raise RawLoopError(f"{channel_class.__name__}: a producer exited with {failed} (pid {os.getpid()} is the "
                           f"consumer)")
    return count / elapsed


WAKE_STAMP_BYTES = 8
"""One wake-up message of the bare wake reference: the producer's monotonic_ns stamp."""


def _stamp_at_rate(fd: int, interval_s: float, stop: Any) -> None:
    next_s = time.monotonic()
    while not stop[0]:
        next_s += interval_s
        pause = next_s - time.monotonic()
        if pause > 0:
            time.sleep(pause)
        os.write(fd, time.monotonic_ns().to_bytes(WAKE_STAMP_BYTES, "little"))


def wake_reference(n_producers: int, interval_s: float, duration_s: float,
                   warmup_s: float = WARMUP_S) -> dict[str, float]:
    """The floor of an idle consumer's latency and cost on this machine: ``n_producers`` forked processes each
    write their stamp into one pipe every ``interval_s``, and this process sleeps in ``select`` on it, as
    shm_ring's chief sleeps between items. Returns the wake-up latency (stamp to read, us) at p50 and p99,
    the messages/s, and this process's CPU in % of a core over ``duration_s`` after a warm-up."""
    import numpy as np
    import select

    if n_producers < 1 or interval_s <= 0 or duration_s <= 0:
        raise ValueError(f"need n_producers >= 1, interval_s > 0, duration_s > 0; got {n_producers}, {interval_s}, "
                         f"{duration_s}")
    ctx = multiprocessing.get_context("fork")
    stop = mmap.mmap(-1, 1)  # anonymous and shared with the forked producers: no file, nothing to unlink
    read_fd, write_fd = os.pipe()
    procs = [ctx.Process(target=_stamp_at_rate, args=(write_fd, interval_s, stop), daemon=True,
                         name=f"chiefbench-wake-{i}") for i in range(n_producers)]
    latencies: list[int] = []
    pending = b""
    try:
        for p in procs:
            p.start()
        counting_from = time.monotonic() + warmup_s
        end = counting_from + duration_s
        cpu0, wall0 = None, counting_from
        while True:
            now_s = time.monotonic()
            if now_s >= end:
                break
            if cpu0 is None and now_s >= counting_from:
                cpu0, wall0 = time.process_time(), now_s
                pending, latencies = b"", []
            if not select.select([read_fd], [], [], min(RECEIVE_SLICE_S, end - now_s))[0]:
                continue
            now_ns = time.monotonic_ns()
            pending += os.read(read_fd, 1 << 16)
            whole = len(pending) - len(pending) % WAKE_STAMP_BYTES
            stamps = np.frombuffer(pending[:whole], "<i8")
            latencies.extend((now_ns - stamps).tolist())
            pending = pending[whole:]
        cpu_s, wall_s = time.process_time() - (cpu0 or 0.0), time.monotonic() - wall0
    finally:
        stop[0] = 1
        codes = _reap(procs)
        os.close(read_fd)
        os.close(write_fd)
        stop.close()
    if not latencies:
        raise RawLoopError(f"the wake reference received nothing in {duration_s} s "
                           f"(producer exit codes {codes})")
    us = np.asarray(latencies, np.float64) / 1e3
    return {"p50_us": float(np.percentile(us, 50)), "p99_us": float(np.percentile(us, 99)),
            "messages_per_s": len(latencies) / wall_s, "cpu_percent": 100 * cpu_s / wall_s}
