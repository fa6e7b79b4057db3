"""``make bench`` in miniature: one design, one payload, one repeat; the table has its columns and figures."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import pandas as pd
import pytest

BENCH = Path(__file__).resolve().parent.parent / "experiments" / "bench.py"
COLUMNS = ["design", "payload", "workers", "batch", "items_per_s", "mb_per_s", "p50_ms", "p99_ms", "raw_items_per_s",
           "fw_raw", "gb_per_s", "memcpy_gb_per_s", "vs_mp_queue"]


def _bench():
    spec = importlib.util.spec_from_file_location("chiefbench_bench", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.timeout(120)
def test_bench_tiny_prints_and_writes_its_tables(tmp_path, capsys):
    bench = _bench()
    out = tmp_path / "bench"
    code = bench.main(["--repeats", "1", "--duration", "0.3", "--raw-duration", "0.2", "--latency-duration", "0.3",
                       "--designs", "pipe", "--payloads", "1KiB", "--workers", "1", "--no-report", "--out", str(out)])
    printed = capsys.readouterr().out
    assert code == 0, printed
    for heading in ("raw items/s", "fw/raw", "memcpy", "p99 ms", "chief CPU %", "targets"):
        assert heading in printed
    table = pd.read_csv(out / "bench_table.csv")
    assert list(table[COLUMNS].columns) == COLUMNS and len(table) == 1
    row = table.iloc[0]
    assert (row.design, row.payload, row.workers) == ("pipe", "1KiB", 1)
    for column in ("items_per_s", "mb_per_s", "p50_ms", "p99_ms", "raw_items_per_s", "fw_raw", "gb_per_s",
                   "memcpy_gb_per_s"):
        assert row[column] > 0 and math.isfinite(row[column]), column
    assert math.isnan(row.vs_mp_queue)  # mp_queue was not run
    latency = pd.read_csv(out / "bench_latency.csv")
    assert list(latency.design) == ["pipe"]
    assert (latency[["p50_ms", "p99_ms", "chief_cpu_percent", "worker_cpu_percent"]] > 0).all(axis=None)
    # A normal sweep directory: chiefbench-collect's table is there too.
    results = pd.read_csv(out / "sweep_results.csv")
    assert set(results["status"]) == {"ok"} and results["queue"].tolist() == ["pipe"]
