"""chiefbench: design, measure and compare chief/worker data-generation pipelines.

The public API is small; everything else is internal::

    import framework
    result = framework.run(["queue=pipe", "workers.interval_s=0", "chief.interval_s=0", "run.duration_s=2"])
    result.items, result.depth, result.latency, result.summary_frame()
    framework.load_run("outputs/runs/...")
    framework.collect("outputs/sweeps/...")            # one table per sweep (sweep_results.parquet)
    framework.compare("outputs/sweeps/A", "outputs/sweeps/B")   # ratio of medians, Mann-Whitney p
    framework.report("outputs/sweeps/...")             # report.html + PNG figures (extra: report)
"""

from framework.config import ConfigError, compose
from framework.results import ResultsWriteError, RunResult, load_run
from framework.runner import run


def collect(directory, write=True):  # noqa: ANN001, ANN201
    """``framework.sweep.collect``: one table of every job of a sweep directory (imported on first use, so that
    worker processes, which import this package, do not pay for Hydra's callback machinery)."""
    from framework.sweep import collect as _collect

    return _collect(directory, write=write)


def compare(a, b, **kwargs):  # noqa: ANN001, ANN003, ANN201
    """``framework.stats.compare``: per configuration in both, medians, ratio B/A, Mann-Whitney p (needs scipy)."""
    from framework.stats import compare as _compare

    return _compare(a, b, **kwargs)


# framework.report is the report package, and calling it writes a report (it is a callable module,
# because importing a subpackage would otherwise replace a function of the same name).
from framework import report  # noqa: E402


__all__ = ["ConfigError", "ResultsWriteError", "RunResult", "collect", "compare", "compose", "load_run", "report",
           "run"]
__version__ = "0.1.0"
