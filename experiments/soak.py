"""``make soak``: the fastest design at full speed for a long while, every item recorded; memory, end cost, books
and the latency histograms checked from outside the run.

    python experiments/soak.py                       # CHIEFBENCH_SOAK_S seconds (default 600)
    CHIEFBENCH_SOAK_S=60 make soak                   # a minute
    python experiments/soak.py --seconds 20 --out /tmp/soak

What it does:

1. Starts the chief as its own process, ``python -m framework.cli.main`` with ``queue=shm_ring
   workers.interval_s=0 chief.interval_s=0 chief.take_batch=0 workers.forward_batch=64
   workers.local_threshold=63 record.items=all run.duration_s=<seconds> hydra.run.dir=<out>/run``, this
   checkout's framework first on its path; its output goes to ``<out>/chief.log``.
2. While it runs, samples the chief's resident memory from outside (psutil on the chief's pid) every second,
   and stamps the moment the process exits (a thread waiting on it). Both on the machine's monotonic clock,
   which is the clock of the run's own stamps (``summary.json`` ``window``).
3. Afterwards reads ``summary.json`` and the streamed ``items.parquet`` (in batches, two passes, memory
   bounded whatever the number of items) and prints:

   * items consumed in the measured window and items/s;
   * the chief's RSS: first (the first sample at or after the window's start: the chief's size once it
     runs), peak (the largest from then to its exit, the end included) and last (the last sample before it
     exited). **Flat** means peak - first <= 300 MB: what the chief holds does not grow with the length of the
     run by more than that. The absolute peak <= 300 MB is shown as a second line;
   * the end cost: seconds from the window's end (``window.end_ns``) to the process's exit (the drain, the
     reaping, the last record parts, the summary, the interpreter's exit);
   * the books: ``counts.lost == 0``, ``duplicates == 0``, ``produced == consumed + left_in_queues`` (nothing
     dropped: the queue is unbounded), and items.parquet holds one row per produced item;
   * the latency histograms against the exact quantiles of the same items (consumed in the window) computed
     from items.parquet: for p50 and p99 of end_to_end, HdrHistogram's rank r = max(1, floor(q * n / 100 +
     0.5)) (the rule of ``framework.results.latency``), the exact r-th smallest latency x, and the histogram's
     value h must satisfy x <= h <= x * (1 + RELATIVE_ERROR); the histogram's count must be n.

The exit status is 0 when the soak ran (the chief exited 0 and wrote its summary), whatever the targets
(they are printed as met or NOT met); ``--strict`` makes a missed target fail too.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import math
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    # This checkout's framework, not the one an editable install elsewhere points at (sys.path[0] is experiments/).
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

DEFAULT_SECONDS = 600.0
SAMPLE_S = 1.0
"""How often the chief's RSS is sampled from outside."""
FLAT_MB = 300.0
"""The chief's RSS is flat when its peak is at most this much above its first sample in the window."""
PEAK_MB = 300.0
"""The second memory line: the chief's absolute peak RSS."""
QUANTILES = (50, 99)
STAGE = "end_to_end"
COARSE_SHIFT = 16
"""Pass 1 counts latencies in bins of 2**16 ns (65.5 us); pass 2 counts the ns inside the bins that hold a rank."""
COARSE_CAP = 1 << 20
"""Latencies of COARSE_CAP << COARSE_SHIFT ns (about 69 s) or more share the last coarse bin (then sorted)."""
BATCH_ROWS = 1 << 20
SOAK_OVERRIDES = ["queue=shm_ring", "workers.interval_s=0", "chief.interval_s=0", "chief.take_batch=0",
                  "workers.forward_batch=64", "workers.local_threshold=63", "record.items=all", "run.progress=false",
                  "run.print_items=false"]
CONSUMED_CODE = 0
"""items.parquet's state code of a consumed item (framework.layout.ITEM_STATES[0])."""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="soak", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=float(os.environ.get("CHIEFBENCH_SOAK_S", DEFAULT_SECONDS)),
                   help="run.duration_s (default CHIEFBENCH_SOAK_S, else 600)")
    p.add_argument("--warmup", type=float, default=3.0, help="run.warmup_s, at most a quarter of --seconds (default 3)")
    p.add_argument("--out", default=None, help="directory (default outputs/soak/<date>/<time>_<pid>)")
    p.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    args = p.parse_args(argv)
    if args.seconds <= 0:
        p.error("--seconds must be > 0")
    return args


# --------------------------------------------------------------------------------------------- the run
def run_chief(seconds: float, warmup_s: float, out: Path) -> dict[str, Any]:
    """Run the chief as a subprocess, sampling its RSS every SAMPLE_S; return the samples and the exit."""
    import psutil

    run_dir = out / "run"
    cmd = [sys.executable, "-m", "framework.cli.main", *SOAK_OVERRIDES, f"run.duration_s={seconds}",
           f"run.warmup_s={warmup_s}", f"hydra.run.dir={run_dir}"]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [env.get("PYTHONPATH")])])
    out.mkdir(parents=True, exist_ok=True)
    log_path = out / "chief.log"
    samples: list[tuple[int, int]] = []
    exited = threading.Event()
    exit_ns: list[int] = []
    with open(log_path, "w") as log:
        started_ns = time.monotonic_ns()
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)

        def wait() -> None:
            proc.wait()
            exit_ns.append(time.monotonic_ns())
            exited.set()

        waiter = threading.Thread(target=wait, name="soak-wait", daemon=True)
        waiter.start()
        try:
            chief = psutil.Process(proc.pid)
            next_sample = time.monotonic()
            while not exited.is_set():
                try:
                    rss = chief.memory_info().rss
                    samples.append((time.monotonic_ns(), rss))
                except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
                    pass  # exiting: the waiter stamps it
                next_sample += SAMPLE_S
                exited.wait(max(0.0, next_sample - time.monotonic()))
        except BaseException:
            if proc.poll() is None:
                proc.terminate()  # SIGTERM: the chief stops and still writes what it has
                try:
                    proc.wait(60)
                except subprocess.TimeoutExpired:
                    proc.kill()
            raise
        waiter.join()
    return {"cmd": cmd, "run_dir": run_dir, "log": log_path, "returncode": proc.returncode, "pid": proc.pid,
            "started_ns": started_ns, "exit_ns": exit_ns[0], "samples": samples}


# --------------------------------------------------------------------------------------------- checks
def memory_figures(samples: list[tuple[int, int]], window_start_ns: int) -> dict[str, Any]:
    """The chief's RSS from the outside samples: first in the window, peak from then to the exit, last."""
    inside = [(t, r) for t, r in samples if t >= window_start_ns] or samples
    if not inside:
        return {"samples": 0, "samples_in_window": 0}
    first, last = inside[0][1], inside[-1][1]
    peak = max(r for _, r in inside)
    return {"samples": len(samples), "samples_in_window": len([1 for t, _ in samples if t >= window_start_ns]),
            "rss_first_mb": first / 1e6, "rss_peak_mb": peak / 1e6, "rss_last_mb": last / 1e6,
            "rss_growth_mb": (peak - first) / 1e6, "rss_life_peak_mb": max(r for _, r in samples) / 1e6,
            "flat": (peak - first) / 1e6 <= FLAT_MB, "peak_within": peak / 1e6 <= PEAK_MB}


def books_figures(summary: dict) -> dict[str, Any]:
    c = summary.get("counts") or {}
    produced, consumed, left = c.get("produced"), c.get("consumed"), c.get("left_in_queues")
    exact = (c.get("lost") == 0 and c.get("duplicates") == 0 and c.get("dropped", 0) == 0
             and produced is not None and produced == (consumed or 0) + (left or 0))
    return {"produced": produced, "consumed": consumed, "left_in_queues": left, "lost": c.get("lost"),
            "duplicates": c.get("duplicates"), "dropped": c.get("dropped"), "exact": bool(exact)}


def _batches(items_dir: Path, columns: list[str]):
    import pyarrow.dataset as ds

    dataset = ds.dataset(str(items_dir), format="parquet")
    yield from dataset.to_batches(columns=columns, batch_size=BATCH_ROWS)


def _latencies(batch: Any, start_ns: int) -> np.ndarray:
    """end_to_end (ns) of the batch's items that the histograms record: consumed inside the window."""
    created = batch.column("created_ns").to_numpy(zero_copy_only=False)
    consumed = batch.column("consumed_ns").to_numpy(zero_copy_only=False)
    state = batch.column("state").to_numpy(zero_copy_only=False)
    keep = (state == CONSUMED_CODE) & (consumed >= start_ns) & (created != -1)
    return (consumed[keep] - created[keep]).astype(np.int64)


def exact_quantiles(items_dir: Path, start_ns: int, quantiles=QUANTILES) -> dict[str, Any]:
    """Exact order statistics of end_to_end at HdrHistogram's ranks, from items.parquet in two bounded passes."""
    columns = ["created_ns", "consumed_ns", "state"]
    coarse = np.zeros(COARSE_CAP + 1, np.int64)
    rows = n = negative = 0
    for batch in _batches(items_dir, columns):
        rows += batch.num_rows
        d = _latencies(batch, start_ns)
        negative += int(np.count_nonzero(d < 0))
        d = d[d >= 0]
        n += d.size
        coarse += np.bincount(np.minimum(d >> COARSE_SHIFT, COARSE_CAP), minlength=COARSE_CAP + 1)
    result: dict[str, Any] = {"rows": rows, "n": n, "negative": negative, "exact_ns": {}, "rank": {}}
    if n == 0:
        return result
    cum = np.cumsum(coarse)
    wanted = {}
    for q in quantiles:
        rank = max(1, int(q * n / 100 + 0.5))  # framework.results.latency's rank rule
        b = int(np.searchsorted(cum, rank, side="left"))
        wanted[q] = (rank, b, int(cum[b - 1]) if b else 0)
    fine = {b: (np.zeros(1 << COARSE_SHIFT, np.int64) if b < COARSE_CAP else []) for _, b, _ in wanted.values()}
    for batch in _batches(items_dir, columns):
        d = _latencies(batch, start_ns)
        bins = d >> COARSE_SHIFT
        for b, acc in fine.items():
            if b < COARSE_CAP:
                inside = d[bins == b] - (b << COARSE_SHIFT)
                if inside.size:
                    acc += np.bincount(inside, minlength=1 << COARSE_SHIFT)
            else:
                acc.append(d[bins >= COARSE_CAP])
    for q, (rank, b, below) in wanted.items():
        if b < COARSE_CAP:
            within = int(np.searchsorted(np.cumsum(fine[b]), rank - below, side="left"))
            value = (b << COARSE_SHIFT) + within
        else:
            value = int(np.sort(np.concatenate(fine[b]))[rank - below - 1])
        result["exact_ns"][q] = value
        result["rank"][q] = rank
    return result


def histogram_check(summary: dict, exact: dict, relative_error: float) -> dict[str, Any]:
    stage = (summary.get("latency_ms") or {}).get(STAGE) or {}
    rows = {}
    ok = exact["n"] > 0 and stage.get("count") == exact["n"]
    for q in QUANTILES:
        ms = stage.get(f"p{q}_ms")
        x = exact["exact_ns"].get(q)
        h = round(ms * 1e6) if ms is not None else None
        within = h is not None and x is not None and x <= h <= x * (1 + relative_error)
        ok = ok and within
        rows[q] = {"histogram_ns": h, "exact_ns": x, "rank": exact["rank"].get(q), "within": within,
                   "over": (h / x - 1) if h and x else math.nan}
    return {"count": stage.get("count"), "n": exact["n"], "quantiles": rows, "within": bool(ok)}


# --------------------------------------------------------------------------------------------- the soak
def soak(seconds: float, out: Path, warmup_s: float = 3.0, echo=print) -> dict[str, Any]:
    """Run the soak; return every figure (the test reads them); print the report through ``echo``."""
    from framework.layout import ITEMS_FILE, SUMMARY_FILE
    from framework.metadata import machine_metadata
    from framework.results.latency import RELATIVE_ERROR

    warmup_s = min(warmup_s, seconds / 4)
    meta = machine_metadata("fork")
    echo(f"soak          {meta['cpu_model']}, {meta['cpu_count']} CPUs, Python {meta['python']}, "
         f"{meta['timestamp_utc']}, commit {(meta.get('git_commit') or '?')[:12]}")
    echo(f"run           shm_ring at full speed for {seconds:g} s (warm-up {warmup_s:g} s), record.items=all; the "
         f"chief's RSS sampled every {SAMPLE_S:g} s from outside; {out}")
    run = run_chief(seconds, warmup_s, out)
    result: dict[str, Any] = {"seconds": seconds, "warmup_s": warmup_s, "out": str(out), "returncode":
                              run["returncode"], "run_dir": str(run["run_dir"]), "metadata": meta,
                              "rss_samples": run["samples"]}
    summary_path = run["run_dir"] / SUMMARY_FILE
    if run["returncode"] != 0 or not summary_path.exists():
        echo(f"soak: the chief exited with {run['returncode']}"
             f"{'' if summary_path.exists() else ' and wrote no summary.json'}; see {run['log']}")
        result["ran"] = False
        return result
    result["ran"] = True
    summary = json.loads(summary_path.read_text())
    window = summary.get("window") or {}
    start_ns, end_ns = int(window["start_ns"]), int(window["end_ns"])
    result["status"] = summary.get("status")
    result["items"] = window.get("items")
    result["items_per_s"] = summary.get("throughput_items_per_s")
    result["memory"] = memory_figures(run["samples"], start_ns)
    result["own_memory"] = [m for m in summary.get("memory") or [] if m.get("role") == "chief"]
    result["end_cost_s"] = (run["exit_ns"] - end_ns) / 1e9
    result["books"] = books_figures(summary)
    t0 = time.monotonic()
    exact = exact_quantiles(run["run_dir"] / ITEMS_FILE, start_ns)
    result["exact_read_s"] = time.monotonic() - t0
    result["parquet_rows"] = exact["rows"]
    result["books"]["rows_match"] = exact["rows"] == result["books"]["produced"]
    result["books"]["exact"] = result["books"]["exact"] and result["books"]["rows_match"]
    result["histograms"] = histogram_check(summary, exact, RELATIVE_ERROR)
    result["relative_error"] = RELATIVE_ERROR
    result["targets"] = targets(result)
    for line in format_report(result):
        echo(line)
    (out / "soak.json").write_text(json.dumps({k: v for k, v in result.items() if k != "rss_samples"},
                                              indent=2, default=str))
    with open(out / "soak_rss.csv", "w") as f:
        f.write("t_ns,rss_bytes\n")
        f.writelines(f"{t},{r}\n" for t, r in run["samples"])
    echo(f"written       {out / 'soak.json'}, {out / 'soak_rss.csv'}, run directory {run['run_dir']}")
    return result


def targets(r: dict) -> list[dict]:
    m, b, h = r["memory"], r["books"], r["histograms"]
    q = h["quantiles"]
    return [
        {"target": "books exact", "wanted": "lost 0, duplicates 0, produced == consumed + left, a row per item",
         "met": b["exact"], "measured": f"lost {b['lost']}, duplicates {b['duplicates']}, produced {b['produced']:,} "
                                        f"= consumed {b['consumed']:,} + left {b['left_in_queues']:,}: "
                                        f"{'yes' if b['produced'] == b['consumed'] + b['left_in_queues'] else 'NO'}; "
                                        f"items.parquet rows {r['parquet_rows']:,}"},
        {"target": "histograms within RELATIVE_ERROR", "wanted": f"exact <= histogram <= exact x "
                                                                 f"(1 + {r['relative_error']:.3g}), p50 and p99",
         "met": h["within"], "measured": ", ".join(f"p{k} over by {_pct(v['over'])}" for k, v in q.items())
         + f"; count {h['count']} vs {h['n']}"},
        {"target": "chief RSS flat", "wanted": f"peak - first <= {FLAT_MB:.0f} MB", "met": m.get("flat"),
         "measured": f"{m.get('rss_growth_mb', math.nan):.0f} MB"},
        {"target": "chief RSS peak", "wanted": f"peak <= {PEAK_MB:.0f} MB", "met": m.get("peak_within"),
         "measured": f"{m.get('rss_peak_mb', math.nan):.0f} MB"},
    ]


def _ms(ns: int | None) -> str:
    return "-" if ns is None else f"{ns / 1e6:,.6f}"


def _pct(x: float) -> str:
    return "-" if x is None or math.isnan(x) else f"{x * 100:.3f}%"


def format_report(r: dict) -> list[str]:
    m, b, h = r["memory"], r["books"], r["histograms"]
    lines = [
        "",
        f"status        {r['status']}",
        f"items         {r['items']:,} consumed in the measured window, {r['items_per_s']:,.0f} items/s",
        f"chief RSS     first {m['rss_first_mb']:.0f} MB, peak {m['rss_peak_mb']:.0f} MB, last "
        f"{m['rss_last_mb']:.0f} MB ({m['samples_in_window']} of {m['samples']} samples in the window; first = the "
        f"first sample at or after the window's start, peak = the largest from then to the exit, the end included)",
        f"  flat        peak - first = {m['rss_growth_mb']:.0f} MB: "
        f"{'flat' if m['flat'] else 'NOT flat'} (flat: peak - first <= {FLAT_MB:.0f} MB)",
        f"  peak        {m['rss_peak_mb']:.0f} MB: {'within' if m['peak_within'] else 'NOT within'} "
        f"{PEAK_MB:.0f} MB (before the window, starting up: up to {m['rss_life_peak_mb']:.0f} MB)",
    ]
    for own in r["own_memory"]:
        lines.append(f"  its own     the chief's samples of itself: first {own['rss_first_bytes'] / 1e6:.0f} MB, "
                     f"peak {own['rss_peak_bytes'] / 1e6:.0f} MB, last {own['rss_last_bytes'] / 1e6:.0f} MB "
                     f"({own['samples']} samples)")
    lines += [
        f"end cost      {r['end_cost_s']:.2f} s from the window's end (summary window end_ns) to the chief's exit",
        f"books         {'exact' if b['exact'] else 'NOT exact'}: produced {b['produced']:,}, consumed "
        f"{b['consumed']:,}, left {b['left_in_queues']:,}, lost {b['lost']}, duplicates {b['duplicates']}, dropped "
        f"{b['dropped']}; items.parquet rows {r['parquet_rows']:,} "
        f"({'one per produced item' if b['rows_match'] else 'NOT one per produced item'})",
        f"histograms    {STAGE}, {h['n']:,} items consumed in the window (histogram count {h['count']}), exact "
        f"quantiles read from items.parquet in {r['exact_read_s']:.1f} s:",
    ]
    for q, v in h["quantiles"].items():
        x, hv = v["exact_ns"], v["histogram_ns"]
        lines.append(f"  p{q:<10} histogram {_ms(hv):>14} ms, exact {_ms(x):>14} ms (rank {v['rank']:,}), over by "
                     f"{_pct(v['over'])}: "
                     f"{'within' if v['within'] else 'NOT within'} RELATIVE_ERROR {r['relative_error']:.3g}")
    lines.append("")
    lines.append("targets")
    for t in r["targets"]:
        verdict = {True: "met", False: "NOT met", None: "could not tell"}[t["met"]]
        lines.append(f"  {verdict:>14}  {t['target']}: wanted {t['wanted']}; measured {t['measured']}")
    return lines


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    now = _dt.datetime.now()
    out = Path(args.out) if args.out else (ROOT / "outputs" / "soak" / now.strftime("%Y-%m-%d")
                                           / f"{now.strftime('%H-%M-%S')}_{os.getpid()}")
    result = soak(args.seconds, out, args.warmup)
    if not result["ran"]:
        return 1
    if args.strict and any(t["met"] is not True for t in result["targets"]):
        print("soak: a target was missed (--strict)")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
