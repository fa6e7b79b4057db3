"""The running side: one run from a resolved config to a written run directory.

``runner`` (config -> run directory), ``chief`` (the main process's side of a run), ``worker`` (a
worker's loop), ``protocol`` (control block and messages), ``record`` (what the chief records),
``backends`` (where workers run: local processes or Ray actors).
"""
