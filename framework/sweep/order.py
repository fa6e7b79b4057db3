"""In which order a sweep runs its repeats (``run.order``): grouped, interleaved or random.

    grouped      config A: r0 r1 r2, then config B: r0 r1 r2           (one job per configuration)
    interleaved  A r0, B r0, then A r1, B r1, then A r2, B r2          (one job per configuration and repeat)
    random       every (configuration, repeat) once, in a seeded shuffle

A machine that drifts during a sweep (other load, frequency scaling, throttling) biases grouped
repeats: the configuration measured during the slow minutes looks slow. Interleaved and random
orders spread the drift over every configuration. The sweep's jobs are put in that order by
the sweeper conf/config.yaml names (Hydra's basic sweeper, reordered; Hydra finds it as the plug-in
``hydra_plugins.chiefbench_sweeper``, which ``framework.config.hydra`` puts on the path); a job of an interleaved or random sweep runs one repeat
(``run.repeat_index``), and ``framework.results.collect`` groups the repeats of a configuration
back together.
"""

from __future__ import annotations

from typing import Any

import numpy as np

ORDERS = ("grouped", "interleaved", "random")
REPEAT_INDEX_KEY = "run.repeat_index"


def order_jobs(jobs: list[list[str]], repeats: int, order: str, seed: int | None = 0) -> list[list[str]]:
    """Each configuration's overrides -> the sweep's jobs in run order (see the module docstring)."""
    if repeats <= 1 or order == "grouped":
        return [list(job) for job in jobs]
    if order not in ORDERS:
        raise ValueError(f"run.order={order!r}: must be one of {', '.join(ORDERS)}")
    expanded = [[*job, f"{REPEAT_INDEX_KEY}={k}"] for k in range(repeats) for job in jobs]
    if order == "random":
        permutation = np.random.default_rng(0 if seed is None else seed).permutation(len(expanded))
        expanded = [expanded[i] for i in permutation]
    return expanded
