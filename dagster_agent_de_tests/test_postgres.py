"""The PostgreSQL adapter on a real server: read-only three ways, audited, named in pg_stat_activity."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from dagster_agent_de.adapters.audit import AuditLog, read_audit
from dagster_agent_de.adapters.warehouse.postgres import PostgresWarehouse
from dagster_agent_de.errors import (
    ConfigError,
    StatementRefusedError,
    WarehouseError,
    WarehouseUnavailableError,
)
from dagster_agent_de_tests.warehouses import PgServer


@pytest.fixture
def pg_db(pg_server: PgServer):
    name = pg_server.create_database("adapter")
    pg_server.admin(
        "create table public.t (id integer primary key, amount numeric(10,2), paid_at timestamptz, note varchar(20))",
        "insert into public.t values (1, 10.50, '2026-03-01 10:00:00+01', 'a'), (2, null, null, 'b')",
        dbname=name,
    )
    yield name
    pg_server.drop_database(name)


def _open(pg: PgServer, db: str, audit: AuditLog, **over) -> PostgresWarehouse:
    return PostgresWarehouse.from_profile_output(pg.output(db, **over), audit)


def test_reads_are_audited_with_types_and_utc_values(pg_server: PgServer, pg_db: str, state_store) -> None:
    audit = AuditLog(state_store, actor="test", run_id="run-7")
    with _open(pg_server, pg_db, audit) as wh:
        res = wh.query("select id, amount, paid_at, note from public.t order by id", rationale="read t")
    assert res.columns == ["id", "amount", "paid_at", "note"]
    assert res.types == ["INTEGER", "NUMERIC(10,2)", "TIMESTAMP WITH TIME ZONE", "VARCHAR(20)"]
    assert str(res.rows[0][1]) == "10.50" and res.rows[0][2].isoformat() == "2026-03-01T09:00:00+00:00"
    (event,) = [e for e in read_audit(state_store) if e.kind == "query"]
    assert (event.dialect, event.target, event.outcome, event.rows, event.run_id) == ("postgres", "postgres", "ok", 2, "run-7")


def test_write_is_refused_by_the_guard_and_by_the_read_only_session(pg_server: PgServer, pg_db: str, state_store) -> None:
    import psycopg

    audit = AuditLog(state_store, actor="test")
    with _open(pg_server, pg_db, audit) as wh:
        # 1. the guard: refused before it reaches the server, and audited
        with pytest.raises(StatementRefusedError, match="DELETE"):
            wh.query("delete from public.t", rationale="sneaky")
        # 2. bypassing the guard (the raw run path): the session itself refuses to write ...
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            wh._run("delete from public.t", None)
        # ... and cannot be talked out of it inside the transaction, nor for the next one
        with pytest.raises(psycopg.errors.ActiveSqlTransaction, match="read-write mode must be set before any query"):
            wh._run("set transaction read write; delete from public.t", None)
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            wh._run("set session characteristics as transaction read write; insert into public.t values (3, 1, null, 'c')", None)
        assert wh.query("select count(*) from public.t", rationale="still there").scalar() == 2
    assert [e.outcome for e in read_audit(state_store) if e.kind == "query"] == ["refused", "ok"]
    assert pg_server.admin("select count(*) from public.t", dbname=pg_db) == [[(2,)]]


def test_session_settings_name_the_run_in_pg_stat_activity(pg_server: PgServer, pg_db: str) -> None:
    audit = AuditLog(None, actor="op:reconcile", run_id="0b7c9d52-6c0e-4c43-9a2f-2f0f1f4b6f11")
    with PostgresWarehouse.from_profile_output(pg_server.output(pg_db), audit, statement_timeout_s=42) as wh:
        got = wh.query(
            "select current_setting('default_transaction_read_only') as ro, current_setting('transaction_read_only') as tro, "
            "current_setting('statement_timeout') as timeout, current_setting('TimeZone') as tz, "
            "current_setting('application_name') as app",
            rationale="settings",
        ).one()
        seen = pg_server.admin(f"select application_name from pg_stat_activity where datname = '{pg_db}'")[0]
    assert got == {"ro": "on", "tro": "on", "timeout": "42s", "tz": "UTC",
                   "app": "agent-de run=0b7c9d52-6c0e-4c43-9a2f-2f0f1f4b6f11"}
    assert ("agent-de run=0b7c9d52-6c0e-4c43-9a2f-2f0f1f4b6f11",) in seen


def test_statement_timeout_cancels_and_says_so(pg_server: PgServer, pg_db: str) -> None:
    with PostgresWarehouse.from_profile_output(pg_server.output(pg_db), AuditLog(None), statement_timeout_s=0.2) as wh:
        with pytest.raises(WarehouseError, match="statement_timeout=0.2s"):
            wh.query("select pg_sleep(3)", rationale="slow")
        assert wh.query("select 1", rationale="the session survives").scalar() == 1


def test_password_from_the_profile_or_from_pgpassfile(pg_server: PgServer, pg_db: str, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    hba = pg_server.server.data / "pg_hba.conf"
    original = hba.read_text()
    pg_server.admin("create role agent_pw login password 's3cret'", f'grant connect on database "{pg_db}" to agent_pw')
    hba.write_text("host all agent_pw 127.0.0.1/32 scram-sha-256\n" + original)
    pg_server.admin("select pg_reload_conf()")
    try:
        over = {"user": "agent_pw"}
        with _open(pg_server, pg_db, AuditLog(None), password="s3cret", **over) as wh:
            assert wh.query("select current_user", rationale="who").scalar() == "agent_pw"
        with pytest.raises(WarehouseUnavailableError, match=r"agent_pw@127.0.0.1:\d+/adapter_\d+.*password"):
            _open(pg_server, pg_db, AuditLog(None), password="wrong", **over).query("select 1", rationale="x")
        passfile = tmp_path / "pgpass"
        passfile.write_text(f"127.0.0.1:{pg_server.port}:*:agent_pw:s3cret\n")
        passfile.chmod(0o600)
        monkeypatch.setenv("PGPASSFILE", str(passfile))
        with _open(pg_server, pg_db, AuditLog(None), **over) as wh:
            assert wh.query("select current_user", rationale="who").scalar() == "agent_pw"
    finally:
        hba.write_text(original)
        pg_server.admin("select pg_reload_conf()")
        pg_server.admin(f'revoke connect on database "{pg_db}" from agent_pw', "drop role agent_pw")


def test_profile_output_errors_name_the_field() -> None:
    audit = AuditLog(None)
    with pytest.raises(ConfigError, match="missing host"):
        PostgresWarehouse.from_profile_output({"type": "postgres", "user": "u", "dbname": "d"}, audit)
    with pytest.raises(ConfigError, match="type 'duckdb'"):
        PostgresWarehouse.from_profile_output({"type": "duckdb", "path": "x.duckdb"}, audit)
    wh = PostgresWarehouse.from_profile_output({"host": "h", "user": "u", "database": "d", "pass": "p", "port": "6543"}, audit)
    assert wh.conninfo == {"host": "h", "port": 6543, "user": "u", "password": "p", "dbname": "d"}
    assert wh.describe() == "u@h:6543/d"


def test_unreachable_server_names_what_to_check(pg_server: PgServer) -> None:
    from dagster_agent_de_tests.deployment.harness import free_port

    wh = PostgresWarehouse.from_profile_output(
        {"host": "127.0.0.1", "port": free_port(), "user": "postgres", "dbname": "nope", "connect_timeout": 2}, AuditLog(None))
    with pytest.raises(WarehouseUnavailableError, match="cannot connect to PostgreSQL postgres@127.0.0.1"):
        wh.query("select 1", rationale="x")


def test_missing_driver_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)  # as if the extra were not installed
    wh = PostgresWarehouse({"host": "h", "dbname": "d"}, AuditLog(None))
    with pytest.raises(ConfigError, match=r"pip install 'dagster-agent-de\[postgres\]'"):
        wh.query("select 1", rationale="x")


def test_reconcile_in_one_database_hashes_unbounded_numeric_and_checks_scales_by_value(pg_server: PgServer) -> None:
    """Arithmetic on a NUMERIC(10,2) column yields unbounded NUMERIC: the checksum and the narrow join still
    hash it (as NUMERIC), and a value equal but written at another scale (1.5 vs 1.50) is no mismatch."""
    from dagster_agent_de.engines.reconcile import ReconcileSpec, reconcile
    from dagster_agent_de.manifest import Manifest

    db = pg_server.create_database("recon")
    try:
        pg_server.admin(
            "create table public.truth (id bigint primary key, amount numeric(10,2), currency text)",
            "insert into public.truth select g, g / 4.0, 'EUR' from generate_series(1, 200) g",
            # pipe: amount + 0 is unbounded NUMERIC; id 7 at another scale (equal), id 9 changed, 11 missing, 500 extra
            "create table public.pipe as select id, case when id = 7 then 1.75000 when id = 9 then amount + 1 "
            "else amount + 0 end as amount, currency from public.truth where id <> 11 "
            "union all select 500, 1.0, 'USD'",
            dbname=db,
        )
        spec = ReconcileSpec.model_validate(dict(name="b", model="pipe", against="public.truth", key=["id"],
                                                 compare={"amount": {}, "currency": {}}, sample_size=5))
        manifest = Manifest({"nodes": {"model.p.pipe": {"name": "pipe", "resource_type": "model",
                                                        "relation_name": "public.pipe"}}, "sources": {}})
        with _open(pg_server, db, AuditLog(None)) as wh:
            r = reconcile(spec, manifest, wh)
            types = wh.query("select amount from public.pipe limit 0", rationale="type").types
        assert types == ["NUMERIC"]
        assert (r.missing_in_pipeline, r.extra_in_pipeline, r.mismatched_rows) == (1, 1, 1)
        assert [c.mismatched for c in r.columns] == [1, 0]
        assert [s["id"] for s in r.samples["mismatched"]] == [9]
        assert "sum(" in r.statements[0] and "hashtextextended(" in r.statements[0]  # the checksum ran
        assert "cast(\"c_amount\" as decimal)" in r.statements[1]  # NUMERIC, as sqlglot writes it: hashes compared
    finally:
        pg_server.drop_database(db)
