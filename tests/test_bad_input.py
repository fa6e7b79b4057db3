"""Bad input of every kind: a clear one-paragraph error or a run, never a hang or a traceback."""

from __future__ import annotations

import errno
from dataclasses import asdict
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from hydra.errors import ConfigCompositionException
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import framework
from conftest import FAST
from framework.config.hydra import compose
from framework.config.validate import to_spec
from framework.errors import ConfigError
from framework.errors import ResultsWriteError

KEYS = [
    "workers.count", "workers.interval_s", "workers.local_threshold", "workers.forward_batch",
    "workers.forward_deadline_s", "workers.local_queue", "workers.on_failure", "workers.max_restarts",
    "workers.heartbeat_timeout_s", "chief.interval_s", "chief.global_threshold", "chief.take_batch",
    "run.warmup_s", "run.seed", "run.start_method", "run.on_stop", "run.depth_sample_s", "queue.maxsize",
    "queue.max_bytes", "queue.on_full", "queue.name", "payload.low", "payload.high", "transform.value",
    "transform.name", "faults.worker", "faults.chief_delay_s", "faults.raise_after_s", "backend.name",
]
GROUPS = ["queue", "payload", "transform", "backend"]
VALUES = st.one_of(
    st.integers(min_value=-10**20, max_value=10**20).map(str),
    st.sampled_from(["0", "-1", "1", "2", "3", "1e308", "-0.0", "inf", "nan", "null", "true", "[]", "[1,2]",
                     "''", "fork", "spawn", "pipe", "mp_queue", "deque", "restart", "drop_oldest", "array"]),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.text(alphabet="abcxyz_-.0123456789", max_size=12),
)
OVERRIDES = st.lists(st.one_of(st.tuples(st.sampled_from(KEYS), VALUES).map("=".join),
                               st.tuples(st.sampled_from(GROUPS), VALUES).map("=".join)), min_size=1, max_size=3)
# The run-time budget a fuzzed run keeps, whatever else it changes.
SAFE = ["run.duration_s=0.3", "run.items=null", "run.start_method=fork",
        "workers.count=2", "run.progress=false", "run.print_items=false", "run.drain_timeout_s=2"]
SAFE_KEYS = {o.split("=")[0] for o in SAFE}


@pytest.mark.timeout(300)
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(overrides=OVERRIDES)
def test_random_overrides_run_or_fail_clearly(tmp_path_factory, overrides):
    overrides = [o for o in overrides if o.split("=")[0] not in SAFE_KEYS]
    try:
        cfg = compose([*overrides, *SAFE])
        spec = to_spec(cfg)
    except ConfigError as exc:
        message = str(exc)
        assert message.startswith("Invalid config: ") and "Fix: " in message and "\n" not in message
        return
    except ConfigCompositionException as exc:
        # Hydra's own clear messages: wrong type, unknown option, bad override syntax.
        assert str(exc) and "Traceback" not in str(exc)
        return
    event("ran")
    result = framework.run([*overrides, *SAFE], output_dir=tmp_path_factory.mktemp("fuzz"), echo=lambda _: None)
    assert result.status in ("ok", "failed")
    c = result.counts
    assert c["lost_unexplained"] == 0 and c["duplicates"] == 0
    assert c["produced"] == c["consumed"] + c["left_in_queues"] + c["dropped"] + c["lost"]
    assert (result.status == "ok") == (not result.summary["errors"]), result.summary["errors"]
    # The run is the one that was validated: every fuzzed value reached it (a null seed is drawn per run).
    expected = asdict(spec)
    if cfg.run.seed is None:
        expected["run"]["seed"] = result.summary["config"]["run"]["seed"]
    assert repr(result.summary["config"]) == repr(expected)


@pytest.mark.slow
@pytest.mark.timeout(300)
@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(overrides=OVERRIDES)
def test_random_overrides_on_the_command_line(tmp_path_factory, overrides):
    """The same through the real command: Hydra's parser too must not end in a traceback."""
    overrides = [o for o in overrides if o.split("=")[0] not in SAFE_KEYS]
    cwd = tmp_path_factory.mktemp("cli")
    chiefbench = str(Path(sys.executable).with_name("chiefbench"))
    proc = subprocess.run([chiefbench, *overrides, *SAFE], cwd=cwd, capture_output=True, text=True, timeout=60)
    assert "Traceback" not in proc.stdout + proc.stderr, proc.stderr
    assert proc.returncode in (0, 1, 2), proc.stderr
    if proc.returncode == 2:
        assert proc.stderr.strip()


def test_item_larger_than_the_byte_bound_names_size_capacity_and_key():
    with pytest.raises(ConfigError) as info:
        to_spec(compose(["payload=array", "payload.shape=[1024]", "queue.max_bytes=4096"]))
    message = str(info.value)
    assert "8,192 bytes" in message and "4,096 bytes" in message and "queue.max_bytes" in message


@pytest.mark.timeout(60)
def test_unwritable_output_is_refused_before_anything_runs(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    with pytest.raises(ResultsWriteError) as info:
        framework.run([*FAST, "run.items=30", "run.start_method=fork"], output_dir=blocker / "run",
                      echo=lambda _: None)
    message = str(info.value)
    # Records stream into the run directory as the run goes: one that cannot be written stops the run
    # before a worker starts (conftest checks none is left), so nothing measured is lost.
    assert str(blocker / "run") in message and "Fix:" in message and "Nothing was run" in message
    assert "\n" not in message


@pytest.mark.timeout(60)
def test_disk_full_at_the_end_loses_nothing_and_leaves_no_half_written_file(tmp_path, monkeypatch):
    real_write_text = Path.write_text

    def full(self, data, *args, **kwargs):
        if self.parent == out and self.name.startswith(".summary.json"):
            real_write_text(self, data[: len(data) // 2])
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write_text(self, data, *args, **kwargs)

    out = tmp_path / "run"
    monkeypatch.setattr(Path, "write_text", full)
    with pytest.raises(ResultsWriteError, match="No space left on device") as info:
        framework.run([*FAST, "run.items=30", "run.start_method=fork"], output_dir=out, echo=lambda _: None)
    # No summary under its final name, no temporary file left; the streamed records are there and readable.
    assert not (out / "summary.json").exists() and not [p for p in out.iterdir() if p.name.startswith(".")]
    assert len(framework.results.io.read_table(out / "items.parquet")) == 60
    # The summary went to a rescue directory, said in the message.
    rescued = Path(str(info.value).split("saved to '")[1].split("'")[0])
    assert json.loads((rescued / "summary.json").read_text())["counts"]["produced"] == 60
    assert info.value.result.counts["lost"] == 0


@pytest.mark.timeout(60)
def test_cli_reports_an_unwritable_output_without_a_traceback(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    chiefbench = str(Path(sys.executable).with_name("chiefbench"))
    proc = subprocess.run([chiefbench, *FAST, "run.items=10", "run.start_method=fork",
                           f"hydra.run.dir={blocker}/out"], cwd=tmp_path, capture_output=True, text=True, timeout=50)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert "cannot write results to" in proc.stderr and "Not a directory" in proc.stderr and "Fix:" in proc.stderr
