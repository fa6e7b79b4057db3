"""``compare``: two sweeps (or result tables) side by side, per configuration in both: medians, the ratio
B/A and a Mann-Whitney U test (scipy). Tables measured on different machines or under different
concurrency are refused unless ``force=True``: the comparison would measure the machine.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import mannwhitneyu

from framework.lazy import lazy_module
from framework.errors import ComparisonError
from framework.layout import RESULTS_TABLE
from framework.results import tables
from framework.results.collect import collect, swept_keys
from framework.results.stats import CONCURRENCY_COLUMN, MACHINE_COLUMNS, METRIC

pd = lazy_module("pandas")  # a run that reads no table does not import pandas


def load_table(source: str | os.PathLike | pd.DataFrame) -> pd.DataFrame:
    """A result table from a DataFrame, a .parquet/.csv file, or a sweep/run directory (collected)."""
    if isinstance(source, pd.DataFrame):
        return source
    path = Path(source)
    if path.is_dir():
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
    return swept_keys(table, None)


def _identity(table: pd.DataFrame, columns: tuple[str, ...] | str) -> set[Any]:
    columns = (columns,) if isinstance(columns, str) else columns
    present = [c for c in columns if c in table.columns]
    if not present:
        return set()
    return {tuple(str(v) for v in row) for row in table[present].drop_duplicates().itertuples(index=False)}


NOISE_COLUMNS = ("machine_noise.steal_pct", "machine_noise.other_cpu_pct")
"""What else the machine did while a run was measured (percent of the machine's CPU, see framework.noise)."""
NOISE_DIFF_PCT = 10.0
"""Two sides whose median steal + other-process CPU differ by more than this many points of the machine were
measured under very different noise: the comparison would measure the machine, not the designs."""


def noise_level(table: pd.DataFrame) -> float | None:
    """The median share of the machine taken by steal and other processes over a table's ok runs (percent)."""
    ok = table[table["status"] == "ok"] if "status" in table.columns else table
    present = [c for c in NOISE_COLUMNS if c in ok.columns]
    if not present or ok.empty:
        return None
    total = sum(pd.to_numeric(ok[c], errors="coerce").fillna(0.0) for c in present)
    return float(total.median())


def check_comparable(a: pd.DataFrame, b: pd.DataFrame) -> list[str]:
    """Reasons why a and b were measured under different conditions (empty when comparable)."""
    problems = []
    na, nb = noise_level(a), noise_level(b)
    if na is not None and nb is not None and abs(na - nb) > NOISE_DIFF_PCT:
        problems.append(f"the sides were measured under very different noise: steal and other processes took "
                        f"{na:.0f}% of the machine during A's runs (median) and {nb:.0f}% during B's, a difference "
                        f"over NOISE_DIFF_PCT={NOISE_DIFF_PCT:.0f} points; measure the noisier side again on a "
                        f"quieter machine, or compare the normalised figures (--normalised), which correct for the "
                        f"machine's speed but not for the contention")
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
    metric = metric.removeprefix("normalised.")
    if metric.startswith("throughput"):
        return "faster" if b_higher else "slower"
    if metric.startswith("latency") or metric.endswith("_ms"):
        return "slower" if b_higher else "faster"
    return "higher" if b_higher else "lower"


def compare(a: str | os.PathLike | pd.DataFrame, b: str | os.PathLike | pd.DataFrame, metric: str = METRIC,
            alpha: float = 0.05, force: bool = False, normalised: bool = False) -> pd.DataFrame:
    """For each configuration present in both A and B: medians, ratio B/A and a Mann-Whitney U test.

    ``normalised=True`` compares the figures rescaled by each run's calibration (``normalised.<metric>``:
    what the machine would have given at the reference speed) instead of the raw ones.
    Raises ``ComparisonError`` when the tables come from different machines, were measured under a
    different number of concurrent jobs or under very different noise, unless ``force=True``.
    """
    ta, tb = load_table(a), load_table(b)
    raw_metric = metric
    if normalised:
        metric = f"normalised.{metric}"
        missing = [side for side, t in (("A", ta), ("B", tb)) if metric not in t.columns]
        if missing:
            raise ComparisonError(f"no {metric} column in {' and '.join(missing)}: those results carry no "
                                  f"calibration. Fix: compare the raw figures (without --normalised), or measure "
                                  f"again with this version of chiefbench")
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
    out.attrs["chiefbench"] = {"metric": metric, "figures": "normalised" if normalised else "raw",
                               "raw_metric": raw_metric, "alpha": alpha, "keys": keys, "forced_despite": problems,
                               "noise_pct": {"A": noise_level(ta), "B": noise_level(tb)}}
    return out


def format_compare(result: pd.DataFrame) -> str:
    """The comparison as a table: B relative to A, per configuration."""
    meta = result.attrs.get("chiefbench", {})
    if result.empty:
        return "no configuration is present (with an ok run) in both A and B"
    noise = meta.get("noise_pct") or {}
    noise_text = ", ".join(f"{side} {value:.0f}%" for side, value in noise.items() if value is not None)
    heading = [f"{meta.get('metric', METRIC)}: B relative to A (Mann-Whitney U, two-sided, alpha "
               f"{meta.get('alpha', 0.05)}); {meta.get('figures', 'raw')} figures"
               + (" (rescaled by each run's calibration to the reference machine)"
                  if meta.get("figures") == "normalised"
                  else " (as measured; --normalised rescales them by each run's calibration)"),
               *([f"machine noise (median steal + other processes): {noise_text}"] if noise_text else [])]
    rows = [[str(r["configuration"]), f"{r['median_a']:,.1f}", f"{r['median_b']:,.1f}", f"{r['ratio']:.2f}x",
             "-" if math.isnan(r["p_value"]) else f"{r['p_value']:.3f}", str(r["verdict"])]
            for _, r in result.iterrows()]
    lines = [*heading, tables.render(["configuration", "median A", "median B", "B/A", "p", "verdict"], rows,
                                     [False, True, True, True, True, False])]
    for problem in meta.get("forced_despite", []):
        lines.append(f"warning (forced): {problem}")
    return "\n".join(lines)
