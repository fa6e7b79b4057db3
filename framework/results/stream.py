"""Streamed parquet tables: the chief hands column blocks to a writer thread that writes part files.

Role: the chief does not keep its item records in memory for one ``items.parquet`` written at the
end (that is GBs at 750k items/s). It appends numpy column blocks to a ``ColumnStream``; a background
thread turns them into parquet part files that are closed (footer written, renamed into place)
at least every ``flush_s``, so a run killed with SIGKILL keeps what it appended more than ~1 s
before the kill, and ``close()`` only writes the last part.

Data flow::

    chief hot path                      writer thread (this module)            disk
    --------------                      ---------------------------            ----
    append({col: ndarray})  --deque-->  drain blocks every POLL_S
      (no copy, no conversion)          concatenate per column (numpy)
                                        pyarrow Table --write--> <dir>/.part-000007.parquet.tmp
                                        os.replace ----------->  <dir>/part-000007.parquet
    close() -- stop + join -->          last part (< flush_s of rows)

A table is a DIRECTORY of parts (``items.parquet/part-000000.parquet``, ...). Both
``pandas.read_parquet(dir)`` and ``pyarrow.parquet.read_table(dir)`` read it as one table (they
skip names starting with ``.``, so a temporary part a kill left behind is ignored); ``read_table``
below reads a single file or such a directory, in part order.

Crash safety is against the process being killed (the written parts are in the OS page cache);
parts are not fsync'd, so an OS crash or power loss may lose the last seconds.

Measured on this machine (2 shared cores, Python 3.11, pyarrow 26, numpy 2.4), items schema
(7 columns, 41 bytes/row in memory, ~18 bytes/row on disk with snappy)::

    python -c "s = ColumnStream(d, ITEMS, max_pending_rows=10**9)
               t = perf_counter(); [s.append(block_of_100_rows) for _ in range(20000)]; ..."
    python -c "... 300 blocks of 10,000 rows, paced at 750k rows/s, then s.close(); s.stats()"

* append(): 0.35 µs per call on the caller's thread (wall and CPU alike: a key check and a
  deque.append; nothing is copied), so 0.035 ms per million rows at 10k rows per block.
* writer throughput: 4.4 M rows/s paced at 750k rows/s (parts of ~375k rows, 0.5 s), 4.9 M rows/s
  when fed as fast as possible (parts of 1M rows): at 750k items/s the writer is ~17% of one core.
* close(): 0.02 s after a paced run (only the last part is written); 0.18 s after 3M rows were
  appended at once (MAX_PENDING_ROWS bounds that backlog: append() waits for the writer instead).

Thread or process: which costs the chief less. A chief loop that makes a
10k-row block with numpy and does a fixed piece of Python work per block, paced at 750k rows/s,
was timed with no writer, with this writer thread, and with a writer process (the same
ColumnStream in a child) fed through a multiprocessing Pipe (``send_bytes`` of each column). The
chief's busy wall time (its work and append, sleeps excluded), median of 5 runs of 1.5M rows::

    python /tmp/cmp.py   (throwaway script: modes none / thread / process, 5 repeats each)

* no writer:      18.1 ms per million rows (the loop itself)
* writer thread:  28.3 ms per million rows -> +10 ms per million rows (GIL held by the writer's
  numpy concatenate and pyarrow's Python-side calls; parquet encoding releases the GIL),
* writer process: 69.3 ms per million rows -> +51 ms per million rows (the chief copies 41 MB
  per million rows into the pipe in 64 KB writes on its own thread), plus a process to start
  and reap and a second way to fail.

The thread costs the chief 5x less and keeps errors, shutdown and crash behaviour simple, so this
module uses a thread. (A shared-memory ring would remove the process's copy, but it would add a
protocol for who owns each ring slot, to win back at most the ~10 ms per million rows the thread
costs.)
"""

from __future__ import annotations

import collections
import os
import threading
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from framework.lazy import lazy_module
from framework.errors import StreamError

pd = lazy_module("pandas")  # only read_table needs it

FLUSH_S = 0.5
"""Default longest time, in seconds, a part with rows stays open (the crash-loss window)."""

MAX_ROWS_PER_PART = 250_000
"""Default most rows in one part file (about 9 MB of items held by the writer, ~0.1 s to write). Smaller
parts keep a fast run's writer closer to the chief: in 30 s shm_ring soaks back to back (3.2M items/s, one
run each), the chief waited 7.8 s for the writer with 1M-row parts and 2M pending rows, 4.2 s with these
defaults, and peaked at 346 against 317 MB."""

MAX_PENDING_ROWS = 1_000_000
"""Default most rows appended but not yet written before append() waits for the writer (bounds
the writer's memory and close()'s time: about 0.3 s of writing at the measured throughput)."""

POLL_S = 0.05
"""Seconds between the writer thread's looks at the queue (bounds how late a part closes)."""

PART_PREFIX = "part-"
"""Start of a closed part's file name: part-000000.parquet, part-000001.parquet, ..."""

PART_SUFFIX = ".parquet"
"""End of a closed part's file name."""

TMP_PREFIX = "."
"""Start of an open part's name; readers (pandas, pyarrow datasets, read_table) skip such files."""

COMPRESSION = "snappy"
"""Parquet compression of the parts (fast; zstd halves the size at ~2x the writer's CPU)."""


def part_name(index: int) -> str:
    """File name of the index-th part of a table."""
    return f"{PART_PREFIX}{index:06d}{PART_SUFFIX}"


def part_paths(path: str | os.PathLike) -> list[Path]:
    """Closed part files of a table directory, in part order (temporary parts excluded)."""
    directory = Path(path)
    parts = [
        p
        for p in directory.iterdir()
        if p.name.startswith(PART_PREFIX) and p.name.endswith(PART_SUFFIX) and p.is_file()
    ]
    return sorted(parts, key=lambda p: p.name)


def read_table(path: str | os.PathLike, columns: list[str] | None = None) -> pd.DataFrame:
    """One DataFrame from a parquet file or from a ColumnStream directory of parts (in order)."""
    path = Path(path)
    if path.is_file():
        return pd.read_parquet(path, columns=columns)
    if not path.is_dir():
        raise FileNotFoundError(
            f"no table at {path}: read_table reads a parquet file or a directory of "
            f"{PART_PREFIX}NNNNNN{PART_SUFFIX} parts; check the run directory"
        )
    parts = part_paths(path)
    if not parts:
        raise FileNotFoundError(
            f"table directory {path} holds no closed part ({PART_PREFIX}NNNNNN{PART_SUFFIX}): "
            "the run was killed before its first part closed (flush_s), so it has no rows to read"
        )
    tables = [pq.read_table(p, columns=columns) for p in parts]
    return pa.concat_tables(tables).to_pandas()


def arrow_array(column: np.ndarray, arrow_type: pa.DataType) -> pa.Array:
    """``column`` as an arrow array of ``arrow_type``, built on its buffers where it is numbers or strings:
    ``pa.array`` imports pandas on its first call (to ask whether it was handed a pandas object), about
    0.2 s of CPU in the writer thread while the run goes."""
    n = len(column)
    if pa.types.is_string(arrow_type):
        texts = column.tolist()
        if all(type(t) is str for t in texts):
            encoded = [t.encode() for t in texts]
            offsets = np.zeros(n + 1, np.int32)
            np.cumsum([len(b) for b in encoded], out=offsets[1:])
            return pa.Array.from_buffers(arrow_type, n, [None, pa.py_buffer(offsets), pa.py_buffer(b"".join(encoded))])
    if pa.types.is_integer(arrow_type) or pa.types.is_floating(arrow_type):
        dtype = np.dtype(arrow_type.to_pandas_dtype())
        if n == 0 or np.can_cast(column.dtype, dtype, "safe"):
            values = np.ascontiguousarray(column, dtype=dtype)
            return pa.Array.from_buffers(arrow_type, n, [None, pa.py_buffer(values)])
    return pa.array(column, type=arrow_type)  # any other type or a narrowing cast: pyarrow's own checks


_warm = threading.Event()


def _warm_up(schema: pa.Schema, compression: str) -> None:
    """pyarrow's first parquet write in a process costs about 0.17 s (its writer and codec set up): pay it
    in the writer thread as soon as it starts, while the run is still starting its workers, not in the
    run's last part."""
    if _warm.is_set():
        return
    empty = pa.Table.from_arrays([arrow_array(np.empty(0, object), f.type) for f in schema], schema=schema)
    pq.write_table(empty, pa.BufferOutputStream(), compression=compression)
    _warm.set()


class ColumnStream:
    """Streamed writer of one parquet table (items, depth or memory) as a directory of parts.

    ``append`` hands a dict of equal-length numpy arrays, one per schema field, to a writer
    thread. The arrays are NOT copied: the caller must not mutate them after ``append``.
    Errors of the writer thread (disk full, a wrong dtype) are raised by the next ``append``
    or by ``close``.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        schema: pa.Schema,
        flush_s: float = FLUSH_S,
        max_rows_per_part: int = MAX_ROWS_PER_PART,
        max_pending_rows: int = MAX_PENDING_ROWS,
        compression: str = COMPRESSION,
    ) -> None:
        if flush_s <= 0:
            raise ValueError(f"flush_s={flush_s}: a part must close after a positive time; pass e.g. 0.5")
        if max_rows_per_part < 1:
            raise ValueError(f"max_rows_per_part={max_rows_per_part}: a part holds at least one row")
        self.path = Path(path)
        if self.path.exists() and (not self.path.is_dir() or any(self.path.iterdir())):
            raise StreamError(
                f"{self.path} already exists and is not an empty directory: a ColumnStream writes a "
                "new table and never appends to an old one; pass a fresh path or remove the old table"
            )
        self.path.mkdir(parents=True, exist_ok=True)
        self.schema = schema
        self.flush_s = float(flush_s)
        self.max_rows_per_part = int(max_rows_per_part)
        self.max_pending_rows = int(max_pending_rows)
        self.compression = compression
        self._names = frozenset(schema.names)
        self._first = schema.names[0]
        self._queue: collections.deque = collections.deque()
        self._wake = threading.Event()
        self._stopping = False
        self._closed = False
        self._error: BaseException | None = None
        # Counters each written by one thread only (no lock needed):
        self._rows_appended = 0  # caller
        self.rows_written = 0
        """Rows in closed parts."""
        self.parts_written = 0
        """Closed part files."""
        self.append_wait_s = 0.0
        """Seconds append() waited because the writer was MAX_PENDING_ROWS or max_lag_s behind."""
        self.max_lag_s = 2 * self.flush_s
        """A block appended longer ago than this and still not in a closed part makes append() wait for it."""
        self._marks: collections.deque = collections.deque()
        """(monotonic time of an append, rows appended up to and including it), oldest first."""
        self.write_s = 0.0
        """Seconds the writer thread spent building and writing parts."""
        self._thread = threading.Thread(target=self._run, name=f"ColumnStream:{self.path.name}", daemon=True)
        self._thread.start()

    # ----- caller's thread -----

    def append(self, columns: dict[str, np.ndarray]) -> None:
        """Queue one block (dict name -> 1-D array, one per schema field); copies nothing.

        The caller gives up the arrays: mutating them afterwards corrupts the table. An array
        of another dtype than its field is cast by the writer, safely: a value that does not
        fit (an int64 beyond int32, a fraction into an integer) fails the writer, which the
        next append() or close() raises. Rows appended but not closed into a part are lost if
        the process exits without close() (the writer is a daemon thread).
        """
        if self._error is not None:
            self._raise_error()
        if self._closed:
            raise StreamError(f"append to {self.path} after close(): open a new ColumnStream for more rows")
        if columns.keys() != self._names:
            raise StreamError(
                f"block for {self.path} has columns {sorted(columns)} but the schema has "
                f"{sorted(self._names)}: pass exactly one array per schema field"
            )
        n = len(columns[self._first])
        if n == 0:
            return
        if self._rows_appended - self.rows_written > self.max_pending_rows:
            self._wait_for_writer()
        marks = self._marks
        while marks and marks[0][1] <= self.rows_written:
            marks.popleft()
        if marks and time.monotonic() - marks[0][0] > self.max_lag_s:
            self._wait_for_lag(marks[0][1])
        self._queue.append(columns)
        self._rows_appended += n
        marks.append((time.monotonic(), self._rows_appended))

    def _wait_for_lag(self, rows: int) -> None:
        """The writer is more than max_lag_s behind: wait until the oldest late block is on disk, so that a
        crash never loses more than about that much (the caller is slowed only while the writer lags)."""
        start = time.perf_counter()
        while self.rows_written < rows:
            if self._error is not None:
                self._raise_error()
            self._wake.set()
            time.sleep(POLL_S / 10)
        self.append_wait_s += time.perf_counter() - start

    def _wait_for_writer(self) -> None:
        start = time.perf_counter()
        while self._rows_appended - self.rows_written > self.max_pending_rows // 2:
            if self._error is not None:
                self._raise_error()
            self._wake.set()
            time.sleep(POLL_S / 5)
        self.append_wait_s += time.perf_counter() - start

    def stop(self) -> None:
        """Ask the writer to write what is left and stop, without waiting (several streams then close in
        parallel: ``stop()`` each, then ``close()`` each)."""
        self._stopping = True
        self._wake.set()

    def close(self) -> None:
        """Write what is left as the last part and stop the writer; raises the writer's error."""
        if self._closed:
            if self._error is not None:
                self._raise_error()
            return
        self._closed = True
        self.stop()
        self._thread.join()
        if self._error is not None:
            self._raise_error()

    def __enter__(self) -> ColumnStream:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def stats(self) -> dict:
        """Counters of this stream: rows appended and written, parts, writer and wait seconds."""
        return {
            "rows_appended": self._rows_appended,
            "rows_written": self.rows_written,
            "parts_written": self.parts_written,
            "write_s": self.write_s,
            "append_wait_s": self.append_wait_s,
        }

    def _raise_error(self) -> None:
        err = self._error
        lost = self._rows_appended - self.rows_written
        raise StreamError(
            f"the writer of {self.path} failed ({type(err).__name__}: {err}); {self.rows_written} rows "
            f"are in {self.parts_written} closed parts and {lost} appended rows are lost. "
            "Free disk space or fix the path/dtypes, then rerun"
        ) from err

    # ----- writer thread -----

    def _run(self) -> None:
        blocks: list[dict] = []
        rows = 0
        deadline = None  # when the open part must close
        try:
            _warm_up(self.schema, self.compression)
            while True:
                timeout = POLL_S if deadline is None else max(0.0, min(POLL_S, deadline - time.monotonic()))
                self._wake.wait(timeout)
                self._wake.clear()
                stopping = self._stopping  # read before draining: nothing is appended after stop
                while self._queue:
                    block = self._queue.popleft()
                    n = len(block[self._first])
                    blocks.append(block)
                    rows += n
                    if deadline is None:
                        deadline = time.monotonic() + self.flush_s
                while rows >= self.max_rows_per_part:
                    blocks, rows = self._write_part(blocks, self.max_rows_per_part)
                    deadline = time.monotonic() + self.flush_s if rows else None
                if rows and (stopping or time.monotonic() >= deadline):
                    blocks, rows = self._write_part(blocks, rows)
                    deadline = None
                if stopping:
                    if self.parts_written == 0:
                        self._write_part([], 0)  # an empty table still has its schema on disk
                    return
        except BaseException as err:  # surfaced by the next append/close
            self._error = err

    def _write_part(self, blocks: list[dict], take: int) -> tuple[list[dict], int]:
        """Write the first ``take`` rows of blocks as the next part; return the rest."""
        start = time.perf_counter()
        first = self._first
        # Only the blocks of this part are joined (the last one split): joining the whole backlog to write a
        # quarter of it copied it again at every part, and the rest, views of that copy, kept it all alive.
        head, rest, need = [], [], take
        for i, block in enumerate(blocks):
            n = len(block[first])
            if n <= need:
                head.append(block)
                need -= n
                continue
            if need:
                head.append({name: column[:need] for name, column in block.items()})
                rest.append({name: column[need:] for name, column in block.items()})
            rest.extend(blocks[i + 1 if need else i:])
            break
        arrays = []
        for field in self.schema:
            cols = [b[field.name] for b in head]
            if any(len(c) != len(b[first]) for c, b in zip(cols, head)):
                raise StreamError(
                    f"a block for {self.path} has columns of different lengths: every array of one "
                    "append() must have the same number of rows"
                )
            if not cols:  # the empty part close() writes so that an empty table has its schema
                arrays.append(arrow_array(np.empty(0, object), field.type))
                continue
            arrays.append(arrow_array(np.concatenate(cols) if len(cols) != 1 else np.asarray(cols[0]), field.type))
        table = pa.Table.from_arrays(arrays, schema=self.schema)
        name = part_name(self.parts_written)
        tmp = self.path / f"{TMP_PREFIX}{name}.tmp"
        pq.write_table(table, tmp, compression=self.compression)
        os.replace(tmp, self.path / name)
        self.parts_written += 1
        self.rows_written += take
        self.write_s += time.perf_counter() - start
        return rest, sum(len(b[first]) for b in rest)
