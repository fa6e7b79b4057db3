"""``make soak`` in short (experiments/soak.py): shm_ring at full speed for CHIEFBENCH_SOAK_S seconds (default 2.5
here), every item recorded, the chief a subprocess whose RSS is sampled from outside.

Behaviour only: the books are exact, the latency histograms are within RELATIVE_ERROR of the exact quantiles read
back from items.parquet, the RSS was sampled. No timing or memory threshold is asserted (``make soak`` prints
those as targets).
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

SOAK = Path(__file__).resolve().parent.parent / "experiments" / "soak.py"
SOAK_S = float(os.environ.get("CHIEFBENCH_SOAK_S", "2.5"))
"""The chief's RSS is sampled every second from its start: the measured window, the drain and the end that follow
the chief's start-up and warm-up (SOAK_S / 4) hold a sample or more."""

pytestmark = [pytest.mark.slow, pytest.mark.timeout(int(SOAK_S * 2) + 180)]


def _soak_module():
    spec = importlib.util.spec_from_file_location("chiefbench_soak", SOAK)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_soak_short_books_histograms_and_rss(tmp_path):
    soak = _soak_module()
    lines: list[str] = []
    result = soak.soak(SOAK_S, tmp_path / "soak", warmup_s=1.0, echo=lines.append)  # warm-up: at most SOAK_S / 4
    printed = "\n".join(lines)
    assert result["ran"] and result["returncode"] == 0, printed
    assert result["status"] == "ok", printed

    # Books: every produced item accounted for exactly once, and one row each in items.parquet.
    books = result["books"]
    assert books["lost"] == 0 and books["duplicates"] == 0 and books["dropped"] == 0
    assert books["produced"] == books["consumed"] + books["left_in_queues"]
    assert result["parquet_rows"] == books["produced"]
    assert books["exact"]

    # Histograms: the summary's end_to_end p50 / p99 are the exact order statistics at HDR's ranks, rounded up by
    # at most RELATIVE_ERROR; the histogram counted exactly the items consumed in the window.
    h = result["histograms"]
    assert h["n"] > 0 and h["count"] == h["n"]
    for q, row in h["quantiles"].items():
        x, hv = row["exact_ns"], row["histogram_ns"]
        assert x <= hv <= x * (1 + result["relative_error"]), (q, x, hv)
    assert h["within"]

    # The chief's RSS was sampled from outside while it ran, inside the measured window too.
    memory = result["memory"]
    assert len(result["rss_samples"]) >= 1 and memory["samples_in_window"] >= 1
    assert memory["rss_first_mb"] > 0 and memory["rss_peak_mb"] >= memory["rss_first_mb"]
    assert result["end_cost_s"] > 0

    # The report names what it measured, and each target has a verdict.
    for heading in ("chief RSS", "flat", "end cost", "books", "histograms", "targets"):
        assert heading in printed
    assert {t["target"] for t in result["targets"]} >= {"books exact", "histograms within RELATIVE_ERROR",
                                                        "chief RSS flat", "chief RSS peak"}
    assert (tmp_path / "soak" / "soak.json").exists() and (tmp_path / "soak" / "soak_rss.csv").exists()
