"""The report's figures (matplotlib, Agg backend). Each function returns a Figure, or None when the
data does not call for it (for example no payload-size figure when the sweep kept one payload)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from framework.layout import DEPTH_FILE, SUMMARY_FILE  # noqa: E402
from framework.results.latency import StageHistograms  # noqa: E402
from framework.results.stats import median_ci  # noqa: E402
from framework.results.stream import read_table  # noqa: E402

DESIGN, WORKERS, BYTES = "config.queue.name", "config.workers.count", "item_bytes"
STAGES = ("local_wait", "global_wait", "end_to_end")
"""Latencies drawn per curve at most (a seeded sample beyond that keeps the figure light)."""

plt.rcParams.update({"figure.dpi": 100, "axes.grid": True, "grid.alpha": 0.3, "axes.spines.top": False,
                     "axes.spines.right": False, "font.size": 9})


def _human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:g} {unit}" if unit == "B" else f"{n:.3g} {unit}"
        n /= 1024
    return str(n)


def _bands(ok: pd.DataFrame, by: list[str], metric: str) -> pd.DataFrame:
    rows = []
    for key, g in ok.groupby(by, sort=True):
        x = pd.to_numeric(g[metric], errors="coerce").dropna().to_numpy()
        if not len(x):
            continue
        low, high, level = median_ci(x)
        key = key if isinstance(key, tuple) else (key,)
        rows.append({**dict(zip(by, key)), "median": float(np.median(x)), "low": low, "high": high, "n": len(x)})
    return pd.DataFrame(rows)


def throughput_vs_workers(ok: pd.DataFrame) -> plt.Figure | None:
    """Median items/s against worker count, one line per design, a band for the CI; a panel per payload size."""
    if ok.empty or WORKERS not in ok or ok[WORKERS].nunique() < 2:
        return None
    sizes = sorted(ok[BYTES].dropna().unique()) if BYTES in ok else [None]
    sizes = sizes[:6]
    cols = min(3, len(sizes))
    rows = math.ceil(len(sizes) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.3 * rows), squeeze=False)
    for ax, size in zip(axes.flat, sizes):
        part = ok if size is None else ok[ok[BYTES] == size]
        bands = _bands(part, [DESIGN, WORKERS], "throughput_items_per_s")
        for design, b in bands.groupby(DESIGN):
            b = b.sort_values(WORKERS)
            line, = ax.plot(b[WORKERS], b["median"], marker="o", label=design)
            ax.fill_between(b[WORKERS], b["low"], b["high"], color=line.get_color(), alpha=0.2)
        ax.set_xlabel("workers")
        ax.set_ylabel("items/s (median, 95% CI band)")
        ax.set_xticks(sorted(part[WORKERS].unique()))
        if size is not None:
            ax.set_title(f"payload {_human_bytes(size)}")
        ax.set_ylim(bottom=0)
    for ax in list(axes.flat)[len(sizes):]:
        ax.set_visible(False)
    axes.flat[0].legend(fontsize=8)
    fig.suptitle("Throughput against worker count, one line per queue design")
    fig.tight_layout()
    return fig


def throughput_per_configuration(summary: pd.DataFrame) -> plt.Figure | None:
    """Median items/s per configuration with its CI, when the sweep did not vary the worker count."""
    s = summary.dropna(subset=["median"])
    if s.empty:
        return None
    fig, ax = plt.subplots(figsize=(7.5, 0.35 * len(s) + 1.4))
    y = np.arange(len(s))
    err = np.vstack([s["median"] - s["ci_low"], s["ci_high"] - s["median"]])
    ax.barh(y, s["median"], xerr=err, color="#4c72b0", alpha=0.85, capsize=3)
    ax.set_yticks(y, s["configuration"], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("items/s (median, CI whiskers)")
    ax.set_title("Throughput per configuration")
    fig.tight_layout()
    return fig


def throughput_vs_payload(ok: pd.DataFrame) -> plt.Figure | None:
    """MB/s and items/s against bytes per item, one line per design (only where the sweep varied it)."""
    if ok.empty or BYTES not in ok or ok[BYTES].nunique() < 2:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for ax, metric, label in ((axes[0], "throughput_mb_per_s", "MB/s"), (axes[1], "throughput_items_per_s", "items/s")):
        # With several worker counts, the best count per design and size (what a user would pick).
        bands = _bands(ok, [DESIGN, BYTES] + ([WORKERS] if WORKERS in ok else []), metric)
        if WORKERS in bands:
            bands = bands.loc[bands.groupby([DESIGN, BYTES])["median"].idxmax()]
        for design, b in bands.groupby(DESIGN):
            b = b.sort_values(BYTES)
            line, = ax.plot(b[BYTES], b["median"], marker="o", label=design)
            ax.fill_between(b[BYTES], b["low"], b["high"], color=line.get_color(), alpha=0.2)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("bytes per item")
        ax.set_ylabel(f"{label} (median, best worker count)")
    axes[0].legend(fontsize=8)
    fig.suptitle("Throughput against payload size")
    fig.tight_layout()
    return fig


def _histograms(run_dir: Path, summary: dict[str, Any] | None = None) -> StageHistograms | None:
    """A run's latency histograms over its measured window (summary.json carries them), or None."""
    if summary is None:
        path = run_dir / SUMMARY_FILE
        summary = json.loads(path.read_text()) if path.exists() else {}
    encoded = summary.get("latency_histograms")
    return StageHistograms.decode(encoded) if encoded else None


def _cdf(ax: plt.Axes, h: StageHistograms, stage: str, label: str) -> bool:
    """Draw one stage's CDF from its histogram (bucket edges: within the histogram's relative error)."""
    x, y = h.cdf(stage)
    keep = x > 0
    if not keep.any():
        return False
    ax.step(x[keep], y[keep], where="post", label=label)
    return True


def latency_cdf(groups: dict[str, list[Path]], title: str) -> plt.Figure | None:
    """End-to-end latency CDF per group (queue design), its runs' histograms merged."""
    fig, ax = plt.subplots(figsize=(7, 3.8))
    drawn = 0
    for name, dirs in groups.items():
        merged = None
        for d in dirs:
            h = _histograms(d)
            if h is not None:
                merged = h if merged is None else merged.merge(h)
        if merged is not None and _cdf(ax, merged, "end_to_end", name):
            drawn += 1
    if not drawn:
        plt.close(fig)
        return None
    ax.set_xscale("log")
    ax.set_xlabel("end-to-end latency (ms, log scale)")
    ax.set_ylabel("fraction of items")
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def stage_cdf(run_dir: Path, summary: dict[str, Any]) -> plt.Figure | None:
    """One run's latency CDF per stage: local wait, global wait, end to end."""
    h = _histograms(run_dir, summary)
    if h is None or not h.count("end_to_end"):
        return None
    fig, ax = plt.subplots(figsize=(7, 3.8))
    for stage in STAGES:
        _cdf(ax, h, stage, stage)
    ax.set_xscale("log")
    ax.set_xlabel("latency (ms, log scale)")
    ax.set_ylabel("fraction of items")
    ax.set_title("Latency distribution per stage (measured window)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def stage_split(table: pd.DataFrame, by: str | None) -> plt.Figure | None:
    """Median local wait and global wait (p50 and p99), stacked, per design (or per stage for one run)."""
    cols = {s: (f"latency_ms.{s}.p50_ms", f"latency_ms.{s}.p99_ms") for s in ("local_wait", "global_wait")}
    if table.empty or any(c not in table for pair in cols.values() for c in pair):
        return None
    groups = table.groupby(by) if by else [("this run", table)]
    names, rows = [], []
    for name, g in groups:
        names.append(str(name))
        rows.append({f"{s}.{q}": pd.to_numeric(g[c], errors="coerce").median()
                     for s, pair in cols.items() for q, c in zip(("p50", "p99"), pair)})
    df = pd.DataFrame(rows, index=names)
    if df.isna().all().all():
        return None
    fig, axes = plt.subplots(1, 2, figsize=(10, 0.45 * len(names) + 1.8), sharey=True)
    y = np.arange(len(names))
    for ax, q in zip(axes, ("p50", "p99")):
        local, glob = df[f"local_wait.{q}"].fillna(0), df[f"global_wait.{q}"].fillna(0)
        ax.barh(y, local, color="#dd8452", label="local wait (worker queue)")
        ax.barh(y, glob, left=local, color="#4c72b0", label="global wait (global queue)")
        ax.set_xlabel(f"{q} latency (ms)")
        ax.set_title(f"{q}: where the time goes")
    axes[0].set_yticks(y, names, fontsize=8)
    axes[0].invert_yaxis()
    axes[0].legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    return fig


def depth_over_time(run_dir: Path, label: str) -> plt.Figure | None:
    """Global queue depth over time (and each worker's local queue) for one run."""
    path = run_dir / DEPTH_FILE
    if not path.exists():
        return None
    depth = read_table(path)
    if depth.empty:
        return None
    fig, ax = plt.subplots(figsize=(8, 3.6))
    g = depth[depth["queue"] == "global"]
    marker = "o" if len(g) < 50 else None  # few samples (a busy chief samples rarely): show each one
    ax.step(g["elapsed_s"], g["depth"], where="post", color="#c44e52", linewidth=1.8, marker=marker,
            markersize=4, label=f"global queue ({len(g)} samples)")
    for w, part in depth[depth["queue"] == "local"].groupby("worker"):
        ax.step(part["elapsed_s"], part["depth"], where="post", linewidth=0.8, alpha=0.6, label=f"worker {w} local")
    ax.set_xlabel("seconds since the start barrier")
    ax.set_ylabel("items queued")
    ax.set_title(f"Queue depth over time: {label}")
    ax.legend(fontsize=7, ncol=2)
    ax.set_ylim(bottom=0)
    fig.tight_layout()
    return fig


INTERVAL, LOCAL_T, GLOBAL_T = "config.workers.interval_s", "config.workers.local_threshold", "config.chief.global_threshold"


def latency_vs_load(ok: pd.DataFrame) -> plt.Figure | None:
    """End-to-end latency and served throughput against offered load (where the worker interval varied)."""
    need = (INTERVAL, "stability.arrival_items_per_s", "latency_ms.end_to_end.p50_ms", "latency_ms.end_to_end.p99_ms")
    if ok.empty or any(c not in ok for c in need) or ok[INTERVAL].nunique() < 2:
        return None
    by = [DESIGN, INTERVAL] if DESIGN in ok else [INTERVAL]
    med = ok.groupby(by)[list(need[1:]) + ["throughput_items_per_s"]].median().reset_index()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for design, g in (med.groupby(DESIGN) if DESIGN in med else [("all", med)]):
        g = g.sort_values("stability.arrival_items_per_s")
        line, = axes[0].plot(g["stability.arrival_items_per_s"], g["latency_ms.end_to_end.p50_ms"], marker="o",
                             label=f"{design} p50")
        axes[0].plot(g["stability.arrival_items_per_s"], g["latency_ms.end_to_end.p99_ms"], marker="^",
                     linestyle="--", color=line.get_color(), label=f"{design} p99")
        axes[1].plot(g["stability.arrival_items_per_s"], g["throughput_items_per_s"], marker="o",
                     color=line.get_color(), label=design)
    offered = med["stability.arrival_items_per_s"].dropna()
    offered = offered[offered > 0]
    if len(offered):
        axes[1].plot([offered.min(), offered.max()], [offered.min(), offered.max()], color="#999", linewidth=0.8,
                     linestyle=":", label="served = offered")
    for ax in axes:
        ax.set_xlabel("offered load: items/s arriving on the global queue")
        ax.set_xscale("log")
        ax.set_yscale("log")
    axes[0].set_ylabel("end-to-end latency (ms)")
    axes[0].set_title("Latency against offered load")
    axes[1].set_ylabel("items/s taken by the chief")
    axes[1].set_title("Served against offered load")
    axes[0].legend(fontsize=7)
    axes[1].legend(fontsize=7)
    fig.tight_layout()
    return fig


def _mean_global_depth(run_dir: Path) -> float:
    path = run_dir / DEPTH_FILE
    if not path.exists():
        return math.nan
    d = read_table(path, columns=["queue", "depth"])
    d = d[d["queue"] == "global"]
    return float(d["depth"].mean()) if len(d) else math.nan


def thresholds(ok: pd.DataFrame, base: Path) -> plt.Figure | None:
    """End-to-end p50 latency and mean global depth against the local threshold, one line per global one."""
    if ok.empty or LOCAL_T not in ok or GLOBAL_T not in ok or (ok[LOCAL_T].nunique() < 2 and ok[GLOBAL_T].nunique() < 2):
        return None
    ok = ok.assign(depth_mean=[_mean_global_depth(base / d) for d in ok["directory"]])
    med = ok.groupby([GLOBAL_T, LOCAL_T])[["latency_ms.end_to_end.p50_ms", "depth_mean"]].median().reset_index()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for g_t, g in med.groupby(GLOBAL_T):
        g = g.sort_values(LOCAL_T)
        axes[0].plot(g[LOCAL_T], g["latency_ms.end_to_end.p50_ms"], marker="o", label=f"global threshold {g_t}")
        axes[1].plot(g[LOCAL_T], g["depth_mean"], marker="o", label=f"global threshold {g_t}")
    for ax in axes:
        ax.set_xlabel("workers.local_threshold")
        ax.set_xscale("symlog", linthresh=1)
    axes[0].set_ylabel("end-to-end p50 latency (ms)")
    axes[0].set_title("Latency against thresholds")
    axes[1].set_ylabel("mean global queue depth (items)")
    axes[1].set_title("Global queue depth against thresholds")
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    return fig
