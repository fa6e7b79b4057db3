"""What the chief records, in memory that stays flat whatever the run's length.

    Intake --add(tuples) / add_chunks(chunks)--> Recorder: pending (a list per batch, no numpy per item)
                                                    | every flush_s, or every BLOCK_ITEMS items
                                                    v  one column block (numpy)
             counts per state  <-------------------+-------------------> SeqBooks (seq ranges per worker)
             window tally (items, arrivals,        |                    StageHistograms (latency,
               time in the global queue)           |                      measured window only)
                                                   v
                                  ColumnStream -> items.parquet/part-*.parquet (record.items: all |
                                  (writer thread)                           sample | none)

``DepthRecorder`` and ``MemoryRecorder`` stream depth.parquet and memory.parquet the same way and
keep only what the summary needs (the depth at the window's edges, each process's first, last and
peak memory). An array payload is reduced to its recorded value at once, so the recorder never
keeps it: a design may lend the chief views into its buffer (shm_ring) that are reused after the
take. No pandas on this path.

On disk, ``state`` is a code (``STATES[code]``) and a stamp that never happened is ``NO_STAMP``
(-1); ``framework.results.io`` reads them back as names and missing values.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from framework.layout import DEPTH_FILE, ITEM_STATES, ITEMS_FILE, MEMORY_FILE, NO_STAMP
from framework.results.latency import StageHistograms
from framework.results.seqbooks import SeqBooks
from framework.results.stream import ColumnStream

CONSUMED, LEFT_GLOBAL, LEFT_LOCAL, DROPPED_OLDEST, DROPPED_NEWEST = range(5)
STATES = ITEM_STATES
BLOCK_ITEMS = 65536
"""Pending items are turned into one column block at most this many at a time."""
NEVER_NS = np.iinfo(np.int64).max
PENDING_ROW = np.dtype([("worker", np.int32), ("seq", np.int64), ("created_ns", np.int64),
                        ("forwarded_ns", np.int64), ("value", np.float64)])
"""An item tuple ``(worker, seq, created_ns, forwarded_ns, value)`` as one record."""

ITEMS_SCHEMA = pa.schema([("worker", pa.int32()), ("seq", pa.int64()), ("value", pa.float64()),
                          ("created_ns", pa.int64()), ("forwarded_ns", pa.int64()), ("consumed_ns", pa.int64()),
                          ("state", pa.int8())])
DEPTH_SCHEMA = pa.schema([("t_ns", pa.int64()), ("elapsed_s", pa.float64()), ("queue", pa.string()),
                          ("worker", pa.int32()), ("depth", pa.int64())])
MEMORY_SCHEMA = pa.schema([("t_ns", pa.int64()), ("role", pa.string()), ("worker", pa.int32()),
                           ("pid", pa.int64()), ("rss_bytes", pa.int64())])


class WindowTally:
    """Counts and sums over the measured window [start_ns, end_ns], added block by block.

    ``end_ns`` is known once the loop ends; every item consumed before that has its stamp before it,
    and what is recorded after it (the drain) is tallied against it."""

    def __init__(self) -> None:
        self.start_ns = NEVER_NS
        self.end_ns: int | None = None
        self.consumed = 0
        """Items consumed inside the window (the throughput's numerator)."""
        self.arrivals = 0
        """Items forwarded onto the global queue inside the window."""
        self.queue_ns = 0.0
        """Item x nanoseconds spent in the global queue inside the window (left_global items until the end)."""
        self.evicted = False
        """Some item left the global queue by eviction (drop_oldest): when, no stamp says."""

    def add(self, forwarded: np.ndarray, consumed: np.ndarray, state: np.ndarray) -> None:
        start = self.start_ns
        end = NEVER_NS if self.end_ns is None else self.end_ns
        taken = state == CONSUMED
        self.consumed += int(np.count_nonzero(taken & (consumed >= start)))
        has = forwarded != NO_STAMP
        self.arrivals += int(np.count_nonzero(has & (forwarded >= start) & (forwarded < end)))
        queued = has & (taken | (state == LEFT_GLOBAL))
        if queued.any():
            leave = np.where(taken[queued], consumed[queued], end)
            enter = np.maximum(forwarded[queued], start)
            self.queue_ns += float(np.maximum(0, np.minimum(leave, end) - enter).sum())
        if not self.evicted and (state == DROPPED_OLDEST).any():
            self.evicted = True


class _StreamedTable:
    """What the three recorders share: a ``flush`` of what is pending into ``stream``, then its end."""

    stream: Any = None

    def flush(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        """Flush the rest and let the table's writer finish its last part (without waiting for it)."""
        self.flush()
        if self.stream is not None:
            self.stream.stop()

    def close(self) -> None:
        """Flush the rest and close the table (only its last part is written now)."""
        self.stop()
        if self.stream is not None:
            self.stream.close()


NO_DETAIL = -1
"""A detail column's value for a row whose item has none (a dropped item, another payload's value)."""


def items_schema(details: Any = ()) -> pa.Schema:
    """The items table's schema: ``ITEMS_SCHEMA`` and one int64 column per detail the payload records."""
    schema = ITEMS_SCHEMA
    for name in details:
        schema = schema.append(pa.field(name, pa.int64()))
    return schema


class RowsInMemory:
    """Where item rows go when a run has no directory (the chief's parts driven by tests, small runs from
    Python): the column blocks, kept; ``frame()`` gives them as ``framework.load_run`` would."""

    def __init__(self, schema: pa.Schema = ITEMS_SCHEMA) -> None:
        self.blocks: list[dict[str, np.ndarray]] = []
        self.schema = schema

    def append(self, block: dict[str, np.ndarray]) -> None:
        self.blocks.append(block)

    def stop(self) -> None:
        """Nothing to finish: the rows are in memory."""

    def close(self) -> None:
        """Nothing to close: the rows are in memory."""

    def frame(self) -> Any:
        import pandas as pd  # a run with a directory never gets here: its rows are on disk

        names = self.schema.names
        if self.blocks:
            data = {n: np.concatenate([b[n] for b in self.blocks]) for n in names}
        else:
            data = {n: np.empty(0, np.int8 if n == "state" else np.int64) for n in names}
        df = pd.DataFrame({n: data[n] for n in names if n not in ("forwarded_ns", "consumed_ns", "state")})
        for column in ("forwarded_ns", "consumed_ns"):
            df[column] = pd.array(data[column], dtype="Int64")
            df.loc[data[column] == NO_STAMP, column] = pd.NA
        df["state"] = pd.Categorical.from_codes(data["state"].astype(int), categories=list(STATES))
        return df[list(names)]


class Recorder(_StreamedTable):
    """Collects ``(worker, seq, created_ns, forwarded_ns, value)`` tuples and ``protocol.Chunk`` columns,
    with their consumed stamps and states, into flat-memory figures and a streamed items table."""

    def __init__(self, value_of: Callable[[Any], float] | None = None, directory: Path | None = None,
                 keep: str = "all", sample_every: int = 1, flush_s: float = 0.5,
                 block_items: int = BLOCK_ITEMS, column_of: Callable[[np.ndarray], np.ndarray] | None = None,
                 details: dict[str, Callable[[Any], int]] | None = None) -> None:
        """Rows go to ``directory``/items.parquet (streamed), or, without a directory, to memory
        (``frame()``); ``keep`` is record.items (all, sample, none); ``column_of`` reduces a stacked block
        of payloads to their values in one call; ``details`` names an int64 column per reader of an item
        (the rollout payload's ``episode_ends``), read from the payload as it is taken, like the value."""
        self._details = dict(details or {})
        self._pending_details: list[tuple] = []
        self.detail_sums = dict.fromkeys(self._details, 0)
        """Per detail, its sum over the items consumed in the measured window."""
        self._value_of = value_of
        self._column_of = column_of
        self._block_items = max(1, block_items)
        self._pending: list[tuple] = []
        self._batches: list[int] = []
        """Per pending batch of tuples, flat: its length, consumed stamp and state (one array at the flush)."""
        self._pending_chunks: list[tuple[Any, int, int]] = []
        self._pending_chunk_items = 0
        self._counts = [0] * len(STATES)
        self.taken = 0
        """Items recorded consumed or dropped_oldest: what the chief took off the global queue (the
        counters' depth subtracts it at every check, so it is kept as one number)."""
        self.keep, self.sample_every = keep, sample_every
        # Half the budget here (pending rows), a quarter for the writer to close a part and a quarter for
        # it to lag (ColumnStream.max_lag_s): a row reaches a closed part within about flush_s.
        self.stream: Any = None
        if keep != "none":
            schema = items_schema(self._details)
            self.stream = ColumnStream(directory / ITEMS_FILE, schema, flush_s=flush_s / 4) \
                if directory is not None else RowsInMemory(schema)
        self.books = SeqBooks()
        self.histograms = StageHistograms()
        self.window = WindowTally()
        self.flush_ns = int(flush_s * 1e9 / 2)
        self._flush_due_ns = time.monotonic_ns() + self.flush_ns
        """An item stamped from then on flushes what is pending (a stamp compared once per add)."""

    @property
    def consumed(self) -> int:
        return self._counts[CONSUMED]

    def count(self, state: int) -> int:
        """Items recorded so far in ``state``."""
        return self._counts[state]

    def counts(self) -> dict[str, int]:
        return dict(zip(STATES, self._counts))

    def add(self, items: list[tuple], consumed_ns: int, state: int = CONSUMED) -> None:
        """Record a batch taken at ``consumed_ns`` (NO_STAMP for items never consumed)."""
        if not items:
            return
        if self._pending_chunks:
            self._flush_chunks()  # blocks stay in arrival order
        if self._details:
            readers = tuple(self._details.values())
            self._pending_details.extend(tuple(r(item[4]) for r in readers) for item in items)
        read = self._value_of
        if read is not None:
            # Reduced at once: the payload may be a view lent by the design until the next take.
            items = [(w, s, c, f, read(v)) for w, s, c, f, v in items]
        self._pending.extend(items)
        n = len(items)
        self._batches.extend((n, consumed_ns, state))
        self._counts[state] += n
        if state == CONSUMED or state == DROPPED_OLDEST:
            self.taken += n
        if consumed_ns >= self._flush_due_ns or len(self._pending) >= self._block_items:
            self.flush()

    def add_chunks(self, chunks: list, consumed_ns: int, state: int = CONSUMED) -> None:
        """Record ``protocol.Chunk`` messages taken at ``consumed_ns``: columns stay columns."""
        if self._pending:
            self._flush_tuples()
        n = 0
        read, read_column = self._value_of, self._column_of
        for chunk in chunks:
            # Copied or reduced at once, like add(): the columns and payloads may be views that the
            # design lent until the next take (shm_ring), and the recorder keeps them until the flush.
            values = chunk.values
            details = self._chunk_details(values, len(chunk)) if self._details else None
            if not isinstance(values, np.ndarray):
                values = np.fromiter(map(read, values), np.float64, len(chunk)) if read is not None \
                    else np.array(values, np.float64)
            elif values.ndim > 1:
                # A stacked block of array payloads (shm_ring's column records): reduced in one call.
                values = np.array(read_column(values), np.float64) if read_column is not None \
                    else np.fromiter(map(read, values), np.float64, len(chunk))
            else:
                values = np.array(values, np.float64)
            forwarded = chunk.forwarded_ns
            if type(forwarded) is not int:
                forwarded = np.array(forwarded, np.int64)  # one stamp per item (a run of single-item messages)
            self._pending_chunks.append((chunk.worker, chunk.seq0, np.array(chunk.created_ns, np.int64),
                                         forwarded, values, consumed_ns, state, details))
            n += len(values)
        self._counts[state] += n
        if state == CONSUMED or state == DROPPED_OLDEST:
            self.taken += n
        self._pending_chunk_items += n
        if consumed_ns >= self._flush_due_ns or self._pending_chunk_items >= self._block_items:
            self.flush()

    def flush(self) -> None:
        self._flush_tuples()
        self._flush_chunks()
        self._flush_due_ns = time.monotonic_ns() + self.flush_ns

    @property
    def wait_s(self) -> float:
        """Seconds the chief waited for the items table's writer (it fell more than its lag behind)."""
        return float(getattr(self.stream, "append_wait_s", 0.0))

    def frame(self) -> Any:
        """The rows recorded so far, when they are kept in memory (a recorder without a directory)."""
        self.flush()
        if not isinstance(self.stream, RowsInMemory):
            raise TypeError("this recorder streams its rows to items.parquet: read them with framework.load_run")
        return self.stream.frame()

    def _chunk_details(self, values: Any, n: int) -> np.ndarray:
        """The detail columns of a chunk's items, shape (n, details): read per payload from a list of them;
        a numeric column has none."""
        if isinstance(values, np.ndarray) and values.dtype != object:
            return np.full((n, len(self._details)), NO_DETAIL, np.int64)
        readers = tuple(self._details.values())
        return np.array([[r(v) for r in readers] for v in values], np.int64).reshape(n, len(readers))

    def _detail_columns(self, rows: np.ndarray) -> dict[str, np.ndarray]:
        return {name: np.ascontiguousarray(rows[:, i]) for i, name in enumerate(self._details)}

    def _flush_chunks(self) -> None:
        pending = self._pending_chunks
        if not pending:
            return
        n = len(pending)
        lens = np.fromiter((len(p[4]) for p in pending), np.int64, n)
        total = int(lens.sum())
        starts = np.cumsum(lens) - lens
        seq0 = np.fromiter((p[1] for p in pending), np.int64, n)
        self._sink({
            "worker": np.repeat(np.fromiter((p[0] for p in pending), np.int32, n), lens),
            "seq": np.repeat(seq0 - starts, lens) + np.arange(total, dtype=np.int64),
            "value": np.concatenate([p[4] for p in pending]),
            "created_ns": np.concatenate([p[2] for p in pending]),
            "forwarded_ns": _forwarded_column(pending, lens),
            "consumed_ns": np.repeat(np.fromiter((p[5] for p in pending), np.int64, n), lens),
            "state": np.repeat(np.fromiter((p[6] for p in pending), np.int8, n), lens),
            **(self._detail_columns(np.concatenate([p[7] for p in pending])) if self._details else {}),
        })
        self._pending_chunks, self._pending_chunk_items = [], 0

    def _flush_tuples(self) -> None:
        if not self._pending:
            return
        n = len(self._pending)
        # One pass over the tuples into a record array, the batches as one flat array: no zip(*) over either
        # (about 330 instead of 430 ns per item, the sinks included).
        rows = np.fromiter(self._pending, PENDING_ROW, n)
        batches = np.array(self._batches, np.int64).reshape(-1, 3)
        counts = batches[:, 0]
        self._sink({
            "worker": rows["worker"].copy(),
            "seq": rows["seq"].copy(),
            "value": rows["value"].copy(),
            "created_ns": rows["created_ns"].copy(),
            "forwarded_ns": rows["forwarded_ns"].copy(),
            "consumed_ns": np.repeat(batches[:, 1], counts),
            "state": np.repeat(batches[:, 2].astype(np.int8), counts),
            **(self._detail_columns(np.array(self._pending_details, np.int64).reshape(n, len(self._details)))
               if self._details else {}),
        })
        self._pending, self._batches, self._pending_details = [], [], []

    def _sink(self, block: dict[str, np.ndarray]) -> None:
        """One column block to every consumer of records: books, window, histograms, the items table."""
        state, consumed, forwarded = block["state"], block["consumed_ns"], block["forwarded_ns"]
        self.books.add_records(block["worker"], block["seq"], state)
        self.window.add(forwarded, consumed, state)
        measured = (state == CONSUMED) & (consumed >= self.window.start_ns)
        if measured.any():
            self.histograms.record_block(block["created_ns"][measured], forwarded[measured], consumed[measured])
            for name in self._details:
                self.detail_sums[name] += int(block[name][measured].sum())
        if self.stream is None:
            return
        if self.keep == "sample":
            kept = block["seq"] % self.sample_every == 0
            block = {name: column[kept] for name, column in block.items()}
        self.stream.append(block)


def _forwarded_column(pending: list, lens: np.ndarray) -> np.ndarray:
    """The forwarded stamps of pending chunks: one per chunk repeated, or the per-item stamps of a run."""
    stamps = [p[3] for p in pending]
    if all(type(f) is int for f in stamps):
        return np.repeat(np.fromiter(stamps, np.int64, len(stamps)), lens)
    return np.concatenate([f if type(f) is not int else np.full(k, f, np.int64) for f, k in zip(stamps, lens)])


class DepthRecorder(_StreamedTable):
    """Global and per-worker local queue depths over time (from the framework's own counters), streamed to
    depth.parquet in long format: t_ns, elapsed_s, queue (global | local), worker (-1 for global), depth."""

    def __init__(self, n_workers: int, directory: Path | None = None, flush_s: float = 0.5) -> None:
        self.n_workers = n_workers
        self.t0_ns = 0
        self._samples: list[tuple] = []
        self.stream = ColumnStream(directory / DEPTH_FILE, DEPTH_SCHEMA, flush_s=flush_s) \
            if directory is not None else None
        self.window_first: int | None = None
        """Global depth at the first sample of the measured window."""
        self.window_last: int | None = None
        """Global depth at the last sample so far."""
        self.window_start_ns = NEVER_NS

    def add(self, t_ns: int, global_depth: int, local_depths: list[int]) -> None:
        self._samples.append((t_ns, global_depth, *local_depths))
        if t_ns >= self.window_start_ns:
            if self.window_first is None:
                self.window_first = global_depth
            self.window_last = global_depth

    def flush(self) -> None:
        if self.stream is None or not self._samples:
            return  # without a directory the samples stay in memory (frame())
        wide = np.asarray(self._samples, dtype=np.int64)
        self._samples = []
        k, width = wide.shape
        t = np.repeat(wide[:, 0], width - 1)
        self.stream.append({
            "t_ns": t,
            "elapsed_s": (t - self.t0_ns) / 1e9,
            "queue": np.tile(np.array(["global"] + ["local"] * (width - 2), dtype=object), k),
            "worker": np.tile(np.arange(-1, width - 2, dtype=np.int32), k),
            "depth": wide[:, 1:].reshape(-1),
        })



    def frame(self, t0_ns: int | None = None) -> Any:
        """The samples kept in memory (a recorder without a directory), in depth.parquet's long format."""
        import pandas as pd  # a run with a directory never gets here: its samples are on disk

        t0 = self.t0_ns if t0_ns is None else t0_ns
        rows = []
        for t, g, *locals_ in self._samples:
            rows.append((t, (t - t0) / 1e9, "global", -1, g))
            rows.extend((t, (t - t0) / 1e9, "local", w, d) for w, d in enumerate(locals_))
        return pd.DataFrame(rows, columns=DEPTH_SCHEMA.names)


class MemoryRecorder(_StreamedTable):
    """Resident memory of every process (t_ns, role, worker, pid, rss_bytes), streamed to memory.parquet;
    keeps each process's first, last and peak value for the summary."""

    def __init__(self, directory: Path | None = None, flush_s: float = 0.5) -> None:
        self._rows: list[tuple] = []
        self.stream = ColumnStream(directory / MEMORY_FILE, MEMORY_SCHEMA, flush_s=flush_s) \
            if directory is not None else None
        self.per_process: dict[tuple[str, int, int], list[int]] = {}
        """(role, worker, pid) -> [samples, first, last, peak] bytes."""

    def add(self, t_ns: int, role: str, worker: int, pid: int, rss: int) -> None:
        self._rows.append((t_ns, role, worker, pid, rss))
        seen = self.per_process.get((role, worker, pid))
        if seen is None:
            self.per_process[(role, worker, pid)] = [1, rss, rss, rss]
        else:
            seen[0] += 1
            seen[2] = rss
            seen[3] = max(seen[3], rss)

    def summary(self) -> list[dict[str, Any]]:
        """Per process: first, last and peak resident memory (bytes), and the number of samples."""
        return [{"role": role, "worker": worker, "pid": pid, "samples": n, "rss_first_bytes": first,
                 "rss_last_bytes": last, "rss_peak_bytes": peak}
                for (role, worker, pid), (n, first, last, peak) in self.per_process.items()]

    def flush(self) -> None:
        rows, self._rows = self._rows, []
        if not rows or self.stream is None:
            return
        t, role, worker, pid, rss = zip(*rows)
        self.stream.append({"t_ns": np.asarray(t, np.int64), "role": np.asarray(role, dtype=object),
                            "worker": np.asarray(worker, np.int32), "pid": np.asarray(pid, np.int64),
                            "rss_bytes": np.asarray(rss, np.int64)})

