"""The command-line entry points: ``main`` (chiefbench) and ``tools`` (collect, compare, report)."""
