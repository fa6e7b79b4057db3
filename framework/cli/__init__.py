"""The command-line entry points: ``main`` (chiefbench) and ``tools`` (collect, compare, report).

``chiefbench`` starts here, and this module imports nothing: under the spawn start method every worker
process re-runs the parent's main script (multiprocessing's rule), and a script that imported Hydra,
the runner and pyarrow would make each worker pay for them. The command's code is loaded when it runs.
"""

from __future__ import annotations

import importlib


def main() -> None:
    """Entry point of the ``chiefbench`` command (``framework.cli.main.main``)."""
    importlib.import_module("framework.cli.main").main()
