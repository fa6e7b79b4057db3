"""Scaling: worker count from 1 to twice the number of cores, as fast as possible.

    python experiments/scaling.py                       # the default design
    python experiments/scaling.py queue=pipe,mp_queue   # one line per design in the report

Any chiefbench override applies (it wins over the preset, conf/experiment/scaling.yaml). The sweep
directory, outputs/sweeps/<date>/<time>_<pid>/, ends with sweep_results.parquet/.csv, the
per-configuration table (median, 95 % CI) and report.html.
"""

import sys

from framework.cli.main import main

if __name__ == "__main__":  # spawn re-imports this module in every worker
    sys.argv = [sys.argv[0], "-m", "+experiment=scaling", *sys.argv[1:]]
    main()
