"""Sweeps: ``job`` (one job of a multirun), ``grid`` (the sweep's grid from multirun.yaml), ``order``
(run.order: grouped, interleaved, random), ``callback``
(``GatherResults``: progress, then one table, a comparison and a report)."""
