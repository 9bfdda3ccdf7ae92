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

PARSE_RECORD = "agent_de_parse.json"
"""Beside the manifest: the target the agent last parsed it for, and the manifest's mtime then."""


_DATABASES: dict[tuple[str, int], tuple[set[str], set[tuple[str, str]]]] = {}
"""The databases a manifest's models are built in, and the (database, schema) of those in dbt's default schema,
by (path, mtime): the last manifest read."""


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
    state_dir: Path | None = None
    """The agent's state dir: where it parses the project for its target when ``target/`` holds another's."""

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
        return cls(project_dir, settings.profiles_dir, target.target, target_path, env=tuple(settings.dbt_env().items()),
                   state_dir=settings.state_dir)

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
        """Why the manifest cannot be used as it is (none yet, a project file changed after it, or it was
        compiled for another target), or ``None`` if it describes this project for this target."""
        return self._changed() or self.other_target()

    def _changed(self) -> str | None:
        """No manifest yet, or a project file changed after it."""
        if not self.manifest_path.exists():
            return "no manifest yet"
        mtime, newest = newest_project_file(self.project_dir)
        if newest is not None and mtime > self.manifest_path.stat().st_mtime:
            return f"{newest.relative_to(self.project_dir)} changed after the last parse"
        return None

    @property
    def _parse_record(self) -> Path:
        return self.target_path / PARSE_RECORD

    def _record(self) -> dict[str, Any]:
        try:
            got = json.loads(self._parse_record.read_text())
        except (OSError, ValueError):
            return {}
        return got if isinstance(got, dict) else {}

    def other_target(self) -> str | None:
        """Whether the manifest was compiled for another target (``dbt build --target prod`` while the agent
        runs on ``dev``): its models would name the other target's relations.

        A manifest the agent parsed itself is known by its record (the target and the manifest's mtime).
        Any other is judged by where its models live: when none of the models and seeds without a
        ``database`` config of their own is in the target's database, or none of those without a ``schema``
        config either is in the target's schema (CI's ``ci_42`` in the same database), it is another target's."""
        record = self._record()
        if record.get("manifest_mtime_ns") == self.manifest_path.stat().st_mtime_ns:
            got = record.get("target")
            return None if got == self.target else f"{self.manifest_path} was parsed for target {got!r}, not {self.target!r}"
        try:
            profile = load_profile_target(self.project_dir, self.profiles_dir, self.target, env={**os.environ, **dict(self.env)})
        except ProjectError:
            return None  # the profile's own error is raised where it is used
        database, schema = profile.database, profile.schema
        if not database:
            return None
        key = (str(self.manifest_path), self.manifest_path.stat().st_mtime_ns)
        seen = _DATABASES.get(key)
        if seen is None:  # read once per manifest version: sensors ask every tick
            seen = (set(), set())
            for node in self._cached_manifest().get("nodes", {}).values():
                config = node.get("config") or {}
                if node.get("resource_type") in ("model", "seed", "snapshot") and not config.get("database"):
                    db = str(node.get("database") or "").lower()
                    seen[0].add(db)
                    if not config.get("schema"):  # dbt's default schema: the target's own
                        seen[1].add((db, str(node.get("schema") or "").lower()))
            seen[0].discard("")
            _DATABASES.clear()
            _DATABASES[key] = seen
        databases, schemas = seen
        if databases and database.lower() not in databases:
            return (f"{self.manifest_path} was compiled for database {', '.join(sorted(databases))}, not {database!r} of "
                    f"target {self.target!r} (a dbt command run with another --target)")
        if schema and schemas and (database.lower(), schema.lower()) not in schemas:
            shown = ", ".join(sorted(s for d, s in schemas if d == database.lower()) or sorted(f"{d}.{s}" for d, s in schemas))
            return (f"{self.manifest_path} was compiled for schema {shown}, not {schema!r} of target {self.target!r} "
                    "(a dbt command run with another --target)")
        return None

    def _cached_manifest(self) -> dict[str, Any]:
        """The manifest's JSON, read once per file version (the staleness check and the load share it)."""
        key = (self.manifest_path, self.manifest_path.stat().st_mtime_ns)
        cached = self.__dict__.get("_manifest_cache")
        if cached is None or cached[0] != key:
            cached = (key, load_manifest(self.manifest_path))
            object.__setattr__(self, "_manifest_cache", cached)
        return cached[1]

    @property
    def compiled_after(self) -> float | None:
        """Compiled SQL under the project's ``target/`` older than this (epoch seconds) is not read: ``inf``
        when the agent reads its own manifest for another target's (see :meth:`ensure_manifest`), so models
        are read from their files, never from SQL compiled for the other target."""
        return float("inf") if self.target_path == self.own_target_path else None

    @property
    def own_target_path(self) -> Path:
        """Where the agent parses the project for its target when ``target/`` holds another target's
        manifest: the team's ``target/`` is never overwritten with another target's parse."""
        return (self.state_dir or self.project_dir / "target") / "dbt_target" / self.target

    def ensure_manifest(self, env: dict[str, str] | None = None) -> Path:
        """Return a manifest as fresh as the project files, for this target: ``dbt parse --target T``
        first when there is none or a project file (a model, a YAML spec) is newer.

        When ``target/`` holds another target's manifest (``dbt build --target prod``, the agent on
        ``dev``), the agent parses into its own :attr:`own_target_path` instead and reads that from then on
        (the team's ``target/`` keeps their manifest). When the re-parse fails and an older manifest
        exists, it is used and :attr:`notes` says so (the error is raised when there is none)."""
        other = self.other_target() if self.manifest_path.exists() else None
        if other is not None and self.target_path != self.own_target_path:
            # another target's manifest, changed project files or not: never re-parse over the team's
            object.__setattr__(self, "target_path", self.own_target_path)
            note = f"reading the agent's own parse of the project for target {self.target!r} in {self.target_path}: {other}"
            object.__setattr__(self, "notes", (*self.notes, note))
            warnings.warn(note, stacklevel=2)
            return self.ensure_manifest(env)
        stale = self._changed() or other
        if stale is None:
            return self.manifest_path
        try:
            self.target_path.mkdir(parents=True, exist_ok=True)
            self.run_dbt(["parse", "--quiet"], env=env)
        except ProjectError as e:
            if not self.manifest_path.exists():
                raise
            note = (f"using the manifest of {self.manifest_path} although {stale}: `dbt parse` failed "
                    f"({str(e).splitlines()[-1][:200]})")
            object.__setattr__(self, "notes", (*self.notes, note))
            warnings.warn(note, stacklevel=2)
            return self.manifest_path
        record = {"target": self.target, "manifest_mtime_ns": self.manifest_path.stat().st_mtime_ns}
        try:
            self._parse_record.write_text(json.dumps(record))
        except OSError:
            pass  # a read-only target dir: the heuristic judges next time
        return self.manifest_path

    def load_manifest(self, env: dict[str, str] | None = None) -> dict[str, Any]:
        """The parsed, validated manifest (``dbt parse`` first when there is none or it is stale)."""
        self.ensure_manifest(env)
        return self._cached_manifest()


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
