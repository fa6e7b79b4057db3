"""Which run.order measures best on this machine, and what normalising does to a noisy series.

    python experiments/noise_orders.py                         # 3 designs x 5 repeats x 3 orders, 1 s runs
    python experiments/noise_orders.py --designs pipe,shm_ring --repeats 5 --duration 1

Part 1 runs the same capacity configurations in each order (grouped, interleaved, random: the job
lists ``framework.sweep.order.order_jobs`` gives a sweep), once on the machine as it is and once with a
CPU burner started halfway through each order's series (a machine that slows during a sweep), and
prints, per order, the spread (cv) of each design's repeats and how far each design's median lands from
its median over every quiet run (the bias a drift puts into a ranking). Part 2 runs 5 repeats of one configuration twice:
on the machine as it is, and with a CPU burner started halfway through the series; it prints the
spread of the raw and of the normalised figure. Both tables go to a CSV with the machine's metadata.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd

import framework
from framework.metadata import machine_metadata
from framework.sweep.order import ORDERS, order_jobs

CAPACITY = ["workers.interval_s=0", "chief.interval_s=0", "chief.take_batch=0", "run.progress=false",
            "run.print_items=false"]


def start_burner() -> int:
    """Another program spinning one core: started through a shell that exits at once, so that it is no
    descendant of this process (a run counts its own descendants as its own, not as other load)."""
    out = subprocess.run(["sh", "-c", f"'{sys.executable}' -c 'while True: pass' >/dev/null 2>&1 & echo $!"],
                         capture_output=True, text=True, timeout=10)
    return int(out.stdout)


def run_one(overrides: list[str], out: Path) -> dict:
    summary = framework.run([*CAPACITY, *overrides], output_dir=out, echo=lambda line: None).summary
    noise = summary.get("machine_noise") or {}
    return {"items_per_s": summary["throughput_items_per_s"],
            "normalised_items_per_s": summary["normalised"]["throughput_items_per_s"],
            "other_cpu_pct": noise.get("other_cpu_pct"), "steal_pct": noise.get("steal_pct"),
            "status": summary["status"]}


def cv(values: pd.Series) -> float:
    x = values.dropna().to_numpy(dtype=float)
    return float(np.std(x, ddof=1) / np.mean(x)) if len(x) > 1 and np.mean(x) else float("nan")


def orders(designs: list[str], repeats: int, duration: float, out: Path, drift: bool) -> pd.DataFrame:
    """Each order's series of runs; with ``drift``, a CPU burner starts halfway through each series (a machine
    that gets slower while a sweep runs)."""
    rows = []
    for order in ORDERS:
        jobs = order_jobs([[f"queue={d}"] for d in designs], repeats, order, seed=0)
        if order == "grouped":  # one job per configuration, its repeats one after another
            jobs = [[*job, f"run.repeat_index={k}"] for job in jobs for k in range(repeats)]
        burner = None
        try:
            for i, job in enumerate(jobs):
                if drift and i == len(jobs) // 2:
                    burner = start_burner()
                design = job[0].split("=", 1)[1]
                case = "drift" if drift else "quiet"
                row = run_one([job[0], f"run.duration_s={duration}"], out / case / order / str(i))
                rows.append({"part": "order", "case": case, "order": order, "design": design, "run": i, **row})
                print(f"{case:6} {order:12} {design:14} {row['items_per_s']:>12,.0f} items/s  "
                      f"other {row['other_cpu_pct']:.0f}%", flush=True)
        finally:
            if burner is not None:
                os.kill(burner, signal.SIGKILL)
    return pd.DataFrame(rows)


def burner(design: str, repeats: int, duration: float, out: Path) -> pd.DataFrame:
    rows = []
    for case in ("quiet", "burner halfway"):
        proc = None
        try:
            for k in range(repeats):
                if case != "quiet" and k == repeats // 2:
                    proc = start_burner()
                row = run_one([f"queue={design}", f"run.duration_s={duration}"], out / case.replace(" ", "_") / str(k))
                rows.append({"part": "burner", "order": case, "design": design, "run": k, **row})
                print(f"{case:14} {k}: {row['items_per_s']:>12,.0f} items/s  normalised "
                      f"{row['normalised_items_per_s']:>12,.0f}  other {row['other_cpu_pct']:.0f}%", flush=True)
        finally:
            if proc is not None:
                os.kill(proc, signal.SIGKILL)
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--designs", default="pipe,shm_ring,mp_queue")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--duration", type=float, default=1.0)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    stamp = datetime.datetime.now().strftime("%Y-%m-%d/%H-%M-%S")
    out = Path(args.out or f"outputs/noise_orders/{stamp}")
    designs = args.designs.split(",")
    table = pd.concat([orders(designs, args.repeats, args.duration, out, drift=False),
                       orders(designs, args.repeats, args.duration, out, drift=True),
                       burner(designs[0], args.repeats, args.duration, out)], ignore_index=True)
    runs = table[table["part"] == "order"]
    truth = runs[runs["case"] == "quiet"].groupby("design")["items_per_s"].median()
    for case in ("quiet", "drift"):
        part = runs[runs["case"] == case]
        spread = part.groupby(["order", "design"])["items_per_s"].apply(cv).unstack("design")
        spread["mean cv"] = spread.mean(axis=1)
        medians = part.groupby(["order", "design"])["items_per_s"].median().unstack("design")
        bias = (medians / truth - 1).abs()
        spread["mean |median - quiet| / quiet"] = bias.mean(axis=1)
        print(f"\n{case}: spread (cv) of each design's repeats, and how far each design's median lands from "
              f"its median over every quiet run, per run.order:")
        print(spread.to_string(float_format=lambda v: f"{v:.1%}"))
    b = table[table["part"] == "burner"]
    print(f"\n{designs[0]}, {args.repeats} repeats: spread of the raw and the normalised figure")
    print(b.groupby("order")[["items_per_s", "normalised_items_per_s"]].agg(cv)
          .to_string(float_format=lambda v: f"{v:.1%}"))
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / "noise_orders.csv", index=False)
    (out / "machine.json").write_text(json.dumps(machine_metadata(), indent=2, default=str))
    print(f"\ntable {out / 'noise_orders.csv'} (machine: {out / 'machine.json'})")


if __name__ == "__main__":
    main()
