"""Named connections: a spec's ``connection: app_db`` instead of the connection's fields inline.

A name is looked up, in order:

1. the agent's settings: the YAML file named by ``AGENT_DE_CONNECTIONS`` (a ``connections:`` mapping, or
   the mapping itself), else ``vars: {agent_de: {connections: ...}}`` in ``dbt_project.yml``;
2. an output of the dbt project's own profile (``profiles.yml``), as dbt would read it: ``type: postgres``
   or ``type: duckdb``.

Values are rendered as dbt renders a profile (``{{ env_var('APP_DB_PASSWORD') }}``, ``| as_number``), so
secrets stay in the environment; ``password_env: VAR`` and libpq's ``PGPASSFILE`` work too. Example::

    # connections.yml (AGENT_DE_CONNECTIONS=connections.yml)
    connections:
      app_db:
        type: postgres
        host: app-db.internal
        user: agent_ro
        password: "{{ env_var('APP_DB_PASSWORD') }}"
        dbname: shop

A bad entry is a :class:`~dagster_agent_de.errors.SpecError` naming the connection and the field; an unknown
name is one naming the connections there are.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import TypeAdapter, ValidationError

from dagster_agent_de.core.models import validation_problems
from dagster_agent_de.engines.reconcile.spec import Connection
from dagster_agent_de.errors import ConfigError, SpecError
from dagster_agent_de.profile import find_profiles_dir, load_profile_target, load_project_yaml, render

ENV_FILE = "AGENT_DE_CONNECTIONS"
_PROFILE_FIELDS = {"postgres": ("host", "port", "user", "password", "dbname", "schema", "sslmode", "connect_timeout"),
                   "duckdb": ("path",)}


def _settings_connections(project_dir: Path | None, env: Mapping[str, str]) -> tuple[dict[str, Any], str]:
    """The raw ``connections`` mapping of the agent's settings and where it was read."""
    if env.get(ENV_FILE):
        path = Path(env[ENV_FILE]).expanduser()
        where = f"{ENV_FILE}={path}"
        try:
            raw = yaml.safe_load(path.read_text()) or {}
        except (OSError, yaml.YAMLError) as e:
            raise SpecError(f"{where} cannot be read: {e}") from e
        raw = raw.get("connections", raw) if isinstance(raw, dict) else raw
    elif project_dir is not None and (project_dir / "dbt_project.yml").exists():
        where = f"{project_dir / 'dbt_project.yml'} vars.agent_de.connections"
        raw = ((load_project_yaml(project_dir).get("vars") or {}).get("agent_de") or {}).get("connections") or {}
    else:
        return {}, "(no settings)"
    if not isinstance(raw, dict):
        raise SpecError(f"{where} must be a mapping of connection names to connections (type:, host:, ...)")
    return raw, where


def _profile_outputs(project_dir: Path | None) -> list[str]:
    if project_dir is None or not (project_dir / "dbt_project.yml").exists():
        return []
    try:
        name = load_project_yaml(project_dir).get("profile")
        profiles = yaml.safe_load((find_profiles_dir(project_dir) / "profiles.yml").read_text()) or {}
        return [str(o) for o in ((profiles.get(name) or {}).get("outputs") or {})]
    except (ConfigError, OSError, yaml.YAMLError, AttributeError):
        return []


def named_connection(name: str, project_dir: Path | None, env: Mapping[str, str] | None = None) -> Connection:
    """The connection called ``name`` (see the module docstring), validated.

    Raises:
        SpecError: the name is defined nowhere (the message lists the names there are), or its entry is
            invalid (the message names the connection and the field).
    """
    env = os.environ if env is None else env
    settings, where = _settings_connections(project_dir, env)
    adapter: TypeAdapter[Connection] = TypeAdapter(Connection)
    if name in settings:
        entry = settings[name]
        if not isinstance(entry, dict):
            raise SpecError(f"connection {name!r} ({where}) must be a mapping (type:, host:, ...)")
        try:
            rendered = render(entry, env)
            return adapter.validate_python(rendered)
        except ValidationError as e:
            raise SpecError(f"connection {name!r} ({where}): {validation_problems(e)}") from e
        except ConfigError as e:
            raise SpecError(f"connection {name!r} ({where}): {e}") from e
    outputs = _profile_outputs(project_dir)
    if name in outputs:
        assert project_dir is not None
        target = load_profile_target(project_dir, target=name, env=env)
        fields = _PROFILE_FIELDS.get(target.type)
        if fields is None:
            raise SpecError(f"connection {name!r} is {target.describe()} of type {target.type!r}; a source of truth "
                            f"on another connection is {' or '.join(_PROFILE_FIELDS)}")
        out = dict(target.output)
        out.setdefault("dbname", out.get("database"))
        out.setdefault("password", out.get("pass"))
        try:
            return adapter.validate_python({"type": target.type} | {k: out[k] for k in fields if out.get(k) not in (None, "")})
        except ValidationError as e:
            raise SpecError(f"connection {name!r} ({target.describe()}): {validation_problems(e)}") from e
    known = sorted(settings) + [f"{o} (profile output)" for o in outputs]
    raise SpecError(
        f"connection {name!r} is not defined: name one in {where if settings else ENV_FILE + ' or dbt_project.yml vars.agent_de.connections'}"
        f" or a dbt profile output; defined: {', '.join(known) or 'none'}"
    )
