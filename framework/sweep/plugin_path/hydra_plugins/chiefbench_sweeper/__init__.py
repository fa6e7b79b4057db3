"""The sweeper of conf/config.yaml: Hydra's basic sweeper, running each configuration's repeats in ``run.order``.

Hydra instantiates sweepers only from the ``hydra_plugins`` namespace; this directory is put on the
path by ``framework.config.hydra.register_configs``. The ordering itself is
``framework.sweep.order.order_jobs``.
"""

from __future__ import annotations

from typing import Any

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper

from framework.sweep.order import order_jobs


def _run_setting(config: Any, key: str, default: Any) -> Any:
    try:
        value = config.run.get(key)
    except Exception:  # no run group (a foreign primary config): the basic sweeper's order
        return default
    return default if value is None else value


class OrderedSweeper(BasicSweeper):
    """Hydra's basic sweeper, running the repeats of every configuration in ``run.order``."""

    def split_arguments(self, overrides: Any, max_batch_size: int | None) -> list[list[list[str]]]:  # type: ignore[override]
        batches = BasicSweeper.split_arguments(overrides, None)
        jobs = order_jobs([job for chunk in batches for job in chunk], int(_run_setting(self.config, "repeats", 1)),
                          str(_run_setting(self.config, "order", "grouped")), _run_setting(self.config, "seed", 0))
        size = max_batch_size or len(jobs) or 1
        return [jobs[i:i + size] for i in range(0, len(jobs), size)]
