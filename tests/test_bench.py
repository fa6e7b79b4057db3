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
                       "--per-put-duration", "0.3", "--per-put-payloads", "float", "--check-rounds", "2000",
                       "--check-samples", "1", "--designs", "pipe", "--payloads", "1KiB", "--workers", "1",
                       "--no-report", "--out", str(out)])
    printed = capsys.readouterr().out
    assert code == 0, printed
    for heading in ("raw items/s", "fw/raw", "memcpy", "p99 ms", "chief CPU %", "one item per put",
                    "rankings, one item per put", "by chiefbench items/s and by the raw primitive items/s",
                    "float, chief.take_batch=1:", "float, chief.take_batch=0 (all):", "framework/raw per design",
                    "chief check cost at chief.take_batch=1", "chief's own", "targets", "could not tell",
                    "rankings equal", "chief check cost, take_batch=1", "bench took"):
        assert heading in printed, heading
    table = pd.read_csv(out / "bench_table.csv")
    assert list(table[COLUMNS].columns) == COLUMNS and len(table) == 1
    row = table.iloc[0]
    assert (row.design, row.payload, row.workers) == ("pipe", "1KiB", 1)
    for column in ("items_per_s", "mb_per_s", "p50_ms", "p99_ms", "raw_items_per_s", "fw_raw", "gb_per_s",
                   "memcpy_gb_per_s"):
        assert row[column] > 0 and math.isfinite(row[column]), column
    assert math.isnan(row.vs_mp_queue)  # mp_queue was not run
    latency = pd.read_csv(out / "bench_latency.csv")
    assert list(latency.design) == ["bare_wake", "pipe"]  # the machine's floor first, then each design
    assert (latency[["p50_ms", "p99_ms", "chief_cpu_percent"]] > 0).all(axis=None)
    assert latency.set_index("design").loc["pipe", "worker_cpu_percent"] > 0
    # One item per put: take_batch 1 and 0 (all), each next to its raw primitive.
    per_put = pd.read_csv(out / "bench_per_put.csv")
    assert sorted(per_put.take_batch) == [0, 1] and set(per_put.design) == {"pipe"}
    assert (per_put[["items_per_s", "raw_items_per_s", "fw_raw"]] > 0).all(axis=None)
    rankings = pd.read_csv(out / "bench_rankings.csv")
    assert len(rankings) == 2 and set(rankings.by_chiefbench) == {"pipe"}
    check = pd.read_csv(out / "bench_check_cost.csv").iloc[0]
    assert check.loop_us_per_check > 0 and check.fake_get_us > 0 and check.items_per_check == 1
    targets = pd.read_csv(out / "bench_targets.csv")
    assert {"target", "wanted", "measured", "met"} <= set(targets.columns)
    # Every CSV carries the machine's metadata.
    for name in ("bench_table.csv", "bench_per_put.csv", "bench_latency.csv", "bench_targets.csv"):
        assert "meta_cpu_model" in pd.read_csv(out / name).columns, name
    assert "cpu_count" in set(pd.read_csv(out / "bench_metadata.csv")["key"])
    # A normal sweep directory: chiefbench-collect's table is there too.
    results = pd.read_csv(out / "sweep_results.csv")
    assert set(results["status"]) == {"ok"} and set(results["queue"]) == {"pipe"} and len(results) == 3
