"""A wheel installed alone runs from any directory: no checkout, no extras, no PYTHONPATH.

Builds the wheel of this checkout (from a copy of it, so the checkout gets no build/ or egg-info), installs it
with its core dependencies only into a fresh virtual environment, and runs the commands from an empty
directory: one run, a two-job multirun (its table, and one line saying the report needs the ``report`` extra),
``chiefbench-collect`` and ``chiefbench-compare``.

It takes a minute or more (a venv, pip with its cache, several interpreters starting): ``make test`` (CI) runs
it; ``CHIEFBENCH_SKIP_INSTALL_TEST=1`` skips it locally.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SKIP_ENV = "CHIEFBENCH_SKIP_INSTALL_TEST"
FAST = ["workers.interval_s=0", "chief.interval_s=0"]
STEP_TIMEOUT_S = 600
"""Any one step (pip install above all, on a cold cache) at most."""

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.environ.get(SKIP_ENV, "") not in ("", "0"),
                       reason=f"{SKIP_ENV} is set: the wheel-install test is skipped"),
]

_IGNORED = shutil.ignore_patterns(".git", ".venv", "outputs", "build", "dist", "site", "*.egg-info", "__pycache__",
                                  ".pytest_cache", ".hypothesis", "multirun")


def _run(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=STEP_TIMEOUT_S)
    assert proc.returncode == 0, f"{' '.join(map(str, args))} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
    return proc


def _clean_env() -> dict[str, str]:
    """This environment without what would let the checkout leak in (PYTHONPATH, the outer venv)."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP")}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


@pytest.mark.timeout(1800)
def test_wheel_installed_alone_runs_from_an_empty_directory(tmp_path):
    started = time.monotonic()
    env = _clean_env()
    source = tmp_path / "source"
    shutil.copytree(ROOT, source, ignore=_IGNORED)
    wheels = tmp_path / "wheels"
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(wheels), str(source)], tmp_path, env)
    (wheel,) = wheels.glob("chiefbench-*.whl")
    built = time.monotonic()

    # A venv without pip of its own (ensurepip costs seconds): this interpreter's pip installs into it.
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], tmp_path, env)
    bin_dir = venv / "bin"
    python = bin_dir / "python"
    # Core dependencies only (no extras); binary wheels where they exist, pip's cache reused. Not byte-compiled:
    # compiling all of numpy, pandas and pyarrow costs more than the commands below writing the bytecode of what
    # they import (into the venv, on the first command that imports it).
    _run([sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet", "--no-compile", "--prefer-binary",
          str(wheel)], tmp_path, env)
    installed = time.monotonic()
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    env.pop("PYTHONDONTWRITEBYTECODE")

    empty = tmp_path / "empty"
    empty.mkdir()
    where = _run([str(python), "-c", "import framework, importlib.util as u; "
                  "from framework.config.hydra import conf_dir; "
                  "print(framework.__file__); print(conf_dir()); print(u.find_spec('matplotlib') is None)"],
                 empty, env).stdout.split()
    assert where[0].startswith(str(venv)) and where[1].startswith(str(venv)), where  # the wheel, not the checkout
    assert where[2] == "True", "matplotlib is installed: the `report` extra leaked into the core dependencies"

    # One run: results under ./outputs of wherever it was started.
    _run([str(bin_dir / "chiefbench"), *FAST, "run.items=10"], empty, env)
    (summary,) = (empty / "outputs" / "runs").glob("*/*/summary.json")
    assert json.loads(summary.read_text())["status"] == "ok"

    # A two-job multirun: its table, and one line saying how to get the report (matplotlib is absent).
    proc = _run([str(bin_dir / "chiefbench"), "-m", "queue=mp_queue,pipe", *FAST, "run.items=20", "run.progress=false"],
                empty, env)
    printed = proc.stdout + proc.stderr
    assert "Traceback" not in printed, printed
    notices = [line for line in printed.splitlines() if "chiefbench[report]" in line]
    assert len(notices) == 1 and notices[0].startswith("report skipped"), printed
    (table,) = (empty / "outputs" / "sweeps").glob("*/*/sweep_results.parquet")
    sweep = table.parent
    assert sorted(p.name for p in sweep.iterdir() if p.is_dir() and p.name.isdigit()) == ["0", "1"]

    _run([str(bin_dir / "chiefbench-collect"), str(sweep)], empty, env)
    _run([str(bin_dir / "chiefbench-compare"), str(sweep), str(sweep)], empty, env)
    done = time.monotonic()
    print(f"wheel built in {built - started:.0f} s, venv + install {installed - built:.0f} s, "
          f"commands {done - installed:.0f} s, total {done - started:.0f} s")
