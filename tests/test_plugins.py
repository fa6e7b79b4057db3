"""A user's own code and configs, kept outside framework/, run end to end (tests/plugin_example).

    queue._target_=chiefbench_example.designs.ExamplePipeDesign      a design of one's own
    payload._target_=chiefbench_example.payloads.ticks               a make_source function (or .TickKind)
    payload=rollout payload.env_module=chiefbench_example.envs payload.env_id=ChiefbenchCountdown-v0
    --config-dir tests/plugin_example/conf  queue=example_pipe payload=ticks +experiment=mine

In-process runs see the package through ``sys.path`` (spawned workers inherit it); the command runs in a
subprocess with ``PYTHONPATH`` naming this checkout and the example package.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

import framework
from framework.config.hydra import check_group_overrides, compose, group_options
from framework.config.validate import to_spec
from framework.engine.runner import execute
from framework.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent
PLUGIN_DIR = Path(__file__).resolve().parent / "plugin_example"
USER_CONF = PLUGIN_DIR / "conf"
if str(PLUGIN_DIR) not in sys.path:
    sys.path.insert(0, str(PLUGIN_DIR))  # spawned workers inherit sys.path

DESIGN = "chiefbench_example.designs.ExamplePipeDesign"
TICKS = "chiefbench_example.payloads.ticks"
FAST = ["workers.interval_s=0", "chief.interval_s=0", "chief.take_batch=0", "chief.global_threshold=0",
        "workers.local_threshold=0",
        "run.progress=false", "run.print_items=false", "run.items=20"]
"""As fast as possible, every item forwarded at once and taken at the next check: all 20 per worker arrive."""


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """The chiefbench command of this checkout, with the example package importable."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(PLUGIN_DIR)])}
    return subprocess.run([sys.executable, "-m", "framework.cli.main", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=100)


def summary_of(run_dir: Path) -> dict:
    return json.loads((run_dir / "summary.json").read_text())


def assert_one_paragraph(message: str, key: str) -> None:
    assert message.startswith(f"Invalid config: {key}="), message
    assert "Fix:" in message and "\n" not in message.strip() and "Traceback" not in message, message


def assert_all_ticks(items, workers: int, n: int = 20, start: float = 1000.0) -> None:
    """Each worker's recorded values are exactly start, start + 1, ... (the ticks payload's first number)."""
    assert sorted(items.worker.unique()) == list(range(workers))
    for _, rows in items.groupby("worker"):
        assert sorted(rows.value) == [start + k for k in range(n)]


# --------------------------------------------------------------------------- a design of one's own


@pytest.mark.timeout(60)
def test_plugin_design_runs_in_process(run_in):
    result = run_in([f"queue._target_={DESIGN}", "workers.count=2", *FAST])
    s = result.summary
    assert s["status"] == "ok", s["errors"]
    assert s["config"]["queue"] == {**s["config"]["queue"], "_target_": DESIGN, "name": "example_pipe"}
    assert s["counts"]["produced"] == s["counts"]["consumed"] == 40 and s["counts"]["lost"] == 0
    assert len(result.items) == 40


@pytest.mark.timeout(120)
def test_plugin_design_runs_from_the_command(tmp_path):
    out = tmp_path / "run"
    proc = cli(f"queue._target_={DESIGN}", "workers.count=2", *FAST, f"hydra.run.dir={out}", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    s = summary_of(out)
    assert s["status"] == "ok" and s["config"]["queue"]["name"] == "example_pipe"
    assert s["counts"]["consumed"] == 40


def test_plugin_design_check_rule_fires():
    with pytest.raises(ConfigError) as info:
        to_spec(compose([f"queue._target_={DESIGN}", "workers.count=65"]))
    assert_one_paragraph(str(info.value), "workers.count")
    assert "queue=example_pipe" in str(info.value) and "at most 64" in str(info.value)
    # The same count is fine for a built-in design: the rule is the plug-in's own.
    assert to_spec(compose(["queue=pipe", "workers.count=65"])).workers.count == 65


@pytest.mark.parametrize("target, says", [
    ("chiefbench_example.nope.Design", "'chiefbench_example' has no attribute 'nope'"),
    ("chiefbench_example.designs.Nope", "has no attribute 'Nope'"),
    ("chiefbench_example.payloads.ticks", "is not a QueueDesign subclass"),
    # The module exists but imports a package that is missing: that package is named, not the module.
    ("chiefbench_example.broken.BrokenDesign", "chiefbench_example_missing_dependency"),
])
def test_bad_design_target_is_one_paragraph(target, says):
    with pytest.raises(ConfigError) as info:
        to_spec(compose([f"queue._target_={target}"]))
    assert_one_paragraph(str(info.value), "queue._target_")
    assert says in str(info.value)


@pytest.mark.timeout(120)
def test_bad_targets_from_the_command_exit_2_without_traceback(tmp_path):
    for override, key in ((f"queue._target_=chiefbench_example.payloads.ticks", "queue._target_"),
                          ("payload._target_=chiefbench_example.payloads.DEFAULT_SIZE", "payload._target_")):
        proc = cli(override, cwd=tmp_path)
        assert proc.returncode == 2, (override, proc.stdout, proc.stderr)
        assert "Traceback" not in proc.stdout + proc.stderr
        assert_one_paragraph(proc.stderr.strip(), key)
    assert not list(tmp_path.rglob("summary.json"))


# --------------------------------------------------------------------------- a payload of one's own


@pytest.mark.timeout(60)
def test_plugin_payload_function_is_recorded_and_labelled(tmp_path):
    result = framework.run([f"payload._target_={TICKS}", "+payload.size=8", "transform=none", "workers.count=2", *FAST],
                           output_dir=tmp_path / "run", echo=lambda line: None)
    s = result.summary
    assert s["status"] == "ok", s["errors"]
    assert s["config"]["payload"]["name"] == "ticks" and s["config"]["payload"]["_target_"] == TICKS
    assert s["item_bytes"] == 8 * 8  # its item_nbytes attribute
    assert_all_ticks(result.items, workers=2)  # its value_of attribute: the first number of each item
    # Its keys (no schema) are recorded as given, in summary.json and config.yaml.
    assert summary_of(tmp_path / "run")["config"]["payload"]["size"] == 8
    assert "  size: 8" in (tmp_path / "run" / "config.yaml").read_text()


def test_plugin_payload_kind_has_its_own_check_and_label():
    spec = to_spec(compose(["payload._target_=chiefbench_example.payloads.TickKind"]))
    assert spec.payload.name == "tick_kind"
    with pytest.raises(ConfigError) as info:
        to_spec(compose(["payload._target_=chiefbench_example.payloads.TickKind", "+payload.size=0"]))
    assert_one_paragraph(str(info.value), "payload.size")
    # A label that names another payload is refused: payload.name only labels what _target_ picks.
    with pytest.raises(ConfigError) as info:
        to_spec(compose([f"payload._target_={TICKS}", "payload.name=randint"]))
    assert_one_paragraph(str(info.value), "payload.name")


# --------------------------------------------------------------------------- an environment of one's own


@pytest.mark.timeout(90)
def test_plugin_env_rollout_records_transitions(run_in):
    pytest.importorskip("gymnasium")
    result = run_in(["payload=rollout", "payload.env_id=ChiefbenchCountdown-v0",
                     "payload.env_module=chiefbench_example.envs", "payload.fragment_length=16", "transform=none",
                     "workers.count=2", *FAST])
    s = result.summary
    assert s["status"] == "ok", s["errors"]
    assert s["config"]["payload"]["env_id"] == "ChiefbenchCountdown-v0"
    assert s["counts"]["consumed"] == 40
    assert s["transitions"]["per_item"] == 16 and s["transitions"]["consumed"] == 40 * 16
    # The recorded value is a fragment's reward sum; this env pays the random action (0 or 1) per step,
    # where CartPole would pay 1 for every step (16).
    values = result.items.value
    assert all(v == int(v) and 0 <= v <= 16 for v in values) and values.min() < 16


def test_env_module_that_does_not_import_is_one_paragraph():
    pytest.importorskip("gymnasium")
    with pytest.raises(ConfigError) as info:
        to_spec(compose(["payload=rollout", "payload.env_id=ChiefbenchCountdown-v0",
                         "payload.env_module=chiefbench_example.nope"]))
    assert_one_paragraph(str(info.value), "payload.env_module")


# --------------------------------------------------------------------------- configs of one's own


def test_user_queue_option_needs_its_config_dir():
    assert "example_pipe" in group_options("queue", [USER_CONF])
    check_group_overrides(["queue=example_pipe", "payload=ticks"], [USER_CONF])  # accepted
    check_group_overrides(["--config-dir", str(USER_CONF), "queue=example_pipe"])  # found on the command line
    check_group_overrides([f"hydra.searchpath=[file://{USER_CONF}]", "queue=example_pipe"])
    with pytest.raises(ConfigError) as info:
        check_group_overrides(["queue=example_pipe"])  # without the directory it is unknown
    assert_one_paragraph(str(info.value), "queue")
    assert "--config-dir" in str(info.value)
    with pytest.raises(ConfigError) as info:
        check_group_overrides(["queue=nope"], [USER_CONF])
    assert_one_paragraph(str(info.value), "queue")
    assert "example_pipe" in str(info.value)  # the user's options are listed with the built-in ones


def test_compose_with_a_user_config_dir():
    cfg = compose(["queue=example_pipe", "payload=ticks"], config_dirs=[USER_CONF])
    assert cfg.queue._target_ == DESIGN and cfg.payload._target_ == TICKS
    spec = to_spec(cfg)
    assert (spec.queue.name, spec.payload.name, spec.payload.size) == ("example_pipe", "ticks", 4)
    # framework.run takes overrides only: Hydra's search path is the way to add the directory there.
    spec = to_spec(compose([f"hydra.searchpath=[file://{USER_CONF}]", "queue=example_pipe"]))
    assert spec.queue._target_ == DESIGN


@pytest.mark.timeout(60)
def test_experiment_preset_outside_the_package_via_compose(tmp_path):
    spec = to_spec(compose(["+experiment=mine"], config_dirs=[USER_CONF]))
    assert (spec.queue.name, spec.payload.name, spec.transform.name) == ("example_pipe", "ticks", "none")
    assert (spec.workers.count, spec.run.items) == (2, 20)
    result = execute(spec, tmp_path / "run", ["+experiment=mine"], echo=lambda line: None)
    assert result.summary["status"] == "ok", result.summary["errors"]
    assert_all_ticks(result.items, workers=2)


@pytest.mark.timeout(120)
def test_experiment_preset_outside_the_package_via_the_command(tmp_path):
    out = tmp_path / "run"
    # As a user types it from the checkout: a relative --config-dir (options first: Hydra's argument parser).
    proc = cli("--config-dir", str(USER_CONF.relative_to(ROOT)), "+experiment=mine", f"hydra.run.dir={out}",
               cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    s = summary_of(out)
    assert s["status"] == "ok"
    assert (s["config"]["queue"]["name"], s["config"]["payload"]["name"]) == ("example_pipe", "ticks")
    assert s["counts"]["consumed"] == 40
    assert "+experiment=mine" in s["rerun_command"]


@pytest.mark.timeout(180)
def test_sweep_over_plugin_and_builtin_designs_with_a_user_payload(tmp_path):
    sweep = tmp_path / "sweep"
    proc = cli("--config-dir", str(USER_CONF), "-m", f"queue._target_={DESIGN},framework.queues.stdlib.PipeDesign",
               "payload=ticks", "transform=none", *FAST, f"hydra.sweep.dir={sweep}",
               "hydra.callbacks.gather.report=false", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    table = framework.collect(sweep).table
    assert sorted(table["config.queue.name"]) == ["example_pipe", "pipe"]
    assert set(table["status"]) == {"ok"} and set(table["config.payload.name"]) == {"ticks"}
    assert set(table["config.payload.size"]) == {4} and set(table["counts.consumed"]) == {40}


@pytest.mark.timeout(120)
def test_user_queue_option_from_the_command(tmp_path):
    out = tmp_path / "run"
    proc = cli("--config-dir", str(USER_CONF), "queue=example_pipe", "payload=ticks", *FAST, f"hydra.run.dir={out}",
               cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    s = summary_of(out)
    assert s["status"] == "ok" and s["config"]["queue"]["_target_"] == DESIGN
    # Without the directory the option is unknown: one paragraph, exit 2, nothing run.
    proc = cli("queue=example_pipe", cwd=tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stdout + proc.stderr
    assert_one_paragraph(proc.stderr.strip(), "queue")


# --------------------------------------------------------------------------- make bench


@pytest.mark.timeout(120)
def test_bench_takes_a_plugin_design_by_target(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("chiefbench_bench_plugins", ROOT / "experiments" / "bench.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out = tmp_path / "bench"
    code = bench.main(["--repeats", "1", "--duration", "0.3", "--raw-duration", "0.2", "--designs", f"pipe,{DESIGN}",
                       "--payloads", "float", "--workers", "1", "--no-latency", "--no-report", "--out", str(out),
                       "--per-put-payloads", "none", "--check-rounds", "0"])
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert "example_pipe: no raw reference" in printed
    table = bench.pd.read_csv(out / "bench_table.csv").set_index("design")
    assert set(table.index) == {"pipe", "example_pipe"}
    assert table.loc["example_pipe", "items_per_s"] > 0 and math.isnan(table.loc["example_pipe", "raw_items_per_s"])
    assert table.loc["pipe", "raw_items_per_s"] > 0  # a built-in design keeps its reference
