from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from dagster_agent_de.adapters.audit import AuditLog, read_audit
from dagster_agent_de.adapters.warehouse import DuckDBWarehouse
from dagster_agent_de.errors import StatementRefusedError, WarehouseError, WarehouseUnavailableError
from dagster_agent_de_tests.helpers import stored_audit_text


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "wh.duckdb"
    con = duckdb.connect(str(path))
    con.execute("create schema app; create table app.t as select range as id, range % 3 as g from range(10)")
    con.close()
    return path


def test_each_query_leaves_exactly_one_audit_event_with_all_fields(db: Path, duck_audit: AuditLog) -> None:
    live: list = []
    duck_audit.sinks.append(live.append)
    with DuckDBWarehouse(db, duck_audit) as wh:
        res = wh.query("select g, count(*) as n from app.t group by g order by g", rationale="count per group")
    assert res.rows == [(0, 4), (1, 3), (2, 3)]
    stored = [e for e in read_audit(duck_audit.store) if e.kind == "query"]
    assert len(stored) == 1 and len([e for e in live if e.kind == "query"]) == 1
    (setup,) = [e for e in read_audit(duck_audit.store) if e.kind == "session_setup"]
    assert "SET lock_configuration = TRUE" in setup.statement  # the session set-up is audited too
    e = stored[0]
    assert e.actor == "test" and e.run_id == "run-1"
    assert e.rationale == "count per group"
    assert e.statement.startswith("select g")
    assert e.dialect == "duckdb" and e.rows == 3 and e.outcome == "ok"
    assert e.duration_ms >= 0 and e.ts is not None


def test_refused_statement_is_audited_and_never_runs(db: Path, duck_audit: AuditLog) -> None:
    with DuckDBWarehouse(db, duck_audit) as wh:
        with pytest.raises(StatementRefusedError):
            wh.query("select 1; drop table app.t", rationale="sneaky")
        assert wh.query("select count(*) from app.t", rationale="still there").scalar() == 10
    events = [e for e in read_audit(duck_audit.store) if e.kind == "query"]
    assert [e.outcome for e in events] == ["refused", "ok"]
    assert "DROP" in (events[0].error or "")


def test_read_only_attach_blocks_writes_even_when_guard_is_bypassed(db: Path, duck_audit: AuditLog) -> None:
    wh = DuckDBWarehouse(db, duck_audit)
    with pytest.raises(duckdb.Error, match="read-only"):
        wh._run("delete from app.t", None)  # defence in depth: the file is attached READ_ONLY
    wh.close()


def test_driver_error_is_audited_and_wrapped(db: Path, duck_audit: AuditLog) -> None:
    with DuckDBWarehouse(db, duck_audit) as wh, pytest.raises(WarehouseError, match="no_such_table"):
        wh.query("select * from app.no_such_table", rationale="typo")
    (event,) = [e for e in read_audit(duck_audit.store) if e.kind == "query"]
    assert event.outcome == "error" and "no_such_table" in (event.error or "")


def test_missing_warehouse_file_names_the_fix(tmp_path: Path, duck_audit: AuditLog) -> None:
    """The adapter names the file and the fix its caller knows (the profile's target, `agent-de demo`: see
    test_profiles.py); alone it says to check the path, never to run the demo on a team's project."""
    with pytest.raises(WarehouseUnavailableError, match=r"nope.duckdb does not exist: check the path"):
        DuckDBWarehouse(tmp_path / "nope.duckdb", duck_audit).query("select 1", rationale="x")
    with pytest.raises(WarehouseUnavailableError, match=r"nope.duckdb does not exist: run `dbt build --target dev`"):
        DuckDBWarehouse(tmp_path / "nope.duckdb", duck_audit, missing_fix="run `dbt build --target dev`").query(
            "select 1", rationale="x")


def test_max_rows_truncates_and_says_so(db: Path, duck_audit: AuditLog) -> None:
    with DuckDBWarehouse(db, duck_audit) as wh:
        res = wh.query("select * from app.t", rationale="sample", max_rows=4)
    assert res.row_count == 4 and res.truncated


def test_secrets_never_reach_the_audit_log(db: Path, duck_audit: AuditLog) -> None:
    live: list = []
    duck_audit.sinks.append(live.append)
    with DuckDBWarehouse(db, duck_audit) as wh:
        wh.query("select 'x' as password_hint -- password='hunter2'", rationale="token=abc123secret")
    raw = stored_audit_text(duck_audit.store)
    assert "hunter2" not in raw and "abc123secret" not in raw
    assert "hunter2" not in live[0].statement


def test_dbt_can_keep_writing_while_the_agent_reads(db: Path, duck_audit: AuditLog) -> None:
    with DuckDBWarehouse(db, duck_audit) as wh:
        assert wh.query("select count(*) from app.t", rationale="before").scalar() == 10
    writer = duckdb.connect(str(db))
    writer.execute("insert into app.t values (99, 0)")
    writer.close()
    with DuckDBWarehouse(db, duck_audit) as wh:
        assert wh.query("select count(*) from app.t", rationale="after").scalar() == 11


def test_a_quote_in_the_path_is_a_path_not_sql(tmp_path: Path, duck_audit: AuditLog) -> None:
    """A ``'`` in a (spec's) DuckDB path is quoted by sqlglot: it opens that file, runs nothing else."""
    path = tmp_path / "it's'); copy (select 1) to 'pwned.csv"
    path.mkdir(parents=True)
    db = path / "o'brien.duckdb"
    con = duckdb.connect(str(db))
    con.execute("create table t as select 1 as id")
    con.close()
    holder = duckdb.connect(str(db), read_only=True, config={"threads": 1})  # forces the ATTACH fallback
    try:
        with DuckDBWarehouse(db, duck_audit) as wh:
            assert wh.query("select count(*) from t", rationale="quoted path").scalar() == 1
            with pytest.raises(duckdb.Error):
                wh._run("create table t2 as select 1", None)
    finally:
        holder.close()
    with DuckDBWarehouse(db, duck_audit) as wh:
        assert wh.query("select count(*) from t", rationale="read-only open").scalar() == 1
    assert duck_audit.store is not None
    setups = [e for e in read_audit(duck_audit.store, limit=None) if e.kind == "session_setup"]
    assert any("ATTACH '" in e.statement and "(READ_ONLY)" in e.statement for e in setups)
    assert not list(tmp_path.rglob("pwned.csv"))
