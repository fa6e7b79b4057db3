"""Cheap recording on the chief's hot path: item stamps and queue depths.

The chief hands whole batches to ``ItemRecorder.add`` (one ``list.extend`` and one
tuple per batch) and columnar chunks to ``add_chunks``; every ``chunk_items`` items
the pending rows are turned into numpy columns, so memory stays at a few dozen bytes
per item. An array payload is reduced to its recorded value at once, so the recorder
never keeps it: a design may lend the chief views into its buffer (shm_ring) that
are reused after the take. No pandas until the run is over.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

CONSUMED, LEFT_GLOBAL, LEFT_LOCAL, DROPPED_OLDEST, DROPPED_NEWEST = range(5)
STATES = ("consumed", "left_global", "left_local", "dropped_oldest", "dropped_newest")
"""consumed: taken by the chief's rule during the run; left_global: on the global queue at
stop; left_local: in a worker's local queue when it stopped; dropped_oldest: evicted by the
chief past the bound; dropped_newest: refused by a worker at the bound (never forwarded)."""
NO_STAMP = -1
"""A stamp that never happened (an item kept local was never forwarded or consumed)."""


class ItemRecorder:
    """Collects ``(worker, seq, created_ns, forwarded_ns, value)`` tuples plus their consumed stamps."""

    def __init__(self, value_of: Callable[[Any], float] | None = None, chunk_items: int = 65536) -> None:
        self._value_of = value_of
        self._chunk_items = max(1, chunk_items)
        self._pending: list[tuple] = []
        self._batches: list[tuple[int, int, int]] = []
        self._pending_chunks: list[tuple[Any, int, int]] = []
        self._pending_chunk_items = 0
        self._chunks: list[dict[str, np.ndarray]] = []
        self._counts = [0] * len(STATES)

    @property
    def consumed(self) -> int:
        return self._counts[CONSUMED]

    def count(self, state: int) -> int:
        """Items recorded so far in ``state``."""
        return self._counts[state]

    def add(self, items: list[tuple], consumed_ns: int, state: int = CONSUMED) -> None:
        """Record a batch taken at ``consumed_ns`` (NO_STAMP for items never consumed)."""
        if not items:
            return
        if self._pending_chunks:
            self._compact_chunks()  # rows stay in arrival order
        read = self._value_of
        if read is not None:
            # Reduced at once: the payload may be a view lent by the design until the next take.
            items = [(w, s, c, f, read(v)) for w, s, c, f, v in items]
        self._pending.extend(items)
        self._batches.append((len(items), consumed_ns, state))
        self._counts[state] += len(items)
        if len(self._pending) >= self._chunk_items:
            self._compact()

    def add_chunks(self, chunks: list, consumed_ns: int, state: int = CONSUMED) -> None:
        """Record ``protocol.Chunk`` messages taken at ``consumed_ns``: columns stay columns."""
        if self._pending:
            self._compact()
        n = 0
        read = self._value_of
        for chunk in chunks:
            # Copied or reduced at once, like add(): the columns and payloads may be views that the
            # design lent until the next take (shm_ring), and the recorder keeps them until compaction.
            if read is not None and not isinstance(chunk.values, np.ndarray):
                values = np.fromiter(map(read, chunk.values), np.float64, len(chunk))
            else:
                values = np.array(chunk.values, np.float64)
            chunk = type(chunk)(chunk.worker, chunk.seq0, np.array(chunk.created_ns, np.int64), chunk.forwarded_ns,
                                values)
            self._pending_chunks.append((chunk, consumed_ns, state))
            n += len(chunk)
        self._counts[state] += n
        self._pending_chunk_items += n
        if self._pending_chunk_items >= self._chunk_items:
            self._compact_chunks()

    def _compact_chunks(self) -> None:
        pending = self._pending_chunks
        if not pending:
            return
        lens = np.fromiter((len(c) for c, _, _ in pending), np.int64, len(pending))
        total = int(lens.sum())
        starts = np.cumsum(lens) - lens
        seq0 = np.fromiter((c.seq0 for c, _, _ in pending), np.int64, len(pending))
        self._chunks.append({  # add_chunks made values float64 and created_ns int64 arrays
            "worker": np.repeat(np.fromiter((c.worker for c, _, _ in pending), np.int32, len(pending)), lens),
            "seq": np.repeat(seq0 - starts, lens) + np.arange(total, dtype=np.int64),
            "value": np.concatenate([c.values for c, _, _ in pending]),
            "created_ns": np.concatenate([c.created_ns for c, _, _ in pending]),
            "forwarded_ns": np.repeat(np.fromiter((c.forwarded_ns for c, _, _ in pending), np.int64,
                                                  len(pending)), lens),
            "consumed_ns": np.repeat(np.fromiter((t for _, t, _ in pending), np.int64, len(pending)), lens),
            "state": np.repeat(np.fromiter((st for _, _, st in pending), np.int8, len(pending)), lens),
        })
        self._pending_chunks, self._pending_chunk_items = [], 0

    def _compact(self) -> None:
        if not self._pending:
            return
        n = len(self._pending)
        worker, seq, created, forwarded, values = zip(*self._pending)
        counts, stamps, states = zip(*self._batches)
        self._chunks.append({
            "worker": np.fromiter(worker, np.int32, n),
            "seq": np.fromiter(seq, np.int64, n),
            "value": np.fromiter(values, np.float64, n),
            "created_ns": np.fromiter(created, np.int64, n),
            "forwarded_ns": np.fromiter(forwarded, np.int64, n),
            "consumed_ns": np.repeat(np.asarray(stamps, np.int64), counts),
            "state": np.repeat(np.asarray(states, np.int8), counts),
        })
        self._pending, self._batches = [], []

    def frame(self) -> pd.DataFrame:
        """One row per item; stamps that never happened are <NA>."""
        self._compact()
        self._compact_chunks()
        columns = ("worker", "seq", "value", "created_ns", "forwarded_ns", "consumed_ns", "state")
        if self._chunks:
            data = {c: np.concatenate([chunk[c] for chunk in self._chunks]) for c in columns}
        else:
            data = {c: np.empty(0, np.int8 if c == "state" else np.int64) for c in columns}
        df = pd.DataFrame({c: data[c] for c in columns[:4]})
        for c in ("forwarded_ns", "consumed_ns"):
            df[c] = pd.array(data[c], dtype="Int64")
            df.loc[data[c] == NO_STAMP, c] = pd.NA
        df["state"] = pd.Categorical.from_codes(data["state"], categories=list(STATES))
        return df


class DepthRecorder:
    """Global and per-worker local queue depths over time, from the framework's own counters."""

    def __init__(self, n_workers: int) -> None:
        self.n_workers = n_workers
        self._samples: list[tuple] = []

    def add(self, t_ns: int, global_depth: int, local_depths: list[int]) -> None:
        self._samples.append((t_ns, global_depth, *local_depths))

    def frame(self, t0_ns: int) -> pd.DataFrame:
        """Long format: t_ns, elapsed_s, queue (global | local), worker (-1 for global), depth."""
        cols = ["t_ns", "global", *range(self.n_workers)]
        wide = pd.DataFrame(self._samples, columns=cols, dtype=np.int64)
        long = wide.melt(id_vars="t_ns", var_name="worker", value_name="depth")
        long["queue"] = np.where(long["worker"] == "global", "global", "local")
        long["worker"] = long["worker"].replace("global", -1).astype(np.int32)
        long["elapsed_s"] = (long["t_ns"] - t0_ns) / 1e9
        return long[["t_ns", "elapsed_s", "queue", "worker", "depth"]].sort_values(["t_ns", "worker"],
                                                                                  ignore_index=True)
