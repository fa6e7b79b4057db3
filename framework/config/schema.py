"""The configuration schema: one typed dataclass per config group, one docstring per key.

Hydra composes the YAML of ``conf/`` on top of these dataclasses (``framework.config.hydra``);
``framework.config.validate.to_spec`` resolves the result into plain instances of them and checks
every rule. Workers receive these plain dataclasses, never a DictConfig.

Plug-ins: ``queue._target_`` and ``payload._target_`` name the code behind a design or a payload
(``module.Class`` or ``module.function``), built-in or your own: see ``framework.queues.base`` and
``framework.payloads.base``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

MISSING = "???"
"""OmegaConf's mark of a value that must be given (kept literal: workers import this module, not OmegaConf)."""


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
    """Run the configuration this many times (fresh processes, one after another); each is recorded."""
    order: str = "random"
    """In a sweep with repeats: random (every configuration's repeats in a shuffle seeded by run.seed; measured
    best here, see the docs' Run order), interleaved (repeat k of every configuration, then repeat k+1) or
    grouped (each configuration's repeats together)."""
    repeat_index: Optional[int] = None
    """Set by the sweeper under run.order=interleaved|random: this job runs only repeat k of its configuration."""
    timeout_s: Optional[float] = None
    """In a sweep, a repeat still running after this many seconds is stopped and recorded as failed; null = no limit."""


@dataclass
class RecordConfig:
    """What a run keeps of its items beyond the summary (latency histograms, books, depth and memory are
    always kept)."""

    items: str = "all"
    """all (one row per item in items.parquet, streamed as the run goes), sample (every sample_every-th
    item of each worker) or none (summary, histograms, depth and books only: for runs of hours)."""
    sample_every: int = 100
    """Under items=sample: the rows kept are those whose seq is a multiple of this, per worker."""
    flush_s: float = 0.5
    """Seconds between two flushes of the records to disk at most (what a crash of the chief can lose)."""


@dataclass
class QueueConfig:
    _target_: Optional[str] = None
    """The design class, ``module.Class`` (a ``framework.queues.base.QueueDesign``): built-in or your own."""
    name: Optional[str] = None
    """The design's label in results; null = the class's ``name`` (see `chiefbench --designs`)."""
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
    """A random integer drawn uniformly from [low, high], as the original program did."""

    _target_: str = "framework.payloads.randint.Randint"
    """The payload kind (a ``framework.payloads.base.PayloadKind``, or a ``make_source(payload, rng)`` function)."""
    name: Optional[str] = None
    """The payload's label in results; null = the kind's name."""
    low: int = 1
    """Smallest value drawn (inclusive)."""
    high: int = 3
    """Largest value drawn (inclusive)."""
    work_us: float = 0.0
    """Microseconds of CPU a worker burns per item (a busy loop), to model an expensive step; 0 = none."""


@dataclass
class ArrayPayload:
    """A numpy array filled with one randint draw (the recorded value), for payload-size studies."""

    _target_: str = "framework.payloads.array.Array"
    """The payload kind (a ``framework.payloads.base.PayloadKind``, or a ``make_source(payload, rng)`` function)."""
    name: Optional[str] = None
    """The payload's label in results; null = the kind's name."""
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
    """Real RL experience: one item = one fragment of transitions from a worker's Gymnasium env(s)."""

    _target_: str = "framework.payloads.rollout.Rollout"
    """The payload kind (a ``framework.payloads.base.PayloadKind``, or a ``make_source(payload, rng)`` function)."""
    name: Optional[str] = None
    """The payload's label in results; null = the kind's name."""
    env_id: str = "CartPole-v1"
    """The Gymnasium environment id (extra `rollout`: pip install 'chiefbench[rollout]')."""
    fragment_length: int = 64
    """Steps per item: a fragment holds fragment_length x envs_per_worker transitions (obs, action, reward,
    terminated, truncated arrays)."""
    envs_per_worker: int = 1
    """Envs each worker steps as one vector env (the env's own vectorised entry point where it has one, else
    Gymnasium's SyncVectorEnv); 1 = one plain env."""
    policy: str = "random"
    """How actions are chosen: random (drawn per fragment), or linear (obs @ a seeded weight matrix per step,
    standing for an actor's CPU inference)."""
    env_module: Optional[str] = None
    """A module imported in every worker (and in the chief's checks) before the env is made, so that its
    Gymnasium registration runs: your own env ids, e.g. ``payload.env_module=my_pkg.envs``."""
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
    record: RecordConfig = field(default_factory=RecordConfig)
    queue: QueueConfig = field(default_factory=QueueConfig)
    payload: Any = MISSING
    transform: TransformConfig = field(default_factory=TransformConfig)
    backend: BackendConfig = field(default_factory=BackendConfig)
    faults: FaultsConfig = field(default_factory=FaultsConfig)
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)
