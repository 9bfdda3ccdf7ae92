"""The demo dbt project and the workspace file that ship with the package, and where dbt writes for them.

In a source checkout they are the repository's ``dbt_project/`` and ``workspace.yaml``; an installed
wheel carries copies as package data under ``dagster_agent_de/_bundled/`` (``setup.py`` puts them
there). The installed package is never written to: the demo works on a copy under the state dir, and
dbt artifacts of a project inside the package (or a read-only one) go under the state dir too.
"""

from __future__ import annotations

import os
from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent
_PACKAGED = _PACKAGE / "_bundled"
_CHECKOUT = _PACKAGE.parent

DBT_TARGET_DIR = "dbt_target"
"""Under the state dir: dbt's target (and log) path for a project the agent must not write into."""


def _bundled(name: str) -> Path:
    # the packaged copy first: next to an installed package, ``../dbt_project`` may be anything
    packaged = _PACKAGED / name
    return packaged if packaged.exists() else _CHECKOUT / name


def bundled_project_dir() -> Path:
    """The demo dbt project: ``dbt_project/`` of the checkout, or the copy inside the installed package."""
    return _bundled("dbt_project")


def bundled_workspace_file() -> Path:
    """The ``workspace.yaml`` that loads the agent's code location (used by ``agent-de dev``)."""
    return _bundled("workspace.yaml")


def is_installed_copy(path: Path) -> bool:
    """True for a path inside the installed package's bundled data (never to be written to)."""
    return path.resolve().is_relative_to(_PACKAGED)


def dbt_target_path(project_dir: Path, state_dir: Path) -> Path:
    """Where dbt writes ``target/`` (and its logs) for ``project_dir``.

    The project's own ``target`` (relative, as dbt and dagster-dbt default to), unless the project is the
    copy inside the installed package or not writable: then ``<state dir>/dbt_target`` (absolute).
    """
    if is_installed_copy(project_dir) or not os.access(project_dir, os.W_OK):
        return state_dir.resolve() / DBT_TARGET_DIR
    return Path("target")


__all__ = ["DBT_TARGET_DIR", "bundled_project_dir", "bundled_workspace_file", "dbt_target_path", "is_installed_copy"]
