"""The tables chiefbench prints: a run's summary, a sweep's gathered table, the sweep's progress line."""

from __future__ import annotations

from typing import Any

from framework.layout import RESULTS_TABLE, SUMMARY_TABLE
from framework.results.collect import Collected, best_job
from framework.results.stats import format_aggregate


def _rollout_line(summary: dict[str, Any]) -> str:
    """A rollout run in its own unit: transitions/s, GB/s, fragment latency (first step to taken), worker use."""
    e2e = summary["latency_ms"]["end_to_end"]
    busy = summary.get("worker_utilisation") or {}
    latency = "-" if e2e["p50_ms"] is None else f"p50 {e2e['p50_ms']:.2f} / p99 {e2e['p99_ms']:.2f} ms"
    use = "" if not busy else f"  workers busy {100 * busy['busy']:.0f}%, blocked {100 * busy['blocked']:.0f}%"
    ends = (summary.get("transitions") or {}).get("episode_ends")
    seconds = summary["window"]["seconds"]
    episodes = f"  {ends / seconds:,.0f} episodes/s" if ends is not None and seconds else ""
    return (f"rollout       {summary['transitions_per_s']:,.0f} transitions/s{episodes}  "
            f"{(summary['throughput_mb_per_s'] or 0) / 1e3:.3f} GB/s  fragment latency {latency}{use}")


def format_summary(summary: dict[str, Any]) -> str:
    """The short table printed at the end of a run."""
    c = summary["counts"]
    lines = [
        f"status        {summary['status']}",
        f"items         produced {c['produced']:,}  forwarded {c['forwarded']:,}  consumed {c['consumed']:,}  "
        f"left in queues {c['left_in_queues']:,}  lost {c['lost']:,}  duplicates {c['duplicates']:,}",
    ]
    rate, mbs = summary["throughput_items_per_s"], summary["throughput_mb_per_s"]
    if rate is not None:
        steps = summary.get("transitions_per_s")  # rollout payload only
        lines.append(f"throughput    {rate:,.1f} items/s  {mbs:,.3f} MB/s"
                     f"{'' if steps is None else f'  {steps:,.0f} transitions/s'}"
                     f"  over {summary['window']['seconds']:.2f} s")
    if summary.get("transitions_per_s") is not None:
        lines.append(_rollout_line(summary))
    noise = summary.get("machine_noise") or {}
    if noise:
        def pct(key: str) -> str:
            return "-" if noise.get(key) is None else f"{noise[key]:.1f}%"

        normalised = (summary.get("normalised") or {}).get("throughput_items_per_s")
        lines.append(f"machine       steal {pct('steal_pct')}  other processes {pct('other_cpu_pct')}  "
                     f"load {noise.get('load_avg') if noise.get('load_avg') is None else round(noise['load_avg'], 2)}"
                     + ("" if normalised is None else f"  normalised {normalised:,.1f} items/s"))
    lines.append("latency (ms)  " + "stage".ljust(12) + "".join(f"{h:>10}" for h in ("p50", "p95", "p99", "max")))
    for stage, row in summary["latency_ms"].items():
        cells = "".join(f"{row[k]:>10.3f}" if row[k] is not None else f"{'-':>10}"
                        for k in ("p50_ms", "p95_ms", "p99_ms", "max_ms"))
        lines.append("              " + stage.ljust(12) + cells)
    for w in summary["warnings"]:
        lines.append(f"warning: {w}")
    for e in summary["errors"]:
        lines.append(f"error: {e.splitlines()[0]}")
    return "\n".join(lines)


def format_collected(c: Collected) -> str:
    """What the end of a sweep (and chiefbench-collect) prints."""
    lines = []
    n_jobs = c.table["job"].nunique() if len(c.table) else 0
    failed = int((c.table["status"] != "ok").sum()) if len(c.table) else 0
    total = f" of {c.expected}" if c.expected is not None else ""
    lines.append(f"sweep         {n_jobs}{total} jobs gathered, {len(c.table)} rows ({failed} not ok)")
    if len(c.summary):
        lines.append(format_aggregate(c.summary, c.keys))
    for _, row in c.table[c.table["status"] != "ok"].drop_duplicates("job").iterrows() if failed else []:
        first = (row["error"] or "").strip().splitlines()
        lines.append(f"{row['status']} job {row['job']}: {first[-1] if first else row['status']}")
    if c.missing:
        lines.append(f"missing       {len(c.missing)} grid point(s) without a result:")
        lines.extend("              " + " ".join(p) for p in c.missing[:20])
        if len(c.missing) > 20:
            lines.append(f"              ... and {len(c.missing) - 20} more")
    best = best_job(c.table)
    if best is not None and len(c.summary) > 1:
        lines.append(f"best          job {best['job']}: {' '.join(best['overrides']) or '(no swept keys)'} "
                     f"objective {best['objective']:,.1f}")
    if c.directory is not None:
        lines.append(f"table         {c.directory / (RESULTS_TABLE + '.parquet')} (and .csv, {SUMMARY_TABLE}.*)")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------- progress
def progress_line(done: int, total: int | None, elapsed_s: float, width: int = 24) -> str:
    """``sweep [#########---------------] 3/8 jobs  elapsed 0:12  ETA 0:20``."""
    def clock(s: float) -> str:
        s = int(round(s))
        return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"

    if not total:
        return f"sweep  {done} jobs done  elapsed {clock(elapsed_s)}"
    filled = min(width, int(width * done / total))
    eta = clock(elapsed_s / done * (total - done)) if done else "?"
    return f"sweep  [{'#' * filled}{'-' * (width - filled)}] {done}/{total} jobs  elapsed {clock(elapsed_s)}  ETA {eta}"


