"""The Ray backend on a local Ray instance (2 CPUs): data paths, books, reproducibility, killed
actors, the embedded start and stop, a sweep through hydra/launcher=ray, the launcher presets.

Ray's start-up costs seconds on 2 cores, so the in-process runs share one Ray instance (the
module's ``shared_ray``, which chiefbench finds initialised and leaves alone); the embedded
start and stop is tested once, through the real command. This module replaces conftest's
``no_leftover_processes`` with one that tells the shared instance's processes apart, and
checks at the end of the module that the instance left nothing behind either.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import sys
import time
from pathlib import Path

import psutil
import pytest

from conftest import FAST, leaked_temp, project_children, temp_entries
from framework.config.hydra import compose
from framework.config.validate import to_spec
from framework.errors import ConfigError

ray = pytest.importorskip("ray", reason="the Ray backend's tests need the ray extra: pip install 'chiefbench[ray]'")

CHIEFBENCH = str(Path(sys.executable).with_name("chiefbench"))
ENV = {**os.environ, "PYTHONUNBUFFERED": "1"}
ITEMS = 200
RUN_FILES = {"config.yaml", "depth.parquet", "items.parquet", "memory.parquet", "summary.json"}


def ray_processes(marker: str | None = None) -> list[psutil.Process]:
    """Live processes of Ray (any, or those whose command line names ``marker``, e.g. a temp dir)."""
    found = []
    for p in psutil.process_iter(["cmdline", "name"]):
        try:
            cmd = " ".join(p.info["cmdline"] or [])
            if ("ray" in cmd or (p.info["name"] or "").startswith("ray::")) and (marker is None or marker in cmd):
                if p.status() != psutil.STATUS_ZOMBIE:
                    found.append(p)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


def worker_actors() -> list[psutil.Process]:
    """Our worker actors' processes still alive (Ray titles them ray::WorkerActor)."""
    found = []
    for p in psutil.Process().children(recursive=True):
        try:
            if "WorkerActor" in p.name() or "WorkerActor" in " ".join(p.cmdline()):
                found.append(p)
        except (psutil.NoSuchProcess, psutil.ZombieProcess):
            continue
    return found


@pytest.fixture(scope="module")
def shared_ray():
    """One embedded Ray instance (2 CPUs) for the module, started and stopped as chiefbench does."""
    from framework.engine.backends.ray_backend import _RaySession

    spec = to_spec(compose(["backend=ray", "backend.cluster_cpus=2"]))
    session = _RaySession(spec)
    assert session.connected and ray.is_initialized()
    yield session
    tempdir = session.tempdir
    session.close()
    assert not ray.is_initialized()
    assert not ray_processes(tempdir), "the shared Ray instance left processes behind"
    assert not Path(tempdir).exists()


@pytest.fixture(autouse=True)
def no_leftover_processes():
    """conftest's check, except for the shared Ray instance's own processes; no actor may survive a test."""
    temp_before = temp_entries()
    yield
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline and (worker_actors() or _foreign_children()):
        time.sleep(0.1)
    assert not worker_actors(), f"worker actors left alive: {worker_actors()}"
    left = _foreign_children()
    assert not left, f"processes left behind: {[(p.pid, p.name()) for p in left]}"
    leaked = leaked_temp(temp_before)
    assert not leaked, f"temporary directories left: {leaked}"


def _foreign_children() -> list[psutil.Process]:
    """Children that are neither the shared Ray instance nor multiprocessing's helpers."""
    ray_pids = {p.pid for p in ray_processes()}
    return [p for p in project_children() if p.pid not in ray_pids]


def assert_books(result) -> None:
    c = result.counts
    assert c["produced"] == c["consumed"] + c["left_in_queues"] + c["dropped"] + c["lost"]
    assert c["lost_unexplained"] == 0 and c["duplicates"] == 0 and c["unexpected"] == 0


def values(result) -> dict[int, list[float]]:
    return {w: g.sort_values("seq")["value"].round(9).tolist() for w, g in result.items.groupby("worker")}


# --------------------------------------------------------------------------- configuration


def test_backend_ray_pairs_with_a_ray_design_and_refuses_a_local_one():
    assert to_spec(compose(["backend=ray"])).queue.name == "ray_batches"
    assert to_spec(compose(["backend=ray", "queue=ray_queue"])).queue.name == "ray_queue"
    with pytest.raises(ConfigError, match=r"queue='mp_queue'.*runs on backend=local.*backend=ray"):
        to_spec(compose(["backend=ray", "queue=mp_queue"]))
    with pytest.raises(ConfigError, match=r"queue='ray_queue'.*runs on backend=ray.*Fix: use `backend=ray"):
        to_spec(compose(["queue=ray_queue"]))


@pytest.mark.parametrize("override, key", [
    ("backend.placement_strategy=ROUND_ROBIN", "backend.placement_strategy"),
    ("backend.num_cpus=-1", "backend.num_cpus"),
    ("backend.address=nowhere", "backend.address"),
    ("backend.object_store_memory=1000", "backend.object_store_memory"),
])
def test_ray_keys_are_validated(override, key):
    with pytest.raises(ConfigError) as info:
        to_spec(compose(["backend=ray", override]))
    assert info.value.key == key and "Fix: " in str(info.value)


def test_object_store_memory_is_refused_when_attaching():
    with pytest.raises(ConfigError, match="running cluster has its own"):
        to_spec(compose(["backend=ray", "backend.address=auto", "backend.object_store_memory=100000000"]))


def test_without_the_extra_backend_ray_gives_the_install_command(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "ray" else real(name, *a))
    with pytest.raises(ConfigError) as info:
        to_spec(compose(["backend=ray"]))
    assert "pip install 'chiefbench[ray]'" in str(info.value) and info.value.key == "queue"
    assert "queue=ray_batches needs ray" in str(info.value)


def test_submitit_preset_composes_into_slurm_parameters():
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from framework.config.hydra import conf_dir, register_configs

    register_configs()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        cfg = hydra_compose("config", overrides=["hydra/launcher=submitit_slurm", "hydra.launcher.partition=gpu",
                                                 "workers.count=3"], return_hydra_config=True)
    launcher = cfg.hydra.launcher
    assert launcher._target_ == "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"
    assert (launcher.partition, launcher.cpus_per_task, launcher.nodes, launcher.tasks_per_node) == ("gpu", 4, 1, 1)
    assert launcher.cpus_per_task >= cfg.workers.count + 1  # the chief and its workers fit the job
    assert launcher.timeout_min == 30 and launcher.mem_gb == 8
    # The keys the preset leaves alone keep the plugin's defaults (its schema still applies).
    assert launcher.submitit_folder.endswith(".submitit/%j") and launcher.array_parallelism == 256


def test_submitit_preset_generates_the_sbatch_parameters(tmp_path, monkeypatch):
    """What hydra-submitit-launcher hands to sbatch for the preset, up to the submission (no SLURM here)."""
    import submitit
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.utils import instantiate

    from framework.config.hydra import conf_dir, register_configs

    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "srun").write_text("#!/bin/sh\nexit 0\n")
    (fake / "srun").chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake}:{os.environ['PATH']}")
    register_configs()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        cfg = hydra_compose("config", overrides=["hydra/launcher=submitit_slurm", "hydra.launcher.partition=debug",
                                                 f"hydra.sweep.dir={tmp_path / 'sweep'}", "hydra.job.name=chiefbench"],
                            return_hydra_config=True)

    class Submitted(Exception):
        pass

    real = submitit.AutoExecutor
    captured = {}

    def executor(**kwargs):
        made = real(**kwargs)

        def update_parameters(**params):
            real.update_parameters(made, **params)
            captured["sbatch"] = made._executor._make_submission_file_text("chiefbench", "0")
            raise Submitted  # stop before anything is submitted

        made.update_parameters = update_parameters
        return made

    monkeypatch.setattr(submitit, "AutoExecutor", executor)
    launcher = instantiate(cfg.hydra.launcher)
    launcher.config = cfg
    with pytest.raises(Submitted):
        launcher.launch([["run.seed=1"]], 0)
    sbatch = captured["sbatch"]
    for line in ("--cpus-per-task=4", "--partition=debug", "--time=30", "--mem=8GB", "--nodes=1",
                 "--ntasks-per-node=1", "--job-name=chiefbench"):
        assert f"#SBATCH {line}" in sbatch, sbatch


def test_ray_launcher_preset_works_locally_and_when_attaching():
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from omegaconf import OmegaConf

    from framework.config.hydra import conf_dir, register_configs

    register_configs()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        cfg = hydra_compose("config", overrides=["hydra/launcher=ray", "hydra.launcher.ray.init.address=auto"],
                            return_hydra_config=True)
    ray_cfg = OmegaConf.to_container(cfg.hydra.launcher.ray, resolve=True)
    # Present and null: hydra-ray-launcher's setdefault leaves it alone, and ray.init accepts it when attaching.
    assert "object_store_memory" in ray_cfg["init"] and ray_cfg["init"]["object_store_memory"] is None
    assert ray_cfg["init"]["address"] == "auto" and "num_cpus" not in ray_cfg["init"]
    assert ray_cfg["init"]["dashboard_host"] == "127.0.0.1" and ray_cfg["remote"]["num_cpus"] == 1


def test_stamps_of_an_actor_on_another_node_are_translated_into_the_drivers_clock():
    from framework.engine import protocol
    from framework.engine.backends.ray_backend import _shift

    off = 1_000  # the actor's clock runs 1 us ahead of the driver's
    eos = protocol.EndOfStream(0, 0, 3, 2, [(2, 5_300)], 0.0, 1.0, 1.0, 42)
    shifted = _shift([(0, 0, 5_000, 5_100, 1.5), protocol.Leftovers(0, [(0, 1, 5_200, -1, 2.5)]), eos], off)
    assert shifted[0] == (0, 0, 4_000, 4_100, 1.5)
    assert shifted[1].items == [(0, 1, 4_200, -1, 2.5)]  # a kept leftover has no forwarded stamp to move
    assert shifted[2].dropped == [(2, 4_300)]


# --------------------------------------------------------------------------- runs on the shared instance


@pytest.mark.timeout(120)
@pytest.mark.parametrize("design, extra", [("ray_batches", []), ("ray_queue", ["workers.local_threshold=7",
                                                                                 "workers.forward_batch=8"])])
def test_each_data_path_balances_its_books_and_reproduces_the_local_values(shared_ray, run_in, design, extra):
    overrides = [*FAST, f"run.items={ITEMS}", "run.seed=4321", *extra]
    result = run_in([*overrides, "backend=ray", f"queue={design}"])
    assert result.status == "ok", result.summary["errors"]
    assert_books(result)
    assert result.counts["lost"] == 0 and result.counts["produced"] == 2 * ITEMS
    assert result.counts["consumed"] > 0
    local = run_in([*overrides, "queue=mp_queue", "run.start_method=fork"])
    assert values(result) == values(local)  # same seed, same per-worker streams
    # The same files, and the same shape of summary, as a local run.
    assert {p.name for p in result.directory.iterdir()} == {p.name for p in local.directory.iterdir()} >= RUN_FILES
    assert set(result.summary) == set(local.summary)
    rows = {r["role"] for r in result.summary["processes"]}
    assert rows == {"chief", "worker"} and all(r["pid"] for r in result.summary["processes"])


@pytest.mark.timeout(120)
def test_a_run_by_duration_stamps_and_records_memory(shared_ray, run_in):
    result = run_in(["workers.interval_s=0.002", "chief.interval_s=0.01", "chief.take_batch=0", "run.duration_s=1.5",
                     "run.progress=false", "backend=ray"])
    assert result.status == "ok" and result.counts["lost"] == 0
    assert_books(result)
    consumed = result.items[result.items["state"] == "consumed"]
    assert (consumed["consumed_ns"] >= consumed["forwarded_ns"]).all()
    assert (consumed["forwarded_ns"] >= consumed["created_ns"]).all()
    assert {r["role"] for r in result.summary["memory"]} == {"chief", "worker"}


@pytest.mark.timeout(120)
@pytest.mark.parametrize("policy", ["abort", "restart"])
def test_a_killed_actor_is_handled_by_the_policy(shared_ray, run_in, policy):
    # The run ends once every worker produced 150 items: under restart, worker 0's second life must get there.
    result = run_in(["workers.interval_s=0.004", "chief.interval_s=0.01", "chief.take_batch=0", "run.items=150",
                     "run.progress=false", "run.seed=11", "backend=ray", f"workers.on_failure={policy}",
                     "faults.kill_worker_after_s=0.3", "faults.worker=0", "run.drain_timeout_s=5"])
    (failure,) = result.summary["failures"]
    assert failure["worker"] == 0 and failure["kind"] == "died"
    c = result.counts
    assert_books(result)
    assert c["lost"] == c["lost_dead_worker_local"] + c["lost_in_transit"]
    if policy == "abort":
        assert result.status == "failed" and failure["action"] == "abort" and c["restarts"] == 0
    else:
        assert result.status == "ok", result.summary["errors"]
        assert failure["action"].startswith("restart 1") and c["restarts"] == 1
        worker0 = result.items[result.items["worker"] == 0]
        assert worker0["seq"].max() >= 149  # the second life continued the sequence numbers to the end
        assert len({r["pid"] for r in result.summary["processes"] if r["worker"] == 0}) == 2


@pytest.mark.timeout(120)
def test_a_raising_actor_loses_nothing_under_continue(shared_ray, run_in):
    result = run_in(["workers.interval_s=0.004", "chief.interval_s=0.01", "chief.take_batch=0", "run.duration_s=1.2",
                     "run.progress=false", "backend=ray", "queue=ray_queue", "workers.on_failure=continue",
                     "faults.raise_after_s=0.3"])
    (failure,) = result.summary["failures"]
    assert failure["kind"] == "exception" and "InjectedFault" in failure["detail"]
    assert result.status == "ok" and result.counts["lost"] == 0
    assert_books(result)


# --------------------------------------------------------------------------- the real command


def _summaries(root: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(root.rglob("summary.json"))]


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_command_starts_and_stops_an_embedded_ray(tmp_path):
    """``chiefbench backend=ray`` on its own: Ray starts, the run is balanced, nothing of Ray is left."""
    out = tmp_path / "run"
    proc = subprocess.Popen([CHIEFBENCH, "backend=ray", "run.items=100", *FAST, f"hydra.run.dir={out}"],
                            cwd=tmp_path, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _, stderr = proc.communicate(timeout=170)
    assert proc.returncode == 0, stderr[-3000:]
    (summary,) = _summaries(out)
    assert summary["status"] == "ok" and summary["counts"]["lost"] == 0
    assert summary["config"]["backend"]["name"] == "ray"
    assert RUN_FILES <= {p.name for p in out.iterdir()}
    # Its embedded instance lived in chiefbench-<its pid>-ray-*: no process of it, nor the directory, is left.
    marker = f"chiefbench-{proc.pid}-ray-"
    assert not ray_processes(marker)
    assert not [n for n in temp_entries() if n.startswith(marker)]


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_two_job_sweep_through_the_ray_launcher(tmp_path):
    # The default sweep directory: the jobs (other processes) must resolve it as the launcher did.
    # The launcher's own Ray instance, in a short private directory (Ray's socket paths are length-limited).
    ray_dir = tempfile.mkdtemp(prefix="cbsweep-")
    try:
        proc = subprocess.run([CHIEFBENCH, "-m", "hydra/launcher=ray", "backend=ray", "run.seed=1,2", "run.items=40",
                               *FAST, f"+hydra.launcher.ray.init._temp_dir={ray_dir}",
                               "hydra.callbacks.gather.report=false"],  # the report: tests/test_report.py
                              cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=230)
        deadline = time.monotonic() + 10
        while ray_processes(ray_dir) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not ray_processes(ray_dir), "the launcher's Ray instance outlived the sweep"
    finally:
        shutil.rmtree(ray_dir, ignore_errors=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (sweep,) = (tmp_path / "outputs" / "sweeps").glob("*/*")
    assert "2 of 2 jobs gathered" in proc.stdout, proc.stdout[-2000:]
    summaries = _summaries(sweep)
    assert sorted(s["config"]["run"]["seed"] for s in summaries) == [1, 2]
    for s in summaries:
        assert s["status"] == "ok" and s["counts"]["lost"] == 0 and s["config"]["backend"]["name"] == "ray"
    assert (sweep / "sweep_results.parquet").exists()
    jobs = [json.loads(p.read_text()) for p in sorted(sweep.rglob("job.json"))]
    assert {j["launcher"] for j in jobs} and all(j["status"] == "ok" for j in jobs)
