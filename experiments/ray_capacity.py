"""Local against Ray: the same capacity experiment on mp_queue, ray_batches and ray_queue.

    python experiments/ray_capacity.py                      # 3 repeats x 3 s per case, 8 B and 64 KiB items
    python experiments/ray_capacity.py --repeats 5 --payloads small

Every case runs as fast as possible with the chief taking everything queued at each check
(``workers.interval_s=0 chief.interval_s=0 chief.take_batch=0``), cases interleaved, medians of
the repeats. ``ray_queue`` runs twice: one item per put (``workers.forward_batch=1``) and 64 per
put (``workers.local_threshold=63 workers.forward_batch=64``), which is why it must be batched;
``mp_queue`` runs both ways too, as the local reference, and ``shm_ring`` batched as the fastest local design. One embedded Ray instance serves every Ray
run (its start and stop are outside every measured window anyway, as in a single run).
"""

import argparse
import datetime
import os
from pathlib import Path

from queue_capacity import measure

from framework.config.hydra import compose
from framework.config.validate import to_spec

BATCHED = ["workers.local_threshold=63", "workers.forward_batch=64"]
PAYLOADS = {"small": [], "64KiB": ["payload=array", "payload.shape=[8192]"]}  # 8 B randint; 8192 float64 = 64 KiB


def cases(payload: list[str]) -> dict[str, list[str]]:
    return {
        "mp_queue": ["queue=mp_queue", *payload],
        "mp_queue x64": ["queue=mp_queue", *BATCHED, *payload],
        "shm_ring x64": ["queue=shm_ring", *BATCHED, *payload],
        "ray_batches": ["backend=ray", "queue=ray_batches", *payload],
        "ray_batches x64": ["backend=ray", "queue=ray_batches", *BATCHED, *payload],
        "ray_queue": ["backend=ray", "queue=ray_queue", *payload],
        "ray_queue x64": ["backend=ray", "queue=ray_queue", *BATCHED, *payload],
    }


def main() -> None:
    from framework.engine.backends.ray_backend import _RaySession

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--duration", type=float, default=3.0, help="seconds per run")
    parser.add_argument("--payloads", nargs="+", default=list(PAYLOADS), choices=list(PAYLOADS))
    parser.add_argument("overrides", nargs="*", help="extra chiefbench overrides, for every case")
    args = parser.parse_args()
    out = Path("outputs/experiments/ray_capacity") / datetime.datetime.now().strftime("%Y-%m-%d_%H-%M-%S-%f")
    session = _RaySession(to_spec(compose(["backend=ray"])))  # sized for the default 2 workers
    try:
        for name in args.payloads:
            print(f"== payload {name}, {os.cpu_count()} CPUs")
            measure({label: [*o, "chief.take_batch=0", *args.overrides] for label, o in cases(PAYLOADS[name]).items()},
                    args.repeats, args.duration, out / name)
    finally:
        session.close()


if __name__ == "__main__":  # spawn re-imports this module in every worker
    main()
