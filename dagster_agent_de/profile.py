"""The dbt profile the project already has: which target, and the connection it describes.

The agent connects with what the team's ``profiles.yml`` says, not with settings of its own: any
target name (``dev``, ``prod``, ...); the warehouse type comes from the output's ``type``. Profiles are
rendered the way dbt renders them (Jinja with ``env_var``), in a sandbox.

No Dagster import.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from dagster_agent_de.errors import ProjectError

SUPPORTED_TYPES = ("duckdb", "snowflake", "postgres")
_ENV_NAME = re.compile(r"env_var\(\s*['\"]([^'\"]+)['\"]")


def find_profiles_dir(project_dir: Path) -> Path:
    """Where dbt looks: ``DBT_PROFILES_DIR``, else the project dir, else ``~/.dbt``."""
    env = os.environ.get("DBT_PROFILES_DIR")
    if env:
        path = Path(env).expanduser()
        if not (path / "profiles.yml").exists():
            raise ProjectError(f"DBT_PROFILES_DIR={env} holds no profiles.yml; point it at the folder that does")
        return path
    if (project_dir / "profiles.yml").exists():
        return project_dir
    home = Path.home() / ".dbt"
    if (home / "profiles.yml").exists():
        return home
    raise ProjectError(
        f"no profiles.yml in {project_dir} or ~/.dbt; set DBT_PROFILES_DIR to the folder holding your dbt profiles"
    )


def _env_var(env: Mapping[str, str]) -> Any:
    def env_var(name: str, default: str | None = None) -> str:
        if name in env:
            return env[name]
        if default is not None:
            return default
        raise ProjectError(f"profiles.yml reads env_var('{name}'), which is not set and has no default: set {name}")

    return env_var


def render(value: Any, env: Mapping[str, str]) -> Any:
    """Render dbt's Jinja in a profile value (``env_var``, ``as_number``, ``as_bool``, ``as_text``).

    >>> render({"path": "{{ env_var('P', 'x.duckdb') }}", "threads": 4}, {})
    {'path': 'x.duckdb', 'threads': 4}
    >>> render("{{ env_var('PORT') | as_number }}", {"PORT": "5432"})
    5432
    """
    if isinstance(value, dict):
        return {k: render(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [render(v, env) for v in value]
    if not isinstance(value, str) or ("{{" not in value and "{%" not in value):
        return value
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    jinja = ImmutableSandboxedEnvironment()
    native: dict[str, Any] = {}

    def _native(kind: str) -> Any:
        def convert(v: Any) -> str:
            native["kind"] = kind
            return str(v)

        return convert

    jinja.filters.update(as_number=_native("number"), as_bool=_native("bool"), as_native=_native("native"),
                         as_text=str)
    try:
        out = jinja.from_string(value).render(env_var=_env_var(env))
    except ProjectError:
        raise
    except Exception as e:  # a Jinja syntax error or an unknown function: name the value
        raise ProjectError(f"cannot render {value!r} in profiles.yml ({type(e).__name__}: {e})") from e
    kind = native.get("kind")
    if kind == "number":
        return int(out) if out.strip().lstrip("-").isdigit() else float(out)
    if kind == "bool":
        return out.strip().lower() in ("true", "1", "yes", "on")
    if kind == "native":
        return yaml.safe_load(out)
    return out


@dataclass(frozen=True)
class ProfileTarget:
    """One rendered output of a dbt profile: what dbt connects with for ``target``."""

    profiles_path: Path
    profile: str
    target: str
    output: Mapping[str, Any]
    raw_output: Mapping[str, Any] | None = None

    @property
    def type(self) -> str:
        return str(self.output.get("type") or "")

    def describe(self) -> str:
        return f"target {self.target!r} of profile {self.profile!r} ({self.profiles_path})"

    @property
    def database(self) -> str | None:
        """The database dbt builds models in by default (``target.database``). dbt-duckdb names it after the
        file (``prod.duckdb`` -> ``prod``; ``md:analytics`` -> ``analytics``) unless ``database`` is set.

        >>> ProfileTarget(Path("p.yml"), "p", "prod", {"type": "duckdb", "path": "data/prod.duckdb"}).database
        'prod'
        >>> ProfileTarget(Path("p.yml"), "p", "dev", {"type": "postgres", "dbname": "shop"}).database
        'shop'
        """
        out = self.output
        if out.get("database"):
            return str(out["database"])
        if self.type == "duckdb":
            path = str(out.get("path") or ":memory:")
            if path.startswith("md:"):
                return path[3:].split("?")[0] or None
            return "memory" if path == ":memory:" else Path(path).stem
        return str(out.get("dbname") or "") or None

    @property
    def schema(self) -> str | None:
        """The schema dbt builds models in by default (``target.schema``; dbt-duckdb's default is ``main``).

        >>> ProfileTarget(Path("p.yml"), "p", "dev", {"type": "duckdb", "path": "dev.duckdb"}).schema
        'main'
        """
        got = self.output.get("schema")
        if got:
            return str(got)
        return "main" if self.type == "duckdb" else None

    def env_vars(self, field: str) -> list[str]:
        """The environment variables the profile's ``field`` reads with ``env_var``, in order.

        >>> ProfileTarget(Path("p.yml"), "p", "prod", {}, {"user": "{{ env_var('SF_USER', 'me') }}"}).env_vars("user")
        ['SF_USER']
        """
        return _ENV_NAME.findall(str((self.raw_output or {}).get(field, "")))

    def missing(self, *fields: str) -> str:
        """Say how to fill empty fields: the profile's ``env_var`` names where it reads them.

        >>> ProfileTarget(Path("p.yml"), "p", "prod", {"user": ""}, {"user": "{{ env_var('SF_USER', '') }}"}).missing("user")
        "target 'prod' of profile 'p' (p.yml) has no user: set SF_USER (read by env_var in profiles.yml)"
        """
        names = [m for f in fields for m in self.env_vars(f)]
        fix = f"set {', '.join(names)} (read by env_var in profiles.yml)" if names else "set it in profiles.yml"
        return f"{self.describe()} has no {' or '.join(fields)}: {fix}"


def load_project_yaml(project_dir: Path) -> dict[str, Any]:
    """``dbt_project.yml`` as a mapping, or a clear error naming the file."""
    path = project_dir / "dbt_project.yml"
    if not path.exists():
        raise ProjectError(f"no dbt_project.yml in {project_dir}; point --project-dir or AGENT_DE_PROJECT_DIR at your dbt project")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise ProjectError(f"{path} is not valid YAML: {e}") from e
    if not isinstance(data, dict):
        raise ProjectError(f"{path} must be a mapping (name:, profile:, ...), not a YAML {type(data).__name__}")
    return data


def load_profile_target(
    project_dir: Path, profiles_dir: Path | None = None, target: str | None = None,
    env: Mapping[str, str] | None = None,
) -> ProfileTarget:
    """The output of the project's profile that dbt would use.

    The target is ``target`` if given, else ``DBT_TARGET``, else the profile's own ``target:``.
    Raises :class:`ProjectError` naming the profile, the target and the targets available.
    """
    env = os.environ if env is None else env
    profiles_dir = profiles_dir or find_profiles_dir(project_dir)
    profiles_path = profiles_dir / "profiles.yml"
    profile_name = load_project_yaml(project_dir).get("profile")
    if not profile_name:
        raise ProjectError(f"{project_dir / 'dbt_project.yml'} names no profile: add `profile: <name>`")
    try:
        profiles = yaml.safe_load(profiles_path.read_text()) or {}
    except yaml.YAMLError as e:
        raise ProjectError(f"{profiles_path} is not valid YAML: {e}") from e
    if not isinstance(profiles, dict):
        raise ProjectError(f"{profiles_path} must be a YAML mapping of profiles")
    profile = profiles.get(profile_name)
    if not isinstance(profile, dict):
        raise ProjectError(
            f"profile {profile_name!r} (named in dbt_project.yml) is not in {profiles_path}; "
            f"profiles there: {', '.join(map(str, profiles)) or 'none'}"
        )
    outputs = profile.get("outputs") or {}
    if not isinstance(outputs, dict) or not outputs:
        raise ProjectError(f"profile {profile_name!r} in {profiles_path} has no outputs")
    chosen = target or env.get("DBT_TARGET") or render(profile.get("target"), env) or "default"
    if chosen not in outputs:
        raise ProjectError(
            f"target {chosen!r} is not an output of profile {profile_name!r} in {profiles_path}; "
            f"available targets: {', '.join(map(str, outputs))} (set --target, AGENT_DE_TARGET or DBT_TARGET)"
        )
    output = render(outputs[chosen], env)
    if not isinstance(output, dict):
        raise ProjectError(f"target {chosen!r} of profile {profile_name!r} in {profiles_path} is not a mapping")
    result = ProfileTarget(profiles_path, str(profile_name), str(chosen), output, outputs[chosen])
    if result.type not in SUPPORTED_TYPES:
        raise ProjectError(
            f"{result.describe()} is of type {result.type or '(none)'!r}; the agent supports "
            f"{', '.join(SUPPORTED_TYPES)} (the warehouse type comes from the output's `type`)"
        )
    return result
