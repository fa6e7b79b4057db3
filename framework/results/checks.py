"""Checks over numbers a run produced: does the series of repeats, or the instrument itself, behave?

Pure functions: numbers in, a verdict out; no processes, no files, no clock. Three questions.

* Did the machine drift during a series of repeats? ``trend`` looks for a monotonic change of a
  figure in run order (Kendall's tau against the repeat index, with its p-value, and the Theil-Sen
  slope for the size of the change).
* Do the repeats fall into two groups? ``bimodal`` finds the widest split of the sorted values and
  asks whether it is wider than one group's own scatter would make it (a test against a single
  normal group by simulation).
* Does the instrument agree with itself? ``littles_law`` checks, within the measured window, that
  the time-averaged depth of the global queue as sampled equals the arrival rate times the mean
  time in queue computed from the items' own stamps, within LITTLE_TOLERANCE. A run where it does
  not hold has a recording or sampling fault, or a window too short for the sampling interval.

``repeat_warnings`` and ``littles_law_warning`` put the verdicts in words with what to do. This module
imports nothing from ``framework``.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

TREND_MIN_VALUES = 5
"""Fewer repeats than this are not tested for a trend (Kendall's test cannot reach p < 0.05 with 4)."""
TREND_P = 0.05
"""A trend is flagged when Kendall's test of value against run order gives a p-value under this..."""
TREND_MIN_CHANGE = 0.10
"""...and the fitted change over the whole series is more than this fraction of the median value."""
BIMODAL_MIN_GROUP = 2
"""Each of the two groups must hold at least this many values (one value apart is an outlier, not a group)."""
BIMODAL_P = 0.01
"""Two groups are flagged when a single normal group gives a separation as wide this rarely or less..."""
BIMODAL_MIN_REL_GAP = 0.10
"""...and the two groups' medians differ by more than this fraction of the lower median."""
BIMODAL_NULL_SIMS = 2000
"""Simulated single-group series behind the bimodality p-value (its resolution is 1 / this)."""
BIMODAL_SEED = 20240601
"""Seed of those simulations: the same values always give the same verdict."""
LITTLE_TOLERANCE = 0.05
"""Little's law is said to hold when sampled depth and the items' sojourn integral agree within this fraction."""


def _finite(values: Sequence[float] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The finite values (as float) and their positions in run order."""
    x = np.asarray(values, dtype=float).ravel()
    keep = np.isfinite(x)
    return x[keep], np.flatnonzero(keep).astype(float)


# --------------------------------------------------------------------------------------------------
# Trend in run order

def trend(values: Sequence[float]) -> dict[str, Any] | None:
    """A monotonic drift of the values in run order, or None with fewer than TREND_MIN_VALUES.

    ``values`` are in the order the repeats ran; non-finite ones are skipped (their positions keep
    counting). Kendall's tau of value against position tests for any monotonic drift (distribution
    free, robust to an outlier); the Theil-Sen slope (median of pairwise slopes) sizes it.
    ``relative_change`` is slope x (last position - first position) / median: the drift across the
    series as a fraction of the typical value. ``flagged`` when p < TREND_P and
    |relative_change| > TREND_MIN_CHANGE.
    """
    from scipy import stats  # imported when used: it costs a run's start-up most of a second

    x, pos = _finite(values)
    if len(x) < TREND_MIN_VALUES:
        return None
    if np.all(x == x[0]):
        tau, p = 0.0, 1.0
    else:
        res = stats.kendalltau(pos, x)
        tau, p = float(res.statistic), float(res.pvalue)
    slope = float(stats.theilslopes(x, pos).slope)
    median = float(np.median(x))
    change = slope * float(pos[-1] - pos[0]) / abs(median) if median != 0 else None
    flagged = bool(p < TREND_P and change is not None and abs(change) > TREND_MIN_CHANGE)
    return {"n": int(len(x)), "tau": tau, "p_value": p, "slope_per_repeat": slope, "median": median,
            "relative_change": change, "direction": "up" if slope > 0 else "down" if slope < 0 else "flat",
            "flagged": flagged}


# --------------------------------------------------------------------------------------------------
# Two groups

def _separation(sorted_x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each row of sorted values: the widest split leaving BIMODAL_MIN_GROUP on each side, and the
    separation there, (mean of the upper group - mean of the lower) / pooled within-group std dev."""
    n = sorted_x.shape[1]
    k_lo, k_hi = BIMODAL_MIN_GROUP, n - BIMODAL_MIN_GROUP  # size of the lower group, inclusive range
    gaps = sorted_x[:, k_lo:k_hi + 1] - sorted_x[:, k_lo - 1:k_hi]
    k = k_lo + np.argmax(gaps, axis=1)                      # lower group = the first k values
    s1 = np.concatenate([np.zeros((len(sorted_x), 1)), np.cumsum(sorted_x, axis=1)], axis=1)
    s2 = np.concatenate([np.zeros((len(sorted_x), 1)), np.cumsum(sorted_x ** 2, axis=1)], axis=1)
    rows = np.arange(len(sorted_x))
    sum_lo, sq_lo = s1[rows, k], s2[rows, k]
    sum_hi, sq_hi = s1[:, n] - sum_lo, s2[:, n] - sq_lo
    ss = np.maximum(0.0, sq_lo - sum_lo ** 2 / k) + np.maximum(0.0, sq_hi - sum_hi ** 2 / (n - k))
    diff = sum_hi / (n - k) - sum_lo / k
    sd = np.sqrt(ss / (n - 2))
    with np.errstate(divide="ignore", invalid="ignore"):
        sep = np.where(sd > 0, diff / np.where(sd > 0, sd, 1.0), np.where(diff > 0, np.inf, 0.0))
    return k, sep


def bimodal(values: Sequence[float]) -> dict[str, Any] | None:
    """Two groups among the values, or None with fewer than 2 x BIMODAL_MIN_GROUP finite values.

    The rule. Sort the values; among the splits that leave at least BIMODAL_MIN_GROUP values on each
    side, take the widest gap between neighbours. Measure the separation there: the difference of
    the two groups' means over their pooled within-group standard deviation (a t-like statistic).
    The widest gap of any sample looks like a separation, so the statistic is judged against what
    a single normal group of the same size gives: its p-value is the share of BIMODAL_NULL_SIMS
    simulated normal series (seeded, so the verdict is reproducible; the statistic does not depend
    on the mean or the scale) whose separation is as large or larger. ``flagged`` when p < BIMODAL_P
    and the upper group's median exceeds the lower's by more than BIMODAL_MIN_REL_GAP of it (so a
    very tight series is not split over a difference that does not matter).

    Heavy-tailed single groups (a few slow outliers) separate more often than normal ones; the
    minimum group size and the relative-gap floor guard against calling those two groups.
    """
    x, _ = _finite(values)
    n = len(x)
    if n < 2 * BIMODAL_MIN_GROUP:
        return None
    xs = np.sort(x)
    k, sep = _separation(xs[None, :])
    k, sep = int(k[0]), float(sep[0])
    rng = np.random.default_rng(BIMODAL_SEED)
    _, null = _separation(np.sort(rng.standard_normal((BIMODAL_NULL_SIMS, n)), axis=1))
    p = float((1 + np.count_nonzero(null >= sep)) / (BIMODAL_NULL_SIMS + 1))
    low, high = xs[:k], xs[k:]
    m_low, m_high = float(np.median(low)), float(np.median(high))
    rel_gap = (m_high - m_low) / abs(m_low) if m_low != 0 else None
    flagged = bool(p < BIMODAL_P and rel_gap is not None and rel_gap > BIMODAL_MIN_REL_GAP)
    return {"n": n, "split_at": float((xs[k - 1] + xs[k]) / 2), "gap": float(xs[k] - xs[k - 1]),
            "low_n": int(k), "low_median": m_low, "high_n": int(n - k), "high_median": m_high,
            "separation": sep, "p_value": p, "relative_gap": rel_gap, "flagged": flagged}


def repeat_warnings(values: Sequence[float], label: str = "throughput") -> list[str]:
    """Warnings in words about a series of repeats (in run order) of one figure named ``label``."""
    out = []
    t = trend(values)
    if t and t["flagged"]:
        down = t["relative_change"] < 0
        out.append(
            f"{label} drifted {'down' if down else 'up'} {abs(t['relative_change']):.0%} across {t['n']} repeats "
            f"in run order (Kendall tau {t['tau']:+.2f}, p={t['p_value']:.2g}; flagged at p < {TREND_P:g} and a "
            f"change over {TREND_MIN_CHANGE:.0%}): the machine got {'slower' if down else 'faster'} during the "
            f"series (other load, frequency scaling, throttling, a cache or file warming up). A median over "
            f"these repeats depends on when they ran; shuffle or interleave the configurations' repeats "
            f"(run.order=random, the default, or run.order=interleaved) so that each sees the same drift, add "
            f"warm-up (run.warmup_s), or repeat "
            f"the series on a quieter machine.")
    b = bimodal(values)
    if b and b["flagged"]:
        out.append(
            f"{label} falls into two groups: {b['low_n']} repeats around {b['low_median']:.4g} and {b['high_n']} "
            f"around {b['high_median']:.4g} ({b['relative_gap']:.0%} apart; a single group separates this "
            f"widely with p={b['p_value']:.2g}, flagged under {BIMODAL_P:g}). Something differed between "
            f"repeats (which cores the processes landed on, another job starting, a turbo or power state); "
            f"the median hides it. Look at what the slow repeats share (their machine_noise), pin the "
            f"processes to cores, or run more repeats on a quieter machine.")
    return out


# --------------------------------------------------------------------------------------------------
# Little's law on the global queue

def _step_integral(t_ns: np.ndarray, depth: np.ndarray, start_ns: float, end_ns: float) -> float | None:
    """The integral over [start, end] of the step function through the samples, in item x ns.

    A sample's value holds from its time until the next sample. Before the first sample inside the
    window the value is that of the last sample before the window, or, if there is none, that of
    the first sample (held backwards: an approximation).
    """
    if len(t_ns) == 0:
        return None
    order = np.argsort(t_ns, kind="stable")
    t, d = t_ns[order], depth[order]
    before = np.searchsorted(t, start_ns, side="right") - 1
    v0 = d[before] if before >= 0 else d[0]
    inside = (t > start_ns) & (t < end_ns)
    edges = np.concatenate([[start_ns], t[inside], [end_ns]])
    heights = np.concatenate([[v0], d[inside]])
    return float(np.sum(heights * np.diff(edges)))


def littles_law(depth_t_ns: Sequence[float], depth: Sequence[float], arrivals_ns: Sequence[float],
                departures_ns: Sequence[float], start_ns: float, end_ns: float) -> dict[str, Any]:
    """Little's law, L = lambda x W, on a queue within the window [start_ns, end_ns].

    Inputs: depth samples (``depth_t_ns``, ``depth``), and per item its arrival and departure stamps
    (``departures_ns`` NaN, or any value at or after end_ns, for an item still queued at the end).

    What is exact and what is approximated:

    * Each item's time in the queue is clipped to the window: from max(arrival, start) to
      min(departure, end). The sum of the clipped times over the window length is exactly the
      time-averaged number of items in the queue, ``L_exact`` (the integral of the true depth).
    * ``lambda_per_s`` = items arriving within [start, end) / window length.
    * ``W_s`` = total clipped item-time / arrivals within the window. With this definition
      L_exact = lambda x W holds exactly; the approximation is in W's meaning: the time of items
      carried into the window is attributed to the window's arrivals, which makes W differ from
      the mean sojourn of those arrivals by a boundary term of the order of W / window length.
      ``W_arrivals_s``, the mean clipped sojourn of the items that arrived in the window, is
      given alongside; ``boundary_error`` is the relative difference lambda x W_arrivals vs
      L_exact: large means the window is short compared with the time items spend queued.
    * ``L`` is the time average of the sampled depth (a step function through the samples). The
      depth is computed from counters and sampled every few ms, so L is approximate; that is what
      is checked: ``relative_error`` = |L - lambda_W| / lambda_W with lambda_W = lambda x W
      (= L_exact), and ``holds`` when it is at most LITTLE_TOLERANCE. None where it cannot be said
      (no depth sample; an empty queue throughout counts as holding when the samples say 0 too).

    Raises ValueError for a window that ends before it starts or stamps of different lengths.
    """
    if not end_ns > start_ns:
        raise ValueError(f"littles_law needs a window with end_ns > start_ns (got {start_ns}..{end_ns}): "
                         f"pass the measured window's bounds")
    arr = np.asarray(arrivals_ns, dtype=float).ravel()
    dep = np.asarray(departures_ns, dtype=float).ravel()
    if arr.shape != dep.shape:
        raise ValueError(f"littles_law needs one departure stamp per arrival (got {arr.size} arrivals and "
                         f"{dep.size} departures): use NaN for an item still queued")
    t_ns = np.asarray(depth_t_ns, dtype=float).ravel()
    dq = np.asarray(depth, dtype=float).ravel()
    if t_ns.shape != dq.shape:
        raise ValueError(f"littles_law needs one time per depth sample (got {t_ns.size} and {dq.size})")
    length_ns = float(end_ns - start_ns)
    length_s = length_ns / 1e9
    dep = np.where(np.isnan(dep), np.inf, dep)
    enter = np.maximum(arr, start_ns)
    leave = np.minimum(dep, end_ns)
    clipped_ns = np.maximum(0.0, leave - enter)
    item_ns = float(clipped_ns.sum())
    arrived = (arr >= start_ns) & (arr < end_ns)
    n_arrived = int(np.count_nonzero(arrived))
    L_exact = item_ns / length_ns
    lam = n_arrived / length_s
    W = item_ns / 1e9 / n_arrived if n_arrived else None
    W_arr = float(clipped_ns[arrived].mean()) / 1e9 if n_arrived else None
    lambda_W = lam * W if W is not None else None
    ok = np.isfinite(t_ns) & np.isfinite(dq)
    integral = _step_integral(t_ns[ok], dq[ok], float(start_ns), float(end_ns))
    L = integral / length_ns if integral is not None else None
    boundary = abs(lam * W_arr - L_exact) / L_exact if W_arr is not None and L_exact > 0 else None
    if L is None:
        rel, holds = None, None
    elif L_exact > 0:
        rel = abs(L - L_exact) / L_exact
        holds = bool(rel <= LITTLE_TOLERANCE)
    else:
        rel = 0.0 if L == 0 else math.inf
        holds = bool(L == 0)
    return {"L": L, "L_exact": L_exact, "lambda_per_s": lam, "W_s": W, "lambda_W": lambda_W,
            "W_arrivals_s": W_arr, "boundary_error": boundary, "relative_error": rel, "holds": holds,
            "arrivals": n_arrived, "window_s": length_s,
            "depth_samples": int(np.count_nonzero((t_ns >= start_ns) & (t_ns <= end_ns)))}


def littles_law_warning(result: dict[str, Any] | None) -> str | None:
    """A sentence when Little's law did not hold on the global queue; None when it held or cannot be said."""
    if not result or result.get("holds") is not False:
        return None
    rel = result.get("relative_error")
    lam_w = result.get("lambda_W")
    rhs = f"{lam_w:.3g}" if lam_w is not None else f"{result.get('L_exact', 0.0):.3g} (no arrival in the window)"
    return (f"Little's law does not hold on the global queue in the measured window: the time-averaged sampled "
            f"depth is L={result['L']:.3g} items, but arrival rate x mean time in queue from the items' own stamps "
            f"is {rhs} (off by {rel:.0%}, over LITTLE_TOLERANCE={LITTLE_TOLERANCE:.0%}). The instrument disagrees "
            f"with itself: the depth samples or the item stamps were recorded wrongly (a recording or sampling "
            f"fault), or the window ({result.get('window_s', float('nan')):.3g} s, {result.get('depth_samples')} "
            f"depth samples) is too short for the depth sampling interval. Lengthen the measured window "
            f"(run.duration_s) and treat this run's queue figures with suspicion.")
