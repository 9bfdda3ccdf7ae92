"""Which store a process opens: AGENT_DE_STATE_URL, else the Dagster instance's PostgreSQL, else SQLite."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from dagster_agent_de.adapters.state import SqlStateStore, prune_if_due, resolve_state_url, retention_days
from dagster_agent_de.config import resolve_settings
from dagster_agent_de.core.models import AuditEvent
from dagster_agent_de.errors import ConfigError


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("AGENT_DE_STATE_URL", raising=False)
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    (tmp_path / "home").mkdir()
    return tmp_path / "home"


def test_embedded_sqlite_under_the_state_dir_by_default(home: Path, tmp_path: Path) -> None:
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    url, why = resolve_state_url(resolve_settings(tmp_path / "state"))
    assert url == f"sqlite:///{tmp_path / 'state' / 'state.db'}" and "SQLite" in why


def test_the_dagster_instance_postgres_with_env_references(home: Path, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    (home / "dagster.yaml").write_text("""storage:
  postgres:
    postgres_db:
      username: {env: PG_USER}
      password: {env: PG_PASSWORD}
      hostname: db.internal
      db_name: dagster
      port: 6543
      params: {sslmode: require}
""")
    monkeypatch.setenv("PG_USER", "agent")
    monkeypatch.setenv("PG_PASSWORD", "p@ss/word")
    url, why = resolve_state_url(resolve_settings(tmp_path))
    assert url == "postgresql+psycopg://agent:p%40ss%2Fword@db.internal:6543/dagster?sslmode=require"
    assert str(home / "dagster.yaml") in why
    monkeypatch.delenv("PG_PASSWORD")
    with pytest.raises(ConfigError, match="reads the environment variable PG_PASSWORD, which is not set"):
        resolve_state_url(resolve_settings(tmp_path))
    (home / "dagster.yaml").write_text("storage:\n  postgres:\n    postgres_url: {env: PG_URL}\n")
    monkeypatch.setenv("PG_URL", "postgresql+psycopg2://u@h/d")
    assert resolve_state_url(resolve_settings(tmp_path))[0] == "postgresql+psycopg2://u@h/d"
    (home / "dagster.yaml").write_text("run_storage:\n  module: dagster_postgres.run_storage\n  class: PostgresRunStorage\n"
                                       "  config:\n    postgres_url: postgresql://old@style/db\n")
    assert resolve_state_url(resolve_settings(tmp_path))[0] == "postgresql://old@style/db"
    monkeypatch.setenv("AGENT_DE_STATE_URL", "sqlite:////tmp/explicit.db")  # the explicit URL wins
    assert resolve_state_url(resolve_settings(tmp_path)) == ("sqlite:////tmp/explicit.db", "AGENT_DE_STATE_URL")


def test_retention_is_configurable_and_runs_once_a_day(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = SqlStateStore(f"sqlite:///{tmp_path / 'state.db'}")
    old = datetime.now(timezone.utc) - timedelta(days=40)
    store.append_audit(AuditEvent(actor="a", rationale="old", statement="select 1", ts=old))
    monkeypatch.setenv("AGENT_DE_AUDIT_RETENTION_DAYS", "30")
    assert retention_days() == 30 and prune_if_due(store) == 1
    store.append_audit(AuditEvent(actor="a", rationale="old", statement="select 1", ts=old))
    assert prune_if_due(store) == 0  # pruned less than a day ago
    assert prune_if_due(store, now=datetime.now(timezone.utc) + timedelta(days=1, minutes=1)) == 1
    monkeypatch.setenv("AGENT_DE_AUDIT_RETENTION_DAYS", "0")
    assert prune_if_due(store, now=datetime.now(timezone.utc) + timedelta(days=9)) == 0  # 0 keeps everything
    monkeypatch.setenv("AGENT_DE_AUDIT_RETENTION_DAYS", "half a year")
    with pytest.raises(ConfigError, match="AGENT_DE_AUDIT_RETENTION_DAYS='half a year' is not a whole number"):
        retention_days()
