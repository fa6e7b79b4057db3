"""The configuration: ``schema`` (typed dataclasses, one docstring per key), ``hydra`` (the YAML tree,
registration, composition) and ``validate`` (``to_spec``: plain dataclasses, every rule checked).

Import what you need from the submodules; this package imports nothing itself, so that a worker that
needs the schema does not pay for Hydra.
"""
