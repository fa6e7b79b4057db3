"""One run from a resolved config to a written run directory: system, figures, files."""

from __future__ import annotations

import datetime as _dt
import os
import shlex
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from omegaconf import OmegaConf

from framework import noise
from framework.results import checks, metrics
from framework.config.hydra import compose
from framework.config.schema import Config
from framework.config.validate import item_bound, resolve_design, to_spec
from framework.metadata import SCHEMA_VERSION, machine_metadata
from framework.payloads.base import fills_in_place, item_nbytes, item_units
from framework.errors import ResultsWriteError
from framework.layout import REPEAT_DIR, RUNS_DIR
from framework.results.io import RunResult, prepare_run_dir, write_run
from framework.engine.chief import RawRun, run_system
from framework.engine.worker import blocks_enabled, in_place_rules


RECORD_WAIT_WARN = 0.05
"""The chief waiting for the records' writer over this share of the window is called out."""


def summarize(raw: RawRun, spec: Config) -> dict[str, Any]:
    """summary.json's content from what the chief measured."""
    start_ns, end_ns = metrics.window_bounds(raw.t0_ns, raw.t_end_ns, spec.run.warmup_s)
    window_items = raw.window.consumed
    seconds = max(0.0, (end_ns - start_ns) / 1e9)
    totals, per_worker = metrics.accounting(raw.books, raw.produced, raw.dead_local)
    totals["forwarded"] = int(sum(raw.forwarded.values()))
    totals["restarts"] = int(sum(raw.restarts.values()))
    errors = list(raw.errors)
    status = raw.status
    problems = metrics.accounting_errors(totals, per_worker)
    if problems:
        errors.extend(problems)
        if status == "ok":
            status = "failed"
    warnings = list(raw.warnings)
    if totals["lost_dead_worker_local"] or totals["lost_in_transit"]:
        warnings.append(
            f"{totals['lost_dead_worker_local']} item(s) were in the local queue of a worker process that died and "
            f"{totals['lost_in_transit']} were lost in transit from one (see failures and per_worker).")
    if totals["dropped"]:
        warnings.append(f"{totals['dropped']} item(s) were dropped at the queue bound (queue.on_full="
                        f"{spec.queue.on_full}): {totals['dropped_oldest']} oldest, {totals['dropped_newest']} newest.")
    stable = metrics.stability(raw.window, raw.depth_edges, seconds)
    if stable["unstable"] and item_bound(spec) is None:
        warnings.append(
            f"unstable configuration: items arrive on the global queue at {stable['arrival_items_per_s']:.3g}/s but "
            f"the chief takes only {stable['service_items_per_s']:.3g}/s, so the queue grew by "
            f"{stable['global_depth_growth']} items and would grow without bound. Bound it (queue.maxsize), take "
            f"more per check (chief.take_batch, 0 = all), check more often (chief.interval_s), or produce slower "
            f"(workers.interval_s).")
    if seconds and window_items < 100 and spec.chief.interval_s == 0:
        warnings.append(f"only {window_items} items in the measured window: figures are noisy. Run longer "
                        f"(run.duration_s) or shorten the warm-up (run.warmup_s).")
    nbytes = item_nbytes(spec.payload)
    rate = window_items / seconds if seconds else None
    calibration = dict(raw.calibration)
    before, after = calibration.get("before"), calibration.get("after")
    calibration["drift"] = noise.calibration_drift(before, after)
    at_run = _mean_calibration(before, after)
    warnings.extend(noise.noise_warnings(raw.machine_noise, before, after))
    little = metrics.littles_law(raw.window, raw.depth_area, seconds) if not raw.failures else None
    if seconds and raw.record_wait_s > RECORD_WAIT_WARN * seconds:
        warnings.append(
            f"the recorder slowed the chief: it waited {raw.record_wait_s:.2f} s of the {seconds:.2f} s window for "
            f"items.parquet's writer, which fell behind (more than RECORD_WAIT_WARN={RECORD_WAIT_WARN:.0%}). The "
            f"figures include the cost of writing every item; keep fewer rows (record.items=sample or none) to "
            f"measure the system alone.")
    little_warning = checks.littles_law_warning(little)
    if little_warning:
        warnings.append(little_warning)
    units = _unit_figures(spec, rate, totals, window_items, raw.detail_sums)
    return {
        "schema_version": SCHEMA_VERSION,
        "status": status,
        "errors": errors,
        "warnings": warnings,
        "counts": totals,
        "per_worker": per_worker,
        "rounds": raw.rounds,
        "window": {"t0_ns": raw.t0_ns, "start_ns": start_ns, "end_ns": end_ns, "seconds": seconds,
                   "warmup_s": spec.run.warmup_s, "items": int(window_items)},
        "throughput_items_per_s": rate,
        "throughput_mb_per_s": rate * nbytes / 1e6 if rate is not None else None,
        "item_bytes": nbytes,
        # At workers.interval_s=0 workers generate in blocks that share one created stamp (engine.worker).
        "created_stamps": "per_block" if blocks_enabled(spec.workers.interval_s, spec.workers.local_queue,
                                                        spec.payload) else "per_item",
        "written_in_place": written_in_place(spec),
        **units,
        # The same figures as this machine would have given at the reference speed (framework.noise).
        "normalised": {key: noise.normalised(value, at_run) for key, value in (
            ("throughput_items_per_s", rate), ("throughput_mb_per_s", rate * nbytes / 1e6 if rate else None),
            *((k, v) for k, v in units.items() if k.endswith("_per_s")))},
        "machine_noise": raw.machine_noise,
        "calibration": calibration,
        "littles_law": little,
        "stability": stable,
        "failures": raw.failures,
        "blocked_s": {"total": sum(raw.blocked_s.values()), **{str(w): s for w, s in raw.blocked_s.items()}},
        "worker_utilisation": metrics.worker_utilisation(raw.processes, raw.blocked_s),
        "memory": raw.memory,
        "latency_ms": metrics.latency_table(raw.histograms),
        # Mergeable across repeats (framework.results.latency.StageHistograms.decode).
        "latency_histograms": raw.histograms.encode(),
        "record": {"items": spec.record.items, "sample_every": spec.record.sample_every if
                   spec.record.items == "sample" else None, "wait_s": raw.record_wait_s},
        "processes": raw.processes,
        "config": config_dict(spec),
        "metadata": machine_metadata(spec.run.start_method),
    }


def written_in_place(spec: Config) -> bool:
    """Whether the workers wrote their items straight into the design's buffer (``framework.engine.worker``)."""
    w = spec.workers
    return (resolve_design(spec).writes_in_place and fills_in_place(spec.payload) and w.local_queue == "deque"
            and in_place_rules(w.interval_s, w.local_threshold, w.forward_batch, w.forward_deadline_s,
                               spec.transform.name, item_bound(spec)))


def _mean_calibration(before: dict | None, after: dict | None) -> dict | None:
    """What the machine could do during the run: the mean of the calibrations right before and after."""
    runs = [c for c in (before, after) if c and c.get("cpu_ops_per_s")]
    if not runs:
        return None
    return {"cpu_ops_per_s": sum(c["cpu_ops_per_s"] for c in runs) / len(runs)}


def config_dict(spec: Config) -> dict[str, Any]:
    """The resolved config as plain dicts: a plug-in payload without a schema (a SimpleNamespace, see
    ``framework.config.validate.to_spec``) as its keys, so summary.json and config.yaml record it."""
    plain = asdict(spec)
    if isinstance(spec.payload, SimpleNamespace):
        plain["payload"] = dict(vars(spec.payload))
    return plain


def _unit_figures(spec: Config, rate: float | None, totals: dict[str, int], window_items: int,
                  detail_sums: dict[str, int] | None = None) -> dict[str, Any]:
    """Figures in the payload's own unit where it has one (rollout: ``transitions_per_s`` and
    ``transitions`` counts, = items x fragment_length x envs_per_worker, and over the window the sum of
    each detail column, e.g. ``episode_ends``); nothing for the other payloads."""
    units = item_units(spec.payload)
    if units is None:
        return {}
    name, per_item = units
    return {f"{name}_per_s": rate * per_item if rate is not None else None,
            name: {"per_item": per_item, "produced": totals["produced"] * per_item,
                   "consumed": totals["consumed"] * per_item, "window": window_items * per_item,
                   **(detail_sums or {})}}


def rerun_command(overrides: Sequence[str], seed: int) -> str:
    """The command that repeats a run: its overrides, with the seed it actually used."""
    kept = [o for o in overrides if not o.lstrip("+~").startswith("run.seed=")]
    return shlex.join(["chiefbench", *kept, f"run.seed={seed}"])


def execute(spec: Config, output_dir: str | os.PathLike, overrides: Sequence[str] = (),
            echo: Callable[[str], None] = print) -> RunResult:
    """Run the system once, its records streamed into ``output_dir``, then write its summary there."""
    directory = prepare_run_dir(output_dir)
    raw = run_system(spec, echo=echo, directory=directory)
    summary = summarize(raw, spec)
    summary["rerun_command"] = rerun_command(overrides, spec.run.seed)
    summary["exit_code"] = raw.exit_code
    result = RunResult(summary=summary, directory=directory)
    config_yaml = OmegaConf.to_yaml(OmegaConf.create(config_dict(spec)))
    try:
        write_run(output_dir, result, config_yaml)
    except ResultsWriteError as exc:
        # What was measured must not be lost: keep it in a private temporary directory.
        rescue = Path(tempfile.mkdtemp(prefix="chiefbench-rescue-"))
        write_run(rescue, result, config_yaml)
        exc.args = (f"{exc} The results of this run were saved to {str(rescue)!r} instead.",)
        exc.result = result
        raise
    return result


def run(overrides: Sequence[str] = (), output_dir: str | os.PathLike | None = None,
        echo: Callable[[str], None] = print) -> RunResult | list[RunResult]:
    """Compose the config with Hydra overrides, run it, write and return the results.

    ``framework.run(["queue=pipe", "run.duration_s=2"])`` from a notebook does what
    ``chiefbench queue=pipe run.duration_s=2`` does on the command line.
    With ``run.repeats=N`` (N > 1) it returns the list of the N results, written to
    ``output_dir/repeat-<k>/``.
    """
    spec = to_spec(compose(list(overrides)))
    if output_dir is None:
        stamp = _dt.datetime.now().strftime("%Y-%m-%d/%H-%M-%S-%f")
        output_dir = RUNS_DIR / f"{stamp}_{os.getpid()}"
    if spec.run.repeats > 1:
        return execute_repeats(spec, output_dir, overrides, echo)
    return execute(spec, output_dir, overrides, echo)


def execute_repeats(spec: Config, output_dir: str | os.PathLike, overrides: Sequence[str] = (),
                    echo: Callable[[str], None] = print,
                    after_each: Callable[[int, RunResult], None] | None = None) -> list[RunResult]:
    """Run the configuration ``spec.run.repeats`` times, one after another, each with fresh processes.

    Each repeat is a complete run directory ``output_dir/repeat-<k>/``; an interrupted repeat ends
    the series (its results are kept).
    """
    results = []
    for k in range(spec.run.repeats):
        result = execute(spec, Path(output_dir) / REPEAT_DIR.format(k), overrides, echo)
        results.append(result)
        if after_each is not None:
            after_each(k, result)
        if result.status == "interrupted":
            break
    return results
