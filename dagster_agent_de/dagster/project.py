"""The agent's dbt project as a dagster-dbt ``DbtProject``, for deployments.

``dagster-dbt project prepare-and-package --file dagster_agent_de/dagster/project.py`` runs ``dbt parse``
on it at build time, so the code location starts from a ready manifest. The project, target and state
dir come from the settings (``AGENT_DE_PROJECT_DIR``, ``AGENT_DE_TARGET``, ``AGENT_DE_STATE_DIR``); for the
demo project inside an installed package (or a read-only project) dbt writes under the state dir.
This module holds only the ``DbtProject`` (what the command looks for).
"""

from __future__ import annotations

from dagster_dbt import DbtProject

from dagster_agent_de.bundled import dbt_target_path
from dagster_agent_de.config import Settings, resolve_settings
from dagster_agent_de.project import DbtProjectInfo


def build_dbt_project(settings: Settings | None = None) -> DbtProject:
    """The ``DbtProject`` for the configured project, profiles dir and target."""
    settings = settings or resolve_settings()
    info = DbtProjectInfo.from_settings(settings)  # finds profiles.yml; names a missing target
    return DbtProject(
        project_dir=info.project_dir, profiles_dir=info.profiles_dir, target=info.target,
        target_path=dbt_target_path(info.project_dir, settings.state_dir),
    )


dbt_project = build_dbt_project()
