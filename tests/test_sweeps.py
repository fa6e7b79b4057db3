"""Sweeps: the multirun callback's table, failed jobs as rows, repeats, collect, compare, searches."""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest

import framework
from conftest import BIN, CHIEFBENCH, ROOT, chiefbench
from framework import hygiene
from framework.errors import ComparisonError
from framework.results.compare import compare, format_compare
from framework.results.stats import aggregate, median_ci
from framework.results.collect import collect
from framework.results.text import progress_line

TINY = ["run.items=20", "workers.interval_s=0", "chief.interval_s=0", "run.start_method=fork", "run.progress=false"]


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """One tiny sweep shared by the tests below: 2 designs x 2 bounds x 2 worker counts, 2 repeats each.

    queue.maxsize=2 (not above chief.global_threshold=3) is invalid: those jobs must become failed rows.
    """
    root = tmp_path_factory.mktemp("sweep")
    proc = chiefbench("-m", "queue=pipe,mp_queue", "queue.maxsize=0,2", "workers.count=1,2", "run.repeats=2",
                      "run.order=grouped", *TINY,
                      f"hydra.sweep.dir={root / 'sweep'}", "hydra.callbacks.gather.report=false", cwd=root)
    return root / "sweep", proc


@pytest.mark.timeout(180)
def test_callback_gathers_one_table_with_swept_keys_and_failed_rows(sweep):
    directory, proc = sweep
    assert proc.returncode == 0, proc.stderr
    table = pd.read_parquet(directory / "sweep_results.parquet")
    csv = pd.read_csv(directory / "sweep_results.csv")
    assert len(table) == len(csv)
    # 8 jobs: 4 valid ones x 2 repeats, and 4 invalid ones, a failed row each.
    assert table["job"].nunique() == 8 and len(table) == 4 * 2 + 4
    for key in ("queue", "queue.maxsize", "workers.count"):
        assert key in table.columns
    assert table.attrs["chiefbench"]["keys"] == ["queue", "queue.maxsize", "workers.count"]
    failed = table[table["status"] == "failed"]
    assert set(failed["queue"]) == {"pipe", "mp_queue"} and set(failed["queue.maxsize"]) == {2}
    assert failed["error"].str.contains("Invalid config: queue.maxsize=2").all()
    ok = table[table["status"] == "ok"]
    # run.items=20 ends a run in milliseconds: the chief may consume none in its window; the figure is there.
    assert len(ok) == 8 and ok["throughput_items_per_s"].notna().all()
    assert (ok["counts.produced"] == 20 * ok["workers.count"]).all() and (ok["counts.lost"] == 0).all()
    assert set(ok["repeat"]) == {0, 1} and ok["directory"].str.contains("repeat-").all()
    assert (table["metadata.concurrent_jobs"] == 1).all() and (table["metadata.launcher"] == "basic").all()
    # The per-configuration table, and what the end of the sweep printed.
    summary = pd.read_parquet(directory / "sweep_summary.parquet")
    assert len(summary) == 8 and set(summary["ok"]) == {0, 2}
    assert "items/s (median)" in proc.stdout and "failed job" in proc.stdout
    assert "8/8 jobs" in proc.stderr  # the sweep's progress bar


@pytest.mark.timeout(60)
def test_collect_is_idempotent_and_lists_missing_grid_points(sweep, tmp_path):
    directory = tmp_path / "copy"
    shutil.copytree(sweep[0], directory)
    first = collect(directory).table
    again = collect(directory)
    pd.testing.assert_frame_equal(first, again.table)
    pd.testing.assert_frame_equal(first, pd.read_parquet(directory / "sweep_results.parquet"))
    assert again.missing == [] and again.expected == 8
    # A job whose results disappeared (killed before writing) is listed, and the table has the others.
    job = int(first[(first["queue"] == "mp_queue") & (first["workers.count"] == 2)
                    & (first["status"] == "ok")]["job"].iloc[0])
    for summary in (directory / str(job)).rglob("summary.json"):
        summary.unlink()
    shutil.rmtree(directory / str(job) / "repeat-1")
    rebuilt = collect(directory)
    # The repeat whose directory is gone is gone; the one that lost only its summary kept its streamed
    # records, and is a row with status crashed.
    assert len(rebuilt.table) == len(first) - 1
    assert set(rebuilt.table.loc[rebuilt.table["job"] == job, "status"]) == {"crashed"}
    assert len(rebuilt.missing) == 1 and "queue=mp_queue" in rebuilt.missing[0]
    proc = subprocess.run([str(BIN / "chiefbench-collect"), str(directory)], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0 and "1 grid point(s) without a result" in proc.stdout


@pytest.mark.timeout(60)
def test_repeats_write_one_directory_each_and_give_a_median_with_ci(tmp_path):
    results = framework.run(["run.repeats=3", *TINY], output_dir=tmp_path / "run", echo=lambda _: None)
    assert len(results) == 3 and all(r.status == "ok" for r in results)
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["repeat-0", "repeat-1", "repeat-2"]
    c = collect(tmp_path / "run", write=False)
    assert len(c.table) == 3 and list(c.table["repeat"]) == [0, 1, 2]
    row = c.summary.iloc[0]
    assert row["ok"] == 3 and row["ci_low"] <= row["median"] <= row["ci_high"] and row["ci_level"] == 0.75


def test_invalid_repeats_is_a_config_error():
    with pytest.raises(framework.ConfigError, match="run.repeats"):
        framework.run(["run.repeats=0"])


def test_median_ci_is_distribution_free():
    assert median_ci([3.0, 1.0, 2.0]) == (1.0, 3.0, 0.75)
    low, high, level = median_ci(list(range(20)))
    assert level >= 0.95 and 0 < low < 9.5 < high < 19
    assert math.isnan(median_ci([])[0])


def _table(values_by_config, host="a", concurrent=1):
    rows = [{"queue": q, "status": "ok", "throughput_items_per_s": v, "metadata.hostname": host,
             "metadata.cpu_model": "cpu", "metadata.cpu_count": 2, "metadata.concurrent_jobs": concurrent}
            for q, values in values_by_config.items() for v in values]
    table = pd.DataFrame(rows)
    table.attrs["chiefbench"] = {"keys": ["queue"]}
    return table


def test_compare_gives_ratio_and_mann_whitney_p_value():
    a = _table({"pipe": [100, 101, 99, 102, 98], "mp_queue": [50, 52, 49, 51, 50], "only_a": [1, 2]})
    b = _table({"pipe": [150, 151, 149, 152, 148], "mp_queue": [50, 51, 49, 52, 50], "only_b": [1]})
    result = compare(a, b)
    assert list(result["configuration"]) == ["queue=pipe", "queue=mp_queue"]
    pipe, mp = result.iloc[0], result.iloc[1]
    assert pipe["ratio"] == pytest.approx(1.5) and pipe["p_value"] < 0.05 and pipe["significant"]
    assert pipe["verdict"] == "faster"
    assert not mp["significant"] and mp["verdict"] == "no significant difference"
    assert "B/A" in format_compare(result) and "1.50x" in format_compare(result)
    few = compare(_table({"pipe": [1, 2, 3]}), _table({"pipe": [7, 8, 9]}))
    assert few.iloc[0]["verdict"].startswith("too few repeats")


@pytest.mark.parametrize("other", [{"host": "b"}, {"concurrent": 4}])
def test_compare_refuses_other_machines_or_concurrency_unless_forced(other):
    a, b = _table({"pipe": [1, 2, 3, 4]}), _table({"pipe": [1, 2, 3, 4]}, **other)
    with pytest.raises(ComparisonError, match="force"):
        compare(a, b)
    forced = compare(a, b, force=True)
    assert forced.iloc[0]["ratio"] == 1.0 and forced.attrs["chiefbench"]["forced_despite"]


@pytest.mark.timeout(60)
def test_compare_command_on_two_sweep_directories(sweep, tmp_path):
    directory = sweep[0]
    proc = subprocess.run([str(BIN / "chiefbench-compare"), str(directory), str(directory / "sweep_results.csv"),
                           "--csv", str(tmp_path / "cmp.csv")], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "B/A" in proc.stdout and "queue=mp_queue queue.maxsize=0 workers.count=2" in proc.stdout
    cmp = pd.read_csv(tmp_path / "cmp.csv")
    assert len(cmp) == 4 and (cmp["ratio"] == 1.0).all()


def test_aggregate_calls_out_a_large_spread():
    summary = aggregate(_table({"pipe": [100, 150, 60, 120]}), ["queue"])
    assert "large spread" in summary.iloc[0]["warning"] and "run.repeats" in summary.iloc[0]["warning"]


def test_progress_line():
    assert progress_line(3, 12, 30.0).startswith("sweep  [######------------------] 3/12 jobs")
    assert "ETA 1:30" in progress_line(3, 12, 30.0)


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_sweep_killed_halfway_then_collect_rebuilds_the_table(tmp_path):
    directory = tmp_path / "sweep"
    proc = subprocess.Popen([CHIEFBENCH, "-m", "queue=pipe,mp_queue,simple_queue", "workers.count=1,2",
                             "run.duration_s=0.5", "workers.interval_s=0", "chief.interval_s=0",
                             "run.start_method=fork", "run.progress=false", f"hydra.sweep.dir={directory}"],
                            cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(list(directory.glob("*/summary.json"))) < 2:
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGTERM)  # as a terminal or a batch system does
    assert proc.wait(timeout=60) != 0
    assert not (directory / "sweep_results.parquet").exists()
    c = collect(directory)
    assert (directory / "sweep_results.parquet").exists() and c.expected == 6
    done = set(c.table.loc[c.table["status"] == "ok", "job"])
    assert len(done) >= 2 and len(c.missing) == 6 - len(done)
    # SIGTERM between two jobs ends the sweep process before its exit hooks: the next run's
    # clean-up removes its private temporary directory.
    hygiene.remove_stale()


@pytest.mark.timeout(120)
def test_two_sweeps_started_together_never_share_a_directory_and_an_entry_point_runs_its_sweep(tmp_path):
    """Two sweeps started at once, both into the default outputs/sweeps/<date>/<time>_<pid>/: the command,
    and an experiment's entry point (experiments/load.py: the load preset, with the user's overrides)."""
    commands = [[CHIEFBENCH, "-m", "queue=pipe", *TINY, "hydra.callbacks.gather.report=false"],
                [sys.executable, str(ROOT / "experiments" / "load.py"), "workers.interval_s=0.01,0",
                 "run.duration_s=0.3", "run.warmup_s=0.1", "run.start_method=fork",
                 "hydra.callbacks.gather.report=false"]]
    procs = [subprocess.Popen(c, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for c in commands]
    for p in procs:
        _, stderr = p.communicate(timeout=100)
        assert p.returncode == 0, stderr
    sweeps = list((tmp_path / "outputs" / "sweeps").glob("*/*/sweep_results.parquet"))
    assert len(sweeps) == 2 and sweeps[0].parent != sweeps[1].parent
    tables = sorted((pd.read_parquet(path) for path in sweeps), key=len)
    assert list(tables[0]["queue"]) == ["pipe"] and (tables[0]["status"] == "ok").all()
    load = tables[1]
    assert sorted(load["workers.interval_s"]) == [0, 0.01] and (load["status"] == "ok").all()
    assert (load["run.duration_s"] == 0.3).all()  # the user's override wins over the preset's


@pytest.mark.timeout(150)
def test_joblib_launcher_records_its_concurrency(tmp_path):
    proc = chiefbench("-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "queue=pipe,simple_queue", *TINY,
                      f"hydra.sweep.dir={tmp_path / 'sweep'}", "hydra.callbacks.gather.report=false", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    table = pd.read_parquet(tmp_path / "sweep" / "sweep_results.parquet")
    assert len(table) == 2 and (table["metadata.concurrent_jobs"] == 2).all()
    assert (table["metadata.launcher"] == "joblib").all()
    serial = _table({"pipe": [1, 2, 3, 4]})
    with pytest.raises(ComparisonError, match="concurrent jobs"):
        compare(serial, table.assign(queue=table["queue"]))


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_optuna_search_marks_infeasible_trials_and_saves_the_best(tmp_path):
    directory = tmp_path / "search"
    # queue=pipe: with the preset's mp_queue a trial at full speed leaves up to a million items queued, whose
    # drain at the stop takes seconds; the search and its feasibility rules do not depend on the design.
    proc = chiefbench("-m", "+experiment=search", "queue=pipe", "hydra.sweeper.n_trials=3", "run.duration_s=0.3",
                      "run.warmup_s=0.05", "run.start_method=fork", "objective.max_p99_ms=1000000",
                      f"hydra.sweep.dir={directory}", "hydra.callbacks.gather.report=false", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    table = pd.read_parquet(directory / "sweep_results.parquet")
    assert table["job"].nunique() == 3 and "workers.count" in table.columns
    assert (directory / "optimization_results.yaml").exists() and (directory / "best.yaml").exists()
    jobs = [json.loads((directory / str(j) / "job.json").read_text()) for j in range(3)]
    # Under a bound every run meets, a trial is feasible exactly when it measured a latency at all (a trial
    # that consumed nothing in its window, as a loaded machine can make a 0.5 s one, has none).
    ok = [j for j in jobs if j["status"] == "ok"]
    assert ok and all(j["feasible"] is (j["p99_ms"] is not None) for j in ok)
    assert any(j["feasible"] is True for j in ok)
    # With an impossible bound every trial is infeasible and scores below zero.
    proc = chiefbench("-m", "+experiment=search", "queue=pipe", "hydra.sweeper.n_trials=2", "run.duration_s=0.3",
                      "run.warmup_s=0.1", "run.start_method=fork", "objective.max_p99_ms=0.000001",
                      f"hydra.sweep.dir={tmp_path / 'none'}", "hydra.callbacks.gather.report=false", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    table = pd.read_parquet(tmp_path / "none" / "sweep_results.parquet")
    ok = table[table["status"] == "ok"]
    assert len(ok) and (ok["feasible"].astype(str) == "False").all() and (ok["objective"] < 0).all()
    assert "infeasible" in proc.stdout


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_a_job_past_its_timeout_is_a_failed_row_and_the_sweep_goes_on(tmp_path):
    # run.timeout_s covers a job's whole run (its workers' start and its drain too): 2.5 s leaves the 0.3 s job
    # several times what it needs.
    proc = chiefbench("-m", "run.duration_s=60,0.3", "run.timeout_s=2.5", "queue=pipe", "chief.take_batch=0",
                      "workers.interval_s=0", "chief.interval_s=0", "run.start_method=fork", "run.progress=false",
                      f"hydra.sweep.dir={tmp_path / 'sweep'}", "hydra.callbacks.gather.report=false", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    table = pd.read_parquet(tmp_path / "sweep" / "sweep_results.parquet").set_index("run.duration_s")
    assert table.loc[60.0, "status"] == "failed" and "timed out" in table.loc[60.0, "error"]
    assert table.loc[60.0, "window.seconds"] < 8 and table.loc[60.0, "counts.produced"] > 0
    assert table.loc[0.3, "status"] == "ok"


def test_compare_matches_a_key_swept_on_one_side_with_the_other_sides_config():
    a = _table({"pipe": [10, 11, 12, 13]}).assign(**{"config.workers.count": 2.0})
    b = pd.concat([_table({"pipe": [20, 21, 22, 23]}).assign(**{"workers.count": 2}),
                   _table({"pipe": [90, 91, 92, 93]}).assign(**{"workers.count": 4})])
    b.attrs["chiefbench"] = {"keys": ["queue", "workers.count"]}
    result = compare(a, b)
    assert list(result["configuration"]) == ["queue=pipe workers.count=2"]
    assert result.iloc[0]["median_b"] == 21.5


@pytest.mark.timeout(120)
def test_repeats_from_the_command_line_print_the_median(tmp_path):
    proc = chiefbench("run.repeats=2", *TINY, f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "repeat 2/2" in proc.stdout and "items/s (median)" in proc.stdout
    assert (tmp_path / "run" / "repeat-0" / "summary.json").exists()
    assert (tmp_path / "run" / "repeat-1" / "summary.json").exists()
