"""``to_spec``: a composed config turned into plain dataclasses, with every rule checked.

Each rule raises ``ConfigError`` with one paragraph naming the key, the value, the rule and the fix,
before anything starts. The core groups' rules are written here; a queue design's rules are its own
``QueueDesign.check`` and a payload's its kind's ``PayloadKind.check``, both called from ``validate``.
"""

from __future__ import annotations

import multiprocessing
import os
from types import SimpleNamespace
from typing import Any

from omegaconf import DictConfig, OmegaConf

from framework.config.hydra import group_options
from framework.config.rules import finite as _finite
from framework.config.rules import require as _require
from framework.config.schema import Config
from framework.errors import ConfigError, DesignUnavailableError, UnknownDesignError
from framework.payloads.base import PayloadKind, item_nbytes, item_units, kind_of_target, payload_kind
from framework.plugins import locate, target_name
from framework.queues.base import QueueDesign, Sizes, design_class
from framework.queues.catalog import designs

MAX_WORKERS = 256
"""Worker processes at most."""
LOCAL_QUEUES = ("deque", "mp_queue")
BACKENDS = ("local", "ray")
PLACEMENT_STRATEGIES = ("PACK", "SPREAD", "STRICT_PACK", "STRICT_SPREAD")
ON_FAILURE = ("abort", "restart", "continue")
ON_FULL = ("block", "drop_oldest", "drop_newest", "fail")
ON_STOP = ("forward", "keep")
RUN_ORDERS = ("grouped", "interleaved", "random")
RECORD_ITEMS = ("all", "sample", "none")
OBJECTIVE_METRICS = ("throughput_items_per_s", "throughput_mb_per_s", "transitions_per_s")
MAX_WORK_US = 1_000_000
"""payload.work_us at most: one second of CPU per item."""
MIN_BUFFER_BYTES = 4096
"""queue.buffer_bytes at least."""
MAX_BUFFER_BYTES = 1 << 40
"""queue.buffer_bytes at most."""


def to_spec(cfg: Config | DictConfig) -> Config:
    """Resolve into plain dataclasses, fill a null seed and the labels, and validate every rule."""
    if isinstance(cfg, DictConfig):
        # Only the keys of the schema travel: Hydra's own node stays behind.
        plain = {k: cfg[k] for k in ("workers", "chief", "run", "record", "queue", "payload", "transform", "backend",
                                     "faults", "objective")
                 if k in cfg}
        merged = OmegaConf.merge(OmegaConf.structured(Config), plain)
        payload = merged.payload
        kind = _payload_kind(payload)
        if kind.schema is not None:
            merged.payload = OmegaConf.merge(OmegaConf.structured(kind.schema), payload)
            spec: Config = OmegaConf.to_object(merged)
        else:
            # A plug-in payload without a schema: its keys travel as given, as a plain picklable namespace.
            merged.payload = None
            spec = OmegaConf.to_object(merged)
            spec.payload = SimpleNamespace(**OmegaConf.to_container(payload, resolve=True))
    else:
        spec = cfg
    if spec.run.seed is None:
        spec.run.seed = int.from_bytes(os.urandom(8), "little")
    design = resolve_design(spec)
    spec.queue.name = _label("queue", spec.queue.name, getattr(design, "name", None) or target_name(design))
    spec.payload.name = _label("payload", getattr(spec.payload, "name", None), payload_kind(spec.payload).name)
    validate(spec)
    return spec


def _label(group: str, given: str | None, own: str) -> str:
    """A design's or payload's label: its own name; one given in the config must agree with it (a label that
    names another design would mislabel every result)."""
    if given in (None, "", own):
        return own
    options = ", ".join(group_options(group))
    _require(False, f"{group}.name", given,
             f"is only the label of the {group} chosen, and that {group} is {own} ({group}._target_ picks it)",
             f"choose a {group} with `{group}=<option>` (one of {options}) or `{group}._target_=my_pkg.Name`, and "
             f"leave {group}.name unset")
    return own


def _payload_kind(payload: Any) -> PayloadKind:
    target = payload.get("_target_") if isinstance(payload, DictConfig) else None
    if not target:
        raise ConfigError("payload", OmegaConf.to_container(payload) if isinstance(payload, DictConfig) else payload,
                          "a payload names its kind with _target_", "pick one, e.g. `payload=randint`, "
                          "`payload=array` or `payload=rollout`, or your own: `payload._target_=my_pkg.make_source`")
    try:
        return kind_of_target(target)
    except (ImportError, TypeError) as exc:
        raise ConfigError("payload._target_", target, f"does not name a payload kind ({exc})",
                          "name a PayloadKind subclass or a make_source(payload, rng) function, e.g. "
                          "`payload._target_=my_pkg.make_source` (is my_pkg importable from here?)") from None


def resolve_design(spec: Config) -> type[QueueDesign]:
    """The design class ``queue._target_`` names (an unknown name or a missing extra is a ConfigError)."""
    target = spec.queue._target_
    if not target:
        raise ConfigError("queue._target_", target, "names no design class",
                          "pick a design, e.g. `queue=mp_queue`, or your own: `queue._target_=my_pkg.MyDesign`")
    try:
        return design_class(target)
    except DesignUnavailableError as exc:  # a known design whose extra is missing: name it as users chose it
        rule, _, fix = str(exc).partition(" Fix: ")
        raise ConfigError("queue", getattr(locate(target), "name", None) or target, rule.rstrip("."),
                          fix.rstrip(".") or "pick another design") from None
    except UnknownDesignError as exc:
        rule, _, fix = str(exc).partition(" Fix: ")
        raise ConfigError("queue._target_", target, rule.rstrip("."), fix.rstrip(".") or "pick another design") from None


MESSAGE_OVERHEAD_BYTES = 4096
"""Framing, pickle header and stamps of one message, beyond its items' payload bytes (generous)."""
ITEM_OVERHEAD_BYTES = 64
"""Per item in a message: its stamps and sequence number."""


def message_bytes(spec: Config) -> int:
    """The largest message a worker sends: workers.forward_batch items, with framing."""
    return MESSAGE_OVERHEAD_BYTES + spec.workers.forward_batch * (item_nbytes(spec.payload) + ITEM_OVERHEAD_BYTES)


def item_bound(spec: Config) -> int | None:
    """The global queue's bound in items, from queue.maxsize and queue.max_bytes; None = unbounded."""
    bounds = [b for b in (spec.queue.maxsize, spec.queue.max_bytes // item_nbytes(spec.payload)
                          if spec.queue.max_bytes else 0) if b]
    return min(bounds) if bounds else None


def validate(spec: Config) -> None:
    """Raise ``ConfigError`` for the first value that breaks a rule; nothing has started yet.

    The rules of the core groups are written here; a design's and a payload's own rules are theirs
    (``QueueDesign.check``, ``PayloadKind.check``), called from here."""
    design = resolve_design(spec)
    w, c, r = spec.workers, spec.chief, spec.run
    _require(1 <= w.count <= MAX_WORKERS, "workers.count", w.count,
             f"must be between 1 and {MAX_WORKERS}", "use a positive number of worker processes, e.g. `workers.count=2`")
    for key, value in (("workers.interval_s", w.interval_s), ("chief.interval_s", c.interval_s)):
        _require(_finite(value) and 0 <= value <= 3600, key, value,
                 "must be a number of seconds from 0 (as fast as possible) to 3600", f"e.g. `{key}=0.5`")
    _require(w.local_threshold >= 0, "workers.local_threshold", w.local_threshold,
             "must be 0 or more (a worker forwards once its local queue holds more than this)",
             "e.g. `workers.local_threshold=5`")
    _require(w.forward_batch >= 1, "workers.forward_batch", w.forward_batch,
             "must be at least 1 item per trigger", "e.g. `workers.forward_batch=1`")
    _require(w.forward_deadline_s is None or (_finite(w.forward_deadline_s) and w.forward_deadline_s > 0),
             "workers.forward_deadline_s", w.forward_deadline_s, "must be null or a positive number of seconds",
             "e.g. `workers.forward_deadline_s=0.05` or `workers.forward_deadline_s=null`")
    _require(w.local_queue in LOCAL_QUEUES, "workers.local_queue", w.local_queue,
             f"must be one of {', '.join(LOCAL_QUEUES)}", "e.g. `workers.local_queue=deque`")
    _require(w.on_failure in ON_FAILURE, "workers.on_failure", w.on_failure, f"must be one of {', '.join(ON_FAILURE)}",
             "e.g. `workers.on_failure=restart`")
    _require(0 <= w.max_restarts <= 1000, "workers.max_restarts", w.max_restarts, "must be between 0 and 1000",
             "e.g. `workers.max_restarts=3`")
    _require(_finite(w.heartbeat_timeout_s) and 0.2 <= w.heartbeat_timeout_s <= 86400, "workers.heartbeat_timeout_s",
             w.heartbeat_timeout_s, "must be at least 0.2 s (workers beat every 50 ms while idle)",
             "e.g. `workers.heartbeat_timeout_s=10`")
    _require(c.global_threshold >= 0, "chief.global_threshold", c.global_threshold,
             "must be 0 or more (the chief takes items only when the queue holds more than this)",
             "e.g. `chief.global_threshold=3`")
    _require(c.take_batch >= 0, "chief.take_batch", c.take_batch,
             "must be 0 (take everything queued) or a positive number of items per check", "e.g. `chief.take_batch=1`")
    _require(c.rounds >= 1, "chief.rounds", c.rounds, "must be at least 1 check", "e.g. `chief.rounds=11`")
    _require(r.duration_s is None or (_finite(r.duration_s) and 0 < r.duration_s <= 7 * 86400), "run.duration_s",
             r.duration_s, "must be null or a positive number of seconds (at most a week)", "e.g. `run.duration_s=3`")
    _require(r.items is None or 1 <= r.items <= 10**12, "run.items", r.items,
             "must be null or a positive number of items per worker", "e.g. `run.items=100`")
    _require(_finite(r.warmup_s) and r.warmup_s >= 0, "run.warmup_s", r.warmup_s,
             "must be 0 or a positive number of seconds", "e.g. `run.warmup_s=0.5`")
    _require(r.duration_s is None or r.warmup_s < r.duration_s, "run.warmup_s", r.warmup_s,
             f"must be shorter than run.duration_s ({r.duration_s}), or nothing is measured",
             "shorten the warm-up or lengthen the run")
    _require(0 <= r.seed < 2**128, "run.seed", r.seed, "must be null or an integer in [0, 2**128)", "e.g. `run.seed=0`")
    _require(isinstance(r.repeats, int) and 1 <= r.repeats <= 10_000, "run.repeats", r.repeats,
             "must be a positive number of repeats", "e.g. `run.repeats=5` (5 or more for a significance test)")
    _require(r.timeout_s is None or (_finite(r.timeout_s) and r.timeout_s > 0), "run.timeout_s", r.timeout_s,
             "must be null or a positive number of seconds", "e.g. `run.timeout_s=60`")
    rec = spec.record
    _require(rec.items in RECORD_ITEMS, "record.items", rec.items, f"must be one of {', '.join(RECORD_ITEMS)} "
             f"(all: one row per item; sample: every record.sample_every-th item of each worker; none: summary, "
             f"histograms, depth and books only)", "e.g. `record.items=sample record.sample_every=100`")
    _require(isinstance(rec.sample_every, int) and 1 <= rec.sample_every <= 10**9, "record.sample_every",
             rec.sample_every, "must be a positive number of items", "e.g. `record.sample_every=100`")
    _require(_finite(rec.flush_s) and 0.05 <= rec.flush_s <= 1.0, "record.flush_s", rec.flush_s,
             "must be from 0.05 to 1 second (records reach the disk at least that often, so a crash loses at "
             "most about that much)", "e.g. `record.flush_s=0.5`")
    _require(r.order in RUN_ORDERS, "run.order", r.order, f"must be one of {', '.join(RUN_ORDERS)}",
             "e.g. `run.order=interleaved`")
    _require(r.repeat_index is None or (isinstance(r.repeat_index, int) and 0 <= r.repeat_index < r.repeats),
             "run.repeat_index", r.repeat_index, f"must be null or a repeat from 0 to run.repeats - 1 ({r.repeats - 1})",
             "leave it unset: the sweeper sets it under run.order=interleaved|random")
    _require(r.on_stop in ON_STOP, "run.on_stop", r.on_stop, f"must be one of {', '.join(ON_STOP)}",
             "e.g. `run.on_stop=forward`")
    methods = multiprocessing.get_all_start_methods()
    _require(r.start_method in methods, "run.start_method", r.start_method,
             f"this platform offers the start methods {', '.join(methods)}", f"e.g. `run.start_method={methods[0]}`")
    for key, value in (("run.drain_timeout_s", r.drain_timeout_s), ("run.depth_sample_s", r.depth_sample_s)):
        _require(_finite(value) and 0 < value <= 3600, key, value, "must be a positive number of seconds",
                 f"e.g. `{key}=1`")

    _require(spec.queue.maxsize >= 0, "queue.maxsize", spec.queue.maxsize,
             "must be 0 (unbounded) or a positive number of items", "e.g. `queue.maxsize=1000`")
    _require(spec.queue.max_bytes >= 0, "queue.max_bytes", spec.queue.max_bytes,
             "must be 0 (unbounded) or a positive number of bytes", "e.g. `queue.max_bytes=1000000`")
    _require(spec.queue.buffer_bytes is None or (isinstance(spec.queue.buffer_bytes, int)
                                                 and MIN_BUFFER_BYTES <= spec.queue.buffer_bytes <= MAX_BUFFER_BYTES),
             "queue.buffer_bytes", spec.queue.buffer_bytes,
             f"must be null (sized from the payload) or a number of bytes from {MIN_BUFFER_BYTES:,} to "
             f"{MAX_BUFFER_BYTES:,}", "e.g. `queue.buffer_bytes=16777216` (16 MiB) or `queue.buffer_bytes=null`")
    _require(spec.queue.on_full in ON_FULL, "queue.on_full", spec.queue.on_full, f"must be one of {', '.join(ON_FULL)}",
             "e.g. `queue.on_full=block`")

    p = spec.payload
    work_us = getattr(p, "work_us", 0.0)
    _require(_finite(work_us) and 0 <= work_us <= MAX_WORK_US, "payload.work_us", work_us,
             f"must be a number of microseconds of CPU per item from 0 (none) to {MAX_WORK_US:,} (one second)",
             "e.g. `payload.work_us=100`")
    _require(work_us / 1e6 < w.heartbeat_timeout_s / 2, "payload.work_us", work_us,
             f"burns {work_us / 1e6:g} s per item, at least half of workers.heartbeat_timeout_s "
             f"({w.heartbeat_timeout_s} s): a busy worker would be declared hung",
             "lower payload.work_us or raise workers.heartbeat_timeout_s")
    payload_kind(p).check(spec)
    _require(spec.transform.name in ("add", "none"), "transform", spec.transform.name, "must be add or none",
             "e.g. `transform=add`")
    _require(_finite(spec.transform.value), "transform.value", spec.transform.value, "must be a finite number",
             "e.g. `transform.value=0.1`")
    nbytes = item_nbytes(p)
    q = spec.queue
    _require(q.max_bytes == 0 or nbytes <= q.max_bytes, "queue.max_bytes", q.max_bytes,
             f"one item of this payload is {nbytes:,} bytes, larger than the queue's whole capacity of "
             f"{q.max_bytes:,} bytes, so it could never be put",
             f"raise `queue.max_bytes` to at least {nbytes} (better, a multiple of it), or shrink payload.shape")
    design.check(spec, Sizes(nbytes, message_bytes(spec), item_bound(spec)))
    bound = item_bound(spec)
    _require(bound is None or bound > c.global_threshold, "queue.maxsize" if q.maxsize else "queue.max_bytes",
             q.maxsize or q.max_bytes,
             f"bounds the queue to {bound} items, not more than chief.global_threshold ({c.global_threshold}): the "
             f"chief takes only from a queue holding more than that, so every worker would stall for ever",
             f"raise the bound above {c.global_threshold} items, or lower chief.global_threshold")
    f = spec.faults
    _require(0 <= f.worker < w.count, "faults.worker", f.worker, f"must name a worker from 0 to {w.count - 1}",
             "e.g. `faults.worker=0`")
    for key in ("kill_worker_after_s", "raise_after_s", "hang_after_s"):
        value = getattr(f, key)
        _require(value is None or (_finite(value) and value >= 0), f"faults.{key}", value,
                 "must be null or a number of seconds after the start, 0 or more", f"e.g. `faults.{key}=1.5`")
    _require(_finite(f.chief_delay_s) and 0 <= f.chief_delay_s <= 3600, "faults.chief_delay_s", f.chief_delay_s,
             "must be a number of seconds from 0 to 3600", "e.g. `faults.chief_delay_s=0.1`")
    o = spec.objective
    _require(o.metric in OBJECTIVE_METRICS, "objective.metric", o.metric, f"must be one of {', '.join(OBJECTIVE_METRICS)}",
             "e.g. `objective.metric=throughput_items_per_s`")
    units = item_units(p)
    _require(not o.metric.endswith("_per_s") or o.metric.startswith("throughput_")
             or (units is not None and o.metric == f"{units[0]}_per_s"), "objective.metric", o.metric,
             f"is not reported for payload={p.name} (its figures: items/s, MB/s"
             f"{f', {units[0]}/s' if units else ''})", "use `objective.metric=throughput_items_per_s`")
    _require(o.max_p99_ms is None or (_finite(o.max_p99_ms) and o.max_p99_ms > 0), "objective.max_p99_ms",
             o.max_p99_ms, "must be null or a positive number of milliseconds", "e.g. `objective.max_p99_ms=50`")
    _require(spec.backend.name in BACKENDS, "backend", spec.backend.name,
             f"known backends: {', '.join(BACKENDS)}", "use `backend=local` (or `backend=ray`)")
    validate_backend(spec)


def validate_backend(spec: Config) -> None:
    """The pairing of backend and queue design, and the Ray backend's keys."""
    b, name = spec.backend, spec.queue.name
    runs_on = design_class(spec.queue._target_).backend
    if runs_on != b.name:
        theirs = designs(b.name)
        _require(False, "queue", name,
                 f"this design runs on backend={runs_on}, but backend={b.name} (the {b.name} backend's designs: "
                 f"{', '.join(theirs)})",
                 f"use `backend={runs_on} queue={name}`, or one of the {b.name} designs, e.g. `queue={theirs[0]}`")
    if b.name != "ray":
        return
    _require(b.address is None or b.address == "auto" or str(b.address).startswith("ray://")
             or ":" in str(b.address), "backend.address", b.address,
             "must be null (an embedded Ray instance), auto, host:port or ray://host:port",
             "e.g. `backend.address=auto` after `ray start --head`")
    _require(_finite(b.num_cpus) and 0 <= b.num_cpus <= 1024, "backend.num_cpus", b.num_cpus,
             "must be a number of CPUs from 0 to 1024 per worker actor", "e.g. `backend.num_cpus=1`")
    _require(b.cluster_cpus is None or 1 <= b.cluster_cpus <= 100_000, "backend.cluster_cpus", b.cluster_cpus,
             "must be null or a positive number of CPUs", "e.g. `backend.cluster_cpus=4`")
    _require(b.placement_strategy is None or b.placement_strategy in PLACEMENT_STRATEGIES,
             "backend.placement_strategy", b.placement_strategy,
             f"must be null (Ray places the actors) or one of {', '.join(PLACEMENT_STRATEGIES)}",
             "e.g. `backend.placement_strategy=SPREAD`")
    _require(b.object_store_memory is None or b.object_store_memory >= 78 * 1024 * 1024,
             "backend.object_store_memory", b.object_store_memory,
             "must be null (Ray's default) or at least 78 MiB (Ray's minimum)", "e.g. `backend.object_store_memory=500000000`")
    _require(b.object_store_memory is None or b.address is None, "backend.object_store_memory",
             b.object_store_memory, "can only size an embedded Ray instance: a running cluster has its own",
             "drop it (`backend.object_store_memory=null`) when attaching with backend.address")
    _require(_finite(b.start_timeout_s) and b.start_timeout_s > 0, "backend.start_timeout_s", b.start_timeout_s,
             "must be a positive number of seconds", "e.g. `backend.start_timeout_s=120`")
