"""``report(dir)``: report.html (one self-contained file: figures embedded as base64 PNG, no
scripts or styles from outside, so it opens offline) and the PNG figures beside it.

For a sweep directory: throughput against worker count per queue design (with confidence
bands), end-to-end latency CDF per design and the split into local and global wait, queue depth
over time for one run, throughput against payload size where the sweep varied it, the
per-configuration table, the full table, the sweep command and the machine's metadata.
For one run's directory: its depth over time, latency CDF and stage split, and its summary.

Reads result files only; it never starts the system. Needs the ``report`` extra (matplotlib).
"""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path
from typing import Any

import pandas as pd
from omegaconf import OmegaConf

from framework.noise import OTHER_CPU_WARN_PCT, STEAL_WARN_PCT
from framework.layout import ITEMS_FILE, MULTIRUN_FILE, REPEAT_DIR, REPORT_FILE, SUMMARY_FILE
from framework.results.collect import collect
from framework.results.report import figures as F


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    F.plt.close(fig)
    return buf.getvalue()


class _Page:
    """Collects sections and figures; writes each figure's PNG beside the report."""

    def __init__(self, out: Path, title: str) -> None:
        self.out, self.title, self.parts, self.figures = out, title, [], 0

    def figure(self, name: str, fig: Any, caption: str) -> None:
        if fig is None:
            return
        data = _png(fig)
        (self.out / f"{name}.png").write_bytes(data)
        self.figures += 1
        self.parts.append(
            f'<figure id="{name}"><img alt="{html.escape(caption)}" src="data:image/png;base64,'
            f'{base64.b64encode(data).decode()}"><figcaption>{html.escape(caption)} '
            f'<a href="{name}.png">{name}.png</a></figcaption></figure>')

    def heading(self, text: str) -> None:
        self.parts.append(f"<h2>{html.escape(text)}</h2>")

    def para(self, text: str, cls: str = "") -> None:
        self.parts.append(f'<p class="{cls}">{html.escape(text)}</p>')

    def pre(self, text: str) -> None:
        self.parts.append(f"<pre>{html.escape(text)}</pre>")

    def table(self, df: pd.DataFrame, details: str | None = None) -> None:
        text = df.to_html(index=False, na_rep="-", float_format=lambda x: f"{x:,.3f}", border=0, escape=True)
        self.parts.append(f"<details><summary>{html.escape(details)}</summary>{text}</details>" if details else text)

    def write(self) -> Path:
        doc = _TEMPLATE.format(title=html.escape(self.title), body="\n".join(self.parts))
        path = self.out / REPORT_FILE
        tmp = path.with_name(f".{REPORT_FILE}.tmp")
        tmp.write_text(doc, encoding="utf-8")
        tmp.replace(path)
        return path


_TEMPLATE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body {{ font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2rem auto; max-width: 1100px;
       color: #222; padding: 0 1rem; }}
h1 {{ font-size: 1.5rem; margin-bottom: .2rem; }} h2 {{ font-size: 1.15rem; margin-top: 2rem;
       border-bottom: 1px solid #ddd; padding-bottom: .2rem; }}
figure {{ margin: 1rem 0; }} figure img {{ max-width: 100%; border: 1px solid #eee; }}
figcaption {{ color: #555; font-size: .9rem; }}
table {{ border-collapse: collapse; font-size: .8rem; margin: .5rem 0; }}
th, td {{ padding: .2rem .5rem; border-bottom: 1px solid #eee; text-align: right; white-space: nowrap; }}
th {{ background: #f5f5f5; }} details {{ overflow-x: auto; }}
pre {{ background: #f6f8fa; padding: .6rem; overflow-x: auto; font-size: .8rem; }}
.warning {{ background: #fff4e5; border-left: 4px solid #f0a030; padding: .4rem .6rem; }}
.failed {{ background: #fdecea; border-left: 4px solid #d9534f; padding: .4rem .6rem; }}
</style></head>
<body data-report-status="loading" data-figures="0">
<h1>{title}</h1>
{body}
<script>
// Once the page has loaded, the body says whether every figure decoded: data-report-status="ok" (or
// "broken") and data-figures="N", the number that did. Nothing a reader sees; a headless browser reads it.
window.addEventListener("load", function () {{
  var imgs = document.querySelectorAll("figure img"), ok = 0;
  for (var i = 0; i < imgs.length; i++) {{ if (imgs[i].complete && imgs[i].naturalWidth > 0) ok++; }}
  document.body.setAttribute("data-figures", String(ok));
  document.body.setAttribute("data-report-status", ok === imgs.length ? "ok" : "broken");
}});
</script>
</body></html>
"""


def _metadata_table(meta: dict[str, Any]) -> pd.DataFrame:
    flat = pd.json_normalize(meta, sep=".").iloc[0].to_dict() if meta else {}
    return pd.DataFrame({"key": list(flat), "value": [str(v) for v in flat.values()]})


def _pick_depth_run(base: Path, table: pd.DataFrame, depth_run: str | None) -> Path | None:
    if depth_run:
        path = Path(depth_run)
        return path if path.is_absolute() else base / path
    ok = table[table["status"] == "ok"]
    if ok.empty:
        return None
    growth = pd.to_numeric(ok.get("stability.global_depth_growth"), errors="coerce").fillna(0)
    return base / ok.loc[growth.idxmax(), "directory"]


def report(directory: str | Path, depth_run: str | None = None, out: str | Path | None = None,
           collected: Any = None) -> Path:
    """Write report.html and its PNG figures for a sweep directory or one run; return the HTML's path."""
    base = Path(directory)
    if not base.is_dir():
        raise FileNotFoundError(f"{str(base)!r} is not a directory")
    target = Path(out) if out else base
    target.mkdir(parents=True, exist_ok=True)
    is_sweep = (base / MULTIRUN_FILE).exists() or any(p.is_dir() and p.name.isdigit() for p in base.iterdir())
    repeats = list(base.glob(f"{REPEAT_DIR.format('*')}/{SUMMARY_FILE}"))
    if not is_sweep and (base / SUMMARY_FILE).exists() and not repeats:
        return _run_report(base, target)
    return _sweep_report(base, target, depth_run, collected)


def _run_report(run_dir: Path, target: Path) -> Path:
    summary = json.loads((run_dir / SUMMARY_FILE).read_text())
    cfg = summary.get("config") or {}
    page = _Page(target, f"chiefbench run: {run_dir.name}")
    page.para(f"Directory: {run_dir.resolve()}")
    rate = summary.get("throughput_items_per_s")
    steps = summary.get("transitions_per_s")  # rollout payload only
    page.para(f"Status {summary['status']}; throughput "
              f"{'-' if rate is None else f'{rate:,.1f} items/s'}"
              f"{'' if steps is None else f' ({steps:,.0f} transitions/s)'}"
              f"; design {cfg.get('queue', {}).get('name', '?')}, "
              f"{cfg.get('workers', {}).get('count', '?')} workers.")
    page.para(record_note((summary.get("record") or {}).get("items", "all"),
                          (summary.get("record") or {}).get("sample_every")))
    for w in summary.get("warnings", []):
        page.para(f"warning: {w}", "warning")
    for e in summary.get("errors", []):
        page.para(f"error: {e}", "failed")
    page.heading("Queue depth over time")
    page.figure("depth", F.depth_over_time(run_dir, run_dir.name),
                "Global queue depth (and each worker's local queue) since the start barrier.")
    page.heading("Latency")
    if summary.get("window") and summary["status"] != "failed" or (run_dir / ITEMS_FILE).exists():
        page.figure("latency_cdf", F.stage_cdf(run_dir, summary), "Latency CDF per stage, items consumed in the "
                    "measured window (warm-up excluded).")
    rows = pd.DataFrame([{f"latency_ms.{s}.{k}": v for s, d in (summary.get("latency_ms") or {}).items()
                          for k, v in d.items()}])
    page.figure("latency_split", F.stage_split(rows, None), "Median local wait and global wait, stacked.")
    if summary.get("latency_ms"):
        page.table(pd.DataFrame.from_dict(summary["latency_ms"], orient="index").reset_index(names="stage"))
    page.heading("Summary")
    page.table(_metadata_table({k: v for k, v in summary.items() if k not in ("metadata", "processes", "per_worker",
                                                                                 "config", "errors", "warnings")}))
    if summary.get("processes"):
        page.table(pd.DataFrame(summary["processes"]), "processes")
    page.heading("Machine noise")
    page.para("How much of the machine the run had (framework.noise): CPU steal, other processes' CPU (in % of "
              "every core's time over the measured window), the load average; the reference workload right before "
              "and after the run, and Little's law checked on the global queue.")
    page.table(_metadata_table({"machine_noise": summary.get("machine_noise") or {},
                                "calibration": summary.get("calibration") or {},
                                "normalised": summary.get("normalised") or {},
                                "littles_law": summary.get("littles_law") or {}}))
    page.heading("Config")
    page.table(_metadata_table(cfg), "resolved config")
    page.pre(summary.get("rerun_command", ""))
    page.heading("Machine")
    page.table(_metadata_table(summary.get("metadata") or {}))
    return page.write()


def _sweeper_params(base: Path) -> str:
    """The sweep's parameters set in config (an experiment preset's hydra.sweeper.params), as a comment."""
    path = base / MULTIRUN_FILE
    if not path.exists():
        return ""
    try:
        params = OmegaConf.load(path).hydra.sweeper.get("params") or {}
        text = " ".join(f"{k}={v}" for k, v in params.items())
    except Exception:  # an unresolvable value: the command alone still says what ran
        return ""
    return f"\n# swept by the preset (hydra.sweeper.params; the command line wins): {text}" if text else ""


_MAIN_COLUMNS = ("throughput_items_per_s", "throughput_mb_per_s", "transitions_per_s",
                 "latency_ms.end_to_end.p50_ms", "latency_ms.end_to_end.p99_ms", "window.seconds", "window.items",
                 "stability.unstable")


RECORD_NOTES = {
    "all": "record.items=all: items.parquet holds one row per item; every figure here covers every item.",
    "sample": "record.items=sample: items.parquet holds every {every}-th item of each worker; the latency "
              "figures, counts and accounting still cover every item (histograms and books).",
    "none": "record.items=none: no items.parquet; the latency figures, counts and accounting come from the "
            "histograms and books kept for every item.",
}
"""What each record.items mode kept, said on every report."""


def record_note(mode: str, every: int | None = None) -> str:
    return RECORD_NOTES.get(mode, RECORD_NOTES["all"]).format(every=every)


NOISE_COLUMNS = ("machine_noise.steal_pct", "machine_noise.other_cpu_pct", "machine_noise.load_avg",
                 "calibration.drift.cpu_ops_per_s", "littles_law.relative_error")
"""The sweep table's columns that say how much of the machine each run had."""


def _noisy_runs(table: pd.DataFrame) -> int:
    """Runs over the noise thresholds of framework.noise (steal or other processes' CPU)."""
    noisy = pd.Series(False, index=table.index)
    for column, limit in (("machine_noise.steal_pct", STEAL_WARN_PCT), ("machine_noise.other_cpu_pct",
                                                                          OTHER_CPU_WARN_PCT)):
        if column in table:
            noisy |= pd.to_numeric(table[column], errors="coerce").fillna(0) > limit
    return int(noisy.sum())


def _sweep_report(base: Path, target: Path, depth_run: str | None, collected: Any) -> Path:
    c = collected if collected is not None else collect(base, write=False)
    table, summary, keys = c.table, c.summary, c.keys
    if table.empty:
        raise FileNotFoundError(f"{str(base)!r} holds no complete run yet: nothing to report")
    ok = table[table["status"] == "ok"].copy()
    page = _Page(target, f"chiefbench sweep: {base.name}")
    page.para(f"Directory: {base.resolve()}")
    failed = int((table["status"] != "ok").sum())
    page.para(f"{table['job'].nunique()} jobs{'' if c.expected is None else f' of {c.expected}'}, {len(table)} runs "
              f"({len(ok)} ok, {failed} not ok); {len(summary)} configurations; swept keys: "
              f"{', '.join(keys) or 'none'}.")
    if c.command:
        page.pre(c.command + _sweeper_params(base))
    if "record.items" in table.columns:
        for mode in table["record.items"].dropna().unique():
            every = table.loc[table["record.items"] == mode, "record.sample_every"].dropna()
            page.para(record_note(str(mode), int(every.iloc[0]) if len(every) else None))
    warned = summary[summary["warning"] != ""]
    if len(warned) > 3:  # one line, the details folded
        page.para(f"warning: {len(warned)} of {len(summary)} configurations have a large spread (std dev over "
                  f"10 % of the mean), stalled or have no ok run (which ones: below). For a large spread, run more "
                  f"repeats (run.repeats=10), on a quieter machine, one job at a time.", "warning")
        page.table(warned[["configuration", "ok", "runs", "cv", "warning"]], "which configurations")
    else:
        for _, r in warned.iterrows():
            page.para(f"warning: {r['configuration']}: {r['warning']}", "warning")
    for _, r in table[table["status"] != "ok"].drop_duplicates("job").iterrows():
        lines = (r["error"] or r["status"]).strip().splitlines()
        page.para(f"job {r['job']} {r['status']}: {lines[-1] if lines else ''}", "failed")
    noisy = _noisy_runs(table)
    if noisy:
        page.para(f"warning: {noisy} of {len(table)} runs were measured while CPU steal or other processes took a "
                  f"large share of the machine (over {STEAL_WARN_PCT:g}% steal or {OTHER_CPU_WARN_PCT:g}% other "
                  f"processes; see Machine noise below). Their raw figures are low and noisy: measure again on a "
                  f"quieter machine, or compare normalised figures (chiefbench-compare --normalised).", "warning")
    if c.missing:
        page.para(f"{len(c.missing)} grid point(s) have no result yet: "
                  + "; ".join(" ".join(p) for p in c.missing[:10]), "warning")

    page.heading("Throughput")
    fig = F.throughput_vs_workers(ok)
    if fig is not None:
        page.figure("throughput_vs_workers", fig, "Median items/s against worker count, one line per queue design; "
                    "the band is the 95 % confidence interval of the median (min..max below 6 repeats).")
    page.figure("throughput", F.throughput_per_configuration(summary),
                "Median items/s per configuration; whiskers: confidence interval of the median.")
    page.figure("throughput_vs_payload", F.throughput_vs_payload(ok),
                "MB/s and items/s against bytes per item (log scales), best worker count per design and size.")

    page.heading("Latency")
    groups: dict[str, list[Path]] = {}
    if F.DESIGN in ok:
        for design, g in ok.groupby(F.DESIGN):
            groups[str(design)] = [base / d for d in g["directory"]]
    page.figure("latency_cdf", F.latency_cdf(groups, "End-to-end latency per queue design"),
                "End-to-end latency CDF per queue design, pooled over that design's runs (measured windows only).")
    page.figure("latency_split", F.stage_split(ok, F.DESIGN if F.DESIGN in ok else None),
                "Local wait (worker queue) and global wait (global queue), medians over each design's runs.")

    page.figure("latency_vs_load", F.latency_vs_load(ok),
                "Median end-to-end latency (p50, p99) and served throughput against the offered load, where the "
                "sweep varied workers.interval_s.")
    page.figure("thresholds", F.thresholds(ok, base),
                "End-to-end p50 latency and mean global queue depth against the local threshold, one line per "
                "global threshold (medians over repeats).")

    page.heading("Queue depth")
    run = _pick_depth_run(base, table, depth_run)
    if run is not None:
        page.figure("depth", F.depth_over_time(run, str(run.relative_to(base)) if run.is_relative_to(base) else
                                                 str(run)),
                    f"Queue depth over time for {run.relative_to(base) if run.is_relative_to(base) else run} (the run "
                    f"whose global queue grew most, unless chosen with --depth-run).")

    page.heading("Per configuration")
    show = summary.drop(columns=[k for k in keys if k in summary.columns])
    page.table(show)
    page.heading("Every run")
    cols = ["job", "repeat", *keys, "status", *[m for m in _MAIN_COLUMNS if m in table], "directory"]
    page.table(table[[col for col in dict.fromkeys(cols) if col in table]])
    page.table(table, "the full table (every column of sweep_results)")
    page.heading("Machine noise")
    page.para("How much of the machine each run had: CPU steal (another virtual machine), other processes' CPU "
              "(both in % of every core's time over the measured window), the load average, and the reference "
              "workload timed right before and after the run. The normalised figure rescales the raw one to the "
              "reference machine's speed (framework.noise).")
    noise_cols = ["job", "repeat", *keys, "throughput_items_per_s", f"normalised.throughput_items_per_s",
                  *NOISE_COLUMNS]
    page.table(table[[col for col in dict.fromkeys(noise_cols) if col in table]], "noise per run")
    page.heading("Machine")
    meta_cols = [col for col in table.columns if col.startswith("metadata.")]
    first = table.iloc[0]
    page.table(pd.DataFrame({"key": [m[len("metadata."):] for m in meta_cols],
                             "value": [str(first[m]) for m in meta_cols]}))
    return page.write()

