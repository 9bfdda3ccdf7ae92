"""Open the agent's state store: where it lives, chosen in this order.

1. ``AGENT_DE_STATE_URL`` (a SQLAlchemy URL: ``postgresql://user:pw@host/db`` or ``sqlite:///path``);
2. else the PostgreSQL database of the Dagster instance (``$DAGSTER_HOME/dagster.yaml`` with
   ``storage: postgres:``), in its own schema ``agent_de``;
3. else SQLite: ``<state dir>/state.db`` in WAL mode.

On first use the schema is migrated, files of earlier versions are imported once (and moved
to ``<state dir>/backup/``), and audit events older than ``AGENT_DE_AUDIT_RETENTION_DAYS``
(default 180; 0 keeps everything) are pruned at most once a day, except what an open
escalation cites.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy.engine import URL

from dagster_agent_de.adapters.state.sql import SqlStateStore
from dagster_agent_de.config import Settings
from dagster_agent_de.core.state import StateStore
from dagster_agent_de.errors import ConfigError

STATE_URL_ENV = "AGENT_DE_STATE_URL"
RETENTION_ENV = "AGENT_DE_AUDIT_RETENTION_DAYS"
DEFAULT_RETENTION_DAYS = 180
STATE_FILE = "state.db"
_PRUNED_FLAG = "audit_pruned_at"

_OPEN: dict[tuple[str, int], SqlStateStore] = {}


def _env_value(value: Any, where: str) -> Any:
    """Dagster's ``{env: NAME}`` indirection."""
    if isinstance(value, dict) and set(value) == {"env"}:
        name = str(value["env"])
        if name not in os.environ:
            raise ConfigError(f"{where} reads the environment variable {name}, which is not set")
        return os.environ[name]
    return value


def dagster_postgres_url(dagster_yaml: Path) -> str | None:
    """The PostgreSQL URL of a Dagster instance's storage, or None when it is not on PostgreSQL."""
    if not dagster_yaml.is_file():
        return None
    try:
        data = yaml.safe_load(dagster_yaml.read_text())
    except yaml.YAMLError as e:
        raise ConfigError(f"{dagster_yaml} is not valid YAML ({e}); fix it or set {STATE_URL_ENV}") from e
    if not isinstance(data, dict):
        return None
    config: Any = None
    storage = data.get("storage")
    if isinstance(storage, dict) and isinstance(storage.get("postgres"), dict):
        config = storage["postgres"]
    else:
        for key in ("run_storage", "event_log_storage"):
            section = data.get(key)
            if isinstance(section, dict) and "postgres" in str(section.get("module", "")):
                config = section.get("config")
                break
    if not isinstance(config, dict):
        return None
    where = f"{dagster_yaml} (storage: postgres)"
    if config.get("postgres_url"):
        return str(_env_value(config["postgres_url"], where))
    db = config.get("postgres_db")
    if not isinstance(db, dict):
        raise ConfigError(f"{where} has neither postgres_url nor postgres_db; fix it or set {STATE_URL_ENV}")
    fields = {k: _env_value(v, where) for k, v in db.items()}
    missing = [k for k in ("username", "hostname", "db_name") if not fields.get(k)]
    if missing:
        raise ConfigError(f"{where}: postgres_db lacks {', '.join(missing)}")
    params = fields.get("params") or {}
    return URL.create(
        "postgresql+psycopg", username=str(fields["username"]),
        password=str(fields["password"]) if fields.get("password") else None, host=str(fields["hostname"]),
        port=int(fields.get("port") or 5432), database=str(fields["db_name"]),
        query={str(k): str(v) for k, v in params.items()} if isinstance(params, dict) else {},
    ).render_as_string(hide_password=False)


def resolve_state_url(settings: Settings) -> tuple[str, str]:
    """(URL, why this one) for ``settings``, in the documented order."""
    env = os.environ.get(STATE_URL_ENV)
    if env:
        return env, STATE_URL_ENV
    dagster_yaml = settings.dagster_home / "dagster.yaml"
    pg = dagster_postgres_url(dagster_yaml)
    if pg:
        return pg, f"the Dagster instance's PostgreSQL ({dagster_yaml})"
    return f"sqlite:///{settings.state_dir / STATE_FILE}", "the state directory (SQLite)"


def retention_days() -> int:
    raw = os.environ.get(RETENTION_ENV, str(DEFAULT_RETENTION_DAYS))
    try:
        days = int(raw)
    except ValueError as e:
        raise ConfigError(f"{RETENTION_ENV}={raw!r} is not a whole number of days (0 keeps the audit log forever)") from e
    if days < 0:
        raise ConfigError(f"{RETENTION_ENV}={days} is negative; use 0 to keep the audit log forever")
    return days


def prune_if_due(store: SqlStateStore, now: datetime | None = None) -> int:
    """Apply audit retention at most once a day."""
    days = retention_days()
    if not days:
        return 0
    last = store.get_flag(_PRUNED_FLAG)
    now = now or datetime.now(timezone.utc)
    if last and now.timestamp() - float(last) < 86_400:
        return 0
    removed = store.prune_audit(now - timedelta(days=days))
    store.set_flag(_PRUNED_FLAG, str(now.timestamp()))
    return removed


def open_state_store(settings: Settings) -> StateStore:
    """The state store for ``settings``; one per URL and process (engines are pooled, never shared across a fork)."""
    from dagster_agent_de.adapters.state.legacy import import_legacy, legacy_files

    url, _why = resolve_state_url(settings)
    key = (url, os.getpid())
    store = _OPEN.get(key)
    if store is None:
        store = SqlStateStore(url)
        _OPEN[key] = store
        prune_if_due(store)
    if legacy_files(settings.state_dir):
        import_legacy(store, settings.state_dir, settings.project_dir)
    return store


def describe_state(settings: Settings) -> str:
    """One line for status output: where state lives and why (password masked)."""
    from sqlalchemy.engine import make_url

    url, why = resolve_state_url(settings)
    return f"{make_url(url).render_as_string(hide_password=True)} (from {why})"


__all__ = ["SqlStateStore", "StateStore", "dagster_postgres_url", "describe_state", "open_state_store", "prune_if_due",
           "resolve_state_url", "retention_days"]
