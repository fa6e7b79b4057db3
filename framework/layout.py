"""Every file and directory name of a run and of a sweep, in one place (imports nothing).

A run directory::

    items.parquet/  one row per item kept (record.items), in part files: worker, seq, value, created_ns,
                    forwarded_ns, consumed_ns (NO_STAMP: never happened), state (a code of ITEM_STATES)
    depth.parquet/  t_ns, elapsed_s, queue (global | local), worker (-1 = global), depth
    memory.parquet/ t_ns, role, worker, pid, rss_bytes (each process, once a second)
    summary.json    status, counts, throughput, latency, processes, config, metadata (written last)
    config.yaml     the resolved config (what ran, seeds included)

A sweep directory (``chiefbench -m ...``)::

    outputs/sweeps/<date>/<time-with-microseconds>_<pid>/
        multirun.yaml              Hydra's config of the sweep (the command's overrides, the sweeper)
        0/  1/  2/ ...             one directory per job (Hydra's job number)
            job.json               written first: overrides, launcher, concurrent jobs; at the end the objective
            .hydra/overrides.yaml  the job's own overrides (its grid point)
            summary.json ...       a complete run directory (run.repeats=1), or
            repeat-0/ repeat-1/    one complete run directory per repeat (run.repeats>1, run.order=grouped;
                                   interleaved and random orders run one repeat per job)
        sweep_results.parquet/.csv one row per job and repeat
        sweep_summary.parquet/.csv one row per configuration: median, 95 % CI, spread
        best.yaml                  the best feasible job
        report.html, *.png         the report
"""

from __future__ import annotations

from pathlib import Path

ITEMS_FILE = "items.parquet"
DEPTH_FILE = "depth.parquet"
MEMORY_FILE = "memory.parquet"
SUMMARY_FILE = "summary.json"
"""Written last: a directory with a summary.json is complete."""
CONFIG_FILE = "config.yaml"
ITEM_STATES = ("consumed", "left_global", "left_local", "dropped_oldest", "dropped_newest")
"""items.parquet's ``state`` codes, in order: consumed (taken by the chief's rule during the run), left_global
(on the global queue at stop), left_local (in a worker's local queue when it stopped), dropped_oldest (evicted
by the chief past the bound), dropped_newest (refused by a worker at the bound, never forwarded)."""
NO_STAMP = -1
"""items.parquet's mark of a stamp that never happened (an item kept local was never forwarded)."""
REPEAT_DIR = "repeat-{}"
"""With run.repeats > 1, repeat k of a job is written to <job dir>/repeat-<k>/ (a complete run directory)."""
JOB_FILE = "job.json"
MULTIRUN_FILE = "multirun.yaml"
RESULTS_TABLE = "sweep_results"
SUMMARY_TABLE = "sweep_summary"
BEST_FILE = "best.yaml"
REPORT_FILE = "report.html"
RUNS_DIR = Path("outputs") / "runs"
"""Where ``framework.run`` writes a run when given no directory (the CLI's is in conf/config.yaml)."""


def run_dirs(job_dir: Path) -> list[tuple[int, Path]]:
    """(repeat, run directory) pairs of a job directory, complete or not."""
    repeats = sorted((int(p.name.split("-", 1)[1]), p) for p in job_dir.glob(REPEAT_DIR.format("*"))
                     if p.is_dir() and p.name.split("-", 1)[1].isdigit())
    return repeats or [(0, job_dir)]


def job_dirs(sweep_dir: Path) -> list[Path]:
    """The job directories of a sweep directory, in job order."""
    return sorted((p for p in sweep_dir.iterdir() if p.is_dir() and p.name.isdigit()), key=lambda p: int(p.name))
