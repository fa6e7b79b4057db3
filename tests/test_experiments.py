"""Experiment presets: each composes, validates, starts with its run command and expands to a grid."""

from __future__ import annotations

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


def test_seed_preset_is_the_original_system():
    assert OmegaConf.to_container(compose_with_hydra(["+experiment=seed"]), resolve=False).keys()
    assert to_spec(compose_with_hydra(["+experiment=seed"])) == to_spec(compose_with_hydra([]))


@pytest.mark.parametrize("name, expected", [("queue_shootout", None), ("thresholds", 16), ("load", 5)])
def test_sweep_presets_expand_to_their_grid(name, expected):
    cfg = compose_with_hydra([f"+experiment={name}"])
    cfg.hydra.overrides.task = [f"+experiment={name}"]
    # Repeats are interleaved (run.order): a job per configuration and repeat; count the configurations.
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
    counts = [int(p[0].split("=")[1]) for p in grid_points(cfg) if "run.repeat_index=0" in p]
    assert counts == list(range(1, 2 * os.cpu_count() + 1))


def test_search_preset_selects_the_optuna_sweeper():
    cfg = compose_with_hydra(["+experiment=search"])
    assert "optuna" in cfg.hydra.sweeper._target_.lower()
    assert cfg.hydra.sweeper.direction == "maximize" and cfg.objective.max_p99_ms > 0
    assert grid_points(cfg) is None  # a search has no grid: its trials are counted instead


@pytest.mark.parametrize("name", ["queue_shootout", "scaling", "thresholds", "load", "search"])
def test_each_experiment_has_an_entry_point(name):
    script = ROOT / "experiments" / f"{name}.py"
    assert script.exists() and "__main__" in script.read_text()
