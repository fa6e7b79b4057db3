"""The rollout payload (Gymnasium fragments), transitions/s, and payload.work_us."""

from __future__ import annotations

import math
import pickle
import sys

import numpy as np
import pytest

from conftest import FAST
from framework.config.hydra import compose
from framework.config.validate import to_spec
from framework.errors import ConfigError
from framework.payloads.base import item_nbytes, item_units, make_source
from framework.payloads.seeding import worker_stream

pytest.importorskip("gymnasium")

from framework.payloads.rollout import Fragment, fragment_value  # noqa: E402

RESET_BOUND = 0.05
"""CartPole's reset draws every state variable uniformly from [-0.05, 0.05]."""


def payload(*overrides):
    return to_spec(compose(["payload=rollout", *overrides])).payload


def fragments(p, seed, worker, n):
    source = make_source(p, worker_stream(seed, worker))
    return [source() for _ in range(n)]


def test_fragment_arrays_shapes_and_auto_reset():
    p = payload("payload.fragment_length=48", "+payload.env_kwargs.max_episode_steps=10")
    frags = fragments(p, 0, 0, 3)
    for f in frags:
        assert isinstance(f, Fragment) and len(f) == 48
        assert f.obs.shape == (48, 4) and f.obs.dtype == np.float32
        assert f.action.shape == (48,) and set(np.unique(f.action)) <= {0, 1}
        assert f.reward.shape == (48,) and np.all(f.reward == 1.0)
        assert f.terminated.dtype == bool and f.truncated.dtype == bool
        assert f.nbytes == item_nbytes(p)
    # Episodes run across fragment boundaries; each ends by termination or at the 10-step limit,
    # and the next observation is a fresh reset.
    done = np.concatenate([f.terminated | f.truncated for f in frags])
    obs = np.concatenate([f.obs for f in frags])
    ends = np.flatnonzero(done)
    assert len(ends) >= 144 // 10
    assert np.diff(np.concatenate([[-1], ends])).max() <= 10
    assert np.concatenate([f.truncated for f in frags]).any()
    starts = ends[ends + 1 < len(obs)] + 1
    assert np.all(np.abs(obs[starts]) <= RESET_BOUND)
    assert np.abs(obs).max() > RESET_BOUND  # the env really moves between resets
    back = pickle.loads(pickle.dumps(frags[0]))
    assert all(np.array_equal(getattr(back, k), getattr(frags[0], k))
               for k in ("obs", "action", "reward", "terminated", "truncated"))


def test_same_seed_same_fragments_other_worker_others():
    p = payload("payload.fragment_length=32")
    a, b, other = fragments(p, 7, 0, 4), fragments(p, 7, 0, 4), fragments(p, 7, 1, 4)
    for x, y in zip(a, b):
        for k in ("obs", "action", "reward", "terminated", "truncated"):
            assert np.array_equal(getattr(x, k), getattr(y, k))
    assert not all(np.array_equal(x.obs, z.obs) for x, z in zip(a, other))


def test_add_transform_is_a_reward_bonus_and_recorded_value_is_the_reward_sum():
    f = fragments(payload("payload.fragment_length=8"), 0, 0, 1)[0]
    g = f + 0.5
    assert np.allclose(g.reward, f.reward + 0.5) and g.obs is f.obs
    assert fragment_value(g) == pytest.approx(8 * 1.5)
    assert math.isnan(fragment_value(float("nan")))  # a dropped item's row


@pytest.mark.timeout(90)
def test_rollout_run_balances_books_and_counts_transitions(run_in):
    result = run_in([*FAST, "payload=rollout", "payload.fragment_length=16", "run.items=30", "workers.count=2",
                     "queue=pipe", "run.start_method=fork"])
    s = result.summary
    assert result.status == "ok", s["errors"]
    assert s["counts"]["produced"] == 60 and s["counts"]["lost"] == 0 and s["counts"]["duplicates"] == 0
    taken = result.items[(result.items["state"] == "consumed")
                         & (result.items["consumed_ns"] >= s["window"]["start_ns"])]
    assert s["transitions"] == {"per_item": 16, "produced": 960, "consumed": 16 * s["counts"]["consumed"],
                                "window": 16 * s["window"]["items"], "episode_ends": taken["episode_ends"].sum()}
    assert s["transitions_per_s"] == pytest.approx(16 * s["throughput_items_per_s"])
    consumed = result.items[result.items["state"] == "consumed"]
    assert len(consumed) and np.allclose(consumed["value"], 16 * 1.1, atol=1e-4)  # CartPole: reward 1, +0.1 each
    assert s["item_bytes"] == 16 * (4 * 4 + 8 + 4 + 2)
    # The run's printout, and the sweep table's columns (figures, not swept keys).
    from framework.results.text import format_summary
    from framework.results.collect import _flatten, _is_figure

    assert "transitions/s" in format_summary(s)
    row = _flatten(s)
    assert row["transitions_per_s"] == s["transitions_per_s"] and row["transitions.produced"] == 960
    assert _is_figure("transitions_per_s") and _is_figure("transitions.window")


def test_other_payloads_have_no_transitions():
    assert item_units(to_spec(compose([])).payload) is None
    assert item_units(payload("payload.fragment_length=5")) == ("transitions", 5)


def test_missing_gymnasium_gives_the_install_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "gymnasium", None)  # import gymnasium now raises ImportError
    with pytest.raises(ConfigError) as exc:
        payload()
    assert exc.value.key == "payload" and "pip install 'chiefbench[rollout]'" in str(exc.value)
    to_spec(compose(["payload=array"]))  # the other payloads do not need it


@pytest.mark.parametrize("override, key, words", [
    ("payload.env_id=NoSuchEnv-v0", "payload.env_id", "pprint_registry"),
    ("payload.fragment_length=0", "payload.fragment_length", "transitions per item"),
    ("+payload.env_kwargs.no_such_kwarg=1", "payload.env_id", "payload.env_kwargs"),
    ("payload.work_us=-1", "payload.work_us", "microseconds"),
    ("payload.work_us=nan", "payload.work_us", "microseconds"),
    ("payload.work_us=5000000", "payload.work_us", "one second"),
])
def test_bad_rollout_values_fail_with_one_paragraph(override, key, words):
    with pytest.raises(ConfigError) as exc:
        payload(override)
    assert exc.value.key == key and words in str(exc.value)


def test_work_us_longer_than_the_heartbeat_is_refused():
    with pytest.raises(ConfigError) as exc:
        to_spec(compose(["payload.work_us=300000", "workers.heartbeat_timeout_s=0.5"]))
    assert exc.value.key == "payload.work_us" and "hung" in str(exc.value)


def test_work_us_zero_adds_nothing_to_the_hot_path():
    plain = make_source(to_spec(compose([])).payload, worker_stream(0, 0))
    costly = make_source(to_spec(compose(["payload.work_us=10"])).payload, worker_stream(0, 0))
    assert "costly" not in getattr(plain, "__qualname__", "") and "costly" in costly.__qualname__
    assert [plain() for _ in range(5)] == [costly() for _ in range(5)]  # same items, only slower


@pytest.mark.timeout(90)
def test_work_us_costs_worker_cpu(run_in):
    items, work_us = 40, 8000
    cpu = {}
    for w in (0, work_us):
        result = run_in([*FAST, f"payload.work_us={w}", f"run.items={items}", "workers.count=1",
                         "run.start_method=fork"])
        assert result.status == "ok"
        procs = result.processes
        cpu[w] = float(procs.loc[procs["role"] == "worker", "cpu_s"].sum())
    burned = items * work_us / 1e6  # 0.32 s of busy loop
    # Loose on purpose (a busy 2-core machine deschedules the busy loop: 56 % of it was CPU under load):
    # a sixth of it is CPU, and it dominates the worker's CPU time.
    assert cpu[work_us] - cpu[0] >= burned / 6, cpu
    assert cpu[work_us] > 2 * cpu[0], cpu


@pytest.mark.timeout(60)
def test_async_vector_env_reference_closes_its_children():
    from framework.payloads.rollout import async_vector_env_steps_per_s, single_env_steps_per_s, vector_env_steps_per_s

    assert single_env_steps_per_s("CartPole-v1", 0.05, 0, 16) > 0
    assert vector_env_steps_per_s("CartPole-v1", 8, 0.05, 0, policy="linear") > 0
    assert async_vector_env_steps_per_s("CartPole-v1", 2, 0.1, 0) > 0  # conftest: no child process left
    # With a CPU cost per step (2 ms, in each env's process) the rate is bounded by it.
    assert 0 < async_vector_env_steps_per_s("CartPole-v1", 2, 0.1, 0, work_us_per_step=2000) <= 2 / 0.002
    assert 0 < single_env_steps_per_s("CartPole-v1", 0.05, 0, 16, work_us=16 * 2000) <= 1 / 0.002


@pytest.mark.timeout(120)
def test_rollout_entry_point_prints_the_ratios(tmp_path):
    import subprocess
    from pathlib import Path

    script = Path(__file__).resolve().parent.parent / "experiments" / "rollout.py"
    out = subprocess.run([sys.executable, str(script), "--repeats", "1", "--duration", "0.3", "--workers", "1",
                          "queue=pipe", "payload.envs_per_worker=4", "run.warmup_s=0", "run.start_method=fork"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=100)
    assert out.returncode == 0, out.stderr
    for words in ("single env", "vector env (4 envs, one process)", "AsyncVectorEnv (2 envs)",
                  "chiefbench pipe 1 worker(s)", "x_single_env", "x_async_vector_env", "targets",
                  "shm_ring with 2 workers was not measured"):
        assert words in out.stdout
    assert list((tmp_path / "outputs" / "experiments" / "rollout").glob("*/runs.csv"))
