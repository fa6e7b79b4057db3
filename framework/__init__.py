"""chiefbench: design, measure and compare chief/worker data-generation pipelines.

The public API is small; everything else is internal::

    import framework
    result = framework.run(["queue=pipe", "workers.interval_s=0", "chief.interval_s=0", "run.duration_s=2"])
    result.items, result.depth, result.latency, result.summary_frame()
    framework.load_run("outputs/runs/...")
"""

from framework.config import ConfigError, compose
from framework.results import ResultsWriteError, RunResult, load_run
from framework.runner import run

__all__ = ["ConfigError", "ResultsWriteError", "RunResult", "compose", "load_run", "run"]
__version__ = "0.1.0"
