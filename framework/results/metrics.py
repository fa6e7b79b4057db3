"""Figures from a run's records: throughput, stage latencies, accounting, stability.

Everything here reads DataFrames after the run; nothing runs on the hot path.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from framework.results import checks

STAGES = {
    "local_wait": ("created_ns", "forwarded_ns"),
    "global_wait": ("forwarded_ns", "consumed_ns"),
    "end_to_end": ("created_ns", "consumed_ns"),
}
"""Latency stages: from which stamp to which stamp."""
PERCENTILES = (50, 95, 99)
MISSING_SEQS_SHOWN = 10
"""How many missing or duplicated sequence numbers per worker the summary lists."""
UNSTABLE_RATIO = 1.05
"""Arrival rate above this multiple of the service rate, with a growing queue, is unstable."""


def window_bounds(t0_ns: int, t_end_ns: int, warmup_s: float) -> tuple[int, int]:
    """The measured window: from t0 + warm-up to the moment the run was declared over."""
    return t0_ns + int(warmup_s * 1e9), t_end_ns


def measured_items(items: pd.DataFrame, start_ns: int, end_ns: int) -> pd.DataFrame:
    """Items the chief consumed inside the measured window."""
    consumed = items[items["state"] == "consumed"]
    stamps = consumed["consumed_ns"].to_numpy(dtype=np.int64, na_value=-1)
    return consumed[(stamps >= start_ns) & (stamps <= end_ns)]


def latency_table(items: pd.DataFrame) -> pd.DataFrame:
    """Per stage: count and p50/p95/p99/max in milliseconds (over consumed items given)."""
    rows = {}
    for stage, (a, b) in STAGES.items():
        ms = (items[b].to_numpy(dtype=np.int64) - items[a].to_numpy(dtype=np.int64)) / 1e6 if len(items) else \
            np.empty(0)
        row: dict[str, Any] = {"count": int(ms.size)}
        for q in PERCENTILES:
            row[f"p{q}_ms"] = float(np.percentile(ms, q)) if ms.size else None
        row["max_ms"] = float(ms.max()) if ms.size else None
        rows[stage] = row
    return pd.DataFrame.from_dict(rows, orient="index")


def accounting(items: pd.DataFrame, produced: dict[int, int],
               dead_local: list[tuple[int, int, int]] = ()) -> tuple[dict[str, int], list[dict]]:
    """Check by sequence numbers that every produced item is recorded exactly once.

    ``dead_local`` lists (worker, first, end): seqs [first, end) sat in the local queue of a
    worker process that died. A missing seq is lost for a reason: ``dead_worker_local``
    (inside such a range), ``in_transit`` (a worker that died had forwarded it, but it
    never arrived) or ``unexplained`` (no worker of that id died: a bug, or a broken design).
    Returns the totals and one row per worker, naming the first few seqs of each kind.
    """
    per_worker = []
    by_worker = {w: g["seq"].to_numpy() for w, g in items.groupby("worker", observed=True)}
    died = {w for w, _, _ in dead_local}
    for w in sorted(produced):
        seqs = by_worker.get(w, np.empty(0, np.int64))
        unique, counts = np.unique(seqs, return_counts=True)
        expected = produced[w]
        in_range = unique[(unique >= 0) & (unique < expected)]
        missing = np.setdiff1d(np.arange(expected), in_range)
        local = np.zeros(missing.size, bool)
        for dw, first, end in dead_local:
            if dw == w:
                local |= (missing >= first) & (missing < end)
        row = {
            "worker": w,
            "produced": expected,
            "recorded": int(seqs.size),
            "lost": int(missing.size),
            "lost_dead_worker_local": int(local.sum()),
            "lost_in_transit": int((~local).sum()) if w in died else 0,
            "lost_unexplained": 0 if w in died else int(missing.size),
            "duplicates": int(seqs.size - unique.size),
            "unexpected": int(unique.size - in_range.size),
        }
        if row["lost"]:
            row["missing_seqs"] = missing[:MISSING_SEQS_SHOWN].tolist()
        if row["duplicates"]:
            row["duplicated_seqs"] = unique[counts > 1][:MISSING_SEQS_SHOWN].tolist()
        if row["unexpected"]:
            row["unexpected_seqs"] = np.setdiff1d(unique, in_range)[:MISSING_SEQS_SHOWN].tolist()
        per_worker.append(row)
    state_counts = items["state"].value_counts()
    totals = {"produced": int(sum(produced.values()))}
    for state in ("consumed", "left_global", "left_local", "dropped_oldest", "dropped_newest"):
        totals[state] = int(state_counts.get(state, 0))
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


def stability(items: pd.DataFrame, depth: pd.DataFrame, start_ns: int, end_ns: int) -> dict[str, Any]:
    """Arrival rate into the global queue against the chief's service rate, over the window."""
    seconds = (end_ns - start_ns) / 1e9
    if seconds <= 0:
        return {"arrival_items_per_s": None, "service_items_per_s": None, "global_depth_growth": 0,
                "unstable": False}
    fwd = items["forwarded_ns"].to_numpy(dtype=np.int64, na_value=-1)
    con = items["consumed_ns"].to_numpy(dtype=np.int64, na_value=-1)
    arrival = int(((fwd >= start_ns) & (fwd <= end_ns)).sum()) / seconds
    service = int(((con >= start_ns) & (con <= end_ns)).sum()) / seconds
    g = depth[depth["queue"] == "global"]
    g = g[(g["t_ns"] >= start_ns) & (g["t_ns"] <= end_ns)]
    growth = int(g["depth"].iloc[-1] - g["depth"].iloc[0]) if len(g) >= 2 else 0
    unstable = arrival > UNSTABLE_RATIO * service and growth > 0
    return {"arrival_items_per_s": arrival, "service_items_per_s": service,
            "global_depth_growth": growth, "unstable": bool(unstable)}


MEMORY_COLUMNS = ["t_ns", "role", "worker", "pid", "rss_bytes"]


def memory_frame(samples: list[tuple]) -> pd.DataFrame:
    """Resident memory of every process, sampled by the chief once a second."""
    return pd.DataFrame(samples, columns=MEMORY_COLUMNS)


def memory_summary(samples: list[tuple]) -> list[dict[str, Any]]:
    """Per process: first, last and peak resident memory (bytes), and the number of samples."""
    df = memory_frame(samples)
    rows = []
    for (role, worker, pid), g in df.groupby(["role", "worker", "pid"], sort=False):
        rss = g["rss_bytes"].to_numpy()
        rows.append({"role": role, "worker": int(worker), "pid": int(pid), "samples": int(rss.size),
                     "rss_first_bytes": int(rss[0]), "rss_last_bytes": int(rss[-1]), "rss_peak_bytes": int(rss.max())})
    return rows


def littles_law_on_global_queue(items: pd.DataFrame, depth_area: list[tuple[int, float]], start_ns: int,
                                end_ns: int) -> dict[str, Any] | None:
    """Little's law on the global queue over the measured window: the chief's observed time-averaged depth
    (from its counters, integrated at every check) against arrival rate x mean time in the queue from the
    items' own stamps (``framework.results.checks.littles_law``). Items still queued at the end count with
    their time inside the window. None where the stamps cannot say when an item left (evicted items under
    drop_oldest) or nothing was observed."""
    if end_ns <= start_ns or len(depth_area) < 2:
        return None
    states = items["state"].astype(str).to_numpy()
    if (states == "dropped_oldest").any():
        return None
    queued = np.isin(states, ("consumed", "left_global"))
    fwd = items["forwarded_ns"].to_numpy(dtype=np.float64, na_value=np.nan)[queued]
    con = items["consumed_ns"].to_numpy(dtype=np.float64, na_value=np.nan)[queued]
    con[states[queued] == "left_global"] = np.nan
    known = ~np.isnan(fwd)
    area = np.asarray(depth_area, dtype=np.float64)
    t, a = area[:, 0], area[:, 1]
    dt = np.diff(t)
    keep = dt > 0
    mean_depth = np.diff(a)[keep] / dt[keep]  # the time-averaged depth from each sample to the next
    return checks.littles_law(t[:-1][keep], mean_depth, fwd[known], con[known], start_ns, end_ns)
