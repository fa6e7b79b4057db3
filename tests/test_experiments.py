"""Experiment presets: each composes, validates, starts with its run command and expands to a grid."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf

from framework.config.hydra import conf_dir, register_configs
from framework.config.validate import to_spec
from framework.sweep.grid import grid_points

PRESETS = sorted(p.stem for p in (conf_dir() / "experiment").glob("*.yaml"))
ROOT = Path(__file__).resolve().parent.parent


def compose_with_hydra(overrides):
    register_configs()
    if GlobalHydra.instance().is_initialized():
        GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        return compose(config_name="config", overrides=overrides, return_hydra_config=True)


def test_the_documented_presets_exist():
    assert {"seed", "queue_shootout", "scaling", "thresholds", "load", "search"} <= set(PRESETS)


@pytest.mark.parametrize("name", PRESETS)
def test_preset_composes_and_validates(name):
    cfg = compose_with_hydra([f"+experiment={name}"])
    spec = to_spec(cfg)
    assert spec.run.repeats >= 1
    lines = (conf_dir() / "experiment" / f"{name}.yaml").read_text().splitlines()
    assert lines[0] == "# @package _global_"
    assert lines[1].startswith("# chiefbench ") and f"+experiment={name}" in lines[1]


def without_hydra(cfg):
    return {k: v for k, v in OmegaConf.to_container(cfg, resolve=False).items() if k != "hydra"}


def test_seed_preset_is_the_original_system():
    seed, default = compose_with_hydra(["+experiment=seed"]), compose_with_hydra([])
    # The preset changes no key at all (and the defaults are the original program: tests/test_config.py).
    assert without_hydra(seed) == without_hydra(default)
    assert seed.hydra.sweeper.get("params") in (None, {}) and seed.hydra.mode == default.hydra.mode
    spec = to_spec(seed)
    assert spec == to_spec(default)
    assert (spec.workers.count, spec.workers.interval_s, spec.workers.local_threshold, spec.chief.interval_s,
            spec.chief.global_threshold, spec.chief.take_batch, spec.chief.rounds) == (2, 1.0, 5, 2.0, 3, 1, 11)
    assert (spec.queue.name, spec.payload.name, spec.transform.value) == ("mp_queue", "randint", 0.1)
    # A preset that changed something would not compare equal: the comparison can fail.
    assert without_hydra(compose_with_hydra(["+experiment=load"])) != without_hydra(default)


@pytest.mark.parametrize("name, expected", [("queue_shootout", None), ("thresholds", 16), ("load", 5)])
def test_sweep_presets_expand_to_their_grid(name, expected):
    cfg = compose_with_hydra([f"+experiment={name}"])
    cfg.hydra.overrides.task = [f"+experiment={name}"]
    # Repeats are shuffled (run.order=random): a job per configuration and repeat; count the configurations.
    points = [p for p in grid_points(cfg) if "run.repeat_index=0" in p or not any("repeat_index" in o for o in p)]
    if name == "queue_shootout":  # every registered design x 3 worker counts x 4 payload sizes
        designs = {p[0] for p in points}
        assert {"queue=mp_queue", "queue=simple_queue", "queue=pipe", "queue=manager_queue"} <= designs
        assert len(points) == len(designs) * 3 * 4
        assert not any("schema" in d for d in designs)
    else:
        assert len(points) == expected


def test_scaling_goes_to_twice_the_cores():
    import os

    cfg = compose_with_hydra(["+experiment=scaling"])
    cfg.hydra.overrides.task = ["+experiment=scaling"]
    counts = sorted(int(p[0].split("=")[1]) for p in grid_points(cfg) if "run.repeat_index=0" in p)
    assert counts == list(range(1, 2 * os.cpu_count() + 1))


def test_search_preset_selects_the_optuna_sweeper():
    cfg = compose_with_hydra(["+experiment=search"])
    assert "optuna" in cfg.hydra.sweeper._target_.lower()
    assert cfg.hydra.sweeper.direction == "maximize" and cfg.objective.max_p99_ms > 0
    assert grid_points(cfg) is None  # a search has no grid: its trials are counted instead


@pytest.mark.parametrize("name", ["queue_shootout", "scaling", "thresholds", "load", "search"])
def test_each_experiment_entry_point_launches_its_preset_as_a_sweep(name, monkeypatch):
    """experiments/<name>.py hands chiefbench's main `-m +experiment=<name>` and then the user's overrides
    (which win); imported rather than run (spawn re-imports a main module) it launches nothing.
    tests/test_sweeps.py runs one of them for real (experiments/load.py)."""
    import runpy

    import framework.cli.main as cli

    launched = []
    monkeypatch.setattr(cli, "main", lambda: launched.append(list(sys.argv)))
    script = ROOT / "experiments" / f"{name}.py"
    runpy.run_path(str(script), run_name="__mp_main__")
    assert launched == []
    monkeypatch.setattr(sys, "argv", [str(script), "queue=pipe", "run.repeats=2"])
    runpy.run_path(str(script), run_name="__main__")
    assert launched == [[str(script), "-m", f"+experiment={name}", "queue=pipe", "run.repeats=2"]]
