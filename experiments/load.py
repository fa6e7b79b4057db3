"""Load: worker interval from slow (100 ms) to saturation (0); latency against offered load.

    python experiments/load.py
    python experiments/load.py queue=pipe,mp_queue run.repeats=3

Any chiefbench override applies (it wins over the preset, conf/experiment/load.yaml). The sweep
directory, outputs/sweeps/<date>/<time>_<pid>/, ends with sweep_results.parquet/.csv, the
per-configuration table (median, 95 % CI) and report.html.
"""

import sys

from framework.cli.main import main

if __name__ == "__main__":  # spawn re-imports this module in every worker
    sys.argv = [sys.argv[0], "-m", "+experiment=load", *sys.argv[1:]]
    main()
