"""StageHistograms: HDR bucket layout in numpy, quantiles vs exact percentiles, merge, encode/decode."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hdrh.histogram import HdrHistogram

from framework.results.latency import (
    HIGHEST_NS,
    LOWEST_NS,
    NO_STAMP,
    RELATIVE_ERROR,
    SIGNIFICANT_DIGITS,
    STAGES,
    StageHistograms,
    _counts,
    _LAYOUT,
)


def lognormal_stamps(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    created = rng.integers(10**12, 2 * 10**12, n)
    forwarded = created + rng.lognormal(11, 1.5, n).astype(np.int64)  # ~60 µs median, long tail
    consumed = forwarded + rng.lognormal(13, 1.0, n).astype(np.int64)  # ~0.4 ms median
    return created, forwarded, consumed


def record_in_blocks(h: StageHistograms, c, f, s, block: int) -> None:
    for i in range(0, len(c), block):
        h.record_block(c[i : i + block], f[i : i + block], s[i : i + block])


def test_numpy_bucket_index_is_hdrhistograms_own():
    h = HdrHistogram(LOWEST_NS, HIGHEST_NS, SIGNIFICANT_DIGITS)
    edges = [0, 1, 2, 1023, 1024, 2047, 2048, 2049, 4095, 4096, 10**6, 10**9, HIGHEST_NS, _LAYOUT.max_recordable]
    edges += [2**k + d for k in range(1, 42) for d in (-1, 0, 1)]
    rng = np.random.default_rng(0)
    values = np.array(edges + rng.integers(0, HIGHEST_NS, 2000).tolist(), dtype=np.int64)
    expected = [h.get_counts_array_index(int(v)) for v in values]
    assert _LAYOUT.index(values).tolist() == expected
    index = np.arange(0, _LAYOUT.counts_len, 37)
    assert _LAYOUT.lowest_value(index).tolist() == [h.get_value_from_index(int(i)) for i in index]
    assert _LAYOUT.highest_equivalent(index).tolist() == [
        h.get_highest_equivalent_value(h.get_value_from_index(int(i))) for i in index
    ]


def test_block_recording_equals_record_value_and_hdr_percentiles():
    c, f, s = lognormal_stamps(5000, seed=1)
    h = StageHistograms()
    record_in_blocks(h, c, f, s, block=700)  # both the np.add.at and the bincount paths
    h.record_block(c[:3000], f[:3000], s[:3000])
    ref = HdrHistogram(LOWEST_NS, HIGHEST_NS, SIGNIFICANT_DIGITS)
    for v in np.concatenate([s - c, s[:3000] - c[:3000]]).tolist():
        ref.record_value(v)
    mine = h.histograms["end_to_end"]
    assert np.array_equal(_counts(mine), _counts(ref))
    assert mine.get_total_count() == ref.get_total_count() == 8000
    assert mine.get_max_value() == ref.get_max_value()
    q = h.quantiles((50, 90, 99, 99.9, 100))["end_to_end"]
    for p in (50, 90, 99, 99.9, 100):
        assert q[f"p{p:g}_ms"] == ref.get_value_at_percentile(p) / 1e6


@pytest.mark.parametrize("block", [1000, 50_000])
def test_quantiles_match_exact_percentiles_within_the_relative_error(block):
    n = 200_000
    c, f, s = lognormal_stamps(n, seed=2)
    h = StageHistograms()
    record_in_blocks(h, c, f, s, block)
    qs = (50, 95, 99, 99.9, 100)
    got = h.quantiles(qs)
    for stage, exact_values in {"local_wait": f - c, "global_wait": s - f, "end_to_end": s - c}.items():
        ordered = np.sort(exact_values)
        assert got[stage]["count"] == n
        for p in qs:
            value_ns = got[stage][f"p{p:g}_ms"] * 1e6
            # HDR reports the top of the bucket holding the item of rank max(1, round(p/100 * n)):
            rank = max(int(p * n / 100 + 0.5), 1)
            exact = ordered[rank - 1]
            assert exact <= round(value_ns) <= exact * (1 + RELATIVE_ERROR), (stage, p)
            if p <= 99:  # numpy's inverted_cdf picks the same or the neighbouring order statistic
                ref = np.percentile(exact_values, p, method="inverted_cdf")
                assert abs(value_ns / ref - 1) <= 2 * RELATIVE_ERROR, (stage, p)
        top = ordered[-1]
        assert top <= got[stage]["max_ms"] * 1e6 <= top * (1 + RELATIVE_ERROR)


def test_small_latencies_are_exact():
    h = StageHistograms()
    values = np.arange(0, 2048, dtype=np.int64)
    h.record_values("local_wait", values)
    q = h.quantiles((50, 100))["local_wait"]
    assert q["p50_ms"] * 1e6 == pytest.approx(np.sort(values)[int(0.5 * 2048 + 0.5) - 1])
    assert q["max_ms"] * 1e6 == pytest.approx(2047)


def test_items_without_a_stamp_are_skipped_per_stage():
    created = np.array([0, 0, 0, 0, NO_STAMP], dtype=np.int64)
    forwarded = np.array([10, NO_STAMP, 30, NO_STAMP, 50], dtype=np.int64)
    consumed = np.array([100, 200, NO_STAMP, NO_STAMP, 500], dtype=np.int64)
    h = StageHistograms()
    h.record_block(created, forwarded, consumed)
    q = h.quantiles((50, 100))
    assert q["local_wait"]["count"] == 2  # items 0 and 2
    assert q["global_wait"]["count"] == 2  # items 0 and 4
    assert q["end_to_end"]["count"] == 2  # items 0 and 1
    assert q["end_to_end"]["max_ms"] == 200 / 1e6
    assert q["global_wait"]["max_ms"] == 450 / 1e6
    assert all(q[s]["out_of_range"] == 0 for s in STAGES)


def test_negative_and_huge_latencies_are_counted_out_of_range_not_recorded():
    h = StageHistograms()
    h.record_values("global_wait", np.array([-5, 100, HIGHEST_NS * 10, 200], dtype=np.int64))
    q = h.quantiles()["global_wait"]
    assert q["count"] == 2 and q["out_of_range"] == 2
    assert q["max_ms"] == 200 / 1e6
    empty = h.quantiles()["local_wait"]
    assert empty["count"] == 0 and empty["p50_ms"] is None and empty["max_ms"] is None


def test_merge_equals_recording_everything_into_one():
    c, f, s = lognormal_stamps(60_000, seed=3)
    whole = StageHistograms()
    record_in_blocks(whole, c, f, s, 10_000)
    whole.record_values("local_wait", np.array([-1]))
    parts = [StageHistograms() for _ in range(3)]
    for i, part in enumerate(parts):
        record_in_blocks(part, c[i::3], f[i::3], s[i::3], 4_000)
    parts[1].record_values("local_wait", np.array([-1]))
    merged = StageHistograms().merge(parts[0]).merge(parts[1]).merge(parts[2])
    for stage in STAGES:
        assert np.array_equal(_counts(merged.histograms[stage]), _counts(whole.histograms[stage]))
    assert merged.quantiles() == whole.quantiles()


def test_encode_decode_round_trip_through_json_and_merge_of_decoded():
    c, f, s = lognormal_stamps(50_000, seed=4)
    a, b = StageHistograms(), StageHistograms()
    record_in_blocks(a, c[:30_000], f[:30_000], s[:30_000], 10_000)
    record_in_blocks(b, c[30_000:], f[30_000:], s[30_000:], 10_000)
    b.record_values("end_to_end", np.array([-3]))
    text = json.dumps({"latency": a.encode()})
    a2 = StageHistograms.decode(json.loads(text)["latency"])
    for stage in STAGES:
        assert np.array_equal(_counts(a2.histograms[stage]), _counts(a.histograms[stage]))
    assert a2.quantiles() == a.quantiles()
    b2 = StageHistograms.decode(json.loads(json.dumps(b.encode())))
    both = StageHistograms()
    record_in_blocks(both, c, f, s, 10_000)
    both.record_values("end_to_end", np.array([-3]))
    assert a2.merge(b2).quantiles() == both.quantiles()
    empty = StageHistograms.decode(json.loads(json.dumps(StageHistograms().encode())))
    assert empty.quantiles() == StageHistograms().quantiles()


def test_decode_refuses_what_encode_did_not_make():
    with pytest.raises(ValueError, match="format must be"):
        StageHistograms.decode({"stages": {}})
    coarse = HdrHistogram(LOWEST_NS, HIGHEST_NS, 2)
    coarse.record_value(1000)
    encoded = StageHistograms().encode()
    encoded["stages"]["global_wait"] = coarse.encode().decode("ascii")
    with pytest.raises(ValueError, match="same settings"):
        StageHistograms.decode(encoded)
