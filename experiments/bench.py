"""``make bench``: every available queue design x payload, batched and one item per put, against two references.

    python experiments/bench.py                          # the full bench, 3 interleaved repeats (~10 min on 2 cores)
    python experiments/bench.py --repeats 1 --duration 0.3 --per-put-duration 0.3 --designs pipe,zmq   # a quick one
    make bench BENCH_ARGS='--repeats 1 --duration 0.3'
    PYTHONPATH=. make bench BENCH_ARGS='--designs mp_queue,my_pkg.designs.MyDesign'   # with a design of your own

It runs this checkout's ``framework`` (the script puts its checkout first on ``sys.path``). What it runs, all in
this one process, one configuration at a time:

1. **The framework, batched** (chiefbench's chief and workers, recording on): for every design that
   ``framework.queues.availability()`` reports available (``ray_*`` designs excepted) x payloads (``float`` =
   ``payload=randint``; ``1KiB``, ``64KiB``, ``1MiB`` = ``payload=array payload.dtype=uint8``; ``rollout`` when
   ``conf/payload/rollout.yaml`` exists) x 1 and 2 workers, as fast as possible: ``workers.interval_s=0
   chief.interval_s=0`` (0.002 for rollout, as its preset) ``chief.take_batch=0 chief.global_threshold=0
   transform=none run.start_method=fork``, each worker forwarding ``B`` items per put
   (``workers.forward_batch=B workers.local_threshold=B-1``; ``B`` per payload, printed).
2. **The framework, one item per put** (the original shape): every design x ``float`` and ``64KiB`` x 2 workers
   with ``workers.forward_batch=1 workers.local_threshold=0``, once with ``chief.take_batch=1`` (one item per
   check, the original rule) and once with ``chief.take_batch=0`` (all it sees).
   Repeats of 1 and 2 are interleaved (repeat 0 of every configuration, then repeat 1...) so that drift of a
   shared machine hits every design alike. Each run is a normal run directory inside a normal sweep directory
   (``<sweep>/<job>/repeat-<k>/``), so ``chiefbench-collect`` and ``chiefbench-report`` work on it.
3. **The raw primitive** right after each framework run: the design's ``raw_throughput`` (its bare transport
   driven by ``framework.queues.rawloop``, no chiefbench code) with the same item (the same tuple a worker
   puts), the same batch (1 for the one-item-per-put runs) and the same number of producers. ``fw/raw`` is the
   framework's share of it. A design without ``raw_throughput`` (yours, given to ``--designs`` as
   ``module.Class``) has no raw reference: its ``raw items/s`` and ``fw/raw`` stay empty.
4. **memcpy**: single-core ``numpy.copyto`` bandwidth between two preallocated buffers of each byte payload's
   size (median of several), the physical limit for moving those bytes.
5. **Latency and idle cost**: 2 workers at 500 items/s each (``workers.interval_s=0.002``, one item per put),
   the chief reacting at once; end-to-end p50/p99 and the CPU share of a core used by the chief and by each
   worker (cpu_s / wall_s of each process, as the runner records them). Beside them, in each repeat, the
   machine's floor (``bare_wake``, ``framework.queues.rawloop.wake_reference``): 2 processes writing a stamp
   into a pipe at the same rate, read by a process sleeping in ``select`` as shm_ring's chief does; its
   wake-up latency and CPU are what no chief on this machine can beat.
6. **The chief's check cost** at ``chief.take_batch=1``, in this process: the chief's own check loop
   (``Chief.loop`` with its ``Intake``, ``Books`` and a ``Recorder`` without a directory) against a fake
   consumer that hands one prepared item per ``get_many`` at once, minus the bare cost of that fake get.

It prints the batched table (medians over the repeats), the one-item-per-put table, both rankings of the designs
side by side (by chiefbench items/s and by the raw primitive's items/s, per payload and take mode, and whether
they are equal), fw/raw per design, the latency table, the check cost and the targets (met / NOT met / could not
tell). It writes every table as CSV with the machine's metadata (``meta_*`` columns, and
``bench_metadata.csv``) next to the sweep's ``sweep_results.*``, and writes ``report.html``. The exit status is 0
when every run finished ok (targets missed are reported, not failed: timing on a shared machine is no pass/fail
matter); ``--strict`` makes a missed target fail too.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import math
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    # This checkout's framework, not the one an editable install elsewhere points at (sys.path[0] is experiments/).
    sys.path.insert(0, str(ROOT))
BATCH_BYTES = 256 * 1024
"""A worker's forward batch carries about this many payload bytes (at most MAX_BATCH_ITEMS, at least 1 item)."""
MAX_BATCH_ITEMS = 64
MEMCPY_SAMPLES = 7
MEMCPY_SAMPLE_S = 0.05
"""Each memcpy sample copies for at least this long."""
LATENCY_RATE_INTERVAL_S = 0.002
"""Latency runs: each of the 2 workers makes one item every 2 ms, 1,000 items/s in all."""
BASELINE = "mp_queue"

ROLLOUT_ENVS_PER_WORKER = 256
"""The rollout payload's vector env per worker (CartPole: one numpy step for all its envs)."""
PAYLOADS: dict[str, list[str]] = {
    "float": ["payload=randint"],
    "1KiB": ["payload=array", "payload.dtype=uint8", "payload.shape=[1024]"],
    "64KiB": ["payload=array", "payload.dtype=uint8", "payload.shape=[65536]"],
    "1MiB": ["payload=array", "payload.dtype=uint8", "payload.shape=[1048576]"],
    "rollout": ["payload=rollout", f"payload.envs_per_worker={ROLLOUT_ENVS_PER_WORKER}"],
}
BYTE_PAYLOADS = ("1KiB", "64KiB", "1MiB")
CHIEF_INTERVAL_S = {"rollout": 0.002}
"""chief.interval_s per payload (default 0, at once). Rollout checks every 2 ms, as its preset does: a chief woken
for every fragment takes CPU from the env-stepping workers (shm_ring, 2 workers, quiet VM: 1.35x one env alone
at 0 against 1.63x at 0.002)."""

# The design targets (2-core development machine, medians, side by side in one run).
TARGET_SMALL_ITEMS_PER_S = 1_000_000
TARGET_64KIB_GB_PER_S = 10.0
TARGET_1MIB_MEMCPY_SHARE = 0.5
TARGET_FW_RAW_RATIO = 0.9
TARGET_ROLLOUT_TRANSITIONS_PER_S = 2_000_000
TARGET_ROLLOUT_VS_VECTOR_ENV = 1.3
"""...times Gymnasium's vector env of the same total envs stepping alone in one process."""
TARGET_P99_MS = 0.1
WAKE_REFERENCE = "bare_wake"
"""The latency table's reference row: the bare wake-up of a process sleeping in select, at the same rate."""
TARGET_IDLE_CPU_PERCENT = 5.0
TARGET_CHECK_US = 2.0
FAST_DESIGN = "shm_ring"

# One item per put: the original shape (every worker puts each item as it makes it), 2 workers, the chief taking
# one item per check (chief.take_batch=1, the original rule) or all it sees (chief.take_batch=0).
PER_PUT_PAYLOADS = ("float", "64KiB")
PER_PUT_WORKERS = 2
PER_PUT_TAKES = (1, 0)
FW_RAW_PAYLOADS = ("float", "64KiB")
"""The payloads the fw/raw target holds (batched and one item per put); the others are shown, not held to it."""
META_COLUMNS = ("timestamp_utc", "hostname", "cpu_model", "cpu_count", "python", "platform", "git_commit",
                "git_dirty")
"""machine_metadata keys copied into every CSV the bench writes (as meta_<key> columns)."""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bench", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeats", type=int, default=3, help="fresh runs per configuration, interleaved (default 3)")
    p.add_argument("--duration", type=float, default=0.6, help="seconds per batched framework run (default 0.6)")
    p.add_argument("--warmup", type=float, default=0.2, help="seconds excluded at the start of each run (default 0.2)")
    p.add_argument("--raw-duration", type=float, default=0.3, help="seconds the raw primitive is counted (default 0.3)")
    p.add_argument("--per-put-duration", type=float, default=0.5,
                   help="seconds per one-item-per-put framework run (default 0.5)")
    # 3 s: the chief's start and shutdown (a few tens of ms of CPU) weigh 1 % of a core, not 3-5 % as over 1 s.
    p.add_argument("--latency-duration", type=float, default=3.0, help="seconds per latency run (default 3.0)")
    p.add_argument("--designs", default="", help="comma-separated built-in designs and/or classes of your own as "
                   "module.Class (default: every available built-in one)")
    p.add_argument("--payloads", default="", help=f"comma-separated, of {', '.join(PAYLOADS)} (default: all)")
    p.add_argument("--workers", default="1,2", help="comma-separated worker counts of the batched runs (default 1,2)")
    p.add_argument("--per-put-payloads", default=",".join(PER_PUT_PAYLOADS),
                   help=f"payloads of the one-item-per-put runs (default {','.join(PER_PUT_PAYLOADS)}; 'none' skips "
                        f"them)")
    p.add_argument("--check-rounds", type=int, default=50_000,
                   help="checks per sample of the chief check-cost microbenchmark (default 50000; 0 skips it)")
    p.add_argument("--check-samples", type=int, default=5, help="samples of the check-cost microbenchmark (default 5)")
    p.add_argument("--no-latency", action="store_true", help="skip the latency / idle-cost table")
    p.add_argument("--no-report", action="store_true", help="skip report.html")
    p.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    p.add_argument("--out", default=None, help="sweep directory (default outputs/sweeps/<date>/<time>_<pid>_bench)")
    args = p.parse_args(argv)
    if args.repeats < 1 or min(args.duration, args.raw_duration, args.latency_duration, args.per_put_duration) <= 0:
        p.error("--repeats must be >= 1 and every duration > 0")
    if args.check_rounds < 0 or args.check_samples < 1:
        p.error("--check-rounds must be >= 0 and --check-samples >= 1")
    return args


# --------------------------------------------------------------------------------------------- the grid
QUEUE_OVERRIDES: dict[str, str] = {}
"""Each chosen design's label -> the override that picks it: ``queue=<name>`` for a built-in design,
``queue._target_=<module.Class>`` for one of your own (filled by ``available_designs``)."""
DESIGN_CLASSES: dict[str, Any] = {}
"""Each chosen design's label -> its class (for its ``raw_throughput``)."""


def available_designs(wanted: str) -> tuple[list[str], dict[str, str]]:
    """The designs to run (labels, mp_queue first) and the unavailable ones with the reason.

    ``--designs`` takes built-in names (``pipe``) and your own classes by target (``my_pkg.designs.MyDesign``,
    which must be importable here and run on the local backend); a design is labelled by its ``name``."""
    from framework.errors import DesignUnavailableError, UnknownDesignError
    from framework.plugins import target_name
    from framework.queues.base import design_class
    from framework.queues.catalog import availability, design_named

    status = {n: s for n, s in availability().items() if not n.startswith("ray")}
    names = [n for n in wanted.split(",") if n] if wanted else sorted(status)
    unknown = [n for n in names if n not in status and "." not in n]
    if unknown:
        raise SystemExit(f"bench: unknown design(s) {unknown}; known: {', '.join(sorted(status))}, or a class of "
                         f"your own as module.Class")
    QUEUE_OVERRIDES.clear()
    DESIGN_CLASSES.clear()
    designs, unavailable = [], {n: s for n, s in status.items() if s != "available"}
    for name in names:
        if "." not in name:
            if status[name] == "available":
                designs.append(name)
                QUEUE_OVERRIDES[name], DESIGN_CLASSES[name] = f"queue={name}", design_named(name)
            continue
        try:
            cls = design_class(name)
        except DesignUnavailableError as exc:
            unavailable[name] = str(exc)
            continue
        except UnknownDesignError as exc:
            raise SystemExit(f"bench: {exc}") from None
        if cls.backend != "local":
            raise SystemExit(f"bench: {name} runs on backend={cls.backend}; the bench runs local designs only")
        label = cls.name or target_name(cls)
        if label in QUEUE_OVERRIDES:
            raise SystemExit(f"bench: {name} is labelled {label!r}, as another design of --designs; give it a name "
                             f"of its own (its class attribute `name`)")
        designs.append(label)
        QUEUE_OVERRIDES[label], DESIGN_CLASSES[label] = f"queue._target_={name}", cls
    # mp_queue first: it is the baseline of the ratio column.
    designs.sort(key=lambda n: (n != BASELINE, n))
    return designs, unavailable


def available_payloads(wanted: str) -> list[str]:
    from framework.config.hydra import conf_dir

    names = [n for n in wanted.split(",") if n] if wanted else list(PAYLOADS)
    unknown = [n for n in names if n not in PAYLOADS]
    if unknown:
        raise SystemExit(f"bench: unknown payload(s) {unknown}; known: {', '.join(PAYLOADS)}")
    if "rollout" in names and not (conf_dir() / "payload" / "rollout.yaml").exists():
        if wanted:
            print("bench: payload rollout skipped: conf/payload/rollout.yaml does not exist in this checkout")
        names.remove("rollout")
    return names


def item_bytes(payload: str) -> int:
    from framework.config.hydra import compose
    from framework.config.validate import to_spec
    from framework.payloads.base import item_nbytes

    return item_nbytes(to_spec(compose([*PAYLOADS[payload], "transform=none"])).payload)


def batch_for(nbytes: int) -> int:
    return max(1, min(MAX_BATCH_ITEMS, BATCH_BYTES // max(1, nbytes)))


def sample_item(spec: Any) -> Any:
    """The tuple a worker puts, (worker, seq, created_ns, forwarded_ns, value), with a value from the payload."""
    from framework.payloads.base import make_source
    from framework.payloads.seeding import worker_stream

    source = make_source(spec.payload, worker_stream(0, 0))
    try:
        value = source()
    finally:
        close = getattr(source, "close", None)
        if close is not None:
            close()
    now = time.monotonic_ns()
    return (0, 0, now, now, value)


# --------------------------------------------------------------------------------------------- references
def memcpy_gb_per_s(nbytes: int) -> float:
    """Single-core copy bandwidth between two preallocated buffers of ``nbytes`` (median of samples)."""
    src = np.full(nbytes, 7, np.uint8)
    dst = np.empty_like(src)
    rates = []
    for _ in range(MEMCPY_SAMPLES):
        n, t0 = 0, time.perf_counter()
        while True:
            for _ in range(16):
                np.copyto(dst, src)
            n += 16
            elapsed = time.perf_counter() - t0
            if elapsed >= MEMCPY_SAMPLE_S:
                break
        rates.append(n * nbytes / elapsed / 1e9)
    return float(np.median(rates))


def vector_env_reference(spec: Any, duration_s: float, workers: int = 2) -> float | None:
    """Transitions/s of Gymnasium's vector env with the envs of ``workers`` workers, stepping alone in this
    process (bare: nothing copied or sent), from the rollout payload's own helper."""
    try:
        from framework.payloads import rollout
    except ImportError:
        return None
    p = spec.payload
    return float(rollout.vector_env_steps_per_s(p.env_id, workers * p.envs_per_worker, duration_s, 0, p.env_kwargs,
                                                p.policy, p.fragment_length))


# --------------------------------------------------------------------------------------------- running
def _quiet(line: str) -> None:
    pass


def run_one(spec: Any, run_dir: Path, overrides: list[str]) -> dict[str, Any]:
    from framework.engine.runner import execute
    from framework.sweep.job import write_failed_summary

    try:
        return execute(spec, run_dir, overrides, echo=_quiet).summary
    except Exception:  # a crash is a row too, and the bench goes on
        error = traceback.format_exc()
        print(f"bench: {' '.join(overrides)} crashed:\n{error}", file=sys.stderr)
        return write_failed_summary(run_dir, error, overrides)


def _write_job(job_dir: Path, job: int, overrides: list[str], status: str, repeats: int) -> None:
    from framework.layout import JOB_FILE
    from framework.sweep.job import _write_json

    _write_json(job_dir / JOB_FILE, {"job": job, "overrides": overrides, "launcher": "bench", "concurrent_jobs": 1,
                                     "status": status, "repeats": repeats})


def e2e(summary: dict[str, Any], key: str) -> float:
    try:
        return float(summary["latency_ms"]["end_to_end"][key])
    except (KeyError, TypeError, ValueError):
        return math.nan


def cpu_percent(summary: dict[str, Any], role: str) -> float:
    """Largest cpu_s / wall_s (in % of a core) among the run's processes of ``role``."""
    shares = [100 * p["cpu_s"] / p["wall_s"] for p in summary.get("processes") or []
              if p.get("role") == role and p.get("cpu_s") is not None and p.get("wall_s")]
    return max(shares) if shares else math.nan


def transitions_per_s(summary: dict[str, Any], spec: Any) -> float:
    rate = summary.get("transitions_per_s")
    if rate is not None:
        return float(rate)
    items = summary.get("throughput_items_per_s")
    return float(items) * getattr(spec.payload, "fragment_length", math.nan) if items else math.nan


def med(values: list[float]) -> float:
    values = [v for v in values if v is not None and not math.isnan(v)]
    return float(np.median(values)) if values else math.nan


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    began = time.monotonic()
    os.chdir(ROOT)  # relative outputs/ and conf/ as for the chiefbench command
    from framework import hygiene
    from framework.config.hydra import compose
    from framework.config.validate import to_spec
    from framework.metadata import machine_metadata
    designs, unavailable = available_designs(args.designs)
    payloads = available_payloads(args.payloads)
    per_put_payloads = [] if args.per_put_payloads in ("", "none") else available_payloads(args.per_put_payloads)
    worker_counts = [int(w) for w in args.workers.split(",") if w]
    if not designs or not payloads or not worker_counts:
        print(f"bench: nothing to run (designs {designs}, payloads {payloads}, workers {worker_counts})")
        for name, reason in unavailable.items():
            print(f"unavailable   {name}: {reason}")
        return 1
    warmup = min(args.warmup, args.duration / 4)
    per_put_warmup = min(args.warmup, args.per_put_duration / 4)
    now = _dt.datetime.now()
    out = Path(args.out) if args.out else (Path("outputs/sweeps") / now.strftime("%Y-%m-%d")
                                           / f"{now.strftime('%H-%M-%S-%f')}_{os.getpid()}_bench")
    out.mkdir(parents=True, exist_ok=True)
    hygiene.claim_tempdir()
    meta = machine_metadata("fork")
    print(f"bench         {meta['cpu_model']}, {meta['cpu_count']} CPUs, Python {meta['python']}, "
          f"{meta['timestamp_utc']}, commit {(meta.get('git_commit') or '?')[:12]}"
          f"{' (dirty)' if meta.get('git_dirty') else ''}")
    print(f"designs       {', '.join(designs)}")
    for name, reason in unavailable.items():
        print(f"unavailable   {name}: {reason}")
    for name in designs:
        if DESIGN_CLASSES[name].raw_throughput is None:
            print(f"raw           {name}: no raw reference (its class has no raw_throughput): fw/raw is left empty")
    sizes = {p: item_bytes(p) for p in dict.fromkeys([*payloads, *per_put_payloads])}
    batches = {p: batch_for(sizes[p]) for p in payloads}
    print(f"batch         workers.forward_batch per payload (items per put): "
          f"{', '.join(f'{p}={batches[p]}' for p in payloads)}")
    print(f"runs          {args.repeats} interleaved repeat(s) of {args.duration} s (warm-up {warmup} s) per batched "
          f"configuration; raw primitive {args.raw_duration} s; results in {out}")
    if per_put_payloads:
        print(f"one per put   {', '.join(per_put_payloads)} x {PER_PUT_WORKERS} workers, workers.forward_batch=1 "
              f"workers.local_threshold=0, chief.take_batch=1 and 0 (all), {args.per_put_duration} s each (warm-up "
              f"{per_put_warmup} s), next to the raw primitive at batch 1")

    tail = ["workers.interval_s=0", "chief.global_threshold=0", "transform=none", "run.start_method=fork",
            "run.progress=false", "run.print_items=false"]
    jobs = []
    for payload in payloads:
        for design in designs:
            for n in worker_counts:
                b = batches[payload]
                overrides = [QUEUE_OVERRIDES[design], *PAYLOADS[payload], f"workers.count={n}",
                             f"workers.forward_batch={b}", f"workers.local_threshold={b - 1}",
                             f"chief.interval_s={CHIEF_INTERVAL_S.get(payload, 0)}", "chief.take_batch=0",
                             f"run.duration_s={args.duration}", f"run.warmup_s={warmup}", *tail]
                jobs.append({"mode": "batched", "design": design, "payload": payload, "workers": n, "batch": b,
                             "take": 0, "overrides": overrides, "summaries": [], "raw": []})
    for payload in per_put_payloads:
        for take in PER_PUT_TAKES:
            for design in designs:
                overrides = [QUEUE_OVERRIDES[design], *PAYLOADS[payload], f"workers.count={PER_PUT_WORKERS}",
                             "workers.forward_batch=1", "workers.local_threshold=0", "chief.interval_s=0",
                             f"chief.take_batch={take}", f"run.duration_s={args.per_put_duration}",
                             f"run.warmup_s={per_put_warmup}", *tail]
                jobs.append({"mode": "per_put", "design": design, "payload": payload, "workers": PER_PUT_WORKERS,
                             "batch": 1, "take": take, "overrides": overrides, "summaries": [], "raw": []})
    specs: dict[int, Any] = {}
    items: dict[str, Any] = {}
    failed_compose = []
    for j, job in enumerate(jobs):
        try:
            specs[j] = to_spec(compose(job["overrides"]))
        except Exception as exc:  # noqa: BLE001 - e.g. a payload whose extra is missing: reported, skipped
            failed_compose.append(j)
            print(f"bench: skipped {job_label(job)}: {exc}")
            continue
        if job["payload"] not in items:
            items[job["payload"]] = sample_item(specs[j])
        _write_job(out / str(j), j, job["overrides"], "running", args.repeats)

    started = time.monotonic()
    total = args.repeats * len(specs)
    done = 0
    for k in range(args.repeats):
        for j, job in enumerate(jobs):
            if j not in specs:
                continue
            summary = run_one(specs[j], out / str(j) / f"repeat-{k}", job["overrides"])
            job["summaries"].append(summary)
            raw_fn = DESIGN_CLASSES[job["design"]].raw_throughput
            raw = math.nan
            if raw_fn is not None:
                try:
                    raw = float(raw_fn(items[job["payload"]], job["workers"], args.raw_duration, job["batch"]))
                except Exception:  # noqa: BLE001 - a broken reference is a gap in the table, not the end
                    print(f"bench: raw {job_label(job)} failed:\n{traceback.format_exc()}", file=sys.stderr)
            job["raw"].append(raw)
            done += 1
            elapsed = time.monotonic() - started
            print(f"\r[{done}/{total}] {job_label(job):>36}  "
                  f"{summary.get('throughput_items_per_s') or 0:>12,.0f} items/s  raw {raw:>12,.0f}  "
                  f"ETA {elapsed / done * (total - done):4.0f} s", end="\033[K" if sys.stdout.isatty() else "\n",
                  flush=True)
    if sys.stdout.isatty():
        print()
    for j, job in enumerate(jobs):
        if j in specs:
            statuses = {s.get("status") for s in job["summaries"]}
            _write_job(out / str(j), j, job["overrides"], "ok" if statuses == {"ok"} else "failed", args.repeats)

    memcpy = {p: memcpy_gb_per_s(sizes[p]) for p in payloads if p in BYTE_PAYLOADS}
    vector_env = None
    if "rollout" in payloads:
        spec = next((specs[j] for j, job in enumerate(jobs) if job["payload"] == "rollout" and j in specs), None)
        if spec is not None:
            vector_env = vector_env_reference(spec, max(1.0, args.duration))

    table = throughput_table(jobs, specs, sizes, memcpy)
    per_put = per_put_table(jobs, specs, sizes)
    rankings = ranking_rows(per_put)
    fw_raw = fw_raw_table(table, per_put)
    latency = latency_table(designs, args, out) if not args.no_latency else pd.DataFrame()
    check = check_cost(args.check_rounds, args.check_samples) if args.check_rounds else {}

    print()
    print(format_table(table))
    if memcpy:
        print("memcpy        single-core numpy.copyto: " + ", ".join(f"{p} {memcpy[p]:.1f} GB/s" for p in memcpy))
    if vector_env is not None:
        print(f"vector env    {vector_env:,.0f} transitions/s ({2 * ROLLOUT_ENVS_PER_WORKER} envs, the envs of 2 "
              f"workers, stepping alone in this process)")
    if len(per_put):
        print()
        print(format_per_put(per_put))
        print()
        print(format_rankings(per_put, rankings))
    if len(fw_raw):
        print()
        print(format_fw_raw(fw_raw))
    if len(latency):
        print()
        print(format_latency(latency))
    if check:
        print()
        print(format_check_cost(check))
    targets = check_targets(table, latency, memcpy, vector_env, fw_raw, rankings, check)
    print()
    print(format_targets(targets))

    tables = {"bench_table.csv": table, "bench_per_put.csv": per_put, "bench_rankings.csv": pd.DataFrame(rankings),
              "bench_fw_raw.csv": fw_raw, "bench_latency.csv": latency,
              "bench_check_cost.csv": pd.DataFrame([check]) if check else pd.DataFrame(),
              "bench_targets.csv": pd.DataFrame(targets)}
    for name, frame in tables.items():
        if len(frame):
            with_metadata(frame, meta).to_csv(out / name, index=False)
    pd.DataFrame([{"key": key, "value": json.dumps(value) if isinstance(value, (dict, list)) else value}
                  for key, value in meta.items()]).to_csv(out / "bench_metadata.csv", index=False)
    _write_json_file(out / "bench_references.json", {"memcpy_gb_per_s": memcpy, "vector_env_transitions_per_s":
                                                    vector_env, "batch": batches, "metadata": meta,
                                                    "check_cost": check, "targets": targets})
    collected = None
    try:
        from framework.results.collect import collect

        collected = collect(out)
    except Exception:  # noqa: BLE001 - the bench's own tables are written already
        print(f"bench: collecting the sweep failed:\n{traceback.format_exc()}", file=sys.stderr)
    if collected is not None and not args.no_report:
        try:
            from framework.results.report import report

            print(f"report        {report(out, collected=collected)}")
        except ImportError as exc:
            print(f"report skipped: {exc}. Fix: pip install 'chiefbench[report]'")
    written = [name for name, frame in tables.items() if len(frame)] + ["bench_metadata.csv"]
    print(f"tables        {out}: {', '.join(written)} (with meta_* columns of the machine), sweep_results.*")
    print(f"bench took    {time.monotonic() - began:.0f} s")

    bad = [job_label(jobs[j]) for j in specs if any(s.get("status") != "ok" for s in jobs[j]["summaries"])]
    bad.extend(f"{job_label(jobs[j])} (config)" for j in failed_compose)
    if len(latency):
        bad.extend(f"latency {r.design}" for r in latency.itertuples() if r.ok < r.runs)
    if bad:
        print(f"bench: {len(bad)} configuration(s) had runs that did not finish ok: {', '.join(bad)}")
        return 1
    if args.strict and any(t["met"] is False for t in targets):
        print("bench: a target was missed (--strict)")
        return 1
    return 0


def job_label(job: dict) -> str:
    if job["mode"] == "per_put":
        return f"{job['design']} {job['payload']} x{job['workers']} 1/put take={take_name(job['take'])}"
    return f"{job['design']} {job['payload']} x{job['workers']}"


def take_name(take: int) -> str:
    return "all" if take == 0 else str(take)


def with_metadata(frame: pd.DataFrame, meta: dict) -> pd.DataFrame:
    frame = frame.copy()
    for key in META_COLUMNS:
        value = meta.get(key)
        frame[f"meta_{key}"] = json.dumps(value) if isinstance(value, (dict, list)) else value
    return frame


def _write_json_file(path: Path, data: dict) -> None:
    path.write_text(json.dumps(data, indent=2, default=str))


# --------------------------------------------------------------------------------------------- tables
def throughput_table(jobs: list[dict], specs: dict, sizes: dict, memcpy: dict) -> pd.DataFrame:
    rows = []
    for j, job in enumerate(jobs):
        if j not in specs or job["mode"] != "batched":
            continue
        ok = [s for s in job["summaries"] if s.get("status") == "ok"]
        rate = med([s.get("throughput_items_per_s") or math.nan for s in ok])
        raw = med(job["raw"])
        nbytes = sizes[job["payload"]]
        row = {"design": job["design"], "payload": job["payload"], "workers": job["workers"], "batch": job["batch"],
               "runs": len(job["summaries"]), "ok": len(ok), "items_per_s": rate,
               "mb_per_s": rate * nbytes / 1e6, "p50_ms": med([e2e(s, "p50_ms") for s in ok]),
               "p99_ms": med([e2e(s, "p99_ms") for s in ok]), "raw_items_per_s": raw,
               "fw_raw": rate / raw if raw and not math.isnan(raw) else math.nan,
               "gb_per_s": rate * nbytes / 1e9 if job["payload"] in (*BYTE_PAYLOADS, "rollout") else math.nan,
               "memcpy_gb_per_s": memcpy.get(job["payload"], math.nan)}
        if job["payload"] == "rollout":
            row["transitions_per_s"] = med([transitions_per_s(s, specs[j]) for s in ok])
        rows.append(row)
    table = pd.DataFrame(rows)
    if "transitions_per_s" not in table:
        table["transitions_per_s"] = math.nan
    base = table[table.design == BASELINE].set_index(["payload", "workers"])["items_per_s"]
    table["vs_mp_queue"] = [r.items_per_s / base.get((r.payload, r.workers), math.nan) for r in table.itertuples()]
    return table


def latency_table(designs: list[str], args: argparse.Namespace, out: Path) -> pd.DataFrame:
    """2 workers at 1,000 items/s in all, the chief reacting at once: e2e p50/p99 and CPU % of a core."""
    from framework.config.hydra import compose
    from framework.config.validate import to_spec

    warmup = min(0.25, args.latency_duration / 4)
    runs: dict[str, list[dict]] = {d: [] for d in designs}
    specs = {}
    for d in designs:
        overrides = [QUEUE_OVERRIDES[d], "payload=randint", "transform=none", "workers.count=2",
                     f"workers.interval_s={LATENCY_RATE_INTERVAL_S}", "workers.local_threshold=0",
                     "workers.forward_batch=1", "chief.interval_s=0", "chief.take_batch=0", "chief.global_threshold=0",
                     f"run.duration_s={args.latency_duration}", f"run.warmup_s={warmup}", "run.start_method=fork",
                     "run.progress=false", "run.print_items=false"]
        specs[d] = (to_spec(compose(overrides)), overrides)
    wakes: list[dict] = []
    for k in range(args.repeats):
        wakes.append(_wake_reference(args.latency_duration))
        for i, d in enumerate(designs):
            spec, overrides = specs[d]
            runs[d].append(run_one(spec, out / "latency" / str(i) / f"repeat-{k}", overrides))
    ok_wakes = [w for w in wakes if w]
    rows = [{"design": WAKE_REFERENCE, "runs": len(wakes), "ok": len(ok_wakes),
             "items_per_s": med([w["messages_per_s"] for w in ok_wakes]),
             "p50_ms": med([w["p50_us"] / 1000 for w in ok_wakes]), "p99_ms": med([w["p99_us"] / 1000 for w in ok_wakes]),
             "chief_cpu_percent": med([w["cpu_percent"] for w in ok_wakes]), "worker_cpu_percent": math.nan}]
    for d in designs:
        ok = [s for s in runs[d] if s.get("status") == "ok"]
        rows.append({"design": d, "runs": len(runs[d]), "ok": len(ok),
                     "items_per_s": med([s.get("throughput_items_per_s") or math.nan for s in ok]),
                     "p50_ms": med([e2e(s, "p50_ms") for s in ok]), "p99_ms": med([e2e(s, "p99_ms") for s in ok]),
                     "chief_cpu_percent": med([cpu_percent(s, "chief") for s in ok]),
                     "worker_cpu_percent": med([cpu_percent(s, "worker") for s in ok])})
    return pd.DataFrame(rows)


def _wake_reference(duration_s: float) -> dict:
    """The bare wake-up at the latency runs' rate (framework.queues.rawloop.wake_reference); {} if it failed."""
    from framework.queues.rawloop import wake_reference

    try:
        return wake_reference(2, LATENCY_RATE_INTERVAL_S, duration_s)
    except Exception:  # noqa: BLE001 - a missing reference is a missing row, not a failed bench
        print(f"bench: the bare wake reference failed:\n{traceback.format_exc()}", file=sys.stderr)
        return {}


def per_put_table(jobs: list[dict], specs: dict, sizes: dict) -> pd.DataFrame:
    """One row per design x payload x take mode of the one-item-per-put runs (medians over the repeats)."""
    rows = []
    for j, job in enumerate(jobs):
        if j not in specs or job["mode"] != "per_put":
            continue
        ok = [s for s in job["summaries"] if s.get("status") == "ok"]
        rate = med([s.get("throughput_items_per_s") or math.nan for s in ok])
        raw = med(job["raw"])
        rows.append({"design": job["design"], "payload": job["payload"], "workers": job["workers"],
                     "take_batch": job["take"], "runs": len(job["summaries"]), "ok": len(ok), "items_per_s": rate,
                     "mb_per_s": rate * sizes[job["payload"]] / 1e6, "raw_items_per_s": raw,
                     "fw_raw": rate / raw if raw and not math.isnan(raw) else math.nan,
                     "p50_ms": med([e2e(s, "p50_ms") for s in ok]), "p99_ms": med([e2e(s, "p99_ms") for s in ok]),
                     "chief_cpu_percent": med([cpu_percent(s, "chief") for s in ok])})
    return pd.DataFrame(rows)


def ranking_rows(per_put: pd.DataFrame) -> list[dict]:
    """Per payload and take mode: the designs ranked by chiefbench items/s and by raw items/s, and whether the two
    orders are equal (a design without a figure in either ranks in neither; fewer than 2 ranked: cannot tell)."""
    out = []
    if not len(per_put):
        return out
    for (payload, take), g in per_put.groupby(["payload", "take_batch"], sort=False):
        g = g.dropna(subset=["items_per_s", "raw_items_per_s"])
        by_fw = list(g.sort_values("items_per_s", ascending=False).design)
        by_raw = list(g.sort_values("raw_items_per_s", ascending=False).design)
        fw = dict(zip(g.design, g.items_per_s))
        raw = dict(zip(g.design, g.raw_items_per_s))
        swapped = []
        for i, a in enumerate(by_fw):
            for b in by_fw[i + 1:]:
                if by_raw.index(a) > by_raw.index(b):  # chiefbench: a faster than b; raw: b faster than a
                    swapped.append(f"{a}/{b} (chiefbench {fw[a] / fw[b]:.2f}x, raw {raw[a] / raw[b]:.2f}x)")
        n = len(by_fw)
        out.append({"payload": payload, "take_batch": int(take), "designs": n,
                    "by_chiefbench": " > ".join(by_fw), "by_raw": " > ".join(by_raw),
                    "equal": (by_fw == by_raw) if n >= 2 else None, "pairs": n * (n - 1) // 2,
                    "pairs_swapped": len(swapped), "swapped": "; ".join(swapped)})
    return out


def fw_raw_table(table: pd.DataFrame, per_put: pd.DataFrame) -> pd.DataFrame:
    """framework/raw per design: batched and one item per put, for the payloads the target holds."""
    cells: dict[str, dict[str, float]] = {}
    columns: list[str] = []

    def put(design: str, column: str, value: float) -> None:
        if column not in columns:
            columns.append(column)
        cells.setdefault(design, {})[column] = value

    for payload in FW_RAW_PAYLOADS:
        if len(table):
            for r in table[table.payload == payload].sort_values("workers").itertuples():
                put(r.design, f"{payload} B x{r.workers}", r.fw_raw)
        if len(per_put):
            for take in PER_PUT_TAKES:
                for r in per_put[(per_put.payload == payload) & (per_put.take_batch == take)].itertuples():
                    put(r.design, f"{payload} 1 t={take_name(take)}", r.fw_raw)
    rows = []
    for design, row in cells.items():
        values = {c: row.get(c, math.nan) for c in columns}
        known = {c: v for c, v in values.items() if not math.isnan(v)}
        lowest = min(known, key=known.get) if known else None
        rows.append({"design": design, **values, "lowest": known[lowest] if lowest else math.nan,
                     "lowest_at": lowest or "", "cells": len(columns), "cells_measured": len(known)})
    return pd.DataFrame(rows)


class _FakeConsumer:
    """The check-cost microbenchmark's consumer end: one prepared item per get_many, at once."""

    lend_views = False

    def __init__(self) -> None:
        self.seq = 0
        self.stamp = time.monotonic_ns()

    def get_many(self, max_items: int, block: bool = True, timeout: float | None = None) -> list:
        seq = self.seq
        self.seq = seq + 1
        return [(0, seq, self.stamp, self.stamp, 1.0)]

    def release(self) -> None:
        pass

    def finish(self, timeout_s: float) -> None:
        pass


def check_cost(rounds: int, samples: int) -> dict[str, Any]:
    """The chief's cost per check at chief.take_batch=1 beyond the design's own get, in this process.

    The chief's own check loop (``Chief.loop``: depth from the counters, ``Intake.take``, ``Recorder.add``,
    ``Books``, housekeeping every ~50 ms) runs ``rounds`` checks (``chief.rounds``) against a fake consumer that
    hands one prepared item per ``get_many`` at once; the control block says one worker forwarded more than will
    ever be taken, so every check takes one item. No workers, no directory (the recorder keeps its books and
    histograms, writes no part files), the cyclic collector paused as in a run. The bare cost of the fake
    get_many + release, timed alone over as many calls, is subtracted."""
    import gc

    from framework.config.hydra import compose
    from framework.config.validate import to_spec
    from framework.engine import protocol
    from framework.engine.backends import open_backend
    from framework.engine.chief.loop import Chief

    try:
        spec = to_spec(compose(["payload=randint", "transform=none", "workers.count=1", "workers.forward_batch=1",
                                "workers.local_threshold=0", "chief.interval_s=0", "chief.take_batch=1",
                                "chief.global_threshold=0", "run.duration_s=null", "run.items=null",
                                f"chief.rounds={rounds}", "run.warmup_s=0", "run.progress=false",
                                "run.print_items=false"]))
        loop_s, get_s, taken = [], [], []
        for _ in range(samples):
            backend = open_backend(spec)
            chief = Chief(spec, None, backend, _quiet, None)
            fake = _FakeConsumer()
            try:
                chief.books.control[protocol.worker_slot(0, protocol.FORWARDED)] = 1 << 50
                chief.open_intake(fake)
                gc_was_enabled = gc.isenabled()
                gc.disable()
                try:
                    chief.open_window(time.monotonic_ns())
                    t0 = time.perf_counter()
                    chief.loop()
                    loop_s.append((time.perf_counter() - t0) / max(1, chief.rounds))
                finally:
                    if gc_was_enabled:
                        gc.enable()
                taken.append(chief.recorder.consumed / max(1, chief.rounds))
            finally:
                chief.close_records()
                chief.supervisor.errors_channel.close()
                backend.close()
            bare = _FakeConsumer()
            get_many, release = bare.get_many, bare.release
            gc.disable()
            try:
                t0 = time.perf_counter()
                for _ in range(rounds):
                    get_many(1, timeout=0.05)
                    release()
                get_s.append((time.perf_counter() - t0) / rounds)
            finally:
                if gc_was_enabled:
                    gc.enable()
    except Exception:  # noqa: BLE001 - the chief's internals moved: the figure is missing, the bench goes on
        print(f"bench: the check-cost microbenchmark failed:\n{traceback.format_exc()}", file=sys.stderr)
        return {"rounds": rounds, "samples": samples, "error": traceback.format_exc(limit=1).strip().splitlines()[-1]}
    loop_us, get_us = med(loop_s) * 1e6, med(get_s) * 1e6
    return {"rounds": rounds, "samples": samples, "loop_us_per_check": loop_us, "loop_us_best": min(loop_s) * 1e6,
            "fake_get_us": get_us, "chief_us_per_check": loop_us - get_us,
            "items_per_check": med(taken), "target_us": TARGET_CHECK_US}


def _num(x: float, fmt: str) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, fmt)


def format_table(table: pd.DataFrame) -> str:
    head = (f"{'design':>14} {'payload':>7} {'w':>2} {'batch':>5} {'items/s':>12} {'MB/s':>9} {'p50 ms':>8} "
            f"{'p99 ms':>8} {'vs mp_q':>7} {'raw items/s':>12} {'fw/raw':>6} {'GB/s':>6} {'memcpy':>6}")
    lines = ["throughput (medians over repeats; raw = the bare primitive, same item, batch and producers)", head,
             "-" * len(head)]
    for r in table.itertuples():
        lines.append(f"{r.design:>14} {r.payload:>7} {r.workers:>2} {r.batch:>5} {_num(r.items_per_s, ',.0f'):>12} "
                     f"{_num(r.mb_per_s, ',.1f'):>9} {_num(r.p50_ms, '.3g'):>8} {_num(r.p99_ms, '.3g'):>8} "
                     f"{_num(r.vs_mp_queue, '.2f'):>7} {_num(r.raw_items_per_s, ',.0f'):>12} "
                     f"{_num(r.fw_raw, '.2f'):>6} {_num(r.gb_per_s, '.2f'):>6} {_num(r.memcpy_gb_per_s, '.1f'):>6}"
                     + ("" if r.ok == r.runs else f"  ({r.runs - r.ok} of {r.runs} runs not ok)"))
        if r.payload == "rollout" and not math.isnan(r.transitions_per_s):
            lines[-1] += f"  {r.transitions_per_s:,.0f} transitions/s"
    return "\n".join(lines)


def format_latency(latency: pd.DataFrame) -> str:
    head = f"{'design':>14} {'items/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'chief CPU %':>11} {'worker CPU %':>12}"
    lines = ["latency and idle cost (2 workers, 1,000 items/s in all, the chief reacting at once; CPU % of one core, "
             f"the busiest worker; {WAKE_REFERENCE}: 2 processes writing a stamp into a pipe at the same rate, read "
             "by a process sleeping in select: this machine's floor)", head, "-" * len(head)]
    for r in latency.itertuples():
        lines.append(f"{r.design:>14} {_num(r.items_per_s, ',.0f'):>9} {_num(r.p50_ms, '.3f'):>8} "
                     f"{_num(r.p99_ms, '.3f'):>8} {_num(r.chief_cpu_percent, '.1f'):>11} "
                     f"{_num(r.worker_cpu_percent, '.1f'):>12}")
    return "\n".join(lines)


def format_per_put(per_put: pd.DataFrame) -> str:
    head = (f"{'design':>14} {'payload':>7} {'take':>4} {'items/s':>12} {'MB/s':>9} {'raw items/s':>12} "
            f"{'fw/raw':>6} {'p50 ms':>8} {'p99 ms':>8} {'chief CPU %':>11}")
    lines = [f"one item per put (the original shape: workers.forward_batch=1 workers.local_threshold=0), "
             f"{PER_PUT_WORKERS} workers; take = chief.take_batch (all = 0); medians; raw = the bare primitive, same "
             f"item, batch 1", head, "-" * len(head)]
    for r in per_put.itertuples():
        lines.append(f"{r.design:>14} {r.payload:>7} {take_name(r.take_batch):>4} {_num(r.items_per_s, ',.0f'):>12} "
                     f"{_num(r.mb_per_s, ',.1f'):>9} {_num(r.raw_items_per_s, ',.0f'):>12} {_num(r.fw_raw, '.2f'):>6} "
                     f"{_num(r.p50_ms, '.3g'):>8} {_num(r.p99_ms, '.3g'):>8} {_num(r.chief_cpu_percent, '.0f'):>11}"
                     + ("" if r.ok == r.runs else f"  ({r.runs - r.ok} of {r.runs} runs not ok)"))
    return "\n".join(lines)


def format_rankings(per_put: pd.DataFrame, rankings: list[dict]) -> str:
    lines = [f"rankings, one item per put, {PER_PUT_WORKERS} workers: by chiefbench items/s and by the raw primitive "
             f"items/s (1 = fastest)"]
    for r in rankings:
        g = per_put[(per_put.payload == r["payload"]) & (per_put.take_batch == r["take_batch"])]
        fw = dict(zip(g.design, g.items_per_s))
        raw = dict(zip(g.design, g.raw_items_per_s))
        verdict = {True: "equal", False: f"NOT equal ({r['pairs_swapped']} of {r['pairs']} pairs in another order)",
                   None: "could not tell (fewer than 2 designs with both figures)"}[r["equal"]]
        lines.append(f"{r['payload']}, chief.take_batch={r['take_batch']}"
                     f"{' (all)' if r['take_batch'] == 0 else ''}: {verdict}")
        lines.append(f"  {'rank':>4}  {'chiefbench':<14} {'items/s':>12}    {'raw primitive':<14} {'items/s':>12}")
        by_fw = r["by_chiefbench"].split(" > ") if r["by_chiefbench"] else []
        by_raw = r["by_raw"].split(" > ") if r["by_raw"] else []
        for i, (a, b) in enumerate(zip(by_fw, by_raw)):
            mark = "" if a == b else "  *"
            lines.append(f"  {i + 1:>4}  {a:<14} {_num(fw[a], ',.0f'):>12}    {b:<14} {_num(raw[b], ',.0f'):>12}{mark}")
        if r["swapped"]:
            lines.append(f"  swapped: {r['swapped']}")
    return "\n".join(lines)


def format_fw_raw(fw_raw: pd.DataFrame) -> str:
    columns = [c for c in fw_raw.columns if c not in ("design", "lowest", "lowest_at", "cells", "cells_measured")]
    width = max(9, *(len(c) for c in columns))
    head = f"{'design':>14} " + " ".join(f"{c:>{width}}" for c in columns) + f" {'lowest':>6}"
    lines = [f"framework/raw per design (medians; B = batched, workers.forward_batch per payload; 1 = one item per "
             f"put, t = chief.take_batch; target >= {TARGET_FW_RAW_RATIO})", head, "-" * len(head)]
    for r in fw_raw.to_dict("records"):
        lines.append(f"{r['design']:>14} " + " ".join(f"{_num(r[c], '.2f'):>{width}}" for c in columns)
                     + f" {_num(r['lowest'], '.2f'):>6}")
    return "\n".join(lines)


def format_check_cost(check: dict) -> str:
    lines = [f"chief check cost at chief.take_batch=1 (in this process: Chief.loop with Intake, Books and a Recorder "
             f"without a directory, a fake consumer handing one prepared item per get_many; "
             f"{check['samples']} samples of {check['rounds']:,} checks, medians)"]
    if "error" in check:
        lines.append(f"  could not measure: {check['error']}")
        return "\n".join(lines)
    lines.append(f"  chief loop      {check['loop_us_per_check']:6.2f} us per check (best sample "
                 f"{check['loop_us_best']:.2f}), {check['items_per_check']:.2f} items taken per check")
    lines.append(f"  fake get        {check['fake_get_us']:6.2f} us per get_many + release, alone")
    lines.append(f"  chief's own     {check['chief_us_per_check']:6.2f} us per check beyond the design's get "
                 f"(target <= {TARGET_CHECK_US:g} us)")
    return "\n".join(lines)


def _wake_floor(latency: pd.DataFrame) -> str:
    """The bare wake reference's figures, for the 1,000 items/s target's line."""
    rows = latency[latency.design == WAKE_REFERENCE]
    if not len(rows) or math.isnan(rows.iloc[0].p99_ms):
        return ""
    r = rows.iloc[0]
    return (f"; the bare wake-up on this machine: p99 {_num(r.p99_ms * 1000, '.0f')} us, "
            f"{_num(r.chief_cpu_percent, '.1f')} % of a core")


def check_targets(table: pd.DataFrame, latency: pd.DataFrame, memcpy: dict, vector_env: float | None,
                  fw_raw: pd.DataFrame, rankings: list[dict], check: dict) -> list[dict]:
    """The design targets next to what this run measured; met is None where the run could not tell."""
    def cell(design: str, payload: str, workers: int, column: str) -> float:
        if not len(table):
            return math.nan
        rows = table[(table.design == design) & (table.payload == payload) & (table.workers == workers)]
        return float(rows[column].iloc[0]) if len(rows) else math.nan

    def entry(name: str, target: str, value: float, met: bool | None, shown: str) -> dict:
        return {"target": name, "wanted": target, "measured": shown,
                "met": None if value is None or (isinstance(value, float) and math.isnan(value)) else met}

    out = []
    # framework/raw: every design, float and 64 KiB, batched and one item per put.
    for r in fw_raw.to_dict("records") if len(fw_raw) else []:
        complete = r["cells_measured"] == r["cells"]
        shown = (f"lowest {_num(r['lowest'], '.2f')} ({r['lowest_at'] or '-'})"
                 + ("" if complete else f", {r['cells'] - r['cells_measured']} of {r['cells']} cells unmeasured"))
        met = r["lowest"] >= TARGET_FW_RAW_RATIO if complete or r["lowest"] < TARGET_FW_RAW_RATIO else None
        out.append(entry(f"framework/raw: {r['design']}", f">= {TARGET_FW_RAW_RATIO} batched and one per put, "
                         f"{' and '.join(FW_RAW_PAYLOADS)}", r["lowest"], met, shown))
    if not len(fw_raw):
        out.append(entry("framework/raw", f">= {TARGET_FW_RAW_RATIO} for every design", math.nan, None, "-"))
    # The two rankings of the designs, one item per put.
    for r in rankings:
        out.append(entry(f"rankings equal: {r['payload']}, take_batch={take_name(r['take_batch'])}, one per put",
                         "chiefbench order == raw primitive order", 0.0 if r["equal"] is not None else math.nan,
                         r["equal"], "equal" if r["equal"] else
                         (f"{r['pairs_swapped']} of {r['pairs']} pairs swapped" if r["equal"] is False else "-")))
    if not rankings:
        out.append(entry("rankings equal", "chiefbench order == raw primitive order", math.nan, None,
                         "no one-item-per-put runs"))
    v = cell(FAST_DESIGN, "64KiB", 2, "gb_per_s")
    out.append(entry(f"{FAST_DESIGN} 64 KiB arrays, 2 workers", f">= {TARGET_64KIB_GB_PER_S} GB/s", v,
                     v >= TARGET_64KIB_GB_PER_S, _num(v, ".2f") + " GB/s"))
    v = cell(FAST_DESIGN, "1MiB", 2, "gb_per_s")
    m = memcpy.get("1MiB", math.nan)
    out.append(entry(f"{FAST_DESIGN} 1 MiB arrays, 2 workers", f">= {TARGET_1MIB_MEMCPY_SHARE:.0%} of memcpy", v / m,
                     v / m >= TARGET_1MIB_MEMCPY_SHARE, f"{_num(v, '.2f')} GB/s = {_num(v / m, '.0%')} of {_num(m, '.1f')}"))
    wanted = f"p99 < {TARGET_P99_MS * 1000:.0f} us, chief CPU < {TARGET_IDLE_CPU_PERCENT:.0f} % of a core"
    rows = latency[latency.design == FAST_DESIGN] if len(latency) else []
    if len(rows):
        r = rows.iloc[0]
        out.append(entry(f"{FAST_DESIGN} at 1,000 items/s", wanted, r.p99_ms + r.chief_cpu_percent,
                         bool(r.p99_ms < TARGET_P99_MS and r.chief_cpu_percent < TARGET_IDLE_CPU_PERCENT),
                         f"p99 {_num(r.p99_ms * 1000, '.0f')} us, chief {_num(r.chief_cpu_percent, '.1f')} % "
                         f"(worker {_num(r.worker_cpu_percent, '.1f')} %)" + _wake_floor(latency)))
    else:
        out.append(entry(f"{FAST_DESIGN} at 1,000 items/s", wanted, math.nan, None, "-"))
    v = check.get("chief_us_per_check", math.nan)
    out.append(entry("chief check cost, take_batch=1", f"<= {TARGET_CHECK_US:g} us beyond the design's get", v,
                     v <= TARGET_CHECK_US, f"{_num(v, '.2f')} us"))
    # Earlier targets, still measured.
    v = cell(FAST_DESIGN, "float", 2, "items_per_s")
    out.append(entry(f"{FAST_DESIGN} small items, 2 workers, batched", f">= {TARGET_SMALL_ITEMS_PER_S:,} items/s", v,
                     v >= TARGET_SMALL_ITEMS_PER_S, _num(v, ",.0f") + " items/s"))
    v = cell(FAST_DESIGN, "rollout", 2, "transitions_per_s")
    out.append(entry(f"{FAST_DESIGN} rollout, 2 workers", f">= {TARGET_ROLLOUT_TRANSITIONS_PER_S:,} transitions/s", v,
                     v >= TARGET_ROLLOUT_TRANSITIONS_PER_S, _num(v, ",.0f") + " transitions/s"))
    ratio = v / vector_env if vector_env else math.nan
    out.append(entry(f"{FAST_DESIGN} rollout vs one process", f">= {TARGET_ROLLOUT_VS_VECTOR_ENV}x the vector env of "
                     f"the same envs", ratio, ratio >= TARGET_ROLLOUT_VS_VECTOR_ENV,
                     f"{_num(ratio, '.2f')}x (vs {_num(vector_env or math.nan, ',.0f')} transitions/s)"))
    return out


def format_targets(targets: list[dict]) -> str:
    width = max(len(t["target"]) for t in targets) if targets else 10
    wanted = max(len(t["wanted"]) for t in targets) if targets else 10
    head = f"  {'verdict':>14}  {'target':<{width}}  {'wanted':<{wanted}}  measured"
    lines = ["targets (met / NOT met / could not tell: a figure is missing)", head, "  " + "-" * (len(head) + 20)]
    for t in targets:
        verdict = {True: "met", False: "NOT met", None: "could not tell"}[t["met"]]
        lines.append(f"  {verdict:>14}  {t['target']:<{width}}  {t['wanted']:<{wanted}}  {t['measured']}")
    return "\n".join(lines)


if __name__ == "__main__":  # fork only, but keep the guard: spawn would re-import this module
    sys.exit(main())
