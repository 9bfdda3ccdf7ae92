"""The dbt project the agent works on: locating it, its manifest, running dbt.

No Dagster import: the CLI and the engines use this too.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import yaml

from dagster_agent_de.config import Settings
from dagster_agent_de.errors import ProjectError


def dbt_executable() -> str:
    """The ``dbt`` next to this interpreter (works from an unactivated venv), else PATH."""
    sibling = Path(sys.executable).parent / "dbt"
    if sibling.exists():
        return str(sibling)
    found = shutil.which("dbt")
    if not found:
        raise ProjectError("dbt is not installed in this environment: pip install 'dagster-agent-de'")
    return found


@dataclass(frozen=True)
class DbtProjectInfo:
    """A dbt project on disk and where its artifacts go."""

    project_dir: Path
    profiles_dir: Path
    target: str
    target_path: Path

    @classmethod
    def from_settings(cls, settings: Settings) -> DbtProjectInfo:
        project_dir = settings.project_dir
        if not (project_dir / "dbt_project.yml").exists():
            raise ProjectError(
                f"no dbt_project.yml in {project_dir}; point --project-dir or AGENT_DE_PROJECT_DIR at "
                "your dbt project"
            )
        profiles_dir = Path(os.environ.get("DBT_PROFILES_DIR") or project_dir)
        if not (profiles_dir / "profiles.yml").exists():
            home = Path.home() / ".dbt"
            if (home / "profiles.yml").exists():
                profiles_dir = home
            else:
                raise ProjectError(
                    f"no profiles.yml in {project_dir} or ~/.dbt; set DBT_PROFILES_DIR to the folder "
                    "holding your dbt profiles"
                )
        info = cls(project_dir, profiles_dir, settings.target, project_dir / "target")
        info.check_target()
        return info

    @cached_property
    def project_yaml(self) -> dict[str, Any]:
        try:
            doc = yaml.safe_load((self.project_dir / "dbt_project.yml").read_text()) or {}
        except yaml.YAMLError as e:
            raise ProjectError(f"{self.project_dir / 'dbt_project.yml'} is not valid YAML: {e}") from e
        if not isinstance(doc, dict):
            raise ProjectError(f"{self.project_dir / 'dbt_project.yml'} must be a mapping (name:, profile:, ...), "
                               f"not a YAML {type(doc).__name__}")
        return doc

    def check_target(self) -> None:
        """Raise naming the profile and targets when the target does not exist."""
        profile_name = self.project_yaml.get("profile")
        try:
            profiles = yaml.safe_load((self.profiles_dir / "profiles.yml").read_text()) or {}
        except yaml.YAMLError as e:
            raise ProjectError(f"{self.profiles_dir / 'profiles.yml'} is not valid YAML: {e}") from e
        profile = profiles.get(profile_name)
        if not isinstance(profile, dict):
            raise ProjectError(
                f"profile {profile_name!r} (named in dbt_project.yml) is not in "
                f"{self.profiles_dir / 'profiles.yml'}; profiles there: {', '.join(map(str, profiles)) or 'none'}"
            )
        outputs = profile.get("outputs") or {}
        if self.target not in outputs:
            raise ProjectError(
                f"target {self.target!r} is not an output of profile {profile_name!r}; available targets: "
                f"{', '.join(outputs) or 'none'} (set --target or AGENT_DE_TARGET)"
            )

    @property
    def manifest_path(self) -> Path:
        return self.target_path / "manifest.json"

    def run_dbt(self, args: list[str], env: dict[str, str] | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run a dbt command in the project; raise with dbt's own output when it fails."""
        cmd = [
            dbt_executable(), *args, "--project-dir", str(self.project_dir),
            "--profiles-dir", str(self.profiles_dir), "--target", self.target,
        ]
        proc = subprocess.run(
            cmd, cwd=self.project_dir, env={**os.environ, **(env or {})}, capture_output=True, text=True
        )
        if check and proc.returncode != 0:
            tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
            raise ProjectError(f"`dbt {' '.join(args)}` failed in {self.project_dir}:\n{tail}")
        return proc

    def ensure_manifest(self, env: dict[str, str] | None = None) -> Path:
        """Return the manifest path, running ``dbt parse`` first when there is none."""
        if not self.manifest_path.exists():
            self.run_dbt(["parse", "--quiet"], env=env)
        return self.manifest_path

    def load_manifest(self, env: dict[str, str] | None = None) -> dict[str, Any]:
        """The parsed, validated manifest (``dbt parse`` first when there is none)."""
        return load_manifest(self.ensure_manifest(env))


def load_manifest(path: Path) -> dict[str, Any]:
    """Load ``manifest.json``, raising :class:`ProjectError` naming the fix when it is bad."""
    if not path.exists():
        raise ProjectError(f"dbt manifest {path} does not exist; run `dbt parse` (or `dbt build`) in the project")
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ProjectError(
            f"dbt manifest {path} cannot be read ({e}); delete it and run `dbt parse` to regenerate it"
        ) from e
    if not isinstance(manifest, dict) or "nodes" not in manifest or "sources" not in manifest:
        raise ProjectError(
            f"{path} is not a dbt manifest (no 'nodes'/'sources'); run `dbt parse` to regenerate it"
        )
    return manifest
