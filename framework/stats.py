"""Statistics over result tables: median and 95 % confidence interval per configuration, and the
comparison of two sweeps with a significance test (Mann-Whitney U from scipy).

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
import pandas as pd

METRIC = "throughput_items_per_s"
CV_WARN = 0.10
"""A coefficient of variation (std dev / mean) over this is called out as a large spread."""
MACHINE_COLUMNS = ("metadata.hostname", "metadata.cpu_model", "metadata.cpu_count")
CONCURRENCY_COLUMN = "metadata.concurrent_jobs"


class ComparisonError(ValueError):
    """Two tables that should not be compared as they are; the message says why and how to force it."""


def median_ci(values: Any, level: float = 0.95) -> tuple[float, float, float]:
    """(low, high, achieved level) of a distribution-free confidence interval for the median.

    The interval is [x_(j), x_(n-j+1)] for the largest j whose binomial coverage is at least
    ``level``. With fewer than 6 values no such j exists: the interval is [min, max] and its
    achieved level (1 - 2 * 0.5**n, e.g. 0.75 for 3 values) is returned so that tables can say so.
    """
    from scipy.stats import binom

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


def aggregate(table: pd.DataFrame, keys: list[str] | None = None, metric: str = METRIC) -> pd.DataFrame:
    """One row per configuration (the values of ``keys``): runs, ok, median, 95 % CI, mean, std, cv.

    Only rows with status ok count in the figures; ``failed`` counts the others.
    """
    if keys is None:
        keys = list(table.attrs.get("chiefbench", {}).get("keys", []))
    cols = ["configuration", *keys, "runs", "ok", "failed", "median", "ci_low", "ci_high", "ci_level", "mean",
            "std", "cv", "mb_per_s_median", "p99_ms_median", "warning"]
    if table.empty or metric not in table.columns:
        return pd.DataFrame(columns=cols)
    keys = [k for k in keys if k in table.columns]
    groups = table.groupby(keys, sort=False, dropna=False) if keys else [((), table)]
    out = []
    for _, g in groups:
        ok = g[g["status"] == "ok"]
        x = pd.to_numeric(ok[metric], errors="coerce").dropna().to_numpy()
        low, high, level = median_ci(x)
        mean = float(np.mean(x)) if len(x) else math.nan
        std = float(np.std(x, ddof=1)) if len(x) > 1 else math.nan
        cv = std / mean if len(x) > 1 and mean else math.nan
        p99 = _numbers(ok, "latency_ms.end_to_end.p99_ms")
        mbs = _numbers(ok, "throughput_mb_per_s")
        warning = spread_advice(cv) if not math.isnan(cv) and cv > CV_WARN else ""
        if len(x) == 0:
            warning = "no ok run: see the error column of sweep_results"
        elif float(np.median(x)) == 0:
            warning = ("nothing was consumed in the measured window: the configuration stalled (see the warning "
                       "column of sweep_results and the run's depth.parquet)")
        first = g.iloc[0]
        out.append({"configuration": _label(first, keys), **{k: first[k] for k in keys}, "runs": len(g),
                    "ok": len(x), "failed": int(len(g) - len(ok)), "median": float(np.median(x)) if len(x) else math.nan,
                    "ci_low": low, "ci_high": high, "ci_level": level, "mean": mean, "std": std, "cv": cv,
                    "mb_per_s_median": float(mbs.median()) if len(mbs) else math.nan,
                    "p99_ms_median": float(p99.median()) if len(p99) else math.nan,
                    "warning": warning})
    return pd.DataFrame(out, columns=cols)


def format_aggregate(summary: pd.DataFrame, keys: list[str] | None = None) -> str:
    """The per-configuration table printed at the end of a sweep."""
    width = max([len("configuration"), *(len(str(c)) for c in summary["configuration"])])
    lines = [f"{'configuration':<{width}}  {'ok':>5}  {'items/s (median)':>16}  {'95% CI':>23}  {'cv':>5}  "
             f"{'MB/s':>9}  {'e2e p99 ms':>10}"]
    notes = []
    for _, r in summary.iterrows():
        ci = "-" if math.isnan(r["ci_low"]) or r["ci_level"] == 0 else f"{r['ci_low']:,.0f} .. {r['ci_high']:,.0f}"
        if not math.isnan(r["ci_level"]) and 0 < r["ci_level"] < 0.95:
            ci += "*"
        cv = "-" if math.isnan(r["cv"]) else f"{r['cv']:.0%}"
        med = "-" if math.isnan(r["median"]) else f"{r['median']:,.1f}"
        mbs = "-" if math.isnan(r["mb_per_s_median"]) else f"{r['mb_per_s_median']:,.3f}"
        p99 = "-" if math.isnan(r["p99_ms_median"]) else f"{r['p99_ms_median']:,.3f}"
        lines.append(f"{r['configuration']:<{width}}  {r['ok']:>2}/{r['runs']:<2}  {med:>16}  {ci:>23}  {cv:>5}  "
                     f"{mbs:>9}  {p99:>10}")
        if r["warning"]:
            notes.append(f"warning: {r['configuration']}: {r['warning']}")
    if any(0 < lv < 0.95 for lv in summary["ci_level"].dropna()):
        notes.append("* fewer than 6 ok repeats: the interval is [min, max], whose confidence is below 95 % "
                     "(75 % for 3 repeats). Use run.repeats=6 or more for a 95 % interval.")
    return "\n".join(lines + notes)


# --------------------------------------------------------------------------------------------- compare
def load_table(source: str | os.PathLike | pd.DataFrame) -> pd.DataFrame:
    """A result table from a DataFrame, a .parquet/.csv file, or a sweep/run directory (collected)."""
    if isinstance(source, pd.DataFrame):
        return source
    path = Path(source)
    if path.is_dir():
        from framework.sweep import RESULTS_TABLE, collect

        table_file = path / f"{RESULTS_TABLE}.parquet"
        return pd.read_parquet(table_file) if table_file.exists() else collect(path, write=False).table
    if path.suffix == ".parquet":
        return pd.read_parquet(path)
    if path.suffix == ".csv":
        return pd.read_csv(path)
    raise FileNotFoundError(f"{str(path)!r} is neither a sweep directory nor a .parquet/.csv result table")


def _keys_of(table: pd.DataFrame) -> list[str]:
    keys = table.attrs.get("chiefbench", {}).get("keys")
    if keys is not None:
        return list(keys)
    from framework.sweep import swept_keys

    return swept_keys(table, None)


def _identity(table: pd.DataFrame, columns: tuple[str, ...] | str) -> set[Any]:
    columns = (columns,) if isinstance(columns, str) else columns
    present = [c for c in columns if c in table.columns]
    if not present:
        return set()
    return {tuple(str(v) for v in row) for row in table[present].drop_duplicates().itertuples(index=False)}


def check_comparable(a: pd.DataFrame, b: pd.DataFrame) -> list[str]:
    """Reasons why a and b were measured under different conditions (empty when comparable)."""
    problems = []
    for what, cols, fix in (("machines", MACHINE_COLUMNS, "run both sweeps on the same machine"),
                            ("numbers of concurrent jobs", CONCURRENCY_COLUMN,
                             "run both with the same launcher settings (benchmarks: the basic launcher, 1 job)")):
        ia, ib = _identity(a, cols), _identity(b, cols)
        if len(ia | ib) > 1:
            problems.append(f"the tables mix {what}: A has {sorted(ia)}, B has {sorted(ib)}; {fix}")
    return problems


def min_p_value(n_a: int, n_b: int) -> float:
    """The smallest two-sided p-value an exact Mann-Whitney test can give for these sample sizes."""
    return min(1.0, 2 / math.comb(n_a + n_b, n_a)) if n_a and n_b else 1.0


def _norm(value: Any) -> str:
    """One spelling per value: 2, 2.0 and "2" are all "2"."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    try:
        f = float(value)
    except (TypeError, ValueError):
        return str(value)
    return str(int(f)) if f.is_integer() else repr(f)


def _labels(table: pd.DataFrame, keys: list[str]) -> pd.Series:
    if table.empty:
        return pd.Series(dtype=str)
    if not keys:
        return pd.Series("(all)", index=table.index)
    parts = []
    for k in keys:
        column = next((c for c in (k, f"config.{k}", f"config.{k}.name") if c in table.columns), None)
        values = table[column].map(_norm) if column else pd.Series("-", index=table.index)
        parts.append(f"{k}=" + values)
    label = parts[0]
    for part in parts[1:]:
        label = label + " " + part
    return label


def _direction(metric: str, b_higher: bool) -> str:
    """The verdict's word: throughput up is faster, latency up is slower, anything else higher or lower."""
    if metric.startswith("throughput"):
        return "faster" if b_higher else "slower"
    if metric.startswith("latency") or metric.endswith("_ms"):
        return "slower" if b_higher else "faster"
    return "higher" if b_higher else "lower"


def compare(a: str | os.PathLike | pd.DataFrame, b: str | os.PathLike | pd.DataFrame, metric: str = METRIC,
            alpha: float = 0.05, force: bool = False) -> pd.DataFrame:
    """For each configuration present in both A and B: medians, ratio B/A and a Mann-Whitney U test.

    Raises ``ComparisonError`` when the tables come from different machines or were measured under a
    different number of concurrent jobs, unless ``force=True``.
    """
    from scipy.stats import mannwhitneyu

    ta, tb = load_table(a), load_table(b)
    problems = check_comparable(ta, tb)
    if problems and not force:
        raise ComparisonError("Not comparable: " + "; ".join(problems) + ". Fix: measure again under the same "
                              "conditions, or pass force=True (chiefbench-compare --force) to compare anyway.")
    # A configuration is the values of every key either side swept; where one side did not sweep a key, its
    # value comes from that side's resolved config (config.<key>, or config.<group>.name for a group choice).
    keys = list(dict.fromkeys([*_keys_of(ta), *_keys_of(tb)]))
    ok_a, ok_b = ta[ta["status"] == "ok"], tb[tb["status"] == "ok"]
    la, lb = _labels(ok_a, keys), _labels(ok_b, keys)
    rows = []
    for config in [c for c in dict.fromkeys(la) if c in set(lb)]:
        xa = pd.to_numeric(ok_a.loc[la == config, metric], errors="coerce").dropna().to_numpy()
        xb = pd.to_numeric(ok_b.loc[lb == config, metric], errors="coerce").dropna().to_numpy()
        if not len(xa) or not len(xb):
            continue
        med_a, med_b = float(np.median(xa)), float(np.median(xb))
        p = float(mannwhitneyu(xb, xa, alternative="two-sided").pvalue) if len(xa) > 1 or len(xb) > 1 else math.nan
        significant = bool(p < alpha) if not math.isnan(p) else False
        if significant:
            verdict = _direction(metric, med_b > med_a)
        elif min_p_value(len(xa), len(xb)) >= alpha:
            verdict = f"too few repeats (need 4+ each for p<{alpha})"
        else:
            verdict = "no significant difference"
        rows.append({"configuration": config, "n_a": len(xa), "n_b": len(xb), "median_a": med_a, "median_b": med_b,
                     "ratio": med_b / med_a if med_a else math.nan, "p_value": p, "significant": significant,
                     "verdict": verdict})
    out = pd.DataFrame(rows, columns=["configuration", "n_a", "n_b", "median_a", "median_b", "ratio", "p_value",
                                      "significant", "verdict"])
    out.attrs["chiefbench"] = {"metric": metric, "alpha": alpha, "keys": keys, "forced_despite": problems}
    return out


def format_compare(result: pd.DataFrame) -> str:
    """The comparison as a table: B relative to A, per configuration."""
    meta = result.attrs.get("chiefbench", {})
    if result.empty:
        return "no configuration is present (with an ok run) in both A and B"
    width = max(len("configuration"), *(len(c) for c in result["configuration"]))
    lines = [f"{meta.get('metric', METRIC)}: B relative to A (Mann-Whitney U, two-sided, alpha "
             f"{meta.get('alpha', 0.05)})",
             f"{'configuration':<{width}}  {'median A':>12}  {'median B':>12}  {'B/A':>6}  {'p':>7}  verdict"]
    for _, r in result.iterrows():
        p = "-" if math.isnan(r["p_value"]) else f"{r['p_value']:.3f}"
        lines.append(f"{r['configuration']:<{width}}  {r['median_a']:>12,.1f}  {r['median_b']:>12,.1f}  "
                     f"{r['ratio']:>5.2f}x  {p:>7}  {r['verdict']}")
    for problem in meta.get("forced_despite", []):
        lines.append(f"warning (forced): {problem}")
    return "\n".join(lines)
