"""Inject each worker fault under each queue design and on_failure policy; print what was
recovered and what was counted lost, as a Markdown table.

    python experiments/fault_matrix.py                 # 3 faults x 4 designs x 3 policies, ~2 s each
    python experiments/fault_matrix.py queue=pipe ...  # extra overrides for every cell
"""

import sys
import tempfile

import framework
from framework.queues.catalog import availability

FAULTS = {"kill": "faults.kill_worker_after_s", "raise": "faults.raise_after_s", "hang": "faults.hang_after_s"}
BASE = ["workers.interval_s=0.004", "chief.interval_s=0.01", "chief.take_batch=0", "run.duration_s=1.6",
        "run.progress=false", "workers.heartbeat_timeout_s=0.5", "faults.worker=0"]


def main() -> None:
    designs = [name for name, state in availability().items() if state == "available"]
    out = tempfile.mkdtemp(prefix="fault-matrix-")
    print("| fault | design | policy | status | detected after (s) | produced | consumed | left in queues "
          "| lost: dead worker's local queue | lost in transit | restarts |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for fault, key in FAULTS.items():
        for design in designs:
            for policy in ("abort", "restart", "continue"):
                r = framework.run([*BASE, f"{key}=0.4", f"queue={design}", f"workers.on_failure={policy}",
                                   *sys.argv[1:]], output_dir=f"{out}/{fault}-{design}-{policy}", echo=lambda _: None)
                c = r.counts
                f = r.summary["failures"][0] if r.summary["failures"] else {"time_s": float("nan")}
                print(f"| {fault} | {design} | {policy} | {r.status} | {f['time_s'] - 0.4:.2f} | {c['produced']} "
                      f"| {c['consumed']} | {c['left_in_queues']} | {c['lost_dead_worker_local']} "
                      f"| {c['lost_in_transit']} | {c['restarts']} |", flush=True)


if __name__ == "__main__":  # spawn re-imports this module in every worker
    main()
