"""A tiny Gymnasium environment of one's own, registered on import (``payload.env_module=chiefbench_example.envs``).

``ChiefbenchCountdown-v0``: the observation is the number of steps left (a Box of one float32), the action
is 0 or 1 (Discrete(2)), the reward is the action, and the episode terminates after ``steps`` steps (default 5).
"""

from __future__ import annotations

from typing import Any

import gymnasium
import numpy as np
from gymnasium import spaces

ENV_ID = "ChiefbenchCountdown-v0"


class CountdownEnv(gymnasium.Env):
    metadata: dict[str, Any] = {"render_modes": []}

    def __init__(self, steps: int = 5) -> None:
        self.steps = int(steps)
        self.observation_space = spaces.Box(0.0, float(self.steps), shape=(1,), dtype=np.float32)
        self.action_space = spaces.Discrete(2)
        self._left = self.steps

    def _obs(self) -> np.ndarray:
        return np.array([self._left], dtype=np.float32)

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self._left = self.steps
        return self._obs(), {}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict]:
        self._left -= 1
        return self._obs(), float(action), self._left <= 0, False, {}


if ENV_ID not in gymnasium.registry:
    gymnasium.register(id=ENV_ID, entry_point="chiefbench_example.envs:CountdownEnv", kwargs={"steps": 5})
