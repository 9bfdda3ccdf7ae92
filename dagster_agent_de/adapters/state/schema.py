"""The state store's tables and its versioned migrations (an ordered list plus a version table).

Tables carry no schema name: on PostgreSQL the engine maps them into ``agent_de`` with
``schema_translate_map``; on SQLite they live in the state file.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

# A BIGINT identity on PostgreSQL; INTEGER PRIMARY KEY AUTOINCREMENT on SQLite (never reuses an id).
_Id = BigInteger().with_variant(Integer, "sqlite")

metadata = MetaData()

schema_version = Table(
    "schema_version", metadata,
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("description", Text, nullable=False),
    Column("applied_at", Float, nullable=False),
)

audit_events = Table(
    "audit_events", metadata,
    Column("id", _Id, primary_key=True, autoincrement=True),
    Column("ts", Float, nullable=False, index=True),
    Column("run_id", String(128), index=True),
    Column("actor", String(256), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("outcome", String(16), nullable=False),
    Column("body", Text, nullable=False),
    sqlite_autoincrement=True,
)

findings = Table(
    "findings", metadata,
    Column("id", _Id, primary_key=True, autoincrement=True),
    Column("finding_id", String(64), nullable=False, index=True),
    Column("run_id", String(128), index=True),
    Column("check_name", String(512)),
    Column("pattern", String(128)),
    Column("model", String(512)),
    Column("created_at", Float, nullable=False),
    Column("body", Text, nullable=False),
    sqlite_autoincrement=True,
)

drift_snapshots = Table(
    "drift_snapshots", metadata,
    Column("id", _Id, primary_key=True, autoincrement=True),
    Column("name", String(64), nullable=False, index=True),
    Column("created_at", Float, nullable=False),
    Column("body", Text, nullable=False),
    sqlite_autoincrement=True,
)

drift_heads = Table(
    "drift_heads", metadata,
    Column("name", String(64), primary_key=True),
    Column("snapshot_id", BigInteger, nullable=False),
    Column("updated_at", Float, nullable=False),
)

escalations = Table(
    "escalations", metadata,
    Column("id", String(32), primary_key=True),
    Column("seq", Integer, nullable=False, unique=True),
    Column("state", String(16), nullable=False, index=True),
    Column("kind", String(32), nullable=False),
    Column("asset", String(512)),
    Column("finding_id", String(64)),
    Column("finding_pattern", String(512)),
    Column("created_at", Float, nullable=False),
    Column("due_at", Float),
    Column("body", Text, nullable=False),
)

approvals = Table(
    "approvals", metadata,
    Column("id", _Id, primary_key=True, autoincrement=True),
    Column("escalation_id", String(32), nullable=False, index=True),
    Column("approver", String(256), nullable=False),
    Column("choice", Integer, nullable=False),
    Column("at", Float, nullable=False),
    Column("body", Text, nullable=False),
    UniqueConstraint("escalation_id", "approver", name="approvals_one_per_approver"),
    sqlite_autoincrement=True,
)

context_rules = Table(
    "context_rules", metadata,
    Column("id", String(256), primary_key=True),
    Column("source", String(256)),
    Column("updated_at", Float, nullable=False),
    Column("body", Text, nullable=False),
)

flags = Table(
    "flags", metadata,
    Column("name", String(256), primary_key=True),
    Column("value", Text, nullable=False),
    Column("updated_at", Float, nullable=False),
)

artifacts = Table(
    "artifacts", metadata,
    Column("kind", String(64), primary_key=True),
    Column("name", String(512), primary_key=True),
    Column("updated_at", Float, nullable=False),
    Column("body", Text, nullable=False),
)


notification_keys = Table(
    "notification_keys", metadata,
    Column("key", String(512), primary_key=True),
    Column("created_at", Float, nullable=False),
)

notification_threads = Table(
    "notification_threads", metadata,
    Column("channel", String(256), primary_key=True),
    Column("incident", String(256), primary_key=True),
    Column("ref", Text, nullable=False),
    Column("created_at", Float, nullable=False),
)

notification_deferred = Table(
    "notification_deferred", metadata,
    Column("id", _Id, primary_key=True, autoincrement=True),
    Column("channel", String(256), nullable=False, index=True),
    Column("line", Text, nullable=False),
    Column("created_at", Float, nullable=False),
    sqlite_autoincrement=True,
)

_V2 = (notification_keys, notification_threads, notification_deferred)


def _v1(conn: Connection) -> None:
    metadata.create_all(conn, tables=[t for t in metadata.sorted_tables if t is not schema_version and t not in _V2])


def _v2(conn: Connection) -> None:
    metadata.create_all(conn, tables=list(_V2))


Migration = tuple[int, str, Callable[[Connection], None]]

MIGRATIONS: list[Migration] = [
    (1, "audit, findings, drift snapshots, escalations with approvals, context rules, flags, artifacts", _v1),
    (2, "notifications: sent keys (deduplication), incident threads, lines held for the digest", _v2),
]
"""Append only: a new migration gets the next version; released ones are never edited."""
