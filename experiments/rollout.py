"""Rollout: transitions/s of RL experience through chiefbench against one env alone and AsyncVectorEnv.

    python experiments/rollout.py                          # default design, 1 and 2 workers, 3 repeats x 3 s
    python experiments/rollout.py queue=pipe               # any chiefbench override (payload.env_id=..., ...)
    python experiments/rollout.py --workers 1,2,4 --repeats 5 queue=simple_queue

Every repeat measures, one after another (turns rotate so that a noisy minute does not land on one
line only): one env stepping alone in this process with the workers' own stepping code
(``single_env_steps_per_s``), Gymnasium's AsyncVectorEnv with --vector-envs envs, and one chiefbench
run per worker count (the preset conf/experiment/rollout.yaml plus the overrides). It prints the median
transitions/s of each and their ratios to the single env and to AsyncVectorEnv, all measured in this
invocation. With payload.work_us (CPU per fragment) the single env burns the same per fragment and
AsyncVectorEnv work_us / fragment_length in every step. Needs the extra: pip install 'chiefbench[rollout]'.
"""

import argparse
import datetime
from pathlib import Path

import pandas as pd

import framework
from framework.config.validate import to_spec
from framework.errors import ConfigError
from framework.payloads.rollout import async_vector_env_steps_per_s, single_env_steps_per_s

SINGLE, VECTOR = "single env", "AsyncVectorEnv"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--duration", type=float, default=3.0, help="seconds per measurement")
    parser.add_argument("--workers", default="1,2", help="worker counts, comma-separated")
    parser.add_argument("--vector-envs", type=int, default=2, help="envs of the AsyncVectorEnv reference")
    parser.add_argument("overrides", nargs="*", help="extra chiefbench overrides")
    args = parser.parse_args()
    base = ["+experiment=rollout", f"run.duration_s={args.duration}", "run.repeats=1", "run.progress=false",
            *args.overrides]
    try:
        spec = to_spec(framework.compose(base))
    except ConfigError as exc:
        raise SystemExit(str(exc)) from None
    p = spec.payload
    counts = [int(n) for n in args.workers.split(",")]
    out = Path("outputs/experiments/rollout") / datetime.datetime.now().strftime("%Y-%m-%d_%H-%M-%S-%f")
    print(f"{p.env_id}, fragments of {p.fragment_length}, queue={spec.queue.name}, {args.repeats} repeats x "
          f"{args.duration} s each", flush=True)
    rows = []
    lines = [SINGLE, VECTOR, *counts]
    for repeat in range(args.repeats):
        for line in lines[repeat % len(lines):] + lines[:repeat % len(lines)]:
            row = {"line": line if isinstance(line, str) else f"chiefbench {line} worker(s)", "repeat": repeat,
                   "status": "ok", "lost": 0}
            if line == SINGLE:
                row["transitions_per_s"] = single_env_steps_per_s(p.env_id, args.duration, spec.run.seed + repeat,
                                                                  p.fragment_length, p.env_kwargs, p.work_us)
            elif line == VECTOR:
                row["line"] = f"{VECTOR} ({args.vector_envs} envs)"
                row["transitions_per_s"] = async_vector_env_steps_per_s(
                    p.env_id, args.vector_envs, args.duration, spec.run.seed + repeat, p.env_kwargs,
                    work_us_per_step=p.work_us / p.fragment_length)
            else:
                result = framework.run([*base, f"workers.count={line}", f"run.seed={spec.run.seed + repeat}"],
                                       output_dir=out / f"workers{line}-{repeat}", echo=lambda text: None)
                row.update(status=result.status, lost=result.counts["lost"],
                           transitions_per_s=result.summary["transitions_per_s"])
            rows.append(row)
            print(f"  repeat {repeat}  {row['line']:<26} {row['transitions_per_s']:>12,.0f} transitions/s"
                  f"{'' if row['status'] == 'ok' else '  status ' + row['status']}", flush=True)
    df = pd.DataFrame(rows)
    out.mkdir(parents=True, exist_ok=True)
    df.to_csv(out / "runs.csv", index=False)
    table = df.groupby("line", sort=False).agg(transitions_per_s=("transitions_per_s", "median"),
                                               spread_pct=("transitions_per_s", lambda s: 100 * s.std() / s.mean()),
                                               lost=("lost", "sum"), runs=("repeat", "count"))
    single = table.loc[SINGLE, "transitions_per_s"]
    vector = table.loc[f"{VECTOR} ({args.vector_envs} envs)", "transitions_per_s"]
    table["x_single_env"] = table["transitions_per_s"] / single
    table["x_async_vector_env"] = table["transitions_per_s"] / vector
    with pd.option_context("display.width", 200, "display.max_columns", None, "display.float_format", "{:,.2f}".format):
        print(f"\nmedians of {args.repeats} (ratios of medians, all measured in this invocation):")
        print(table)
    if (df["status"] != "ok").any():
        print("warning: some runs were not ok (see runs.csv and their run directories)")
    print(f"runs: {out}")


if __name__ == "__main__":  # spawn re-imports this module in every worker
    main()
