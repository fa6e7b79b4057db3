"""ColumnStream: part files, read-back as one table, crash safety, close time, writer errors."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from framework.results.stream import ColumnStream, StreamError, arrow_array, part_paths, read_table

ITEMS = pa.schema(
    [
        ("worker", pa.int32()),
        ("seq", pa.int64()),
        ("value", pa.float64()),
        ("created_ns", pa.int64()),
        ("forwarded_ns", pa.int64()),
        ("consumed_ns", pa.int64()),
        ("state", pa.int8()),
    ]
)
REPO = Path(__file__).resolve().parents[2]


def block(start: int, n: int, worker: int = 0) -> dict[str, np.ndarray]:
    seq = np.arange(start, start + n, dtype=np.int64)
    return {
        "worker": np.full(n, worker, np.int32),
        "seq": seq,
        "value": seq * 0.5,
        "created_ns": seq * 10,
        "forwarded_ns": np.where(seq % 3 == 0, -1, seq * 10 + 5),
        "consumed_ns": seq * 10 + 7,
        "state": (seq % 5).astype(np.int8),
    }



@pytest.mark.parametrize("column, type_", [
    (np.array([-3, 0, 2**40], np.int64), pa.int64()),
    (np.array([7, -1], np.int32), pa.int32()),
    (np.array([1, 4], np.int8), pa.int8()),
    (np.array([0.5, np.nan, -np.inf]), pa.float64()),
    (np.arange(10, dtype=np.int64)[::3], pa.int64()),  # a strided view
    (np.array([1, 2], np.int32), pa.int64()),  # a widening cast
    (np.array(["global", "local", "wörker", ""], dtype=object), pa.string()),
    (np.empty(0, object), pa.int32()),
    (np.empty(0, object), pa.string()),
])
def test_arrow_array_built_on_buffers_is_what_pa_array_makes(column, type_):
    built = arrow_array(column, type_)
    built.validate(full=True)
    expected = pa.array(column, type=type_)
    def values(array):
        return [x if x == x else "nan" for x in array.to_pylist()]  # NaN equal to itself

    assert built.type == type_ and built.null_count == 0 and values(built) == values(expected)


def test_arrow_array_leaves_a_narrowing_cast_to_pyarrow():
    with pytest.raises(pa.ArrowInvalid):
        arrow_array(np.array([2**40], np.int64), pa.int32())


def test_parts_read_back_as_one_table_in_order(tmp_path):
    path = tmp_path / "items.parquet"
    with ColumnStream(path, ITEMS, max_rows_per_part=2500) as s:
        for i in range(12):
            s.append(block(i * 1000, 1000, worker=i % 3))
    assert s.stats()["rows_written"] == 12_000
    parts = part_paths(path)
    assert [p.name for p in parts][:2] == ["part-000000.parquet", "part-000001.parquet"]
    assert all(pq.read_metadata(p).num_rows <= 2500 for p in parts)
    assert len(parts) >= 5  # 12k rows in parts of at most 2.5k
    blocks = [block(i * 1000, 1000, i % 3) for i in range(12)]
    expected = pd.DataFrame({k: np.concatenate([b[k] for b in blocks]) for k in ITEMS.names})
    got = read_table(path)
    pd.testing.assert_frame_equal(got, expected, check_dtype=True)
    # pandas and pyarrow read the directory as one table too (part names sort in part order).
    pd.testing.assert_frame_equal(pd.read_parquet(path), expected)
    assert pq.read_table(path).num_rows == 12_000
    assert dict(zip(got.columns, map(str, got.dtypes))) == {
        "worker": "int32", "seq": "int64", "value": "float64", "created_ns": "int64",
        "forwarded_ns": "int64", "consumed_ns": "int64", "state": "int8",
    }


def test_read_table_reads_a_single_file_and_ignores_temporary_parts(tmp_path):
    single = tmp_path / "one.parquet"
    pq.write_table(pa.table(block(0, 10), schema=ITEMS), single)
    assert read_table(single).seq.tolist() == list(range(10))
    path = tmp_path / "items.parquet"
    with ColumnStream(path, ITEMS) as s:
        s.append(block(0, 10))
    (path / ".part-000001.parquet.tmp").write_bytes(b"PAR1 half written")
    assert read_table(path).seq.tolist() == list(range(10))
    assert len(pd.read_parquet(path)) == 10


def test_a_part_closes_within_flush_s_without_close(tmp_path):
    path = tmp_path / "items.parquet"
    s = ColumnStream(path, ITEMS, flush_s=0.2)
    try:
        s.append(block(0, 500))
        deadline = time.monotonic() + 2.0
        while not part_paths(path) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert read_table(path).seq.tolist() == list(range(500))
        s.append(block(500, 500))
    finally:
        s.close()
    assert read_table(path).seq.tolist() == list(range(1000))


def test_close_is_quick_after_a_paced_run(tmp_path):
    path = tmp_path / "items.parquet"
    s = ColumnStream(path, ITEMS)
    start = time.perf_counter()
    rate = 500_000  # rows/s, as a busy chief
    for i in range(40):  # 0.8 s
        s.append(block(i * 10_000, 10_000))
        time.sleep(max(0.0, start + (i + 1) * 10_000 / rate - time.perf_counter()))
    t0 = time.perf_counter()
    s.close()
    assert time.perf_counter() - t0 < 0.5
    assert s.stats()["rows_written"] == 400_000
    assert (read_table(path, columns=["seq"]).seq.to_numpy() == np.arange(400_000)).all()


def test_an_empty_stream_leaves_an_empty_table_with_its_schema(tmp_path):
    path = tmp_path / "depth.parquet"
    ColumnStream(path, ITEMS).close()
    df = read_table(path)
    assert len(df) == 0 and list(df.columns) == ITEMS.names


def test_wrong_columns_are_refused_on_the_callers_thread(tmp_path):
    with ColumnStream(tmp_path / "t", ITEMS) as s:
        bad = block(0, 5)
        del bad["state"]
        with pytest.raises(StreamError, match="one array per schema field"):
            s.append(bad)


def test_an_old_table_is_never_appended_to(tmp_path):
    path = tmp_path / "items.parquet"
    with ColumnStream(path, ITEMS) as s:
        s.append(block(0, 5))
    with pytest.raises(StreamError, match="never appends to an old one"):
        ColumnStream(path, ITEMS)


def test_a_writer_failure_surfaces_on_the_next_append_and_on_close(tmp_path):
    path = tmp_path / "items.parquet"
    s = ColumnStream(path, ITEMS, flush_s=0.05)
    s.append(block(0, 100))
    shutil.rmtree(path)  # the disk "goes away": the next part cannot be written
    s.append(block(100, 100))
    with pytest.raises(StreamError, match="writer of .* failed.*lost"):
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline:
            s.append(block(200, 1))
            time.sleep(0.02)
    with pytest.raises(StreamError, match="FileNotFoundError"):
        s.close()


def test_a_bad_dtype_fails_in_the_writer_and_surfaces_on_close(tmp_path):
    s = ColumnStream(tmp_path / "t", ITEMS)
    bad = block(0, 3)
    bad["value"] = np.array(["a", "b", "c"])
    s.append(bad)
    with pytest.raises(StreamError, match="failed"):
        s.close()


CHILD = textwrap.dedent(
    """
    import sys, time
    import numpy as np
    sys.path.insert(0, {repo!r})
    from framework.results.stream import ColumnStream
    from tests.unit.test_stream import ITEMS, block
    s = ColumnStream({path!r}, ITEMS)
    n = 0
    while True:
        s.append(block(n, 5000))
        n += 5000
        print(n, time.monotonic(), flush=True)
        time.sleep(0.01)
    """
)


def test_rows_appended_a_second_before_sigkill_are_readable(tmp_path):
    path = tmp_path / "items.parquet"
    code = CHILD.format(repo=str(REPO), path=str(path))
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, cwd=REPO)
    appended: list[tuple[int, float]] = []
    try:
        start = time.monotonic()
        while time.monotonic() - start < 15:
            line = child.stdout.readline()
            if not line:
                break
            n, t = line.split()
            appended.append((int(n), float(t)))
            if appended[-1][1] - appended[0][1] > 2.0:
                break
    finally:
        killed_at = time.monotonic()
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
        child.stdout.close()
    assert child.returncode == -signal.SIGKILL
    assert appended and appended[-1][1] - appended[0][1] > 2.0, "the child did not run long enough"
    must_have = max(n for n, t in appended if t < killed_at - 1.0)
    seq = read_table(path, columns=["seq"]).seq.to_numpy()
    assert len(seq) >= must_have
    assert (seq == np.arange(len(seq))).all()


def test_a_part_joins_only_its_own_blocks_and_leaves_the_rest_untouched(tmp_path):
    """The backlog is not copied at every part: the blocks after the part are handed back as they came."""
    blocks = [block(i * 1000, 1000, worker=0) for i in range(4)]
    with ColumnStream(tmp_path / "items.parquet", ITEMS) as s:
        rest, left = s._write_part(list(blocks), 2500)
        assert left == 1500 and len(rest) == 2
        assert rest[1] is blocks[3]  # untouched
        assert rest[0]["seq"].tolist() == list(range(2500, 3000)) and np.shares_memory(rest[0]["seq"], blocks[2]["seq"])
        rest, left = s._write_part(rest, 1500)
        assert (rest, left) == ([], 0)
    assert read_table(tmp_path / "items.parquet")["seq"].tolist() == list(range(4000))
