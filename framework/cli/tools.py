"""The console scripts that read results (they never start the system).

    chiefbench-collect DIR            rebuild sweep_results.parquet/.csv from a sweep's job directories
    chiefbench-compare A B [--force]  ratio of medians and Mann-Whitney significance, per configuration
    chiefbench-report DIR             report.html (self-contained) and PNG figures, for a sweep or one run
"""

from __future__ import annotations

import argparse
import sys

from framework.errors import ComparisonError
from framework.results.collect import collect
from framework.results.compare import compare, format_compare
from framework.results.text import format_collected


def collect_main(argv: list[str] | None = None) -> int:
    """Entry point of ``chiefbench-collect``."""
    parser = argparse.ArgumentParser(prog="chiefbench-collect", description="Gather every job of a sweep directory "
                                     "into sweep_results.parquet/.csv (idempotent) and list the grid points that "
                                     "have no result yet.")
    parser.add_argument("directory", help="a sweep directory (outputs/sweeps/<date>/<time>_<pid>) or a run directory")
    parser.add_argument("--dry-run", action="store_true", help="print the table's summary, write nothing")
    args = parser.parse_args(argv)
    try:
        collected = collect(args.directory, write=not args.dry_run)
    except FileNotFoundError as exc:
        print(f"chiefbench-collect: {exc}", file=sys.stderr)
        return 2
    print(format_collected(collected))
    return 0


def compare_main(argv: list[str] | None = None) -> int:
    """Entry point of ``chiefbench-compare``."""
    parser = argparse.ArgumentParser(prog="chiefbench-compare", description="Compare two sweeps (directories or "
                                     "result tables): for each configuration in both, the ratio of medians B/A and "
                                     "a Mann-Whitney U test.")
    parser.add_argument("a", help="baseline: sweep directory, sweep_results.parquet or .csv")
    parser.add_argument("b", help="contender: sweep directory, sweep_results.parquet or .csv")
    parser.add_argument("--metric", default="throughput_items_per_s", help="column to compare (default: %(default)s)")
    parser.add_argument("--alpha", type=float, default=0.05, help="significance level (default: %(default)s)")
    parser.add_argument("--force", action="store_true",
                        help="compare even when the machines, the numbers of concurrent jobs or the machine noise differ")
    parser.add_argument("--normalised", action="store_true",
                        help="compare the figures rescaled by each run's calibration (normalised.<metric>), not the "
                             "raw ones")
    parser.add_argument("--csv", help="also write the comparison to this CSV file")
    args = parser.parse_args(argv)
    try:
        result = compare(args.a, args.b, metric=args.metric, alpha=args.alpha, force=args.force,
                         normalised=args.normalised)
    except ComparisonError as exc:
        print(f"chiefbench-compare: {exc}", file=sys.stderr)
        return 2
    except FileNotFoundError as exc:
        print(f"chiefbench-compare: {exc}", file=sys.stderr)
        return 2
    print(format_compare(result))
    if args.csv:
        result.to_csv(args.csv, index=False)
    return 0


def report_main(argv: list[str] | None = None) -> int:
    """Entry point of ``chiefbench-report``."""
    parser = argparse.ArgumentParser(prog="chiefbench-report", description="Write report.html (one self-contained "
                                     "file) and the PNG figures beside it, for a sweep directory or one run.")
    parser.add_argument("directory", help="a sweep directory or a run directory")
    parser.add_argument("--depth-run", help="run directory (relative to DIR) whose queue depth is plotted; "
                        "default: the run whose global queue grew most")
    parser.add_argument("--out", help="where to write (default: DIR)")
    args = parser.parse_args(argv)
    try:
        from framework.results.report import report  # the report extra (matplotlib)
    except ImportError as exc:
        print(f"chiefbench-report: {exc}. Fix: pip install 'chiefbench[report]'", file=sys.stderr)
        return 2
    try:
        path = report(args.directory, depth_run=args.depth_run, out=args.out)
    except FileNotFoundError as exc:
        print(f"chiefbench-report: {exc}", file=sys.stderr)
        return 2
    print(f"report        {path}")
    return 0


def _exit(fn):  # noqa: ANN001, ANN202
    return lambda: sys.exit(fn())


collect_cli, compare_cli, report_cli = _exit(collect_main), _exit(compare_main), _exit(report_main)
