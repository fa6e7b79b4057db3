"""Search (Optuna, extra `sweep`): the largest throughput whose end-to-end p99 stays under a bound.

    python experiments/search.py                                   # 20 trials, p99 under 20 ms
    python experiments/search.py objective.max_p99_ms=5 hydra.sweeper.n_trials=50
The best feasible configuration is printed and saved in best.yaml (Optuna's own pick, infeasible
trials included, in optimization_results.yaml).

Any chiefbench override applies (it wins over the preset, conf/experiment/search.yaml). The sweep
directory, outputs/sweeps/<date>/<time>_<pid>/, ends with sweep_results.parquet/.csv, the
per-configuration table (median, 95 % CI) and report.html.
"""

import sys

from framework.cli.main import main

if __name__ == "__main__":  # spawn re-imports this module in every worker
    sys.argv = [sys.argv[0], "-m", "+experiment=search", *sys.argv[1:]]
    main()
