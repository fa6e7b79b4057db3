"""Rollout: transitions/s of RL experience through chiefbench against the env stepping alone, in one invocation.

    python experiments/rollout.py queue=shm_ring payload.envs_per_worker=256    # the targets, side by side
    python experiments/rollout.py --designs shm_ring,pipe,mp_queue payload.envs_per_worker=256
    python experiments/rollout.py --workers 1,2,4 --repeats 5 payload.policy=linear
    python experiments/rollout.py                                               # one env per worker

Every repeat measures, one after another, turns rotated so that a noisy minute does not land on
one line only:
- ``single env``: one plain env stepping alone in this process (the workers' own stepping code);
- ``vector env (E envs, one process)``: Gymnasium's vector env of E = envs_per_worker x workers envs
  stepping alone in this process, bare (nothing copied or sent): the one-core ceiling for that many envs,
  and E = envs_per_worker, what one worker could do with a core to itself;
- ``AsyncVectorEnv (--vector-envs)``: Gymnasium's one-process-per-env stepping;
- ``chiefbench <design> <w> worker(s)``: a run of conf/experiment/rollout.yaml with the overrides.

It prints the median transitions/s of each line with its ratios, the workers' busy / blocked shares and
the chief's CPU share of each chiefbench line, then the targets: with 2 workers on shm_ring at least
TARGET_TRANSITIONS_PER_S, and TARGET_VS_VECTOR_ENV x the one-process vector env of the same total envs;
where one is missed, the ceiling the measured vector env rates put on it. Needs the extra:
pip install 'chiefbench[rollout]'. Results: outputs/experiments/rollout/<time>/runs.csv, table.csv and
machine.json (the command and the machine's metadata).
"""

import argparse
import datetime
import json
import sys
from pathlib import Path

import pandas as pd

import framework
from framework.config.validate import to_spec
from framework.errors import ConfigError
from framework.metadata import machine_metadata
from framework.payloads.rollout import async_vector_env_steps_per_s, single_env_steps_per_s, vector_env_steps_per_s

TARGET_TRANSITIONS_PER_S = 2_000_000
"""Transitions/s through chiefbench with 2 workers on shm_ring (recording on)."""
TARGET_VS_VECTOR_ENV = 1.3
"""...and at least this many times the one-process vector env of the same total number of envs."""
SINGLE, ASYNC = "single env", "AsyncVectorEnv"


def vector_line(n_envs: int) -> str:
    return f"vector env ({n_envs} envs, one process)"


def framework_line(design: str, workers: int) -> str:
    return f"chiefbench {design} {workers} worker(s)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--duration", type=float, default=3.0, help="seconds per measurement")
    parser.add_argument("--workers", default="1,2", help="worker counts, comma-separated")
    parser.add_argument("--designs", default=None, help="designs, comma-separated (default: the config's queue)")
    parser.add_argument("--vector-envs", type=int, default=2, help="envs (processes) of the AsyncVectorEnv line")
    parser.add_argument("overrides", nargs="*", help="extra chiefbench overrides")
    args = parser.parse_args()
    base = ["+experiment=rollout", f"run.duration_s={args.duration}", "run.repeats=1", "run.progress=false",
            *args.overrides]
    try:
        spec = to_spec(framework.compose(base))
        design_names = args.designs.split(",") if args.designs else [spec.queue.name]
        for design in design_names:
            to_spec(framework.compose([*base, f"queue={design}"]))
    except ConfigError as exc:
        raise SystemExit(str(exc)) from None
    p = spec.payload
    n_envs = p.envs_per_worker
    counts = [int(n) for n in args.workers.split(",")]
    vector_sizes = sorted({n_envs * w for w in counts} | {n_envs}) if n_envs > 1 else []
    out = Path("outputs/experiments/rollout") / datetime.datetime.now().strftime("%Y-%m-%d_%H-%M-%S-%f")
    print(f"{p.env_id}, {n_envs} env(s) per worker, fragments of {p.fragment_length} steps, policy {p.policy}, "
          f"designs {', '.join(design_names)}; {args.repeats} repeats x {args.duration} s each", flush=True)
    lines = [SINGLE, *[("vector", e) for e in vector_sizes], ASYNC,
             *[(d, w) for d in design_names for w in counts]]
    rows = []
    for repeat in range(args.repeats):
        seed = spec.run.seed + repeat
        for line in lines[repeat % len(lines):] + lines[:repeat % len(lines)]:
            row = {"repeat": repeat, "status": "ok", "lost": 0}
            if line == SINGLE:
                row.update(line=SINGLE, transitions_per_s=single_env_steps_per_s(
                    p.env_id, args.duration, seed, p.fragment_length, p.env_kwargs, p.work_us, p.policy))
            elif line == ASYNC:
                row.update(line=f"{ASYNC} ({args.vector_envs} envs)", transitions_per_s=async_vector_env_steps_per_s(
                    p.env_id, args.vector_envs, args.duration, seed, p.env_kwargs,
                    work_us_per_step=p.work_us / p.fragment_length))
            elif line[0] == "vector":
                row.update(line=vector_line(line[1]), transitions_per_s=vector_env_steps_per_s(
                    p.env_id, line[1], args.duration, seed, p.env_kwargs, p.policy, p.fragment_length))
            else:
                design, workers = line
                result = framework.run([*base, f"queue={design}", f"workers.count={workers}", f"run.seed={seed}"],
                                       output_dir=out / f"{design}-workers{workers}-{repeat}", echo=lambda text: None)
                s = result.summary
                use = s.get("worker_utilisation") or {}
                chief = next((q for q in s["processes"] if q["role"] == "chief"), {})
                row.update(line=framework_line(design, workers), status=result.status, lost=s["counts"]["lost"],
                           transitions_per_s=s["transitions_per_s"], gb_per_s=(s["throughput_mb_per_s"] or 0) / 1e3,
                           in_place=s["written_in_place"], workers_busy=use.get("busy"),
                           workers_blocked=use.get("blocked"),
                           chief_cpu=chief["cpu_s"] / chief["wall_s"] if chief.get("wall_s") else None,
                           e2e_p50_ms=s["latency_ms"]["end_to_end"]["p50_ms"],
                           e2e_p99_ms=s["latency_ms"]["end_to_end"]["p99_ms"])
            rows.append(row)
            print(f"  repeat {repeat}  {row['line']:<44} {row['transitions_per_s'] or 0:>14,.0f} transitions/s"
                  f"{'' if row['status'] == 'ok' else '  status ' + row['status']}", flush=True)
    df = pd.DataFrame(rows)
    out.mkdir(parents=True, exist_ok=True)
    df.to_csv(out / "runs.csv", index=False)
    table = summarise(df, args.vector_envs)
    table.to_csv(out / "table.csv")
    (out / "machine.json").write_text(json.dumps(
        {"command": " ".join(["python", "experiments/rollout.py", *sys.argv[1:]]), "repeats": args.repeats,
         "duration_s": args.duration, **machine_metadata(spec.run.start_method)}, indent=2, default=str))
    with pd.option_context("display.width", 220, "display.max_columns", None,
                           "display.float_format", "{:,.2f}".format):
        print(f"\nmedians of {args.repeats} (ratios of medians, all measured in this invocation; busy / blocked: "
              f"the workers' CPU time and time waiting for room / wall time; chief_cpu: the chief's CPU / wall):")
        print(table)
    print()
    print("\n".join(targets(table, n_envs, design_names)))
    if (df["status"] != "ok").any():
        print("warning: some runs were not ok (see runs.csv and their run directories)")
    print(f"runs: {out}")


def summarise(df: pd.DataFrame, async_envs: int) -> pd.DataFrame:
    """One row per line: median transitions/s, spread, ratios to the single env and AsyncVectorEnv, shares."""
    table = df.groupby("line", sort=False).agg(
        transitions_per_s=("transitions_per_s", "median"),
        spread_pct=("transitions_per_s", lambda s: 100 * s.std() / s.mean() if len(s) > 1 else 0.0),
        runs=("repeat", "count"))
    for column in ("gb_per_s", "workers_busy", "workers_blocked", "chief_cpu", "e2e_p50_ms", "e2e_p99_ms"):
        if column in df:
            table[column] = df.groupby("line", sort=False)[column].median()
    if "lost" in df:
        table["lost"] = df.groupby("line", sort=False)["lost"].sum()
    table["x_single_env"] = table["transitions_per_s"] / table.loc[SINGLE, "transitions_per_s"]
    table["x_async_vector_env"] = table["transitions_per_s"] / table.loc[f"{ASYNC} ({async_envs} envs)",
                                                                         "transitions_per_s"]
    return table


def targets(table: pd.DataFrame, n_envs: int, designs: list[str]) -> list[str]:
    """The targets, met or not, and for a miss the ceiling that the measured vector env rates put on it."""
    out = ["targets (2 workers, recording on):"]
    two = framework_line("shm_ring", 2)
    if two not in table.index:
        return out + ["  shm_ring with 2 workers was not measured: add --designs shm_ring --workers 1,2"]
    rate = table.loc[two, "transitions_per_s"]
    out.append(f"  {two}: {rate:,.0f} transitions/s, target >= {TARGET_TRANSITIONS_PER_S:,}: "
               f"{'met' if rate >= TARGET_TRANSITIONS_PER_S else 'NOT met'}")
    same_envs = vector_line(2 * n_envs)
    if n_envs == 1 or same_envs not in table.index:
        out.append(f"  vs the one-process vector env of the same total envs: needs payload.envs_per_worker > 1")
        return out
    ratio = rate / table.loc[same_envs, "transitions_per_s"]
    out.append(f"  vs {same_envs}: {ratio:.2f}x, target >= {TARGET_VS_VECTOR_ENV}x: "
               f"{'met' if ratio >= TARGET_VS_VECTOR_ENV else 'NOT met'}")
    per_worker = table.loc[vector_line(n_envs), "transitions_per_s"]
    ceiling = 2 * per_worker / table.loc[same_envs, "transitions_per_s"]
    out.append(f"  where the time goes: one worker's envs alone ({vector_line(n_envs)}) step "
               f"{per_worker:,.0f}/s, so two workers with a core each could reach at most {2 * per_worker:,.0f}/s "
               f"= {ceiling:.2f}x the one-process line before any copy or transport (a vector env's cost per env "
               f"falls as it grows); chiefbench reached {rate / (2 * per_worker):.0%} of that, with the workers "
               f"busy {table.loc[two, 'workers_busy']:.0%} of their wall time and the chief using "
               f"{table.loc[two, 'chief_cpu']:.0%} of a core on this machine's cores")
    for design in designs:
        line = framework_line(design, 2)
        if design != "shm_ring" and line in table.index:
            out.append(f"  {line}: {table.loc[line, 'transitions_per_s']:,.0f} transitions/s "
                       f"({table.loc[line, 'transitions_per_s'] / rate:.2f}x shm_ring)")
    return out


if __name__ == "__main__":  # spawn re-imports this module in every worker
    main()
