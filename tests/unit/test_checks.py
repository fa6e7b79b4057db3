"""framework.checks: trend and bimodality over repeats, Little's law on a queue (pure functions, no processes)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from framework.results import checks
from framework.results.checks import (BIMODAL_MIN_GROUP, BIMODAL_MIN_REL_GAP, LITTLE_TOLERANCE, TREND_MIN_CHANGE,
                              TREND_MIN_VALUES, bimodal, littles_law, littles_law_warning, repeat_warnings, trend)

BASE = 1000.0
"""A typical throughput of the synthetic series (items/s); every test scales from it."""
NOISE_CV = 0.01
"""Scatter of the synthetic series around their shape, as a fraction of BASE (well below every threshold)."""
SEEDS = range(10)
"""Independent random series per no-false-alarm test."""


def noisy(shape: np.ndarray, seed: int) -> np.ndarray:
    return shape + np.random.default_rng(seed).normal(0.0, NOISE_CV * BASE, len(shape))


# -- trend ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("n", [TREND_MIN_VALUES, 2 * TREND_MIN_VALUES])
def test_a_clear_drift_down_is_flagged_with_its_size(n):
    drop = 2 * TREND_MIN_CHANGE
    values = noisy(BASE * (1 - drop * np.linspace(0, 1, n)), seed=n)
    t = trend(values)
    assert t["flagged"] and t["direction"] == "down" and t["tau"] < 0
    assert t["p_value"] < checks.TREND_P
    assert t["relative_change"] == pytest.approx(-drop / (1 - drop / 2), abs=drop / 4)


def test_a_drift_up_is_flagged_up():
    n = 2 * TREND_MIN_VALUES
    t = trend(noisy(BASE * (1 + 2 * TREND_MIN_CHANGE * np.linspace(0, 1, n)), seed=1))
    assert t["flagged"] and t["direction"] == "up" and t["relative_change"] > TREND_MIN_CHANGE


@pytest.mark.parametrize("seed", SEEDS)
def test_flat_noise_is_not_a_trend(seed):
    t = trend(noisy(np.full(3 * TREND_MIN_VALUES, BASE), seed))
    assert t is not None and not t["flagged"]
    assert abs(t["relative_change"]) < TREND_MIN_CHANGE


def test_a_significant_but_small_drift_is_not_flagged():
    n = 3 * TREND_MIN_VALUES
    values = BASE * (1 - TREND_MIN_CHANGE / 2 * np.linspace(0, 1, n))  # perfectly monotonic: p is tiny
    t = trend(values)
    assert t["p_value"] < checks.TREND_P and not t["flagged"]


def test_trend_needs_enough_values_and_skips_missing_ones():
    assert trend([BASE] * (TREND_MIN_VALUES - 1)) is None
    drop = 2 * TREND_MIN_CHANGE
    values = list(BASE * (1 - drop * np.linspace(0, 1, TREND_MIN_VALUES + 1)))
    values.insert(2, math.nan)
    t = trend(values)
    assert t["n"] == TREND_MIN_VALUES + 1 and t["flagged"]
    assert trend([BASE] * TREND_MIN_VALUES)["flagged"] is False  # constant: no trend, no error


# -- bimodal ----------------------------------------------------------------------------------------

def two_groups(n_low: int, n_high: int, rel_gap: float, seed: int) -> np.ndarray:
    shape = np.r_[np.full(n_low, BASE), np.full(n_high, BASE * (1 + rel_gap))]
    return np.random.default_rng(seed).permutation(noisy(shape, seed))


@pytest.mark.parametrize("n_low,n_high", [(3, 3), (5, 3), (4, 8)])
def test_two_clusters_are_flagged_and_split_where_they_meet(n_low, n_high):
    values = two_groups(n_low, n_high, 2 * BIMODAL_MIN_REL_GAP, seed=n_low + n_high)
    b = bimodal(values)
    assert b["flagged"] and b["p_value"] < checks.BIMODAL_P
    assert (b["low_n"], b["high_n"]) == (n_low, n_high)
    assert BASE < b["split_at"] < BASE * (1 + 2 * BIMODAL_MIN_REL_GAP)
    assert b["relative_gap"] == pytest.approx(2 * BIMODAL_MIN_REL_GAP, abs=BIMODAL_MIN_REL_GAP / 2)


@pytest.mark.parametrize("seed", SEEDS)
def test_one_cluster_is_not_two(seed):
    b = bimodal(noisy(np.full(12, BASE), seed))
    assert b is not None and not b["flagged"]


def test_one_outlier_is_not_a_group():
    values = noisy(np.r_[np.full(7, BASE), [BASE * (1 + 3 * BIMODAL_MIN_REL_GAP)]], seed=3)
    b = bimodal(values)
    assert b["low_n"] >= BIMODAL_MIN_GROUP and b["high_n"] >= BIMODAL_MIN_GROUP
    assert not b["flagged"]


def test_two_tight_groups_closer_than_the_floor_are_not_flagged():
    values = np.r_[np.full(4, BASE), np.full(4, BASE * (1 + BIMODAL_MIN_REL_GAP / 2))]
    b = bimodal(values + np.arange(8) * 1e-6 * BASE)
    assert b["p_value"] < checks.BIMODAL_P and not b["flagged"]


def test_bimodal_needs_two_groups_worth_of_values_and_is_reproducible():
    assert bimodal([BASE] * (2 * BIMODAL_MIN_GROUP - 1)) is None
    values = two_groups(3, 3, 2 * BIMODAL_MIN_REL_GAP, seed=7)
    assert bimodal(values) == bimodal(list(values))


# -- warnings in words ------------------------------------------------------------------------------

def test_repeat_warnings_say_what_happened_and_what_to_do():
    n = 2 * TREND_MIN_VALUES
    drift = repeat_warnings(noisy(BASE * (1 - 2 * TREND_MIN_CHANGE * np.linspace(0, 1, n)), seed=2), "throughput")
    assert len(drift) == 1
    assert drift[0].startswith("throughput drifted down") and f"across {n} repeats" in drift[0]
    assert "Kendall tau" in drift[0] and "run.order=interleaved" in drift[0]
    groups = repeat_warnings(two_groups(4, 4, 2 * BIMODAL_MIN_REL_GAP, seed=5), "throughput")
    assert any("two groups" in w and "4 repeats around" in w for w in groups)
    assert repeat_warnings(noisy(np.full(n, BASE), seed=4), "throughput") == []


# -- Little's law ----------------------------------------------------------------------------------

ARRIVAL_PER_S = 2000.0
"""Arrival rate of the simulated queue."""
SERVICE_PER_S = 2500.0
"""Service rate of its single server (utilisation ARRIVAL/SERVICE = 0.8: a queue that builds up)."""
ITEMS = 8000
"""Items simulated (about 4 s of arrivals)."""
SAMPLE_EVERY_NS = 1_000_000
"""Depth sampling interval of the simulated instrument (1 ms)."""


def mm1(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Arrival and departure times (ns) of a FIFO single-server queue with Poisson arrivals and
    exponential service, by the vectorised Lindley recursion: d_i = S_i + max_{j<=i}(a_j - S_{j-1})."""
    rng = np.random.default_rng(seed)
    arrivals = np.cumsum(rng.exponential(1e9 / ARRIVAL_PER_S, ITEMS))
    service = rng.exponential(1e9 / SERVICE_PER_S, ITEMS)
    done = np.cumsum(service)
    departures = done + np.maximum.accumulate(arrivals - (done - service))
    return arrivals, departures


def sampled_depth(arrivals, departures, every_ns=SAMPLE_EVERY_NS, departures_counted=1.0):
    """The depth as a counter-based instrument samples it: arrivals so far minus departures so far."""
    t = np.arange(0.0, arrivals[-1], every_ns)
    gone = np.searchsorted(np.sort(departures), t, side="right")
    return t, np.searchsorted(arrivals, t, side="right") - np.floor(gone * departures_counted)


def window(arrivals):
    """A measured window that leaves a warm-up before it and items still queued after it."""
    return arrivals[len(arrivals) // 10], arrivals[-len(arrivals) // 10]


def test_littles_law_holds_on_a_simulated_queue():
    arr, dep = mm1()
    start, end = window(arr)
    t, depth = sampled_depth(arr, dep)
    queued_at_end = np.where(dep < end, dep, np.nan)  # as recorded at the end: still queued = no stamp
    r = littles_law(t, depth, arr, queued_at_end, start, end)
    assert r["holds"] and r["relative_error"] <= LITTLE_TOLERANCE
    assert r["lambda_W"] == pytest.approx(r["L_exact"], rel=1e-12)  # the identity is exact by construction
    assert r["lambda_W"] == pytest.approx(r["lambda_per_s"] * r["W_s"])
    in_window = (arr >= start) & (arr < end)
    assert r["arrivals"] == np.count_nonzero(in_window)
    assert r["lambda_per_s"] == pytest.approx(np.count_nonzero(in_window) / ((end - start) / 1e9))
    assert r["boundary_error"] < LITTLE_TOLERANCE  # a window long against the time in queue
    assert littles_law_warning(r) is None


@pytest.mark.parametrize("fault", ["depth_too_high", "lost_departures"])
def test_littles_law_fails_on_a_corrupted_depth_series(fault):
    arr, dep = mm1(seed=1)
    start, end = window(arr)
    if fault == "depth_too_high":
        t, depth = sampled_depth(arr, dep)
        depth = depth * (1 + 4 * LITTLE_TOLERANCE)
    else:  # the departure counter misses a small share of departures: the sampled depth creeps up
        t, depth = sampled_depth(arr, dep, departures_counted=1 - LITTLE_TOLERANCE / 10)
    r = littles_law(t, depth, arr, dep, start, end)
    assert r["holds"] is False and r["relative_error"] > LITTLE_TOLERANCE
    warning = littles_law_warning(r)
    assert warning is not None and "Little's law does not hold" in warning and "LITTLE_TOLERANCE" in warning


def test_sampling_at_every_event_gives_the_exact_integral_with_clipping():
    arr, dep = mm1(seed=2)
    arr, dep = arr[:200], dep[:200]
    start, end = arr[50] + 1.0, dep[150] - 1.0   # items queued across both ends of the window
    events = np.sort(np.r_[arr, dep])
    depth = np.searchsorted(arr, events, side="right") - np.searchsorted(np.sort(dep), events, side="right")
    r = littles_law(events, depth, arr, np.where(dep < end, dep, np.nan), start, end)
    clipped = np.clip(np.minimum(dep, end) - np.maximum(arr, start), 0, None)
    assert r["L_exact"] == pytest.approx(clipped.sum() / (end - start))
    assert r["L"] == pytest.approx(r["L_exact"], rel=1e-9)
    assert r["W_s"] == pytest.approx(clipped.sum() / 1e9 / np.count_nonzero((arr >= start) & (arr < end)))
    assert r["holds"]


def test_an_item_queued_before_and_after_the_window_counts_its_time_inside():
    start, end = 10.0, 20.0
    span = end - start
    # one item there before the window and still queued after it; one arriving inside and leaving inside
    arr = np.array([start - span, start + span / 4])
    dep = np.array([np.nan, start + span / 2])
    r = littles_law([start - span, start + span / 4, start + span / 2], [1, 2, 1], arr, dep, start, end)
    item_time = span + span / 4
    assert r["L_exact"] == pytest.approx(item_time / span)
    assert r["arrivals"] == 1 and r["W_s"] == pytest.approx(item_time / 1e9)
    assert r["W_arrivals_s"] == pytest.approx(span / 4 / 1e9)
    assert r["L"] == pytest.approx(r["L_exact"]) and r["holds"]


def test_littles_law_edge_cases():
    with pytest.raises(ValueError, match="end_ns > start_ns"):
        littles_law([0], [0], [], [], 5, 5)
    with pytest.raises(ValueError, match="one departure stamp per arrival"):
        littles_law([0], [0], [1, 2], [3], 0, 10)
    empty = littles_law([0.0, 5.0], [0, 0], [], [], 0, 10)
    assert empty["holds"] is True and empty["W_s"] is None and littles_law_warning(empty) is None
    ghost = littles_law([0.0, 5.0], [1, 1], [], [], 0, 10)  # depth says 1, no item was ever queued
    assert ghost["holds"] is False and littles_law_warning(ghost) is not None
    unsampled = littles_law([], [], [1.0], [2.0], 0, 10)
    assert unsampled["L"] is None and unsampled["holds"] is None and littles_law_warning(unsampled) is None
