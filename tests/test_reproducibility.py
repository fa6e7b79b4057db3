"""Seeded per-worker streams: the same values every time, different values per worker.

That every design under every start method gives each worker exactly its seeded stream is checked by
tests/test_system.py (test_each_design_and_start_method_moves_every_item)."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import FAST, sequences

pytestmark = pytest.mark.timeout(120)

ITEMS = 60


def test_repeat_with_different_timing_gives_the_same_sequences(run_in):
    a = run_in([*FAST, f"run.items={ITEMS}", "run.seed=7", "run.start_method=fork"])
    b = run_in(["workers.interval_s=0.002", "chief.interval_s=0.005", f"run.items={ITEMS}", "run.seed=7",
                "run.progress=false", "queue=pipe", "run.start_method=fork"])
    assert sequences(a) == sequences(b)


def test_workers_get_different_streams_and_seeds_matter(run_in):
    a = run_in([*FAST, f"run.items={ITEMS}", "run.seed=7", "workers.count=3", "run.start_method=fork"])
    seq = sequences(a)
    assert seq[0] != seq[1] != seq[2] != seq[0]
    b = run_in([*FAST, f"run.items={ITEMS}", "run.seed=8", "workers.count=3", "run.start_method=fork"])
    assert sequences(b)[0] != seq[0]


def test_forked_workers_do_not_inherit_the_parents_random_state(run_in):
    """The original's bug: after the parent draws, forked workers all emitted one stream."""
    np.random.seed(0)
    np.random.random()
    result = run_in([*FAST, f"run.items={ITEMS}", "run.start_method=fork"])
    seq = sequences(result)
    assert seq[0] != seq[1]


def test_rerun_command_repeats_a_null_seed_run(run_in):
    a = run_in([*FAST, f"run.items={ITEMS}", "run.seed=null", "run.start_method=fork"])
    command = a.summary["rerun_command"].split()
    assert command[0] == "chiefbench" and command[-1].startswith("run.seed=")
    b = run_in(command[1:])
    assert sequences(a) == sequences(b)
