"""The original chief/worker program, exactly: 2 workers, 1 s / 2 s intervals, 11 rounds.

    python experiments/seed.py            # same as `chiefbench` / `make run`
    python experiments/seed.py queue=pipe # any override still applies
"""

import sys

import framework
from framework.results.text import format_summary

if __name__ == "__main__":  # spawn re-imports this module in every worker
    result = framework.run(sys.argv[1:])
    print(format_summary(result.summary))
    print(f"results       {result.directory}")
