"""Capacity of every installed queue design, as fast as possible, repeats interleaved.

    python experiments/queue_capacity.py                       # 3 repeats x 3 s per design
    python experiments/queue_capacity.py --repeats 5 chief.take_batch=0 payload=array

Prints the median items/s (and MB/s, end-to-end p50/p99) per design and its ratio to
mp_queue measured in the same invocation. Every repeat is a fresh set of processes;
designs take turns so that a noisy minute does not land on one design only.
"""

import argparse
import datetime
from pathlib import Path

import pandas as pd

import framework
from framework.queues.catalog import availability, designs


def measure(cases: dict[str, list[str]], repeats: int, duration: float, out: Path,
            baseline: str = "mp_queue") -> pd.DataFrame:
    """Run every case ``repeats`` times, cases taking turns; print the table of medians and return it.

    ``cases`` maps a label to its chiefbench overrides; ``baseline`` is the label the ratios divide by.
    """
    labels = list(cases)
    rows = []
    for repeat in range(repeats):
        for label in labels[repeat % len(labels):] + labels[:repeat % len(labels)]:
            result = framework.run(["workers.interval_s=0", "chief.interval_s=0", f"run.duration_s={duration}",
                                    "run.progress=false", *cases[label]],
                                   output_dir=out / f"{label}-{repeat}".replace(" ", "_"), echo=lambda line: None)
            lat = result.latency
            rows.append({"design": label, "repeat": repeat, "status": result.status,
                         "lost": result.counts["lost"], "items_per_s": result.summary["throughput_items_per_s"],
                         "mb_per_s": result.summary["throughput_mb_per_s"],
                         "e2e_p50_ms": lat.loc["end_to_end", "p50_ms"], "e2e_p99_ms": lat.loc["end_to_end", "p99_ms"]})
            print(f"{label:14} repeat {repeat}: {rows[-1]['items_per_s']:>12,.0f} items/s  lost {rows[-1]['lost']}"
                  f"  status {result.status}", flush=True)
    df = pd.DataFrame(rows)
    table = df.groupby("design").agg(items_per_s=("items_per_s", "median"), mb_per_s=("mb_per_s", "median"),
                                     e2e_p50_ms=("e2e_p50_ms", "median"), e2e_p99_ms=("e2e_p99_ms", "median"),
                                     spread_pct=("items_per_s", lambda s: 100 * s.std() / s.mean()),
                                     lost=("lost", "sum"), runs=("repeat", "count"))
    if baseline in table.index:
        table[f"ratio_to_{baseline}"] = table["items_per_s"] / table.loc[baseline, "items_per_s"]
    table = table.sort_values("items_per_s", ascending=False)
    out.mkdir(parents=True, exist_ok=True)
    df.to_csv(out / "runs.csv", index=False)
    with pd.option_context("display.width", 200, "display.max_columns", None, "display.float_format", "{:,.2f}".format):
        print(table)
    noisy = table[table["spread_pct"] > 10]
    if len(noisy):
        print(f"warning: std dev over 10% of the mean for {', '.join(noisy.index)}: rerun with more repeats "
              f"(--repeats) on a quieter machine.")
    print(f"runs: {out}")
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--duration", type=float, default=3.0, help="seconds per run")
    parser.add_argument("overrides", nargs="*", help="extra chiefbench overrides")
    args = parser.parse_args()
    # The local backend's designs (the Ray designs: experiments/ray_capacity.py).
    names = [name for name in designs("local") if availability()[name] == "available"]
    out = Path("outputs/experiments/queue_capacity") / datetime.datetime.now().strftime("%Y-%m-%d_%H-%M-%S-%f")
    measure({name: [f"queue={name}", *args.overrides] for name in names}, args.repeats, args.duration, out)


if __name__ == "__main__":  # spawn re-imports this module in every worker
    main()
