"""The report: report.html and PNGs for a sweep and for one run, rendered in a real headless browser."""

from __future__ import annotations

import re
from html import escape
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

import framework

BIN = Path(sys.executable).parent
CHIEFBENCH = str(BIN / "chiefbench")
TINY = ["run.items=30", "workers.interval_s=0", "chief.interval_s=0", "run.start_method=fork", "run.progress=false"]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(scope="module")
def sweep_report(tmp_path_factory):
    """A sweep over designs, worker counts and two payload sizes, with its report written by the callback."""
    root = tmp_path_factory.mktemp("report")
    proc = subprocess.run([CHIEFBENCH, "-m", "queue=pipe,mp_queue", "workers.count=1,2", "payload=array",
                           "payload.shape=[8],[256]", "payload.dtype=float64", *TINY, f"hydra.sweep.dir={root / 's'}"],
                          cwd=root, capture_output=True, text=True, timeout=170)
    assert proc.returncode == 0, proc.stderr
    return root / "s", proc


def test_sweep_report_is_self_contained_with_its_figures(sweep_report):
    directory, proc = sweep_report
    assert f"report        {directory / 'report.html'}" in proc.stdout
    html = (directory / "report.html").read_text()
    for name in ("throughput_vs_workers", "throughput", "throughput_vs_payload", "latency_cdf", "latency_split",
                 "depth"):
        assert (directory / f"{name}.png").stat().st_size > 1000, name
        assert f'<figure id="{name}"><img' in html
    # Self-contained: every image is inline and nothing is fetched from elsewhere.
    assert html.count('src="data:image/png;base64,') == 6
    assert not re.search(r'(src|href)="(https?:)?//', html)
    assert "chiefbench -m queue=pipe,mp_queue" in html and "cpu_model" in html and "sweep_results" in html
    # The tab shows the report's own title; the test hook is not in it.
    assert f"<title>chiefbench sweep: {directory.name}</title>" in html
    assert f"<h1>chiefbench sweep: {directory.name}</h1>" in html
    assert '<body data-report-status="loading" data-figures="0">' in html  # until the page's script has run


def test_single_run_report(tmp_path):
    result = framework.run(["workers.interval_s=0.005", "chief.interval_s=0.05", "chief.rounds=10",
                            "run.start_method=fork", "run.progress=false"], output_dir=tmp_path / "run",
                           echo=lambda _: None)
    proc = subprocess.run([str(BIN / "chiefbench-report"), str(result.directory)], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    html = (tmp_path / "run" / "report.html").read_text()
    for name in ("depth", "latency_cdf", "latency_split"):
        assert (tmp_path / "run" / f"{name}.png").exists() and f'id="{name}"' in html
    assert "<title>chiefbench run: run</title>" in html and "<h1>chiefbench run: run</h1>" in html
    # The command that reruns it is on the page, as written in its summary.
    assert f"<pre>{escape(result.summary['rerun_command'])}</pre>" in html
    assert result.summary["rerun_command"].startswith("chiefbench ")


def test_report_of_a_missing_directory_says_so(tmp_path, capsys):
    # In-process: test_single_run_report runs the installed chiefbench-report command itself.
    from framework.cli.tools import report_main

    assert report_main([str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err
    assert "not a directory" in err and str(tmp_path / "nope") in err and "Traceback" not in err


def render(page: Path) -> tuple[str, list[str]]:
    """The DOM of ``page`` after its load event, as headless chromium sees it, and its console's lines."""
    with tempfile.TemporaryDirectory() as profile:
        proc = subprocess.run([CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--enable-logging=stderr",
                               "--v=0", "--dump-dom", page.resolve().as_uri()],
                              capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout, [line for line in proc.stderr.splitlines() if "CONSOLE" in line or "Uncaught" in line]


def body_tag(dom: str) -> str:
    return re.search(r"<body[^>]*>", dom).group(0)


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (make test installs it when run "
                                             "as root: apt-get install -y chromium)")
def test_report_loads_in_a_headless_browser_with_every_figure(sweep_report, tmp_path):
    directory, _ = sweep_report
    dom, console = render(directory / "report.html")
    assert not console, console
    # report.html's onload script marks the body once every image decoded; the title stays the report's.
    assert body_tag(dom) == '<body data-report-status="ok" data-figures="6">', dom[:500]
    assert f"<title>chiefbench sweep: {directory.name}</title>" in dom
    # The same page with one figure's PNG corrupted: the hook says so (it is not "ok" whatever happens).
    html = (directory / "report.html").read_text()
    start = html.index('src="data:image/png;base64,') + len('src="data:image/png;base64,')
    broken = tmp_path / "report.html"
    broken.write_text(html[:start] + "AAAA" + html[start + 4:])
    assert body_tag(render(broken)[0]) == '<body data-report-status="broken" data-figures="5">'
