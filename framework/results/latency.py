"""Latency histograms per pipeline stage: bounded memory, mergeable, JSON-serialisable.

Role: instead of keeping every item's stamps to compute latency percentiles at the end, the chief's
recorder (``framework.engine.record``) records each block of items into three HdrHistograms (``hdrhistogram`` package, 1 ns .. 1 hour at
3 significant digits, ~33k counters, 260 KB each, whatever the number of items). A summary.json
carries them encoded (HdrHistogram's compressed base64 V2 format), and sweeps merge the
histograms of repeats before taking quantiles (merging quantiles instead would be wrong).

Data flow::

    block of items (int64 ns stamps, NO_STAMP = -1 where a stamp never happened)
        created_ns, forwarded_ns, consumed_ns
            |  per stage, numpy only:  d = later - earlier  (items with a NO_STAMP skipped)
            |  bucket index of each d (HDR's log-linear layout, computed with numpy)
            |  np.bincount / np.add.at  -->  HdrHistogram.counts (a numpy view, no copy)
            v
    StageHistograms {local_wait, global_wait, end_to_end}
        .quantiles()  -> {stage: {p50_ms, p95_ms, p99_ms, p99.9_ms, max_ms, count, out_of_range}}
        .merge(other) -> adds counts (repeats, workers)
        .encode()     -> dict of base64 strings  --summary.json-->  StageHistograms.decode(...)

Stages: local_wait = forwarded - created (time on the worker before the forward), global_wait =
consumed - forwarded (time in the queue to the chief), end_to_end = consumed - created.

Why not ``HdrHistogram.record_value``: it is pure Python, ~2 µs per value, i.e. ~6 s per million
items for three stages. The package keeps its counters in a ctypes array, which numpy can view
without a copy, so the bucket indices are computed per block with numpy (the same formula as the
package's ``_counts_index_for``, checked against it in the tests) and added with one bincount;
the package's own encode/decode/percentile code then works on the result unchanged.

Measured on this machine (2 shared cores, numpy 2.4, hdrhistogram 0.10.8), three stages of
log-normal latencies, best of 3::

    python -c "h = StageHistograms(); t = perf_counter()
               for i in range(0, 10**6, B): h.record_block(c[i:i+B], f[i:i+B], s[i:i+B])"

* record_block: 34 ms per million items in blocks of 10,000 or more (all three stages),
  164 ms per million in blocks of 1,000, 710 ms per million in blocks of 100 (a fixed ~70 µs
  of numpy calls per block: record per chief batch, not per small message);
  HdrHistogram.record_value in a Python loop: ~4,800 ms per million items (three stages).
* quantiles(): under 1 ms; encode(): 2.4 ms and 45 KB of JSON for a million log-normal items
  per stage (size grows with the number of distinct buckets used, not with the item count).

Accuracy: a reported quantile is the highest value of the HDR bucket holding the item of rank
max(1, round(q/100 * count)) (HdrHistogram's value-at-percentile rule), so it is never below that
exact order statistic and at most RELATIVE_ERROR above it (exact below 2048 ns).
"""

from __future__ import annotations

import math

import numpy as np
from hdrh.histogram import HdrHistogram

NO_STAMP = -1
"""Stamp value of an event that never happened (an item dropped before being forwarded, ...)."""

LOWEST_NS = 1
"""Smallest latency, in nanoseconds, the histograms tell apart from 0."""

HIGHEST_NS = 3_600_000_000_000
"""Largest latency, in nanoseconds (1 hour), the histograms are sized for."""

SIGNIFICANT_DIGITS = 3
"""HdrHistogram precision: 3 significant decimal digits (2048 sub-buckets per power of two)."""

RELATIVE_ERROR = 1 / 1024
"""Largest relative overstatement of a reported latency (bucket width / bucket start): 0.098%."""

STAGES = ("local_wait", "global_wait", "end_to_end")
"""Stage names, in the order their histograms are reported."""

QUANTILES = (50, 95, 99, 99.9)
"""Default percentiles reported by quantiles()."""

FORMAT = "hdrhistogram-v2-base64"
"""Tag of the encoded form, checked by decode()."""

NS_PER_MS = 1e6
"""Nanoseconds per millisecond."""

BINCOUNT_MIN_ITEMS = 512
"""Blocks of at least this many latencies are added with np.bincount, smaller ones with np.add.at
(measured crossover: add.at wins below ~500 items, bincount by 15% at 1,000)."""


def _new_histogram() -> HdrHistogram:
    return HdrHistogram(LOWEST_NS, HIGHEST_NS, SIGNIFICANT_DIGITS)


class _Layout:
    """HdrHistogram's bucket layout as numpy functions (value <-> counts index)."""

    def __init__(self, h: HdrHistogram) -> None:
        self.unit_magnitude = h.unit_magnitude
        self.half_magnitude = h.sub_bucket_half_count_magnitude
        self.half_count = h.sub_bucket_half_count
        self.mask = h.sub_bucket_mask
        self.counts_len = h.counts_len
        top = int(self.lowest_value(np.array([self.counts_len - 1]))[0])
        self.max_recordable = int(self.highest_equivalent(np.array([self.counts_len - 1]))[0])
        assert top <= self.max_recordable < 2**53  # frexp below is exact in this range

    def index(self, values: np.ndarray) -> np.ndarray:
        """Counts index of each value (0 <= value <= max_recordable), as _counts_index_for."""
        # With e the bit length of (value | mask): bucket = e - (unit + half + 1), and the index
        # ((bucket + 1) << half) + (value >> (bucket + unit)) - half_count, folded into in-place steps.
        _, bit_length = np.frexp((values | self.mask).astype(np.float64))
        index = values >> (bit_length - (self.half_magnitude + 1))
        index += bit_length.astype(np.int64) << self.half_magnitude
        index -= ((self.unit_magnitude + self.half_magnitude) << self.half_magnitude) + self.half_count
        return index

    def _bucket(self, index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        bucket = (index >> self.half_magnitude) - 1
        sub_bucket = (index & (self.half_count - 1)) + self.half_count
        low = bucket < 0
        sub_bucket = np.where(low, sub_bucket - self.half_count, sub_bucket)
        return np.where(low, 0, bucket), sub_bucket

    def lowest_value(self, index: np.ndarray) -> np.ndarray:
        """Smallest value counted at each index (HdrHistogram.get_value_from_index)."""
        bucket, sub_bucket = self._bucket(index)
        return sub_bucket << (bucket + self.unit_magnitude)

    def highest_equivalent(self, index: np.ndarray) -> np.ndarray:
        """Largest value counted at each index (get_highest_equivalent_value of its lowest value)."""
        bucket, sub_bucket = self._bucket(index)
        return (sub_bucket << (bucket + self.unit_magnitude)) + (1 << (bucket + self.unit_magnitude)) - 1


_LAYOUT = _Layout(_new_histogram())


def _both(a: np.ndarray | None, b: np.ndarray | None) -> np.ndarray | None:
    """The items with both stamps (None: every item has them)."""
    return b if a is None else a if b is None else a & b


def _counts(h: HdrHistogram) -> np.ndarray:
    """The histogram's counters as a writable uint64 numpy view (no copy)."""
    return np.ctypeslib.as_array(h.counts)


class StageHistograms:
    """One HdrHistogram of latencies (ns) per stage in STAGES, recorded per block with numpy."""

    def __init__(self) -> None:
        self.histograms: dict[str, HdrHistogram] = {s: _new_histogram() for s in STAGES}
        self.out_of_range: dict[str, int] = {s: 0 for s in STAGES}
        """Per stage, latencies not recorded: negative (clock trouble) or above HIGHEST_NS."""

    # ----- recording -----

    def record_block(self, created_ns: np.ndarray, forwarded_ns: np.ndarray, consumed_ns: np.ndarray) -> None:
        """Record a block of items' stamps (int64 ns, NO_STAMP where an event never happened)."""
        created_ns = np.asarray(created_ns, dtype=np.int64)
        forwarded_ns = np.asarray(forwarded_ns, dtype=np.int64)
        consumed_ns = np.asarray(consumed_ns, dtype=np.int64)
        if not (len(created_ns) == len(forwarded_ns) == len(consumed_ns)):
            raise ValueError(
                f"record_block got {len(created_ns)} created, {len(forwarded_ns)} forwarded and "
                f"{len(consumed_ns)} consumed stamps: pass one stamp per item in each array (NO_STAMP=-1 if none)"
            )
        # A NO_STAMP is -1, and every real stamp is positive: the minimum says whether a column needs a mask.
        created_all, forwarded_all, consumed_all = (int(a.min()) != NO_STAMP if a.size else True
                                                    for a in (created_ns, forwarded_ns, consumed_ns))
        has_created = None if created_all else created_ns != NO_STAMP
        has_forwarded = None if forwarded_all else forwarded_ns != NO_STAMP
        has_consumed = None if consumed_all else consumed_ns != NO_STAMP
        self._record("local_wait", forwarded_ns - created_ns, _both(has_created, has_forwarded))
        self._record("global_wait", consumed_ns - forwarded_ns, _both(has_forwarded, has_consumed))
        self._record("end_to_end", consumed_ns - created_ns, _both(has_created, has_consumed))

    def record_values(self, stage: str, values_ns: np.ndarray) -> None:
        """Record latencies (int64 ns) of one stage directly."""
        values_ns = np.asarray(values_ns, dtype=np.int64)
        self._record(self._check_stage(stage), values_ns, None)

    def _record(self, stage: str, d: np.ndarray, keep: np.ndarray | None) -> None:
        if keep is not None:
            d = d[keep]
        if d.size == 0:
            return
        low, high = int(d.min()), int(d.max())
        if low < 0 or high > _LAYOUT.max_recordable:
            in_range = (d >= 0) & (d <= _LAYOUT.max_recordable)
            n_in = int(np.count_nonzero(in_range))
            self.out_of_range[stage] += d.size - n_in
            if n_in == 0:
                return
            d = d[in_range]
            low, high = int(d.min()), int(d.max())
        n_in = d.size
        index = _LAYOUT.index(d)
        h = self.histograms[stage]
        counts = _counts(h)
        if index.size >= BINCOUNT_MIN_ITEMS:
            lo = int(_LAYOUT.index(np.array([low]))[0])  # the index grows with the value
            index -= lo
            added = np.bincount(index)
            np.add(counts[lo : lo + added.size], added, out=counts[lo : lo + added.size], casting="unsafe")
        else:
            np.add.at(counts, index, np.uint64(1))
        h.total_count += n_in
        h.min_value = min(h.min_value, low)
        h.max_value = max(h.max_value, high)

    # ----- reading -----

    def count(self, stage: str) -> int:
        """Latencies recorded for a stage."""
        return int(self.histograms[self._check_stage(stage)].total_count)

    def quantiles(self, q=QUANTILES) -> dict[str, dict]:
        """Per stage: {"p50_ms": .., "p99.9_ms": .., "max_ms": .., "count": n, "out_of_range": k}.

        Latencies are None for a stage with no recorded item.
        """
        result = {}
        for stage, h in self.histograms.items():
            total = int(h.total_count)
            row: dict = {}
            if total:
                cum = np.cumsum(_counts(h))
                targets = [max(int(p * total / 100 + 0.5), 1) for p in q]  # HdrHistogram's rank rule
                index = np.searchsorted(cum, targets, side="left")
                values = _LAYOUT.highest_equivalent(index)
                for p, v in zip(q, values):
                    row[f"p{p:g}_ms"] = float(v) / NS_PER_MS
                row["max_ms"] = float(h.get_max_value()) / NS_PER_MS
            else:
                row.update({f"p{p:g}_ms": None for p in q})
                row["max_ms"] = None
            row["count"] = total
            row["out_of_range"] = self.out_of_range[stage]
            result[stage] = row
        return result

    def cdf(self, stage: str) -> tuple[np.ndarray, np.ndarray]:
        """(latency in ms, fraction of items at or below it): one point per non-empty bucket of a stage."""
        counts = _counts(self.histograms[self._check_stage(stage)])
        index = np.flatnonzero(counts)
        if index.size == 0:
            return np.empty(0), np.empty(0)
        cum = np.cumsum(counts[index].astype(np.float64))
        return _LAYOUT.highest_equivalent(index).astype(np.float64) / NS_PER_MS, cum / cum[-1]

    # ----- merging and serialising -----

    def merge(self, other: StageHistograms) -> StageHistograms:
        """Add other's counts into self (e.g. repeats of a sweep point); returns self."""
        for stage in STAGES:
            mine, theirs = self.histograms[stage], other.histograms[stage]
            counts, other_counts = _counts(mine), _counts(theirs)
            if counts.shape != other_counts.shape:
                raise ValueError(
                    f"cannot merge {stage} histograms of {other_counts.size} and {counts.size} counters: "
                    f"both must be {LOWEST_NS}..{HIGHEST_NS} ns at {SIGNIFICANT_DIGITS} digits; "
                    "re-record with this module's settings"
                )
            counts += other_counts
            mine.total_count += theirs.total_count
            if theirs.total_count:
                mine.min_value = min(mine.min_value, theirs.min_value)
                mine.max_value = max(mine.max_value, theirs.max_value)
            self.out_of_range[stage] += other.out_of_range[stage]
        return self

    def encode(self) -> dict:
        """JSON-serialisable form: HdrHistogram's compressed base64 V2 encoding per stage."""
        return {
            "format": FORMAT,
            "unit": "ns",
            "lowest_ns": LOWEST_NS,
            "highest_ns": HIGHEST_NS,
            "significant_digits": SIGNIFICANT_DIGITS,
            "stages": {s: h.encode().decode("ascii") for s, h in self.histograms.items()},
            "out_of_range": dict(self.out_of_range),
        }

    @classmethod
    def decode(cls, encoded: dict) -> StageHistograms:
        """Rebuild from encode()'s dict (as loaded back from JSON)."""
        if not isinstance(encoded, dict) or encoded.get("format") != FORMAT:
            raise ValueError(
                f"not an encoded StageHistograms (format must be {FORMAT!r}): pass the dict "
                "StageHistograms.encode() returned, as read back from summary.json"
            )
        self = cls()
        for stage in STAGES:
            text = encoded["stages"].get(stage)
            if text is None:
                raise ValueError(f"encoded histograms lack stage {stage!r}: it must hold all of {STAGES}")
            h = HdrHistogram.decode(text.encode("ascii"))
            if (h.lowest_trackable_value, h.highest_trackable_value, h.significant_figures) != (
                LOWEST_NS, HIGHEST_NS, SIGNIFICANT_DIGITS
            ):
                raise ValueError(
                    f"encoded {stage} histogram covers {h.lowest_trackable_value}..{h.highest_trackable_value} ns "
                    f"at {h.significant_figures} digits, this module {LOWEST_NS}..{HIGHEST_NS} at "
                    f"{SIGNIFICANT_DIGITS}: merge only histograms recorded with the same settings"
                )
            self.histograms[stage] = h
        self.out_of_range = {s: int(encoded.get("out_of_range", {}).get(s, 0)) for s in STAGES}
        return self

    @staticmethod
    def _check_stage(stage: str) -> str:
        if stage not in STAGES:
            raise ValueError(f"unknown stage {stage!r}: use one of {STAGES}")
        return stage


assert math.isclose(RELATIVE_ERROR, 1 / _LAYOUT.half_count)  # 3 digits -> 1024 half sub-buckets
