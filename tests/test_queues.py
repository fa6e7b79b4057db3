"""One contract every queue design must honour, built-in or a user's own.

Parametrised by ``_target_``: every built-in local design (``builtin_designs()``, so a newly registered design
is tested without touching this file) and the example plug-in design of ``tests/plugin_example``, which is
written against ``framework.queues.base`` alone. A design whose optional extra is missing is skipped.
"""

from __future__ import annotations

import multiprocessing
import queue
import sys
import time
from pathlib import Path

import numpy as np
import psutil
import pytest

from framework.errors import DesignUnavailableError, UnknownDesignError
from framework.queues.base import QueueSettings, design_class
from framework.queues.catalog import design_named
from framework.config.hydra import builtin_designs
from framework.queues.catalog import availability, designs

PLUGIN_DIR = Path(__file__).resolve().parent / "plugin_example"
if str(PLUGIN_DIR) not in sys.path:
    sys.path.insert(0, str(PLUGIN_DIR))  # spawned workers inherit sys.path

STDLIB_DESIGNS = ("manager_queue", "mp_queue", "pipe", "simple_queue")
PLUGIN_DESIGNS = {"example_pipe": "chiefbench_example.designs.ExamplePipeDesign"}
"""User designs outside framework/ (tests/plugin_example), by test id -> ``queue._target_``."""
LOCAL_TARGETS = {**{name: target for name, target in builtin_designs().items() if name in designs("local")},
                 **PLUGIN_DESIGNS}  # Ray designs: tests/test_ray.py
N_WORKERS = 3
ITEMS_PER_WORKER = 500
BATCH = 7
# Generous: only a hang should ever hit it.
GET_TIMEOUT = 10.0


def _class_or_skip(target: str):
    try:
        return design_class(target)
    except DesignUnavailableError as exc:
        pytest.skip(str(exc))


@pytest.fixture(params=list(LOCAL_TARGETS.values()), ids=list(LOCAL_TARGETS))
def design_target(request) -> str:
    return request.param


@pytest.fixture
def make_design(design_target):
    """Build designs of the parametrised kind, and close them even if the test fails."""
    cls = _class_or_skip(design_target)
    made = []

    def make(maxsize: int = 0, n_producers: int = 1, start_method: str = "fork"):
        design = cls(QueueSettings(cls.name, maxsize), n_producers, multiprocessing.get_context(start_method))
        made.append(design)
        return design

    yield make
    for design in made:
        design.close()


def _drain(consumer, n: int) -> list:
    items = []
    while len(items) < n:
        items.extend(consumer.get_many(n - len(items), timeout=GET_TIMEOUT))
    return items


# --------------------------------------------------------------------------- one process


@pytest.mark.timeout(60)
def test_put_get_is_fifo(make_design):
    design = make_design()
    producer, consumer = design.producer(0), design.consumer()
    for i in range(20):
        producer.put(i)
    assert [consumer.get(timeout=GET_TIMEOUT) for _ in range(20)] == list(range(20))


@pytest.mark.timeout(60)
def test_put_many_get_many_keeps_order(make_design):
    design = make_design()
    producer, consumer = design.producer(0), design.consumer()
    producer.put_many(list(range(10)))
    producer.put(10)
    producer.put_many([11, 12, 13])
    producer.put_many([])
    assert _drain(consumer, 14) == list(range(14))


@pytest.mark.timeout(60)
def test_get_many_respects_max_items(make_design):
    design = make_design()
    producer, consumer = design.producer(0), design.consumer()
    producer.put_many(list(range(10)))
    first = consumer.get_many(3, timeout=GET_TIMEOUT)
    assert first == [0, 1, 2]
    # The rest of the batch must not be lost between calls.
    assert consumer.get(timeout=GET_TIMEOUT) == 3
    for i in range(10, 20):
        producer.put(i)
    got = []
    while len(got) < 16:
        chunk = consumer.get_many(4, timeout=GET_TIMEOUT)
        assert 1 <= len(chunk) <= 4
        got.extend(chunk)
    assert got == list(range(4, 20))


@pytest.mark.timeout(60)
def test_mixed_item_types_survive(make_design):
    design = make_design()
    producer, consumer = design.producer(0), design.consumer()
    array = np.arange(12, dtype=np.float32).reshape(3, 4)
    items = [7, 2.5, (1, "a"), None, [1, 2], array, {"k": (None,)}]
    for item in items:
        producer.put(item)
    producer.put_many(items)
    got = _drain(consumer, 2 * len(items))
    for expected, actual in zip(items + items, got):
        if isinstance(expected, np.ndarray):
            assert isinstance(actual, np.ndarray) and actual.dtype == expected.dtype
            assert np.array_equal(actual, expected)
        else:
            # type() too: a list put with put() must not be unpacked as a batch, and a
            # tuple must not come back as a list.
            assert type(actual) is type(expected) and actual == expected


@pytest.mark.timeout(60)
def test_get_on_empty_raises_empty(make_design):
    consumer = make_design().consumer()
    with pytest.raises(queue.Empty):
        consumer.get(block=False)
    with pytest.raises(queue.Empty):
        consumer.get_many(5, block=False)
    start = time.monotonic()
    with pytest.raises(queue.Empty):
        consumer.get(timeout=0.05)
    elapsed = time.monotonic() - start
    # Loose on purpose: it must have waited a little and must not hang.
    assert 0.02 <= elapsed < 5


@pytest.mark.timeout(60)
def test_bounded_design_raises_full(make_design, design_target):
    cls = _class_or_skip(design_target)
    if not cls.supports_maxsize:
        pytest.skip(f"{cls.name} does not support maxsize")
    design = make_design(maxsize=2)
    producer, consumer = design.producer(0), design.consumer()
    producer.put("a")
    producer.put("b")
    with pytest.raises(queue.Full):
        producer.put("c", block=False)
    start = time.monotonic()
    with pytest.raises(queue.Full):
        producer.put("c", timeout=0.05)
    assert time.monotonic() - start < 5
    assert consumer.get(timeout=GET_TIMEOUT) == "a"
    producer.put("c", timeout=GET_TIMEOUT)  # a slot freed up
    assert _drain(consumer, 2) == ["b", "c"]


# --------------------------------------------------------------------------- processes


def _produce(producer, worker_id: int, n_items: int, batch: int) -> None:
    """Worker body: half single puts, half put_many batches; module-level for spawn."""
    half = n_items // 2
    for seq in range(half):
        producer.put((worker_id, seq))
    for start in range(half, n_items, batch):
        producer.put_many([(worker_id, seq) for seq in range(start, min(start + batch, n_items))])
    producer.close()


@pytest.mark.timeout(90)
@pytest.mark.parametrize("start_method", ["fork", "spawn"])
def test_many_producer_processes(make_design, start_method):
    ctx = multiprocessing.get_context(start_method)
    design = make_design(n_producers=N_WORKERS, start_method=start_method)
    procs = [
        ctx.Process(target=_produce, args=(design.producer(i), i, ITEMS_PER_WORKER, BATCH), daemon=True)
        for i in range(N_WORKERS)
    ]
    try:
        for p in procs:
            p.start()
        design.producers_started()
        consumer = design.consumer()
        # Drain before join: a worker whose queue is not read may never exit.
        got = _drain(consumer, N_WORKERS * ITEMS_PER_WORKER)
        with pytest.raises(queue.Empty):
            extra = consumer.get(timeout=0.2)
            pytest.fail(f"unexpected extra item {extra!r}")
        for p in procs:
            p.join(timeout=30)
        assert [p.exitcode for p in procs] == [0] * N_WORKERS
        assert not any(p.is_alive() for p in procs)
    finally:
        for p in procs:
            if p.is_alive():
                p.kill()
                p.join()
    assert sorted(got) == [(w, s) for w in range(N_WORKERS) for s in range(ITEMS_PER_WORKER)]
    for w in range(N_WORKERS):
        assert [s for wid, s in got if wid == w] == list(range(ITEMS_PER_WORKER))
    design.close()


# --------------------------------------------------------------------------- life cycle


def _alive_children() -> set[int]:
    # The resource tracker belongs to the interpreter (spawn starts it once), not a design.
    alive = set()
    for child in psutil.Process().children(recursive=True):
        try:
            if child.status() != psutil.STATUS_ZOMBIE and "resource_tracker" not in " ".join(child.cmdline()):
                alive.add(child.pid)
        except psutil.NoSuchProcess:
            pass
    return alive


@pytest.mark.timeout(60)
def test_close_is_idempotent_and_leaves_no_process(make_design):
    before = _alive_children()
    design = make_design()
    producer, consumer = design.producer(0), design.consumer()
    producer.put(1)
    assert consumer.get(timeout=GET_TIMEOUT) == 1
    design.producers_started()
    design.close()
    design.close()
    consumer.close()
    assert not multiprocessing.active_children()
    assert _alive_children() - before == set()


def test_unknown_design_lists_known_names():
    with pytest.raises(UnknownDesignError) as info:
        design_named("nope")
    for name in builtin_designs():
        assert name in str(info.value)


def test_stdlib_designs_are_available():
    status = availability()
    assert set(status) == set(builtin_designs())
    for name in STDLIB_DESIGNS:
        assert status[name] == "available"


def test_plugin_designs_resolve_by_target():
    for name, target in PLUGIN_DESIGNS.items():
        cls = design_class(target)
        assert cls.name == name and cls.backend == "local"
        assert cls.__module__.split(".")[0] == "chiefbench_example"  # outside framework/
        assert name not in builtin_designs()  # a user design is not registered anywhere
