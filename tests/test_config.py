"""Config composition (Hydra's compose API) and validation messages."""

from __future__ import annotations

import pytest
from hydra.errors import ConfigCompositionException
from omegaconf.errors import ValidationError

from framework.config.hydra import compose, conf_dir
from framework.config.validate import to_spec
from framework.errors import ConfigError


def test_default_config_is_the_original_program():
    spec = to_spec(compose())
    assert (spec.workers.count, spec.workers.interval_s, spec.workers.local_threshold) == (2, 1.0, 5)
    assert (spec.workers.forward_batch, spec.workers.local_queue) == (1, "deque")
    assert (spec.chief.interval_s, spec.chief.global_threshold, spec.chief.take_batch, spec.chief.rounds) == (
        2.0, 3, 1, 11)
    assert spec.run.duration_s is None and spec.run.items is None
    assert (spec.payload.name, spec.payload.low, spec.payload.high) == ("randint", 1, 3)
    assert (spec.transform.name, spec.transform.value) == ("add", 0.1)
    assert spec.queue.name == "mp_queue" and spec.backend.name == "local"


@pytest.mark.parametrize("group", ["queue", "payload", "transform", "backend"])
def test_every_group_option_composes(group):
    options = sorted(p.stem for p in (conf_dir() / group).glob("*.yaml"))
    assert options
    for option in options:
        pairing = ["backend=ray"] if group == "queue" and option.startswith("ray_") else []  # tests/test_ray.py
        spec = to_spec(compose([f"{group}={option}", *pairing]))
        assert getattr(spec, group).name == option


def test_array_payload_fields():
    spec = to_spec(compose(["payload=array", "payload.shape=[4,8]", "payload.dtype=float32"]))
    assert spec.payload.shape == [4, 8] and spec.payload.dtype == "float32"


def test_null_seed_is_replaced_by_recorded_entropy():
    a, b = to_spec(compose(["run.seed=null"])), to_spec(compose(["run.seed=null"]))
    assert isinstance(a.run.seed, int) and a.run.seed != b.run.seed


@pytest.mark.parametrize(
    "override, key, words",
    [
        ("workers.count=-1", "workers.count", "between 1 and"),
        ("workers.count=0", "workers.count", "between 1 and"),
        ("workers.local_threshold=-1", "workers.local_threshold", "0 or more"),
        ("workers.interval_s=-0.5", "workers.interval_s", "from 0"),
        ("chief.interval_s=-1", "chief.interval_s", "from 0"),
        ("chief.global_threshold=-2", "chief.global_threshold", "0 or more"),
        ("chief.take_batch=-1", "chief.take_batch", "0 (take everything"),
        ("chief.rounds=0", "chief.rounds", "at least 1"),
        ("workers.forward_batch=0", "workers.forward_batch", "at least 1"),
        ("workers.local_queue=list", "workers.local_queue", "deque"),
        ("run.duration_s=0", "run.duration_s", "positive"),
        ("run.items=0", "run.items", "positive"),
        ("run.start_method=thread", "run.start_method", "start methods"),
        ("run.on_stop=drop", "run.on_stop", "forward"),
        ("queue.name=carrier_pigeon", "queue.name", "only the label of the queue chosen, and that queue is mp_queue"),
        ("queue.maxsize=-1", "queue.maxsize", "0 (unbounded)"),
        ("queue.on_full=explode", "queue.on_full", "drop_oldest"),
        ("queue.max_bytes=4", "queue.max_bytes", "larger than the queue's whole capacity"),
        ("workers.on_failure=pray", "workers.on_failure", "restart"),
        ("workers.max_restarts=-1", "workers.max_restarts", "between 0"),
        ("workers.heartbeat_timeout_s=0", "workers.heartbeat_timeout_s", "at least 0.2"),
        ("faults.worker=5", "faults.worker", "from 0 to 1"),
        ("faults.raise_after_s=-1", "faults.raise_after_s", "0 or more"),
        ("payload.low=5", "payload.low", "must not exceed"),
        ("queue.maxsize=3", "queue.maxsize", "not more than chief.global_threshold"),
        ("transform.name=square", "transform", "add or none"),
        ("backend.name=cloud", "backend", "local"),
    ],
)
def test_bad_values_fail_with_one_paragraph(override, key, words):
    overrides = [override]
    with pytest.raises(ConfigError) as info:
        to_spec(compose(overrides))
    message = str(info.value)
    assert info.value.key == key
    assert message.startswith(f"Invalid config: {key}=") and "Fix: " in message
    assert "\n" not in message
    if words:
        assert words in message


def test_unknown_queue_lists_known_designs():
    with pytest.raises(ConfigError) as info:
        to_spec(compose(["queue=nope"]))
    assert info.value.key == "queue"
    for name in ("mp_queue", "simple_queue", "pipe", "manager_queue", "shm_ring", "zmq", "faster_fifo"):
        assert name in str(info.value)


def test_a_queue_label_must_name_the_queue_chosen():
    assert to_spec(compose(["queue=pipe", "queue.name=pipe"])).queue.name == "pipe"
    with pytest.raises(ConfigError) as info:
        to_spec(compose(["queue=pipe", "queue.name=mp_queue"]))
    assert info.value.key == "queue.name" and "that queue is pipe" in str(info.value)


def test_integer_array_with_fractional_addend_is_refused():
    with pytest.raises(ConfigError, match="truncated"):
        to_spec(compose(["payload=array", "payload.dtype=int32"]))
    to_spec(compose(["payload=array", "payload.dtype=int32", "transform=none"]))


@pytest.mark.parametrize("override", ["queue=nope", "queue=0", "payload=''", "backend=1e308"])
def test_unknown_group_option_names_the_options(override):
    with pytest.raises(ConfigError) as info:
        compose([override])
    assert "mp_queue" in str(info.value) or "randint" in str(info.value) or "local" in str(info.value)
    assert "Fix: pick one" in str(info.value)


def test_hydra_type_errors_stay_hydras():
    with pytest.raises(ConfigCompositionException, match="workers.count=abc") as info:
        compose(["workers.count=abc"])
    assert isinstance(info.value.__cause__, ValidationError)
    assert "could not be converted to Integer" in str(info.value.__cause__)
