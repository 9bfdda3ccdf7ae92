"""The dbt project the agent works on: locating it, its manifest, running dbt.

No Dagster import: the CLI and the engines use this too.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import warnings
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from dagster_agent_de.bundled import is_installed_copy
from dagster_agent_de.config import Settings
from dagster_agent_de.errors import ProjectError
from dagster_agent_de.profile import load_profile_target, load_project_yaml


def dbt_executable() -> str:
    """The ``dbt`` next to this interpreter (works from an unactivated venv), else PATH."""
    sibling = Path(sys.executable).parent / "dbt"
    if sibling.exists():
        return str(sibling)
    found = shutil.which("dbt")
    if not found:
        raise ProjectError("dbt is not installed in this environment: pip install 'dagster-agent-de'")
    return found


_NOT_PROJECT_FILES = {"target", "logs", "dbt_packages", "dbt_modules", ".git", ".venv", "__pycache__"}
_PROJECT_SUFFIXES = {".sql", ".yml", ".yaml", ".csv", ".py", ".md"}


def newest_project_file(project_dir: Path) -> tuple[float, Path | None]:
    """The newest file dbt parses (models, macros, seeds, YAML, ``dbt_project.yml``), by mtime."""
    newest: tuple[float, Path | None] = (0.0, None)
    for root, dirs, files in os.walk(project_dir):
        dirs[:] = [d for d in dirs if d not in _NOT_PROJECT_FILES and not d.startswith(".")]
        for name in files:
            if Path(name).suffix in _PROJECT_SUFFIXES and name != "profiles.yml":
                path = Path(root) / name
                try:
                    mtime = path.stat().st_mtime
                except OSError:
                    continue
                if mtime > newest[0]:
                    newest = (mtime, path)
    return newest


@dataclass(frozen=True)
class DbtProjectInfo:
    """A dbt project on disk, its profile target and where its artifacts go.

    ``target_path`` is the project's own ``target/`` when the project dir is writable, else
    ``<state dir>/dbt_target`` (a read-only image): the agent never writes next to an installed package.
    """

    project_dir: Path
    profiles_dir: Path
    target: str
    target_path: Path
    notes: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    """Extra environment for dbt (the demo's warehouse path; nothing for a team's project)."""

    @classmethod
    def from_settings(cls, settings: Settings) -> DbtProjectInfo:
        if not (settings.project_dir / "dbt_project.yml").exists():
            raise ProjectError(
                f"no dbt_project.yml in {settings.project_dir}; point --project-dir or AGENT_DE_PROJECT_DIR at "
                "your dbt project"
            )
        target = settings.profile_target  # validates profile and target, with the fix in the message
        project_dir = settings.project_dir
        own = project_dir / str(load_project_yaml(project_dir).get("target-path") or "target")
        writable = _writable(own if own.exists() else project_dir) and not is_installed_copy(project_dir)
        target_path = own if writable else settings.state_dir / "dbt_target"
        return cls(project_dir, settings.profiles_dir, target.target, target_path, env=tuple(settings.dbt_env().items()))

    @cached_property
    def project_yaml(self) -> dict[str, Any]:
        return load_project_yaml(self.project_dir)

    def check_target(self) -> None:
        """Raise naming the profile and targets when the target does not exist."""
        load_profile_target(self.project_dir, self.profiles_dir, self.target)

    @property
    def manifest_path(self) -> Path:
        return self.target_path / "manifest.json"

    def run_dbt(self, args: list[str], env: dict[str, str] | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run a dbt command in the project; raise with dbt's own output when it fails."""
        cmd = [
            dbt_executable(), *args, "--project-dir", str(self.project_dir),
            "--profiles-dir", str(self.profiles_dir), "--target", self.target,
        ]
        if self.target_path != self.project_dir / "target":
            cmd += ["--target-path", str(self.target_path), "--log-path", str(self.target_path.parent / "dbt_logs")]
        proc = subprocess.run(
            cmd, cwd=self.project_dir, capture_output=True, text=True,
            # no usage-stats cookie written into the profiles dir (it may be a read-only image's)
            env={**os.environ, "DBT_SEND_ANONYMOUS_USAGE_STATS": "false", **dict(self.env), **(env or {})},
        )
        if check and proc.returncode != 0:
            tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
            raise ProjectError(f"`dbt {' '.join(args)}` failed in {self.project_dir}:\n{tail}")
        return proc

    def staleness(self) -> str | None:
        """Why the manifest is older than the project (the newest changed file), or ``None`` if fresh."""
        if not self.manifest_path.exists():
            return "no manifest yet"
        mtime, newest = newest_project_file(self.project_dir)
        if newest is not None and mtime > self.manifest_path.stat().st_mtime:
            return f"{newest.relative_to(self.project_dir)} changed after the last parse"
        return None

    def ensure_manifest(self, env: dict[str, str] | None = None) -> Path:
        """Return a manifest as fresh as the project files: ``dbt parse`` first when there is none or a
        project file (a model, a YAML spec) is newer. When the re-parse fails and an older manifest
        exists, it is used and :attr:`notes` says so (the error is raised when there is none)."""
        stale = self.staleness()
        if stale is None:
            return self.manifest_path
        try:
            self.run_dbt(["parse", "--quiet"], env=env)
        except ProjectError as e:
            if not self.manifest_path.exists():
                raise
            note = (f"using the manifest of {self.manifest_path} although {stale}: `dbt parse` failed "
                    f"({str(e).splitlines()[-1][:200]})")
            object.__setattr__(self, "notes", (*self.notes, note))
            warnings.warn(note, stacklevel=2)
        return self.manifest_path

    def load_manifest(self, env: dict[str, str] | None = None) -> dict[str, Any]:
        """The parsed, validated manifest (``dbt parse`` first when there is none or it is stale)."""
        return load_manifest(self.ensure_manifest(env))


def _writable(path: Path) -> bool:
    return os.access(path, os.W_OK)


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
