"""The ``chiefbench`` console script: a Hydra app around ``framework.runner.execute``.

    chiefbench                                   the original system (conf/config.yaml)
    chiefbench workers.count=4 queue=pipe        any override
    chiefbench -m queue=mp_queue,pipe            a Hydra multirun sweep
    chiefbench --designs                         which queue designs are installed
"""

from __future__ import annotations

import sys
from typing import Any

from framework.config import CONF_DIR, ConfigError, register_configs, to_spec


def format_summary(summary: dict[str, Any]) -> str:
    """The short table printed at the end of a run."""
    c = summary["counts"]
    lines = [
        f"status        {summary['status']}",
        f"items         produced {c['produced']:,}  forwarded {c['forwarded']:,}  consumed {c['consumed']:,}  "
        f"left in queues {c['left_in_queues']:,}  lost {c['lost']:,}  duplicates {c['duplicates']:,}",
    ]
    rate, mbs = summary["throughput_items_per_s"], summary["throughput_mb_per_s"]
    if rate is not None:
        lines.append(f"throughput    {rate:,.1f} items/s  {mbs:,.3f} MB/s  over {summary['window']['seconds']:.2f} s")
    lines.append("latency (ms)  " + "stage".ljust(12) + "".join(f"{h:>10}" for h in ("p50", "p95", "p99", "max")))
    for stage, row in summary["latency_ms"].items():
        cells = "".join(f"{row[k]:>10.3f}" if row[k] is not None else f"{'-':>10}"
                        for k in ("p50_ms", "p95_ms", "p99_ms", "max_ms"))
        lines.append("              " + stage.ljust(12) + cells)
    for w in summary["warnings"]:
        lines.append(f"warning: {w}")
    for e in summary["errors"]:
        lines.append(f"error: {e.splitlines()[0]}")
    return "\n".join(lines)


def _task(cfg: Any) -> float | None:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from framework.runner import execute

    hc = HydraConfig.get()
    multirun = hc.mode == RunMode.MULTIRUN
    try:
        spec = to_spec(cfg)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        if multirun:
            return None
        sys.exit(2)
    result = execute(spec, hc.runtime.output_dir, list(hc.overrides.task))
    print(format_summary(result.summary))
    print(f"results       {hc.runtime.output_dir}")
    code = result.summary["exit_code"] or (1 if result.status == "failed" else 0)
    if code and not multirun:
        if result.status == "interrupted":
            print(f"chiefbench: {result.summary['errors'][0]}; results so far were written.", file=sys.stderr)
        sys.exit(code)
    return result.summary["throughput_items_per_s"]


def main() -> None:
    """Entry point of the ``chiefbench`` command."""
    if sys.argv[1:2] == ["--designs"]:
        from framework.queues import availability

        for name, state in availability().items():
            print(f"{name:16} {state}")
        return
    import hydra

    register_configs()
    hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="config")(_task)()


if __name__ == "__main__":
    main()
