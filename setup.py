"""Ship the top-level ``conf/`` tree inside the wheel, as ``framework/conf``.

The repository keeps ``conf/`` at the top (the project's layout); an installed package finds it
with ``importlib.resources`` (``framework.config.hydra.conf_dir``). Everything else is in pyproject.toml.
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent


class BuildWithConf(build_py):
    """build_py, plus a copy of conf/ into the built package (wheels, not editable installs)."""

    def run(self) -> None:
        super().run()
        if self.editable_mode:
            return  # an editable install reads conf/ from the checkout
        target = Path(self.build_lib) / "framework" / "conf"
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(HERE / "conf", target, ignore=shutil.ignore_patterns("__pycache__"))


setup(cmdclass={"build_py": BuildWithConf})
