"""The configuration schema (typed dataclasses), its Hydra registration and its validation.

Hydra composes YAML from ``conf/`` on top of these dataclasses; ``to_spec`` turns the
result into plain dataclass instances (no DictConfig, no interpolation left), checks
every rule and raises ``ConfigError`` with one paragraph naming the key, the value,
the rule and the fix. Only this module and ``framework.cli`` know Hydra.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from omegaconf import MISSING, DictConfig, OmegaConf


CONF_DIR = Path(__file__).resolve().parent.parent / "conf"
"""The YAML tree; chiefbench runs from a checkout (editable install)."""

MAX_WORKERS = 256
MAX_ITEM_BYTES = 256 * 1024 * 1024
MIN_BUFFER_BYTES = 4096
MAX_BUFFER_BYTES = 1 << 40
PICKLE_MARGIN_BYTES = 512
"""Room for an item's pickle beyond its payload bytes, in the faster_fifo buffer check."""
LOCAL_QUEUES = ("deque", "mp_queue")
BACKENDS = ("local", "ray")
PLACEMENT_STRATEGIES = ("PACK", "SPREAD", "STRICT_PACK", "STRICT_SPREAD")
ON_FAILURE = ("abort", "restart", "continue")
ON_FULL = ("block", "drop_oldest", "drop_newest", "fail")
ON_STOP = ("forward", "keep")
OBJECTIVE_METRICS = ("throughput_items_per_s", "throughput_mb_per_s", "transitions_per_s")
MAX_WORK_US = 1_000_000
"""payload.work_us at most: one second of CPU per item."""


class ConfigError(ValueError):
    """A config value that breaks a rule; the message is the one paragraph users read."""

    def __init__(self, key: str, value: Any, rule: str, fix: str) -> None:
        self.key, self.value, self.rule, self.fix = key, value, rule, fix
        super().__init__(f"Invalid config: {key}={value!r}: {rule}. Fix: {fix}")


@dataclass
class WorkersConfig:
    count: int = 2
    """Number of worker processes."""
    interval_s: float = 1.0
    """Seconds between two items a worker generates; 0 = as fast as possible."""
    local_threshold: int = 5
    """A worker forwards once its local queue holds more than this many items."""
    forward_batch: int = 1
    """Items a worker takes from its local queue and forwards per trigger (put_many when > 1)."""
    forward_deadline_s: Optional[float] = None
    """Also forward when the oldest local item is older than this (seconds); null = count threshold only."""
    local_queue: str = "deque"
    """The worker's local queue: deque (in-process) or mp_queue (as the original program did)."""
    on_failure: str = "abort"
    """When a worker raises, dies or hangs: abort (stop, status failed), restart, or continue without it."""
    max_restarts: int = 3
    """Restarts allowed per worker under on_failure=restart; one more failure aborts the run."""
    heartbeat_timeout_s: float = 10.0
    """A worker silent this long (not blocked on a full queue) is declared hung and killed."""


@dataclass
class ChiefConfig:
    interval_s: float = 2.0
    """Seconds between two checks of the global queue; 0 = as fast as possible."""
    global_threshold: int = 3
    """The chief takes items only when the global queue holds more than this many."""
    take_batch: int = 1
    """Items taken per check (oldest first); 0 = take everything that is queued."""
    rounds: int = 11
    """Checks before the run ends; used only when neither run.duration_s nor run.items is set."""


@dataclass
class RunConfig:
    duration_s: Optional[float] = None
    """End the run after this many seconds (measured from the start barrier)."""
    items: Optional[int] = None
    """End the run once every worker has produced this many items (reproducible runs)."""
    warmup_s: float = 0.0
    """Seconds at the start excluded from the figures (kept in the data)."""
    seed: Optional[int] = 0
    """Root of the per-worker random streams (numpy SeedSequence); null = fresh entropy, recorded."""
    start_method: str = "spawn"
    """How worker processes start: fork, spawn or forkserver."""
    drain_timeout_s: float = 10.0
    """At stop, how long the chief waits for the next message from silent workers before terminating them."""
    depth_sample_s: float = 0.01
    """Minimum seconds between two queue-depth samples."""
    progress: bool = True
    """Show live progress (rounds or elapsed time, produced, consumed, rate)."""
    print_items: Optional[bool] = None
    """Print each consumed item as the original did; null = only when chief.interval_s > 0."""
    on_stop: str = "forward"
    """At stop, workers forward what their local queues hold (transformed) or keep it (sent back untransformed)."""
    repeats: int = 1
    """Run the configuration this many times in one job (fresh processes, one after another); each is recorded."""
    timeout_s: Optional[float] = None
    """In a sweep, a repeat still running after this many seconds is stopped and recorded as failed; null = no limit."""


@dataclass
class QueueConfig:
    name: str = MISSING
    """The global queue design (see `chiefbench --designs`)."""
    maxsize: int = 0
    """Bound of the global queue in items, kept by the framework for every design; 0 = unbounded."""
    max_bytes: int = 0
    """Bound of the global queue in payload bytes (items x item size); 0 = unbounded."""
    on_full: str = "block"
    """What a worker does when the bound is reached: block, drop_oldest, drop_newest or fail."""
    buffer_bytes: Optional[int] = None
    """Bytes of a byte-bounded design's buffer (shm_ring: per worker; faster_fifo: its shared circular buffer);
    null = sized from payload x forward_batch (faster_fifo: at least 16 MiB)."""


@dataclass
class RandintPayload:
    name: str = "randint"
    """A random integer drawn uniformly from [low, high], as the original program did."""
    low: int = 1
    """Smallest value drawn (inclusive)."""
    high: int = 3
    """Largest value drawn (inclusive)."""
    work_us: float = 0.0
    """Microseconds of CPU a worker burns per item (a busy loop), to model an expensive step; 0 = none."""


@dataclass
class ArrayPayload:
    name: str = "array"
    """A numpy array filled with one randint draw (the recorded value), for payload-size studies."""
    shape: list[int] = field(default_factory=lambda: [1024])
    """Array shape; bytes per item = prod(shape) * itemsize."""
    dtype: str = "float64"
    """numpy dtype name."""
    low: int = 1
    """Smallest value drawn (inclusive)."""
    high: int = 3
    """Largest value drawn (inclusive)."""
    work_us: float = 0.0
    """Microseconds of CPU a worker burns per item (a busy loop), to model an expensive step; 0 = none."""


@dataclass
class RolloutPayload:
    name: str = "rollout"
    """Real RL experience: one item = one fragment of transitions from a Gymnasium env stepped with random actions."""
    env_id: str = "CartPole-v1"
    """The Gymnasium environment id (extra `rollout`: pip install 'chiefbench[rollout]')."""
    fragment_length: int = 64
    """Transitions per item (obs, action, reward, terminated, truncated arrays of this length)."""
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    """Keyword arguments for gymnasium.make (e.g. max_episode_steps); the env checker is off unless set here."""
    work_us: float = 0.0
    """Microseconds of CPU a worker burns per item (a busy loop), to model an expensive step; 0 = none."""


@dataclass
class TransformConfig:
    name: str = "add"
    """What a worker applies to an item before forwarding: add or none."""
    value: float = 0.1
    """The addend of the add transform."""


@dataclass
class ObjectiveConfig:
    metric: str = "throughput_items_per_s"
    """What a sweep job returns to the sweeper (the median over repeats; larger is better)."""
    max_p99_ms: Optional[float] = None
    """For searches: a job whose median end-to-end p99 latency exceeds this (ms) is infeasible; null = no bound."""


@dataclass
class BackendConfig:
    name: str = "local"
    """Where workers run: local (processes on this machine) or ray (Ray actors; pip install 'chiefbench[ray]')."""
    address: Optional[str] = None
    """Ray only. null = start an embedded Ray instance and stop it at the end; auto or ray://host:10001 = attach to a running cluster (left running)."""
    num_cpus: float = 1.0
    """Ray only. CPUs each worker actor reserves (Ray's num_cpus; fractions allowed)."""
    cluster_cpus: Optional[int] = None
    """Ray only. CPUs of the embedded instance; null = enough for the actors, at least this machine's CPU count."""
    placement_strategy: Optional[str] = None
    """Ray only. null = Ray places the actors; PACK, SPREAD, STRICT_PACK or STRICT_SPREAD = one placement group for all."""
    object_store_memory: Optional[int] = None
    """Ray only. Bytes of the embedded instance's object store; null = Ray's default. Must be null when attaching."""
    include_dashboard: bool = False
    """Ray only. Start the dashboard with the embedded instance."""
    dashboard_host: str = "127.0.0.1"
    """Ray only. Where the embedded instance's dashboard listens (loopback unless configured)."""
    start_timeout_s: float = 120.0
    """Ray only. Longest wait for the actors to be scheduled and ready (a busy cluster queues them)."""


@dataclass
class FaultsConfig:
    worker: int = 0
    """Which worker the worker faults below hit (each fault once, in the worker's first life)."""
    kill_worker_after_s: Optional[float] = None
    """SIGKILL the worker this many seconds after the start barrier."""
    raise_after_s: Optional[float] = None
    """Raise an exception in the worker this many seconds after the start barrier."""
    hang_after_s: Optional[float] = None
    """Make the worker stop responding (no items, no heartbeat) this many seconds after the start."""
    chief_delay_s: float = 0.0
    """Extra seconds the chief sleeps at every check (a slow consumer)."""


@dataclass
class Config:
    workers: WorkersConfig = field(default_factory=WorkersConfig)
    chief: ChiefConfig = field(default_factory=ChiefConfig)
    run: RunConfig = field(default_factory=RunConfig)
    queue: QueueConfig = field(default_factory=QueueConfig)
    payload: Any = MISSING
    transform: TransformConfig = field(default_factory=TransformConfig)
    backend: BackendConfig = field(default_factory=BackendConfig)
    faults: FaultsConfig = field(default_factory=FaultsConfig)
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)


PAYLOAD_SCHEMAS = {"randint": RandintPayload, "array": ArrayPayload, "rollout": RolloutPayload}


def register_configs() -> None:
    """Register the schema in Hydra's ConfigStore (idempotent)."""
    from hydra.core.config_store import ConfigStore

    if not OmegaConf.has_resolver("chiefbench_pid"):
        # Cached: Hydra copies the launcher's resolver cache into every job's config, so jobs that run in
        # other processes (hydra/launcher=ray, joblib) resolve the sweep directory to the launcher's pid.
        OmegaConf.register_new_resolver("chiefbench_pid", lambda: str(os.getpid()), use_cache=True)
    if not OmegaConf.has_resolver("chiefbench_cpus"):
        # ${chiefbench_cpus:2,1} = 2 x this machine's CPU count + 1 (for sweep ranges in experiment presets).
        OmegaConf.register_new_resolver("chiefbench_cpus", lambda times=1, plus=0: int(times) * (os.cpu_count() or 1)
                                        + int(plus))
    # conf/hydra/launcher/{ray,submitit_slurm}.yaml share their names with the launchers' own schemas,
    # which Hydra still applies (and validates) but announces as deprecated on every composition.
    warnings.filterwarnings("ignore", message=r"\s*'hydra/launcher/(ray|submitit_slurm)' is validated against")
    cs = ConfigStore.instance()
    cs.store(name="config_schema", node=Config)
    cs.store(group="queue", name="queue_schema", node=QueueConfig)
    cs.store(group="transform", name="transform_schema", node=TransformConfig)
    cs.store(group="backend", name="backend_schema", node=BackendConfig)
    for name, schema in PAYLOAD_SCHEMAS.items():
        cs.store(group="payload", name=f"{name}_schema", node=schema)


GROUPS = ("queue", "payload", "transform", "backend")


def group_options(group: str) -> list[str]:
    """The options of a config group: the YAML files in conf/<group>/."""
    return sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))


def check_group_overrides(overrides: list[str] | tuple[str, ...]) -> None:
    """Refuse ``group=option`` overrides naming no option, before Hydra sees them.

    Hydra answers ``queue=0`` with a traceback of its own; a sweep (``a,b``) or a
    function (``choice(...)``) is left to Hydra.
    """
    import re

    for override in overrides:
        key, sep, value = override.partition("=")
        if not sep or key.lstrip("+~") not in GROUPS or (re.search(r"[,()]", value) and not value.startswith("[")):
            continue
        group = key.lstrip("+~")
        options = group_options(group)
        if value not in options:
            raise ConfigError(group, value, f"is not one of the {group} options ({', '.join(options)})",
                              f"pick one, e.g. `{group}={options[0]}`")


def compose(overrides: list[str] | tuple[str, ...] = (), config_name: str = "config") -> DictConfig:
    """Compose the config as the CLI would (Hydra's compose API), for tests and notebooks."""
    check_group_overrides(overrides)
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    register_configs()
    if GlobalHydra.instance().is_initialized():
        GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return hydra_compose(config_name=config_name, overrides=list(overrides))


def to_spec(cfg: Config | DictConfig) -> Config:
    """Resolve into plain dataclasses, fill a null seed, and validate every rule."""
    if isinstance(cfg, DictConfig):
        # Only the keys of the schema travel: Hydra's own node stays behind.
        plain = {k: cfg[k] for k in ("workers", "chief", "run", "queue", "payload", "transform", "backend", "faults",
                                     "objective")
                 if k in cfg}
        merged = OmegaConf.merge(OmegaConf.structured(Config), plain)
        payload = merged.payload
        schema = PAYLOAD_SCHEMAS.get(payload.get("name") if isinstance(payload, DictConfig) else None)
        if schema is None:
            raise ConfigError(
                "payload", OmegaConf.to_container(payload) if isinstance(payload, DictConfig) else payload,
                f"the payload must be one of {', '.join(sorted(PAYLOAD_SCHEMAS))}",
                "pick one, e.g. `payload=randint`, `payload=array` or `payload=rollout`",
            )
        merged.payload = OmegaConf.merge(OmegaConf.structured(schema), payload)
        spec: Config = OmegaConf.to_object(merged)
    else:
        spec = cfg
    if spec.run.seed is None:
        spec.run.seed = int.from_bytes(os.urandom(8), "little")
    validate(spec)
    return spec


MESSAGE_OVERHEAD_BYTES = 4096
"""Framing, pickle header and stamps of one message, beyond its items' payload bytes (generous)."""
ITEM_OVERHEAD_BYTES = 64
"""Per item in a message: its stamps and sequence number."""


def message_bytes(spec: Config) -> int:
    """The largest message a worker sends: workers.forward_batch items, with framing."""
    from framework.payloads import item_nbytes

    return MESSAGE_OVERHEAD_BYTES + spec.workers.forward_batch * (item_nbytes(spec.payload) + ITEM_OVERHEAD_BYTES)


def item_bound(spec: Config) -> int | None:
    """The global queue's bound in items, from queue.maxsize and queue.max_bytes; None = unbounded."""
    from framework.payloads import item_nbytes

    bounds = [b for b in (spec.queue.maxsize, spec.queue.max_bytes // item_nbytes(spec.payload)
                          if spec.queue.max_bytes else 0) if b]
    return min(bounds) if bounds else None


def _require(ok: bool, key: str, value: Any, rule: str, fix: str) -> None:
    if not ok:
        raise ConfigError(key, value, rule, fix)


def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def validate(spec: Config) -> None:
    """Raise ``ConfigError`` for the first value that breaks a rule; nothing has started yet."""
    from framework.payloads import item_nbytes
    from framework.queues import DesignUnavailableError, UnknownDesignError, design_class

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
    _require(r.on_stop in ON_STOP, "run.on_stop", r.on_stop, f"must be one of {', '.join(ON_STOP)}",
             "e.g. `run.on_stop=forward`")
    methods = multiprocessing.get_all_start_methods()
    _require(r.start_method in methods, "run.start_method", r.start_method,
             f"this platform offers the start methods {', '.join(methods)}", f"e.g. `run.start_method={methods[0]}`")
    for key, value in (("run.drain_timeout_s", r.drain_timeout_s), ("run.depth_sample_s", r.depth_sample_s)):
        _require(_finite(value) and 0 < value <= 3600, key, value, "must be a positive number of seconds",
                 f"e.g. `{key}=1`")

    try:
        design_class(spec.queue.name)  # imports it: an unknown name or a missing extra fails here
    except (UnknownDesignError, DesignUnavailableError) as exc:
        raise ConfigError("queue", spec.queue.name, str(exc).split(". Fix: ")[0].split(": ", 1)[-1],
                          str(exc).split("Fix: ", 1)[-1]) from None
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
    _require(_finite(p.work_us) and 0 <= p.work_us <= MAX_WORK_US, "payload.work_us", p.work_us,
             f"must be a number of microseconds of CPU per item from 0 (none) to {MAX_WORK_US:,} (one second)",
             "e.g. `payload.work_us=100`")
    _require(p.work_us / 1e6 < w.heartbeat_timeout_s / 2, "payload.work_us", p.work_us,
             f"burns {p.work_us / 1e6:g} s per item, at least half of workers.heartbeat_timeout_s "
             f"({w.heartbeat_timeout_s} s): a busy worker would be declared hung",
             "lower payload.work_us or raise workers.heartbeat_timeout_s")
    if isinstance(p, RolloutPayload):
        from framework.rollout import check_payload

        check_payload(p)  # gymnasium installed, env id known and steppable: before any worker imports it
        nbytes = item_nbytes(p)
        _require(nbytes <= MAX_ITEM_BYTES, "payload.fragment_length", p.fragment_length,
                 f"makes {nbytes:,} bytes per item, over the {MAX_ITEM_BYTES:,}-byte limit",
                 "use a shorter fragment")
    else:
        _require(p.low <= p.high, "payload.low", p.low, f"must not exceed payload.high ({p.high})",
                 "swap them, e.g. `payload.low=1 payload.high=3`")
        _require(abs(p.low) <= 2**53 and abs(p.high) <= 2**53, "payload.high", p.high,
                 "draws must stay within +-2**53 so that they are recorded exactly as float64", "use smaller bounds")
    if isinstance(p, ArrayPayload):
        import numpy as np

        _require(len(p.shape) >= 1 and all(isinstance(d, int) and d >= 1 for d in p.shape), "payload.shape",
                 p.shape, "must be a non-empty list of positive integers", "e.g. `payload.shape=[1024]`")
        try:
            dtype = np.dtype(p.dtype)
        except TypeError:
            raise ConfigError("payload.dtype", p.dtype, "is not a numpy dtype name",
                              "e.g. `payload.dtype=float64` or `payload.dtype=uint8`") from None
        _require(dtype.kind in "iuf", "payload.dtype", p.dtype, "must be an integer or floating dtype",
                 "e.g. `payload.dtype=float32`")
        nbytes = item_nbytes(p)
        _require(nbytes <= MAX_ITEM_BYTES, "payload.shape", p.shape,
                 f"makes {nbytes:,} bytes per item, over the {MAX_ITEM_BYTES:,}-byte limit", "use a smaller shape")
        t = spec.transform
        _require(not (t.name == "add" and dtype.kind in "iu" and float(t.value) != int(t.value)), "transform.value",
                 t.value, f"a non-integer addend would be truncated to {int(t.value)} in a {p.dtype} array",
                 "use a floating dtype (`payload.dtype=float64`), an integer addend, or `transform=none`")
    _require(spec.transform.name in ("add", "none"), "transform", spec.transform.name, "must be add or none",
             "e.g. `transform=add`")
    _require(_finite(spec.transform.value), "transform.value", spec.transform.value, "must be a finite number",
             "e.g. `transform.value=0.1`")
    nbytes = item_nbytes(p)
    q = spec.queue
    # faster_fifo: an item that cannot fit in the circular buffer would wait for ever; say so before starting.
    # The margin covers the item's pickle (tuple, stamps, array header); a worker checks the exact size.
    _require(q.name != "faster_fifo" or q.buffer_bytes is None or nbytes + PICKLE_MARGIN_BYTES <= q.buffer_bytes,
             "queue.buffer_bytes",
             q.buffer_bytes, f"one item of this payload is {nbytes:,} bytes (about {nbytes + PICKLE_MARGIN_BYTES:,} "
             f"pickled), more than faster_fifo's whole circular buffer, so it could never be put",
             f"raise `queue.buffer_bytes` to a few times the item size, e.g. "
             f"`queue.buffer_bytes={max(1 << 20, -(-4 * (nbytes + PICKLE_MARGIN_BYTES) // (1 << 20)) << 20)}`, "
             f"or shrink payload.shape")
    _require(q.max_bytes == 0 or nbytes <= q.max_bytes, "queue.max_bytes", q.max_bytes,
             f"one item of this payload is {nbytes:,} bytes, larger than the queue's whole capacity of "
             f"{q.max_bytes:,} bytes, so it could never be put",
             f"raise `queue.max_bytes` to at least {nbytes} (better, a multiple of it), or shrink payload.shape")
    message = message_bytes(spec)
    _require(q.buffer_bytes is None or q.name != "shm_ring" or 2 * message <= q.buffer_bytes, "queue.buffer_bytes",
             q.buffer_bytes, f"a message of workers.forward_batch={w.forward_batch} items of {nbytes:,} bytes needs "
             f"about {message:,} bytes and may use at most half of each worker's ring",
             f"set `queue.buffer_bytes` to at least {2 * message}, or null to size it from the payload, or lower "
             f"workers.forward_batch")
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
    _require(o.metric != "transitions_per_s" or isinstance(p, RolloutPayload), "objective.metric", o.metric,
             f"is reported only for payload=rollout, not payload={p.name}",
             "use `objective.metric=throughput_items_per_s`")
    _require(o.max_p99_ms is None or (_finite(o.max_p99_ms) and o.max_p99_ms > 0), "objective.max_p99_ms",
             o.max_p99_ms, "must be null or a positive number of milliseconds", "e.g. `objective.max_p99_ms=50`")
    _require(spec.backend.name in BACKENDS, "backend", spec.backend.name,
             f"known backends: {', '.join(BACKENDS)}", "use `backend=local` (or `backend=ray`)")
    validate_backend(spec)


def validate_backend(spec: Config) -> None:
    """The pairing of backend and queue design, and the Ray backend's keys."""
    from framework.queues.base import DESIGN_BACKEND, designs

    b, name = spec.backend, spec.queue.name
    runs_on = DESIGN_BACKEND.get(name, "local")
    _require(runs_on == b.name, "queue", name,
             f"this design runs on backend={runs_on}, but backend={b.name} (the {b.name} backend's designs: "
             f"{', '.join(designs(b.name))})",
             f"use `backend={runs_on} queue={name}`, or one of the {b.name} designs, e.g. `queue={designs(b.name)[0]}`")
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
