"""Where chiefbench meets Hydra: the config tree's location, the schema's registration, composition.

The YAML tree ``conf/`` sits at the top of a checkout; a wheel carries it as ``framework/conf``
(see ``conf_dir``), so an installed ``chiefbench`` runs from any directory. A user's own configs
join through Hydra's usual ways: ``--config-dir DIR`` (or ``hydra.searchpath=[file://DIR]``) adds a
directory whose ``queue/``, ``payload/`` and ``experiment/`` options sit beside the built-in ones.

Only this module, ``framework.cli.main`` and ``framework.sweep`` import Hydra.
"""

from __future__ import annotations

import os
import re
import sys
import warnings
from collections.abc import Iterable, Sequence
from functools import lru_cache
from importlib import resources
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from framework.config.schema import (
    ArrayPayload,
    BackendConfig,
    Config,
    QueueConfig,
    RandintPayload,
    RolloutPayload,
    TransformConfig,
)
from framework.errors import ConfigError

GROUPS = ("queue", "payload", "transform", "backend")
"""Config groups whose options are checked before Hydra sees them (Hydra's own answer is a traceback)."""
PAYLOAD_SCHEMAS = {"randint": RandintPayload, "array": ArrayPayload, "rollout": RolloutPayload}
"""The built-in payload schemas, stored as ``payload/<name>_schema``."""


@lru_cache(maxsize=1)
def conf_dir() -> Path:
    """The built-in YAML tree: ``framework/conf`` inside an installed wheel, ``conf/`` in a checkout."""
    packaged = resources.files("framework") / "conf"
    if packaged.is_dir():
        return Path(str(packaged))
    return Path(__file__).resolve().parents[2] / "conf"


SWEEPER_PLUGIN_PATH = Path(__file__).resolve().parents[1] / "sweep" / "plugin_path"
"""Holds ``hydra_plugins/chiefbench_sweeper``: Hydra instantiates sweepers from that namespace only."""


def register_configs() -> None:
    """Register the schema in Hydra's ConfigStore, chiefbench's resolvers and its sweeper (idempotent)."""
    from hydra.core.config_store import ConfigStore

    if str(SWEEPER_PLUGIN_PATH) not in sys.path:
        sys.path.append(str(SWEEPER_PLUGIN_PATH))

    if not OmegaConf.has_resolver("chiefbench_pid"):
        # Cached: Hydra copies the launcher's resolver cache into every job's config, so jobs that run in
        # other processes (hydra/launcher=ray, joblib) resolve the sweep directory to the launcher's pid.
        OmegaConf.register_new_resolver("chiefbench_pid", lambda: str(os.getpid()), use_cache=True)
    if not OmegaConf.has_resolver("chiefbench_cpus"):
        # ${chiefbench_cpus:2,1} = 2 x this machine's CPU count + 1 (for sweep ranges in experiment presets).
        OmegaConf.register_new_resolver("chiefbench_cpus", lambda times=1, plus=0: int(times) * (os.cpu_count() or 1)
                                        + int(plus))
    # conf/hydra/launcher/{ray,submitit_slurm}.yaml share their names with the launchers' own schemas,
    # which Hydra still applies (and validates) but announces as deprecated on every composition.
    warnings.filterwarnings("ignore", message=r"\s*'hydra/launcher/(ray|submitit_slurm)' is validated against")
    cs = ConfigStore.instance()
    cs.store(name="config_schema", node=Config)
    cs.store(group="queue", name="queue_schema", node=QueueConfig)
    cs.store(group="transform", name="transform_schema", node=TransformConfig)
    cs.store(group="backend", name="backend_schema", node=BackendConfig)
    for name, schema in PAYLOAD_SCHEMAS.items():
        cs.store(group="payload", name=f"{name}_schema", node=schema)


def group_options(group: str, extra_dirs: Iterable[str | os.PathLike] = ()) -> list[str]:
    """The options of a config group: the YAML files in ``<dir>/<group>/`` of the built-in tree and of
    each extra directory."""
    dirs = [conf_dir(), *map(Path, extra_dirs)]
    return sorted({p.stem for d in dirs for p in (d / group).glob("*.yaml")})


def builtin_designs() -> dict[str, str]:
    """Each built-in queue option (``conf/queue/<name>.yaml``) -> its design class, ``module.Class``."""
    found = {}
    for path in sorted((conf_dir() / "queue").glob("*.yaml")):
        target = OmegaConf.load(path).get("_target_")
        if target:
            found[path.stem] = target
    return found


def user_config_dirs(argv: Sequence[str]) -> list[str]:
    """Directories a command line adds to the search path: ``--config-dir DIR`` / ``-cd DIR`` and
    ``hydra.searchpath=[file://DIR,...]``."""
    dirs = []
    for i, arg in enumerate(argv):
        if arg in ("--config-dir", "-cd") and i + 1 < len(argv):
            dirs.append(argv[i + 1])
        elif arg.startswith("--config-dir="):
            dirs.append(arg.split("=", 1)[1])
        elif arg.lstrip("+").startswith("hydra.searchpath="):
            dirs += [d[len("file://"):] for d in re.findall(r"file://[^,\]\s]+", arg)]
    return dirs


def check_group_overrides(overrides: Sequence[str], extra_dirs: Iterable[str | os.PathLike] = ()) -> None:
    """Refuse ``group=option`` overrides naming no option, before Hydra sees them.

    Hydra answers ``queue=0`` with a traceback of its own; a sweep (``a,b``) or a
    function (``choice(...)``) is left to Hydra.
    """
    extra_dirs = [*extra_dirs, *user_config_dirs(overrides)]
    for override in overrides:
        key, sep, value = override.partition("=")
        if not sep or key.lstrip("+~") not in GROUPS or (re.search(r"[,()]", value) and not value.startswith("[")):
            continue
        group = key.lstrip("+~")
        options = group_options(group, extra_dirs)
        if value not in options:
            raise ConfigError(group, value, f"is not one of the {group} options ({', '.join(options)})",
                              f"pick one, e.g. `{group}={options[0]}`, or add `{value}.yaml` to the `{group}/` "
                              f"directory of your own config dir (--config-dir DIR)")


def compose(overrides: Sequence[str] = (), config_name: str = "config",
            config_dirs: Iterable[str | os.PathLike] = ()) -> DictConfig:
    """Compose the config as the CLI would (Hydra's compose API), for tests and notebooks.

    ``config_dirs`` are searched before the built-in tree, as ``--config-dir`` does on the command line.
    """
    config_dirs = [str(Path(d).resolve()) for d in config_dirs]
    check_group_overrides(overrides, config_dirs)
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    register_configs()
    if GlobalHydra.instance().is_initialized():
        GlobalHydra.instance().clear()
    extra = [f"hydra.searchpath=[{','.join('file://' + d for d in config_dirs)}]"] if config_dirs else []
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        return hydra_compose(config_name=config_name, overrides=[*extra, *overrides])
