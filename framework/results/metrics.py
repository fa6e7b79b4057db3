"""Figures from what a run recorded: stage latencies, accounting, stability, Little's law.

Everything here reads the run's flat-memory records (histograms, seq books, window tallies) after the
run; nothing runs on the hot path, and nothing needs a row per item.
"""

from __future__ import annotations

import math
from typing import Any

from framework.results import checks

STAGES = {
    "local_wait": ("created_ns", "forwarded_ns"),
    "global_wait": ("forwarded_ns", "consumed_ns"),
    "end_to_end": ("created_ns", "consumed_ns"),
}
"""Latency stages: from which stamp to which stamp."""
MISSING_SEQS_SHOWN = 10
"""How many missing or duplicated sequence numbers per worker the summary lists."""
UNSTABLE_RATIO = 1.05
"""Arrival rate above this multiple of the service rate, with a growing queue, is unstable."""


def window_bounds(t0_ns: int, t_end_ns: int, warmup_s: float) -> tuple[int, int]:
    """The measured window: from t0 + warm-up to the moment the run was declared over."""
    return t0_ns + int(warmup_s * 1e9), t_end_ns


def latency_table(histograms: Any) -> dict[str, dict[str, Any]]:
    """Per stage: count and p50/p95/p99/p99.9/max in milliseconds over the measured window, from the
    latency histograms (within ``framework.results.latency.RELATIVE_ERROR`` of the exact quantiles)."""
    table = {}
    for stage, row in histograms.quantiles().items():
        count = int(row["count"])
        table[stage] = {"count": count, **{key: (row[key] if count else None)
                                           for key in ("p50_ms", "p95_ms", "p99_ms", "p99.9_ms", "max_ms")}}
    return table


def accounting(books: Any, produced: dict[int, int],
               dead_local: list[tuple[int, int, int]] = ()) -> tuple[dict[str, int], list[dict]]:
    """Check by sequence numbers that every produced item is recorded exactly once (``books``: the run's
    ``framework.results.seqbooks.SeqBooks``, ranges of seqs per worker and state, exact at any length).

    ``dead_local`` lists (worker, first, end): seqs [first, end) sat in the local queue of a
    worker process that died. A missing seq is lost for a reason: ``dead_worker_local``
    (inside such a range), ``in_transit`` (a worker that died had forwarded it, but it
    never arrived) or ``unexplained`` (no worker of that id died: a bug, or a broken design).
    Returns the totals and one row per worker, naming the first few seqs of each kind.
    """
    died = {w for w, _, _ in dead_local}
    for w, first, end in dead_local:
        books.add_range(w, first, end, "lost")
    totals_b, rows_b, _ = books.check(produced)
    per_worker = []
    for r in rows_b:
        w = r["worker"]
        missing = int(r["missing"])
        local = int(r["lost"])  # the dead worker's local queue, booked as lost above
        row = {
            "worker": w,
            "produced": int(r["produced"]),
            "recorded": int(r["accounted"] - local),
            "lost": missing + local,
            "lost_dead_worker_local": local,
            "lost_in_transit": missing if w in died else 0,
            "lost_unexplained": 0 if w in died else missing,
            "duplicates": int(r["duplicates"]),
            "unexpected": int(r["unexpected"]),
        }
        if missing:
            row["missing_seqs"] = r["missing_seqs"][:MISSING_SEQS_SHOWN]
        if row["duplicates"]:
            row["duplicated_seqs"] = r["duplicates_seqs"][:MISSING_SEQS_SHOWN]
        if row["unexpected"]:
            row["unexpected_seqs"] = r["unexpected_seqs"][:MISSING_SEQS_SHOWN]
        per_worker.append(row)
    totals = {"produced": int(sum(produced.values()))}
    for state in ("consumed", "left_global", "left_local", "dropped_oldest", "dropped_newest"):
        totals[state] = int(totals_b[state])
    for key in ("lost", "lost_dead_worker_local", "lost_in_transit", "lost_unexplained", "duplicates", "unexpected"):
        totals[key] = sum(r[key] for r in per_worker)
    totals["left_in_queues"] = totals["left_global"] + totals["left_local"]
    totals["dropped"] = totals["dropped_oldest"] + totals["dropped_newest"]
    return totals, per_worker


def accounting_errors(totals: dict[str, int], per_worker: list[dict]) -> list[str]:
    """Sentences naming each worker that lost (without a dead process to explain it),
    duplicated or invented an item."""
    errors = []
    for row in per_worker:
        for key, label in (("lost_unexplained", "missing_seqs"), ("duplicates", "duplicated_seqs"),
                           ("unexpected", "unexpected_seqs")):
            if row[key]:
                errors.append(f"worker {row['worker']}: {row[key]} item(s) {key.replace('_', ' ')} "
                              f"(seq {row.get(label)}...)")
    return errors


def stability(window: Any, depth_edges: tuple[int | None, int | None], seconds: float) -> dict[str, Any]:
    """Arrival rate into the global queue against the chief's service rate, over the window (``window``:
    the run's tally of items forwarded and consumed in it; ``depth_edges``: the global depth at its first
    and last sample)."""
    if seconds <= 0:
        return {"arrival_items_per_s": None, "service_items_per_s": None, "global_depth_growth": 0,
                "unstable": False}
    arrival, service = window.arrivals / seconds, window.consumed / seconds
    first, last = depth_edges
    growth = int(last - first) if first is not None and last is not None else 0
    unstable = arrival > UNSTABLE_RATIO * service and growth > 0
    return {"arrival_items_per_s": arrival, "service_items_per_s": service,
            "global_depth_growth": growth, "unstable": bool(unstable)}


def littles_law(window: Any, depth_area: tuple[float | None, float], seconds: float) -> dict[str, Any] | None:
    """Little's law on the global queue over the measured window: the chief's observed time-averaged depth
    (the integral of its counters' depth, observed at every check) against arrival rate x mean time in the
    queue from the items' own stamps (``window.queue_ns``: each item's time inside the window, items still
    queued at the end counted until it). None where the stamps cannot say when an item left (evicted items
    under drop_oldest) or the window is empty."""
    at_start, at_end = depth_area
    if seconds <= 0 or at_start is None or window.evicted:
        return None
    window_ns = seconds * 1e9
    observed = (at_end - at_start) / window_ns
    exact = window.queue_ns / window_ns
    arrivals = window.arrivals
    lam = arrivals / seconds
    w_s = window.queue_ns / 1e9 / arrivals if arrivals else None
    if exact > 0:
        rel = abs(observed - exact) / exact
    else:
        rel = 0.0 if observed == 0 else math.inf
    return {"L": observed, "L_exact": exact, "lambda_per_s": lam, "W_s": w_s,
            "lambda_W": lam * w_s if w_s is not None else None, "relative_error": rel,
            "holds": bool(rel <= checks.LITTLE_TOLERANCE), "arrivals": arrivals, "window_s": seconds}


def worker_utilisation(processes: list[dict], blocked_s: dict[int, float]) -> dict[str, Any] | None:
    """How the workers spent the run: ``busy`` (CPU time / wall time: generating or stepping), ``blocked``
    (waiting for room in a full queue / wall time), the rest waiting for a core or sleeping; the mean over
    workers and per worker (every incarnation of a worker together). None without worker timings."""
    wall: dict[int, float] = {}
    cpu: dict[int, float] = {}
    for p in processes:
        if p.get("role") == "worker" and p.get("wall_s") and p.get("cpu_s") is not None:
            w = int(p["worker"])
            wall[w] = wall.get(w, 0.0) + p["wall_s"]
            cpu[w] = cpu.get(w, 0.0) + p["cpu_s"]
    if not wall:
        return None
    per_worker = {str(w): {"busy": cpu[w] / wall[w], "blocked": blocked_s.get(w, 0.0) / wall[w]} for w in sorted(wall)}
    return {"busy": sum(r["busy"] for r in per_worker.values()) / len(per_worker),
            "blocked": sum(r["blocked"] for r in per_worker.values()) / len(per_worker),
            "per_worker": per_worker}
