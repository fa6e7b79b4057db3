"""Thresholds: local and global thresholds against latency and queue depth, at a steady rate.

    python experiments/thresholds.py
    python experiments/thresholds.py workers.forward_deadline_s=0.05   # with a deadline beside the threshold

Any chiefbench override applies (it wins over the preset, conf/experiment/thresholds.yaml). The sweep
directory, outputs/sweeps/<date>/<time>_<pid>/, ends with sweep_results.parquet/.csv, the
per-configuration table (median, 95 % CI) and report.html.
"""

import sys

from framework.cli.main import main

if __name__ == "__main__":  # spawn re-imports this module in every worker
    sys.argv = [sys.argv[0], "-m", "+experiment=thresholds", *sys.argv[1:]]
    main()
