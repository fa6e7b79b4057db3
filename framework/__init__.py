"""chiefbench: design, measure and compare chief/worker data-generation pipelines.

The public API is small; everything else is internal::

    import framework
    result = framework.run(["queue=pipe", "workers.interval_s=0", "chief.interval_s=0", "run.duration_s=2"])
    result.items, result.depth, result.latency, result.summary_frame()
    framework.load_run("outputs/runs/...")
    framework.collect("outputs/sweeps/...")            # one table per sweep (sweep_results.parquet)
    framework.compare("outputs/sweeps/A", "outputs/sweeps/B")   # ratio of medians, Mann-Whitney p
    framework.report("outputs/sweeps/...")             # report.html + PNG figures (extra: report)

Every name is imported on first use (PEP 562), so that a worker process, which imports this
package, pays only for what it runs: no pandas, no Hydra.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "run": "framework.engine.runner",
    "compose": "framework.config.hydra",
    "load_run": "framework.results.io",
    "RunResult": "framework.results.io",
    "collect": "framework.results.collect",
    "compare": "framework.results.compare",
    "report": "framework.results.report",
    "ConfigError": "framework.errors",
    "ResultsWriteError": "framework.errors",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'framework' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # the next lookup does not come back here
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
