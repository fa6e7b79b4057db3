"""Per-worker random streams: every worker, and every restart of it, draws from its own child of one seed."""

from __future__ import annotations

import numpy as np


def worker_stream(seed: int, worker_id: int, incarnation: int = 0) -> np.random.Generator:
    """Worker ``worker_id``'s generator: child ``worker_id`` of ``SeedSequence(seed)``; its k-th
    restart draws from the grandchild ``(worker_id, k)``, so no value repeats after a restart."""
    key = (worker_id,) if incarnation == 0 else (worker_id, incarnation)
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed, spawn_key=key)))
