"""Build hook: the wheel carries the demo dbt project and ``workspace.yaml`` as package data.

Both stay at the top of the repository; the wheel has them under ``dagster_agent_de/_bundled/``,
where :mod:`dagster_agent_de.bundled` finds them. Everything else is in ``pyproject.toml``.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
# what dbt and the agent write into a project: never shipped
IGNORE = shutil.ignore_patterns("target", "logs", "dbt_packages", ".user.yml", "*.lock", "__pycache__")


class BuildPyWithDemo(build_py):
    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return  # an editable install reads the repository's own copies
        dest = Path(self.build_lib) / "dagster_agent_de" / "_bundled"
        shutil.rmtree(dest, ignore_errors=True)
        shutil.copytree(ROOT / "dbt_project", dest / "dbt_project", ignore=IGNORE)
        shutil.copy2(ROOT / "workspace.yaml", dest / "workspace.yaml")


setup(cmdclass={"build_py": BuildPyWithDemo})
