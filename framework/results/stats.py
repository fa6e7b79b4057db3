"""Statistics over result tables: median and 95 % confidence interval per configuration, and the
spread advice (the comparison of two sweeps is ``framework.results.compare``).

Rigour, as pyperf and asv practise it: every repeat is a fresh set of processes; the figure per
configuration is the median of its repeats, with a distribution-free confidence interval (order
statistics of the binomial distribution, exact for any distribution of throughputs); a spread over
10 % of the mean is called out with what to do about it; and two tables measured on different
machines, or under a different number of concurrent jobs, are not compared unless asked to.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from framework.lazy import lazy_module
from framework.results import checks, tables

pd = lazy_module("pandas")  # a run that reads no table does not import pandas

METRIC = "throughput_items_per_s"
CV_WARN = 0.10
"""A coefficient of variation (std dev / mean) over this is called out as a large spread."""
MACHINE_COLUMNS = ("metadata.hostname", "metadata.cpu_model", "metadata.cpu_count")
CONCURRENCY_COLUMN = "metadata.concurrent_jobs"


def median_ci(values: Any, level: float = 0.95) -> tuple[float, float, float]:
    """(low, high, achieved level) of a distribution-free confidence interval for the median.

    The interval is [x_(j), x_(n-j+1)] for the largest j whose binomial coverage is at least
    ``level``. With fewer than 6 values no such j exists: the interval is [min, max] and its
    achieved level (1 - 2 * 0.5**n, e.g. 0.75 for 3 values) is returned so that tables can say so.
    """
    from scipy.stats import binom  # imported when used: a run's start-up does not pay for it

    x = np.sort(np.asarray(values, dtype=float))
    x = x[~np.isnan(x)]
    n = len(x)
    if n == 0:
        return math.nan, math.nan, math.nan
    if n == 1:
        return float(x[0]), float(x[0]), 0.0
    best_j, best_cov = 1, 1 - 2 * binom.cdf(0, n, 0.5)
    for j in range(1, n // 2 + 1):
        coverage = 1 - 2 * binom.cdf(j - 1, n, 0.5)  # P(x_(j) <= median <= x_(n-j+1))
        if coverage >= level:
            best_j, best_cov = j, coverage
        else:
            break
    return float(x[best_j - 1]), float(x[n - best_j]), float(best_cov)


def spread_advice(cv: float) -> str:
    return (f"large spread: the std dev is {cv:.0%} of the mean (over {CV_WARN:.0%}). Run more repeats "
            f"(run.repeats=10), on a quieter machine (close other programs; check metadata.load_average), "
            f"and one job at a time (the basic launcher, not joblib)")


def _label(row: Any, keys: list[str]) -> str:
    return " ".join(f"{k}={row[k]}" for k in keys) if keys else "(all)"


def _numbers(df: pd.DataFrame, column: str) -> pd.Series:
    """The column's numbers (missing values and a missing column give an empty series)."""
    if column not in df:
        return pd.Series(dtype=float)
    return pd.to_numeric(df[column], errors="coerce").dropna()


def _median(df: pd.DataFrame, column: str) -> float:
    values = _numbers(df, column)
    return float(values.median()) if len(values) else math.nan


def aggregate(table: pd.DataFrame, keys: list[str] | None = None, metric: str = METRIC) -> pd.DataFrame:
    """One row per configuration (the values of ``keys``): runs, ok, median, 95 % CI, mean, std, cv.

    Only rows with status ok count in the figures; ``failed`` counts the others.
    """
    if keys is None:
        keys = list(table.attrs.get("chiefbench", {}).get("keys", []))
    cols = ["configuration", *keys, "runs", "ok", "failed", "median", "ci_low", "ci_high", "ci_level", "mean",
            "std", "cv", "normalised_median", "normalised_cv", "mb_per_s_median", "p99_ms_median",
            "steal_pct_median", "other_cpu_pct_median", "warning"]
    if table.empty or metric not in table.columns:
        return pd.DataFrame(columns=cols)
    keys = [k for k in keys if k in table.columns]
    groups = table.groupby(keys, sort=False, dropna=False) if keys else [((), table)]
    out = []
    for _, g in groups:
        ok = g[g["status"] == "ok"]
        if {"job", "repeat"} <= set(ok.columns):
            ok = ok.sort_values(["job", "repeat"], kind="stable")  # run order: the drift checks need it
        x = pd.to_numeric(ok[metric], errors="coerce").dropna().to_numpy()
        nx = _numbers(ok, f"normalised.{metric}").to_numpy()
        low, high, level = median_ci(x)
        mean = float(np.mean(x)) if len(x) else math.nan
        std = float(np.std(x, ddof=1)) if len(x) > 1 else math.nan
        cv = std / mean if len(x) > 1 and mean else math.nan
        p99 = _numbers(ok, "latency_ms.end_to_end.p99_ms")
        mbs = _numbers(ok, "throughput_mb_per_s")
        warnings = [spread_advice(cv)] if not math.isnan(cv) and cv > CV_WARN else []
        warnings += checks.repeat_warnings(x, metric)
        warning = "; ".join(warnings)
        if len(x) == 0:
            warning = "no ok run: see the error column of sweep_results"
        elif float(np.median(x)) == 0:
            warning = ("nothing was consumed in the measured window: the configuration stalled (see the warning "
                       "column of sweep_results and the run's depth.parquet)")
        first = g.iloc[0]
        out.append({"configuration": _label(first, keys), **{k: first[k] for k in keys}, "runs": len(g),
                    "ok": len(x), "failed": int(len(g) - len(ok)), "median": float(np.median(x)) if len(x) else math.nan,
                    "ci_low": low, "ci_high": high, "ci_level": level, "mean": mean, "std": std, "cv": cv,
                    "normalised_median": float(np.median(nx)) if len(nx) else math.nan,
                    "normalised_cv": float(np.std(nx, ddof=1) / np.mean(nx)) if len(nx) > 1 and np.mean(nx) else math.nan,
                    "mb_per_s_median": float(mbs.median()) if len(mbs) else math.nan,
                    "steal_pct_median": _median(ok, "machine_noise.steal_pct"),
                    "other_cpu_pct_median": _median(ok, "machine_noise.other_cpu_pct"),
                    "p99_ms_median": float(p99.median()) if len(p99) else math.nan,
                    "warning": warning})
    return pd.DataFrame(out, columns=cols)


def format_aggregate(summary: pd.DataFrame, keys: list[str] | None = None) -> str:
    """The per-configuration table printed at the end of a sweep."""
    headers = ["configuration", "ok", "items/s (median)", "95% CI", "cv", "MB/s", "e2e p99 ms", "noise"]
    rows, notes = [], []
    for _, r in summary.iterrows():
        ci = "-" if math.isnan(r["ci_low"]) or r["ci_level"] == 0 else f"{r['ci_low']:,.0f} .. {r['ci_high']:,.0f}"
        if not math.isnan(r["ci_level"]) and 0 < r["ci_level"] < 0.95:
            ci += "*"
        noise = sum(v for v in (r.get("steal_pct_median"), r.get("other_cpu_pct_median"))
                    if v is not None and not math.isnan(v)) if "other_cpu_pct_median" in r else math.nan
        rows.append([str(r["configuration"]), f"{r['ok']}/{r['runs']}", _num(r["median"], ",.1f"), ci,
                     _num(r["cv"], ".0%"), _num(r["mb_per_s_median"], ",.3f"), _num(r["p99_ms_median"], ",.3f"),
                     "-" if math.isnan(r.get("other_cpu_pct_median", math.nan)) else f"{noise:.0f}%"])
        if r["warning"]:
            notes.append(f"warning: {r['configuration']}: {r['warning']}")
    if "other_cpu_pct_median" in summary and summary["other_cpu_pct_median"].notna().any():
        notes.append("noise: the median share of the machine that steal and other processes took during the "
                     "configuration's runs (see machine_noise in each summary.json)")
    if any(0 < lv < 0.95 for lv in summary["ci_level"].dropna()):
        notes.append("* fewer than 6 ok repeats: the interval is [min, max], whose confidence is below 95 % "
                     "(75 % for 3 repeats). Use run.repeats=6 or more for a 95 % interval.")
    table = tables.render(headers, rows, [False, True, True, True, True, True, True, True])
    return "\n".join([table, *notes])


def _num(value: float, spec: str) -> str:
    return "-" if value is None or math.isnan(value) else format(value, spec)
