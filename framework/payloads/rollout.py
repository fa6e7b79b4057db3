"""The ``rollout`` payload: real RL experience from a Gymnasium environment.

Each worker owns one environment and steps it with random actions. One item is one
*fragment*: ``payload.fragment_length`` consecutive transitions as numpy arrays
(``Fragment``: obs, action, reward, terminated, truncated), the unit that RL samplers
(RLlib's rollout fragments, Sample Factory's trajectories) ship from actors to a learner.

    worker rng --first reset seed, action blocks--> env.step x L --> Fragment --> local queue ...

Determinism: the environment is seeded once, at its first reset, with a seed drawn from
the worker's stream, and every fragment's actions are drawn from that stream in one
block; later resets (automatic, at each episode end) continue the environment's own
seeded generator: re-seeding builds a new generator, tens of microseconds, which cost a
quarter of CartPole's throughput under random actions (episodes of about 22 steps).
Same ``run.seed`` => the same fragments from every worker.

Per step the loop does only what it must: copy the observation into the fragment's
preallocated arrays and step. The env step dominates, not the bookkeeping.

Gymnasium is the optional extra ``rollout``; it is imported only when this payload is
used, and ``check_payload`` turns its absence (or an unknown env id) into a
``ConfigError`` before any process starts. The reference rates (``single_env_steps_per_s``,
``async_vector_env_steps_per_s``) let the benchmark compare the framework with one env
alone and with Gymnasium's own multi-process stepping, measured in the same invocation.
"""

from __future__ import annotations

import functools
import importlib
import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from framework.config.rules import MAX_ITEM_BYTES, require
from framework.config.schema import RolloutPayload
from framework.errors import ConfigError, UnsupportedSpaceError
from framework.payloads.base import PayloadKind, with_cpu_cost
from framework.payloads.seeding import worker_stream

INSTALL_HINT = "pip install 'chiefbench[rollout]'"
"""The command that installs the optional extra (gymnasium)."""
REWARD_DTYPE = np.float32
"""Rewards travel as float32, as RL libraries store them."""
SEED_HIGH = 2**63
"""Environment seeds are drawn from [0, SEED_HIGH)."""
MAX_FRAGMENT_LENGTH = 1_000_000
"""Steps per fragment at most (one item)."""
MAX_ENVS_PER_WORKER = 1 << 16
"""Envs of one worker's vector env at most."""
_REF_CHECK_EVERY_FRAGMENTS = 16
"""The single-env reference reads the clock once per this many fragments."""
_REF_CHECK_EVERY_VECTOR_STEPS = 64
"""The AsyncVectorEnv reference reads the clock once per this many vector steps."""


@dataclass(frozen=True, eq=False)
class Fragment:
    """``L`` consecutive steps of a worker's env(s): ``obs[i]`` is the observation ``action[i]`` was taken on.

    One env: arrays of shape ``(L, ...)``; ``payload.envs_per_worker=N``: ``(L, N, ...)``, step-major, as the
    vector env returns them. Defined at module level so that it pickles across processes. ``terminated[i]``
    or ``truncated[i]`` true means the episode ended at step i. One env resets at once (``obs[i + 1]`` starts
    the next episode); a vector env resets in Gymnasium's next-step mode (step i + 1 is the reset step:
    reward 0, its action ignored, counted as a transition as Gymnasium's own vector env counts it).
    """

    obs: np.ndarray
    action: np.ndarray
    reward: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray

    def __len__(self) -> int:
        """Transitions: steps x envs."""
        return self.reward.size

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in self.arrays())

    def arrays(self) -> tuple[np.ndarray, ...]:
        """The columns in ``FRAGMENT_COLUMNS`` order."""
        return self.obs, self.action, self.reward, self.terminated, self.truncated

    def __add__(self, addend: float) -> Fragment:
        """``transform=add`` on a fragment: a constant bonus on every reward (reward shaping); the other arrays
        are shared, not copied."""
        return Fragment(self.obs, self.action, self.reward + REWARD_DTYPE(addend), self.terminated, self.truncated)


FRAGMENT_COLUMNS = ("obs", "action", "reward", "terminated", "truncated")
"""A fragment's columns, in the order they travel when written in place (a tuple of arrays)."""
_REWARD, _TERMINATED, _TRUNCATED = (FRAGMENT_COLUMNS.index(c) for c in ("reward", "terminated", "truncated"))


def fragment_value(item: Any) -> Any:
    """The recorded value of an item: the fragment's reward sum (dropped items arrive as NaN).

    A fragment written in place into shm_ring arrives as the tuple of its columns."""
    kind = type(item)
    if kind is Fragment:
        return float(item.reward.sum())
    if kind is tuple:
        return float(item[_REWARD].sum())
    return item


def fragment_episode_ends(item: Any) -> int:
    """Episodes that ended in a fragment (terminated or truncated steps); -1 for a row without one."""
    kind = type(item)
    if kind is Fragment:
        return int(np.count_nonzero(item.terminated | item.truncated))
    if kind is tuple:
        return int(np.count_nonzero(item[_TERMINATED] | item[_TRUNCATED]))
    return -1


def _gym() -> Any:
    try:
        import gymnasium
    except ImportError:
        raise ConfigError("payload", "rollout", "the rollout payload steps Gymnasium environments, and gymnasium is "
                          "not installed", f"install the extra: `{INSTALL_HINT}`") from None
    return gymnasium


def _make_kwargs(env_kwargs: Any) -> dict[str, Any]:
    # The passive checker wraps every step (about 20 % of a CartPole step) and only checks the first ones.
    return {"disable_env_checker": True, **dict(env_kwargs or {})}


def make_env(env_id: str, env_kwargs: Any = None) -> Any:
    """``gymnasium.make`` as the payload calls it (time limit kept: it is what truncates episodes)."""
    return _gym().make(env_id, **_make_kwargs(env_kwargs))


def make_vector_env(env_id: str, n_envs: int, env_kwargs: Any = None) -> Any:
    """``n_envs`` copies of the env as one vector env: the env's own vectorised entry point where it
    registers one (CartPole: one numpy step for all envs), else Gymnasium's SyncVectorEnv."""
    gym = _gym()
    if gym.spec(env_id).vector_entry_point is not None:
        return gym.make_vec(env_id, num_envs=n_envs, vectorization_mode="vector_entry_point", **dict(env_kwargs or {}))
    return gym.make_vec(env_id, num_envs=n_envs, vectorization_mode="sync", **_make_kwargs(env_kwargs))


def _action_sampler(space: Any, rng: np.random.Generator) -> Any:
    """``draw(n)``: n random actions from ``rng`` as one array (one numpy call per fragment)."""
    gym = _gym()
    if isinstance(space, gym.spaces.Discrete):
        low, high = int(space.start), int(space.start + space.n)
        return lambda n: rng.integers(low, high, size=n)
    if isinstance(space, gym.spaces.Box) and space.is_bounded("both"):
        low, high, dtype = space.low, space.high, space.dtype
        if np.issubdtype(dtype, np.integer):
            return lambda n: rng.integers(low, high.astype(np.int64) + 1, size=(n, *space.shape)).astype(dtype)
        return lambda n: rng.uniform(low, high, size=(n, *space.shape)).astype(dtype)
    raise UnsupportedSpaceError(f"random actions need a Discrete or bounded Box action space, not {space}")


def _space_layout(space: Any) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype of one element of a Discrete or Box space as stored in a fragment."""
    gym = _gym()
    if isinstance(space, gym.spaces.Discrete):
        return (), np.dtype(np.int64)
    if isinstance(space, gym.spaces.Box):
        return tuple(space.shape), np.dtype(space.dtype)
    raise UnsupportedSpaceError(f"fragments hold Discrete or Box spaces as arrays, not {space}")


class RandomPolicy:
    """Random actions from the worker's stream, drawn for a whole fragment in one numpy call."""

    per_step = False

    def __init__(self, action_space: Any, rng: np.random.Generator) -> None:
        self._draw = _action_sampler(action_space, rng)

    def block(self, steps: int, n_envs: int | None) -> np.ndarray:
        """Actions of ``steps`` steps: shape (steps, *action) for one env, (steps, n_envs, *action) for a vector env."""
        if n_envs is None:
            return self._draw(steps)
        actions = self._draw(steps * n_envs)
        return actions.reshape(steps, n_envs, *actions.shape[1:])


class LinearPolicy:
    """An actor's inference, modelled: per step, observations (flattened) @ a weight matrix drawn once from the
    worker's stream; a Discrete action is the argmax, a Box action the output clipped to its bounds."""

    per_step = True

    def __init__(self, obs_shape: tuple[int, ...], action_space: Any, rng: np.random.Generator) -> None:
        gym = _gym()
        self._obs_size = math.prod(obs_shape)
        if isinstance(action_space, gym.spaces.Discrete):
            outputs, self._start = int(action_space.n), int(action_space.start)
            self._box = None
        elif isinstance(action_space, gym.spaces.Box) and action_space.is_bounded("both"):
            outputs, self._box = math.prod(action_space.shape), action_space
        else:
            raise UnsupportedSpaceError(f"the linear policy needs a Discrete or bounded Box action space, "
                                        f"not {action_space}")
        self.weights = (rng.standard_normal((self._obs_size, outputs)) / math.sqrt(self._obs_size)).astype(np.float32)

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        """Actions for a vector env's observations, shape (n_envs, *obs): one array."""
        logits = np.reshape(obs, (-1, self._obs_size)) @ self.weights
        box = self._box
        if box is None:
            return np.argmax(logits, axis=1) + self._start
        return np.clip(logits.reshape(-1, *box.shape), box.low, box.high).astype(box.dtype)

    def one(self, obs: Any) -> Any:
        """The action for one env's observation (a Discrete action as a Python int, as envs step fastest)."""
        actions = self(obs)
        return int(actions[0]) if self._box is None else actions[0]


POLICIES = ("random", "linear")
"""Values of ``payload.policy``."""


def make_policy(name: str, obs_shape: tuple[int, ...], action_space: Any, rng: np.random.Generator) -> Any:
    return LinearPolicy(obs_shape, action_space, rng) if name == "linear" else RandomPolicy(action_space, rng)


class RolloutSource:
    """A worker's env(s) and policy; each call returns the next ``Fragment``, or ``fill`` writes it in place.

    ``n_envs=None``: one env (arrays of shape (L, ...)); ``n_envs=N``: a vector env of N envs ((L, N, ...)).
    ``layout`` gives the (shape, dtype) of the five columns, so that a design can reserve their room and the
    worker ``fill`` them there (shm_ring: stepped straight into the ring)."""

    def __init__(self, env_id: str, fragment_length: int, rng: np.random.Generator, env_kwargs: Any = None,
                 n_envs: int | None = None, policy: str = "random") -> None:
        vector = n_envs is not None
        self.env = make_vector_env(env_id, n_envs, env_kwargs) if vector else make_env(env_id, env_kwargs)
        self.length, self.n_envs = fragment_length, n_envs
        obs_space = self.env.single_observation_space if vector else self.env.observation_space
        action_space = self.env.single_action_space if vector else self.env.action_space
        obs_shape, obs_dtype = _space_layout(obs_space)
        act_shape, act_dtype = _space_layout(action_space)
        self.policy = make_policy(policy, obs_shape, action_space, rng)
        self._obs, _ = self.env.reset(seed=int(rng.integers(SEED_HIGH)))
        lead = (fragment_length,) if not vector else (fragment_length, n_envs)
        self.layout = (((*lead, *obs_shape), obs_dtype), ((*lead, *act_shape), act_dtype),
                       (lead, np.dtype(REWARD_DTYPE)), (lead, np.dtype(bool)), (lead, np.dtype(bool)))
        """(shape, dtype) of obs, action, reward, terminated, truncated."""

    def __call__(self) -> Fragment:
        arrays = [np.empty(shape, dtype) for shape, dtype in self.layout]
        self.fill(*arrays)
        return Fragment(*arrays)

    def fill(self, obs: np.ndarray, action: np.ndarray, reward: np.ndarray, terminated: np.ndarray,
             truncated: np.ndarray) -> None:
        """Step ``fragment_length`` times, writing each step's outputs into the given arrays (``layout``)."""
        if self.n_envs is None:
            self._fill_one(obs, action, reward, terminated, truncated)
            return
        step, cur, policy = self.env.step, self._obs, self.policy
        if policy.per_step:
            for t in range(self.length):
                obs[t] = cur
                action[t] = policy(cur)
                cur, reward[t], terminated[t], truncated[t], _ = step(action[t])
        else:
            action[...] = policy.block(self.length, self.n_envs)
            for t in range(self.length):
                obs[t] = cur
                cur, reward[t], terminated[t], truncated[t], _ = step(action[t])
        self._obs = cur

    def _fill_one(self, obs: np.ndarray, action: np.ndarray, reward: np.ndarray, terminated: np.ndarray,
                  truncated: np.ndarray) -> None:
        step, reset, cur, policy = self.env.step, self.env.reset, self._obs, self.policy
        per_step = policy.per_step
        if not per_step:
            action[...] = policy.block(self.length, None)
        # Python scalars step faster than numpy ones (a Discrete action is checked by type).
        actions = action.tolist() if action.ndim == 1 else action
        for i in range(self.length):
            obs[i] = cur
            if per_step:
                a = policy.one(cur)
                action[i] = a
            else:
                a = actions[i]
            cur, r, term, trunc, _ = step(a)
            reward[i] = r
            terminated[i] = term
            truncated[i] = trunc
            if term or trunc:
                cur, _ = reset()
        self._obs = cur

    def close(self) -> None:
        self.env.close()


def import_env_module(payload: Any) -> None:
    """Import ``payload.env_module`` (if set), so that the Gymnasium registrations it makes run in this process."""
    module = getattr(payload, "env_module", None)
    if not module:
        return
    try:
        importlib.import_module(module)
    except ImportError as exc:
        raise ConfigError("payload.env_module", module, f"cannot be imported ({exc})",
                          "name an importable module that registers your environments, e.g. "
                          "`payload.env_module=my_pkg.envs` (is my_pkg installed, or on PYTHONPATH?)") from None


def envs_of(payload: Any) -> int:
    """``payload.envs_per_worker`` (1 for a payload config written before the key existed)."""
    return int(getattr(payload, "envs_per_worker", 1) or 1)


def make_rollout_source(payload: Any, rng: np.random.Generator) -> RolloutSource:
    import_env_module(payload)
    n = envs_of(payload)
    return RolloutSource(payload.env_id, payload.fragment_length, rng, payload.env_kwargs,
                         n_envs=None if n == 1 else n, policy=getattr(payload, "policy", "random"))


class Rollout(PayloadKind):
    """Fragments of Gymnasium transitions; figures also in transitions (``transitions_per_s``)."""

    name = "rollout"
    schema = RolloutPayload

    def make_source(self, payload: Any, rng: np.random.Generator) -> RolloutSource:
        return make_rollout_source(payload, rng)

    def fills_in_place(self, payload: Any) -> bool:
        return True

    def value_reader(self, payload: Any) -> Any:
        return fragment_value

    def detail_readers(self, payload: Any) -> dict[str, Any]:
        return {"episode_ends": fragment_episode_ends}

    def item_nbytes(self, payload: Any) -> int:
        return fragment_nbytes(payload)

    def units(self, payload: Any) -> tuple[str, int]:
        return "transitions", payload.fragment_length * envs_of(payload)

    def check(self, spec: Any) -> None:
        p = spec.payload
        check_payload(p)  # gymnasium installed, env id known and steppable: before any worker imports it
        nbytes = fragment_nbytes(p)
        require(nbytes <= MAX_ITEM_BYTES, "payload.fragment_length", p.fragment_length,
                f"makes {nbytes:,} bytes per item, over the {MAX_ITEM_BYTES:,}-byte limit", "use a shorter fragment")


@functools.lru_cache(maxsize=32)
def _layout(env_id: str, kwargs_key: str) -> tuple[tuple[int, ...], str, tuple[int, ...], str]:
    """(obs shape, obs dtype, action shape, action dtype) of an env; made once per process, then cached."""
    import json

    env = make_env(env_id, json.loads(kwargs_key))
    try:
        obs_shape, obs_dtype = _space_layout(env.observation_space)
        act_shape, act_dtype = _space_layout(env.action_space)
        _action_sampler(env.action_space, np.random.default_rng(0))
    finally:
        env.close()
    return obs_shape, obs_dtype.str, act_shape, act_dtype.str


def layout(payload: Any) -> tuple[tuple[int, ...], np.dtype, tuple[int, ...], np.dtype]:
    import json

    import_env_module(payload)
    obs_shape, obs_dtype, act_shape, act_dtype = _layout(payload.env_id,
                                                         json.dumps(dict(payload.env_kwargs or {}), sort_keys=True))
    return obs_shape, np.dtype(obs_dtype), act_shape, np.dtype(act_dtype)


def fragment_nbytes(payload: Any) -> int:
    """Bytes of one fragment's arrays (what ``Fragment.nbytes`` gives for this payload)."""
    obs_shape, obs_dtype, act_shape, act_dtype = layout(payload)
    per_step = (math.prod(obs_shape) * obs_dtype.itemsize + math.prod(act_shape) * act_dtype.itemsize
                + np.dtype(REWARD_DTYPE).itemsize + 2)
    return payload.fragment_length * envs_of(payload) * per_step


def check_payload(payload: Any) -> None:
    """Raise ``ConfigError`` unless gymnasium is installed and ``payload.env_id`` makes an env we can step."""
    gym = _gym()
    import_env_module(payload)
    if not (isinstance(payload.fragment_length, int) and 1 <= payload.fragment_length <= MAX_FRAGMENT_LENGTH):
        raise ConfigError("payload.fragment_length", payload.fragment_length,
                          f"must be a number of transitions per item from 1 to {MAX_FRAGMENT_LENGTH:,}",
                          "e.g. `payload.fragment_length=64`")
    n_envs = getattr(payload, "envs_per_worker", 1)
    if not (isinstance(n_envs, int) and not isinstance(n_envs, bool) and 1 <= n_envs <= MAX_ENVS_PER_WORKER):
        raise ConfigError("payload.envs_per_worker", n_envs,
                          f"must be a number of envs per worker from 1 to {MAX_ENVS_PER_WORKER:,}",
                          "e.g. `payload.envs_per_worker=256` (one vector env per worker), or 1 for one plain env")
    policy = getattr(payload, "policy", "random")
    if policy not in POLICIES:
        raise ConfigError("payload.policy", policy, f"must be one of {', '.join(POLICIES)}",
                          "`payload.policy=random` (actions drawn per fragment) or `payload.policy=linear` "
                          "(obs @ a seeded weight matrix per step, an actor's inference cost)")
    try:
        gym.spec(payload.env_id)
    except gym.error.Error as exc:
        raise ConfigError("payload.env_id", payload.env_id,
                          f"is not a registered Gymnasium environment ({' '.join(str(exc).split())})",
                          "use a registered id, e.g. `payload.env_id=CartPole-v1`; list them with "
                          "`python -c \"import gymnasium; gymnasium.pprint_registry()\"`. An environment from another "
                          "package needs that package installed (and its module prefix, `module:EnvName-v0`)") from None
    try:
        layout(payload)
    except UnsupportedSpaceError as exc:
        raise ConfigError("payload.env_id", payload.env_id, str(exc),
                          "pick an environment with Discrete or Box spaces, e.g. `payload.env_id=CartPole-v1`") from None
    except Exception as exc:  # noqa: BLE001 - a missing dependency of the env, a bad kwarg: said in one line
        raise ConfigError("payload.env_id", payload.env_id,
                          f"gymnasium.make({payload.env_id!r}, **{_make_kwargs(payload.env_kwargs)}) failed: "
                          f"{_first_line(exc)}", "install what the environment needs, or fix payload.env_kwargs") from None
    if n_envs > 1:
        _check_vector_env(payload)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0] if text else ''}"


@functools.lru_cache(maxsize=32)
def _vector_env_error(env_id: str, kwargs_key: str) -> str | None:
    """Why two envs of ``env_id`` cannot be made and stepped as one vector env (None: they can); cached."""
    import json

    try:
        env = make_vector_env(env_id, 2, json.loads(kwargs_key))
    except Exception as exc:  # noqa: BLE001 - said in one line by the caller
        return _first_line(exc)
    env.close()
    return None


def _check_vector_env(payload: Any) -> None:
    import json

    error = _vector_env_error(payload.env_id, json.dumps(dict(payload.env_kwargs or {}), sort_keys=True))
    if error is not None:
        raise ConfigError("payload.env_id", payload.env_id,
                          f"with payload.envs_per_worker={payload.envs_per_worker}, gymnasium.make_vec failed: {error}",
                          "fix payload.env_kwargs (a vectorised entry point takes its own keyword arguments), "
                          "or use payload.envs_per_worker=1")


# ------------------------------------------------------------------------------------------ reference rates
def _steps_per_s(run_block: Any, steps_per_block: int, duration_s: float) -> float:
    """Transitions/s of ``run_block()`` (``steps_per_block`` transitions a call) called for ``duration_s``: the
    clock is read once per block."""
    steps, start = 0, time.perf_counter()
    end = start + duration_s
    while True:
        run_block()
        steps += steps_per_block
        now = time.perf_counter()
        if now >= end:
            return steps / (now - start)


def single_env_steps_per_s(env_id: str = "CartPole-v1", duration_s: float = 3.0, seed: int = 0,
                           fragment_length: int = 64, env_kwargs: Any = None, work_us: float = 0.0,
                           policy: str = "random") -> float:
    """Transitions/s of one env stepping alone in this process: the worker's own stepping code
    (``RolloutSource``, with ``payload.work_us`` of CPU per fragment), with no queue, no chief and no other
    process."""
    env_source = RolloutSource(env_id, fragment_length, worker_stream(seed, 0), env_kwargs, policy=policy)
    source = with_cpu_cost(env_source, work_us) if work_us else env_source
    def fragments() -> None:
        for _ in range(_REF_CHECK_EVERY_FRAGMENTS):
            source()

    try:
        return _steps_per_s(fragments, _REF_CHECK_EVERY_FRAGMENTS * fragment_length, duration_s)
    finally:
        env_source.close()


def vector_env_steps_per_s(env_id: str = "CartPole-v1", n_envs: int = 256, duration_s: float = 3.0, seed: int = 0,
                           env_kwargs: Any = None, policy: str = "random", steps_per_block: int = 64) -> float:
    """Transitions/s of Gymnasium's vector env of ``n_envs`` envs (``make_vector_env``) stepping alone in this
    process, on one core: the bare stepping, with the payload's policy (random actions drawn per block of
    ``steps_per_block`` steps, or linear per step) and nothing copied or sent."""
    rng = np.random.default_rng(seed)
    env = make_vector_env(env_id, n_envs, env_kwargs)
    try:
        obs_shape, _ = _space_layout(env.single_observation_space)
        chooser = make_policy(policy, obs_shape, env.single_action_space, rng)
        obs = env.reset(seed=int(rng.integers(SEED_HIGH)))[0]
        step = env.step

        def block() -> None:
            nonlocal obs
            if chooser.per_step:
                for _ in range(steps_per_block):
                    obs = step(chooser(obs))[0]
            else:
                for actions in chooser.block(steps_per_block, n_envs):
                    step(actions)

        return _steps_per_s(block, steps_per_block * n_envs, duration_s)
    finally:
        env.close()


def _make_costly_env(env_id: str, env_kwargs: Any, work_us_per_step: float) -> Any:
    """``make_env``, burning ``work_us_per_step`` of CPU in every step (in the env's own process), with the
    busy loop of ``payloads.base.with_cpu_cost``."""
    env = make_env(env_id, env_kwargs)
    if work_us_per_step:
        step, cost_ns, clock = env.step, int(work_us_per_step * 1000), time.monotonic_ns

        def costly_step(action: Any) -> Any:
            end = clock() + cost_ns
            while clock() < end:
                pass
            return step(action)

        env.step = costly_step  # the instance attribute shadows the method
    return env


def async_vector_env_steps_per_s(env_id: str = "CartPole-v1", n_envs: int = 2, duration_s: float = 3.0,
                                 seed: int = 0, env_kwargs: Any = None, context: str | None = None,
                                 work_us_per_step: float = 0.0) -> float:
    """Transitions/s of Gymnasium's ``AsyncVectorEnv`` (one process per env, stepped in lock-step with random
    actions; ``n_envs`` transitions per vector step), each step burning ``work_us_per_step`` of CPU (use
    ``payload.work_us / fragment_length`` to compare with a worker). Closed (children joined) before it returns."""
    gym = _gym()
    rng = np.random.default_rng(seed)
    envs = gym.vector.AsyncVectorEnv([functools.partial(_make_costly_env, env_id, env_kwargs, work_us_per_step)
                                      for _ in range(n_envs)], context=context)
    try:
        draw = _action_sampler(envs.single_action_space, rng)
        envs.reset(seed=int(rng.integers(SEED_HIGH)))

        def block() -> None:
            for _ in range(_REF_CHECK_EVERY_VECTOR_STEPS):
                envs.step(draw(n_envs))

        return _steps_per_s(block, _REF_CHECK_EVERY_VECTOR_STEPS * n_envs, duration_s)
    finally:
        envs.close()
