"""Queue shoot-out: every queue design x 1, 2, 4 workers x payloads of 8 B to 1 MiB, as fast as possible.

    python experiments/queue_shootout.py                                 # the full grid, 3 repeats each
    python experiments/queue_shootout.py run.duration_s=1 run.repeats=1  # a quicker pass
    python experiments/queue_shootout.py queue=pipe,mp_queue payload.shape=[8],[65536]

Any chiefbench override applies (it wins over the preset, conf/experiment/queue_shootout.yaml). The sweep
directory, outputs/sweeps/<date>/<time>_<pid>/, ends with sweep_results.parquet/.csv, the
per-configuration table (median, 95 % CI) and report.html.
"""

import sys

from framework.cli.main import main

if __name__ == "__main__":  # spawn re-imports this module in every worker
    sys.argv = [sys.argv[0], "-m", "+experiment=queue_shootout", *sys.argv[1:]]
    main()
