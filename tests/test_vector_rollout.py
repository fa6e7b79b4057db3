"""Many envs per worker (payload.envs_per_worker), the linear policy, and fragments written in place into shm_ring."""

from __future__ import annotations

import multiprocessing
import queue

import numpy as np
import pytest

from conftest import FAST
from framework.config.hydra import compose
from framework.config.validate import to_spec
from framework.errors import ConfigError, MessageTooLargeError
from framework.payloads.base import item_nbytes, item_units, make_source
from framework.payloads.seeding import worker_stream
from framework.queues.base import QueueSettings
from framework.queues.catalog import availability, designs
from framework.queues.shm_ring import ShmRingDesign

pytest.importorskip("gymnasium")

from framework.payloads.rollout import Fragment, LinearPolicy, fragment_value  # noqa: E402


def payload(*overrides):
    return to_spec(compose(["payload=rollout", *overrides])).payload


def fragments(p, seed, worker, n):
    source = make_source(p, worker_stream(seed, worker))
    return [source() for _ in range(n)]


def same(a: Fragment, b: Fragment) -> bool:
    return all(np.array_equal(x, y) for x, y in zip(a.arrays(), b.arrays()))


@pytest.mark.parametrize("policy", ["random", "linear"])
def test_a_vector_fragment_is_steps_by_envs_and_repeats_with_its_seed(policy):
    p = payload("payload.fragment_length=12", "payload.envs_per_worker=5", f"payload.policy={policy}")
    a, b, other = fragments(p, 3, 0, 3), fragments(p, 3, 0, 3), fragments(p, 3, 1, 3)
    f = a[0]
    assert f.obs.shape == (12, 5, 4) and f.action.shape == (12, 5) and f.reward.shape == (12, 5)
    assert f.terminated.dtype == bool and len(f) == 60
    assert all(same(x, y) for x, y in zip(a, b))
    assert not any(same(x, y) for x, y in zip(a, other))
    # Consecutive fragments continue the same envs: different steps, never a restart.
    assert not np.array_equal(a[0].obs, a[1].obs)
    assert item_units(p) == ("transitions", 60)
    assert item_nbytes(p) == 60 * (4 * 4 + 8 + 4 + 2)


def test_the_linear_policy_acts_on_the_observation():
    p = payload("payload.fragment_length=20", "payload.envs_per_worker=8", "payload.policy=linear")
    source = make_source(p, worker_stream(0, 0))
    f = source()
    weights = source.policy.weights
    expected = np.argmax(f.obs.reshape(-1, 4) @ weights, axis=1).reshape(20, 8)
    assert np.array_equal(f.action, expected)
    # One env, the same rule, one step at a time.
    one = make_source(payload("payload.fragment_length=20", "payload.policy=linear"), worker_stream(0, 0))
    g = one()
    assert np.array_equal(g.action, np.argmax(g.obs @ one.policy.weights, axis=1))


def test_a_box_action_from_the_linear_policy_stays_in_bounds():
    import gymnasium

    space = gymnasium.spaces.Box(-2.0, 2.0, (1,), np.float32)
    policy = LinearPolicy((3,), space, np.random.default_rng(0))
    actions = policy(np.random.default_rng(1).normal(0, 100, size=(50, 3)).astype(np.float32))
    assert actions.shape == (50, 1) and actions.dtype == np.float32
    assert actions.min() == -2.0 and actions.max() == 2.0  # large logits: clipped both ways


def test_fill_writes_the_same_transitions_as_a_fresh_fragment():
    p = payload("payload.fragment_length=10", "payload.envs_per_worker=3")
    made = fragments(p, 5, 0, 2)
    source = make_source(p, worker_stream(5, 0))
    for expected in made:
        arrays = [np.full(shape, 7, dtype) for shape, dtype in source.layout]
        source.fill(*arrays)
        assert same(Fragment(*arrays), expected)
    # Written in place, a fragment reaches the chief as the tuple of its columns: the same recorded value.
    assert fragment_value(tuple(made[0].arrays())) == fragment_value(made[0]) == float(made[0].reward.sum())


@pytest.mark.parametrize("override, key, words", [
    ("payload.envs_per_worker=0", "payload.envs_per_worker", "envs per worker"),
    ("payload.policy=greedy", "payload.policy", "random, linear"),
    ("+payload.env_kwargs.no_such_kwarg=1", "payload.env_id", "payload.env_kwargs"),
])
def test_bad_vector_values_fail_with_one_paragraph(override, key, words):
    with pytest.raises(ConfigError) as exc:
        payload("payload.envs_per_worker=4", override)
    assert exc.value.key == key and words in str(exc.value)


def test_a_fragment_larger_than_the_ring_is_refused_before_the_run():
    with pytest.raises(ConfigError) as exc:
        to_spec(compose(["payload=rollout", "queue=shm_ring", "payload.envs_per_worker=256",
                         "queue.buffer_bytes=65536"]))
    assert exc.value.key == "queue.buffer_bytes" and "at least" in str(exc.value)
    # Larger than half of the largest ring sized from the payload: refused too, with the ways out.
    with pytest.raises(ConfigError) as exc:
        to_spec(compose(["payload=rollout", "queue=shm_ring", "payload.envs_per_worker=60000",
                         "payload.fragment_length=128"]))
    assert exc.value.key == "queue.buffer_bytes" and "payload.envs_per_worker" in str(exc.value)


def test_a_small_ring_wraps_many_times_and_hands_back_every_slot():
    """In-place records through a ring that holds about two of them: written, read as views, released."""
    design = ShmRingDesign(QueueSettings("shm_ring", 0, 1024), 1, multiprocessing.get_context("spawn"))
    try:
        producer, consumer = design.producer(0), design.consumer()
        consumer.lend_views = True
        layout = producer.arrays_layout([((10, 3), np.float32), ((10,), np.int64), ((10,), bool)])
        assert 2 * layout.size <= 1024 < 3 * layout.size
        for seq in range(500):
            obs, action, done = producer.reserve_arrays(layout, block=False)
            obs[...] = seq
            action[...] = np.arange(10) + seq
            done[...] = seq % 2
            producer.commit_arrays(layout, 0, seq, 1000 + seq, 2000 + seq)
            worker, got_seq, created, forwarded, (got_obs, got_action, got_done) = consumer.get(timeout=1)
            assert (worker, got_seq, created, forwarded) == (0, seq, 1000 + seq, 2000 + seq)
            assert got_obs.shape == (10, 3) and np.all(got_obs == seq)
            assert np.array_equal(got_action, np.arange(10) + seq) and np.all(got_done == bool(seq % 2))
            del got_obs, got_action, got_done
            consumer.release()
        assert producer._ring.pos.item(0) > 50 * 1024  # it went round the ring many times
        # Without a release the ring fills: the room of lent records is not reused.
        producer.reserve_arrays(layout, block=False)
        producer.commit_arrays(layout, 0, 500, 0, 0)
        producer.reserve_arrays(layout, block=False)
        producer.commit_arrays(layout, 0, 501, 0, 0)
        consumer.get_many(2, timeout=1)
        with pytest.raises(queue.Full):
            producer.reserve_arrays(layout, block=False)
        consumer.release()
        producer.reserve_arrays(layout, block=False)  # room again
        with pytest.raises(MessageTooLargeError, match="queue.buffer_bytes"):
            producer.reserve_arrays(producer.arrays_layout([((4096,), np.float64)]))
        producer.close()
    finally:
        design.close()


def _local_designs():
    status = availability()
    return [d for d in designs("local") if status.get(d) == "available"]


@pytest.mark.timeout(180)
def test_same_seed_same_transitions_on_every_design(run_in):
    """Pendulum's reward depends on every state and action: a fragment's reward sum is its fingerprint."""
    base = [*FAST, "payload=rollout", "payload.env_id=Pendulum-v1", "payload.fragment_length=8",
            "payload.envs_per_worker=3", "transform=none", "workers.local_threshold=0", "run.items=5",
            "workers.count=2", "run.start_method=fork", "record.flush_s=0.2"]
    values = {}
    for design in _local_designs():
        result = run_in([*base, f"queue={design}"])
        assert result.status == "ok", (design, result.summary["errors"])
        assert result.summary["written_in_place"] == (design == "shm_ring")
        items = result.items  # consumed or left in a queue at the stop: every row holds its fragment's value
        values[design] = dict(zip(zip(items["worker"], items["seq"]), zip(items["value"], items["episode_ends"])))
        taken = items[(items["state"] == "consumed") & (items["consumed_ns"] >= result.summary["window"]["start_ns"])]
        assert result.summary["transitions"]["episode_ends"] == taken["episode_ends"].sum()
        assert len(values[design]) == 10 and len(set(values[design].values())) == 10, design
    first = values["shm_ring"]
    for design, got in values.items():
        assert got == first, f"{design} carried other transitions than shm_ring"
    other = run_in([*base, "queue=shm_ring", "run.seed=99"]).items
    assert set(other["value"]).isdisjoint(v for v, _ in first.values())


def test_each_fragment_is_recorded_with_its_episode_ends():
    """Per fragment: reward sum as the value, and the episodes that ended in it, whether the fragment came
    as itself, as its columns (written in place) or in a chunk of several."""
    from framework.engine.protocol import Chunk
    from framework.engine.record import CONSUMED, DROPPED_NEWEST, Recorder
    from framework.payloads.base import detail_readers, value_reader

    p = payload("payload.fragment_length=40", "payload.envs_per_worker=3")
    frags = fragments(p, 1, 0, 4)
    ends = [int(np.count_nonzero(f.terminated | f.truncated)) for f in frags]
    assert sum(ends) > 0
    recorder = Recorder(value_reader(p), details=detail_readers(p))
    recorder.window.start_ns = 15  # the measured window opens between the first fragments' stamps and takes
    recorder.add([(0, 0, 10, 11, frags[0]), (0, 1, 10, 11, tuple(frags[1].arrays()))], 20, CONSUMED)
    recorder.add_chunks([Chunk(0, 2, np.array([12, 12]), 13, [frags[2], frags[3]])], 30, CONSUMED)
    recorder.add([(0, 4, 14, -1, float("nan"))], -1, DROPPED_NEWEST)
    df = recorder.frame()
    assert list(df["episode_ends"]) == [*ends, -1]
    assert np.allclose(df["value"][:4], [f.reward.sum() for f in frags])
    assert recorder.detail_sums == {"episode_ends": sum(ends)}
