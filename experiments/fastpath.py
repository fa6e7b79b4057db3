"""The fast path against its bare transport: chiefbench shm_ring vs shm_ring's raw ring, one invocation.

    python experiments/fastpath.py [--repeats 3] [--duration 1.0] [--cases float-1,float-64,array-1,array-64]

For each case (payload x workers.forward_batch, 2 workers, as fast as possible), ``repeats`` interleaved
pairs of (chiefbench run, bare ring at the same batch); prints the medians and framework/raw. The bare
ring is ``ShmRingDesign.raw_throughput``: forked producers putting copies of one item tuple, a consumer
that takes everything through lent views (no worker, chief or recorder).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

FAST = ["workers.interval_s=0", "chief.interval_s=0", "chief.take_batch=0", "workers.count=2", "queue=shm_ring", "run.progress=false", "run.print_items=false", "run.start_method=fork",
        "chief.global_threshold=0", "run.warmup_s=0.2", "transform=none"]
PAYLOADS = {"float": ["payload=randint"],
            "64KiB": ["payload=array", "payload.dtype=uint8", "payload.shape=[65536]"]}
CASES = {"float-1": ("float", 1), "float-64": ("float", 64), "array-1": ("64KiB", 1), "array-64": ("64KiB", 64)}
"""name -> (payload, workers.forward_batch). A batched case sets workers.local_threshold=forward_batch-1: at
threshold 0 every forward holds one item whatever forward_batch says (the local queue never holds more)."""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--duration", type=float, default=1.0)
    parser.add_argument("--cases", default=",".join(CASES))
    args = parser.parse_args(argv)
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # this checkout's framework

    import framework
    from framework.queues.shm_ring import ShmRingDesign
    from framework.queues.rawloop import copies  # noqa: F401 - the raw ring makes its own copies

    import numpy as np

    rows = []
    out = Path(tempfile.mkdtemp(prefix="chiefbench-fastpath-"))
    for name in args.cases.split(","):
        payload, batch = CASES[name]
        overrides = [*FAST, *PAYLOADS[payload], f"workers.forward_batch={batch}", f"run.duration_s={args.duration}",
                     f"workers.local_threshold={batch - 1}"]
        now = time.monotonic_ns()
        value = 3 if payload == "float" else np.full(65536, 3, np.uint8)
        item = (0, 0, now, now, value)
        fw, raw, stamps = [], [], set()
        for k in range(args.repeats):
            result = framework.run(overrides, output_dir=out / f"{name}-{k}", echo=lambda line: None)
            fw.append(result.summary.get("throughput_items_per_s") or float("nan"))
            stamps.add(str(result.summary.get("created_stamps", "per_item")))
            raw.append(ShmRingDesign.raw_throughput(item, 2, args.duration, batch))
            print(f"{name:>9} repeat {k}: chiefbench {fw[-1]:>12,.0f}  raw {raw[-1]:>12,.0f} items/s", flush=True)
        rows.append((payload, batch, statistics.median(fw), statistics.median(raw), "/".join(sorted(stamps))))
    print()
    print(f"{'payload':>8} {'batch':>5} {'chiefbench/s':>13} {'raw/s':>13} {'framework/raw':>13}  created stamps")
    for payload, batch, f, r, stamps in rows:
        print(f"{payload:>8} {batch:>5} {f:>13,.0f} {r:>13,.0f} {f / r:>13.2f}  {stamps}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
