"""The hostile corpus (``fixtures/hostile_sql.yaml``): each statement's verdict, from the guard alone,
through the real hardened DuckDB session (and fakesnow for Snowflake), and with the guard bypassed."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import duckdb
import pytest
import yaml

from dagster_agent_de.adapters.audit import AuditLog
from dagster_agent_de.adapters.warehouse import DuckDBWarehouse
from dagster_agent_de.errors import StatementRefusedError
from dagster_agent_de.sql.guard import MAX_STATEMENT_CHARS, check_read_only
from dagster_agent_de_tests.helpers import duck

CORPUS: list[dict[str, Any]] = yaml.safe_load((Path(__file__).parent / "fixtures" / "hostile_sql.yaml").read_text())
DUCK = [c for c in CORPUS if c.get("dialect", "duckdb") == "duckdb"]
SNOW = [c for c in CORPUS if c.get("dialect") == "snowflake"]


def _id(case: dict[str, Any]) -> str:
    return f"{case.get('dialect', 'duckdb')}:{case['verdict']}:{case['sql'][:60]}"


def test_the_corpus_is_large_and_not_one_sided() -> None:
    assert len(CORPUS) >= 150
    allowed = [c for c in CORPUS if c["verdict"] == "allowed"]
    assert len(allowed) >= 40 and len(CORPUS) - len(allowed) >= 110
    assert all(c["verdict"] == "allowed" or c.get("reason") for c in CORPUS)


@pytest.mark.parametrize("case", CORPUS, ids=_id)
def test_guard_verdict(case: dict[str, Any]) -> None:
    dialect = case.get("dialect", "duckdb")
    if case["verdict"] == "allowed":
        check_read_only(case["sql"], dialect)
    else:
        with pytest.raises(StatementRefusedError) as refused:
            check_read_only(case["sql"], dialect)
        assert refused.value.reason == case["reason"], str(refused.value)


@pytest.fixture(scope="module")
def warehouse_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("hostile")
    (tmp / "x.csv").write_text("a\n1\n")  # files the statements name exist: a refusal is not "not found"
    return duck(
        tmp / "wh.duckdb",
        "create schema app",
        "create table app.customers as select range as id, 'user' || range || '@example.com' as email, "
        "'Name ' || range as full_name, case when range % 2 = 0 then 'FR' else 'DE' end as country from range(6)",
        "create table app.orders as select range as id, range % 6 as customer_id, (range * 7 % 50)::double as amount, "
        "case when range % 3 = 0 then 'paid' else 'open' end as status, timestamp '2024-01-01' + to_days(range::int) "
        "as created_at from range(20)",
    )


@pytest.fixture(scope="module")
def session(warehouse_file: Path):
    with DuckDBWarehouse(warehouse_file, AuditLog(None)) as wh:
        yield wh


@pytest.mark.parametrize("case", DUCK, ids=_id)
def test_verdict_through_the_duckdb_session(case: dict[str, Any], session: DuckDBWarehouse) -> None:
    """Allowed reads really run on the hardened session; refused ones never reach it."""
    if case["verdict"] == "allowed":
        session.query(case["sql"], rationale="hostile corpus")
    else:
        with pytest.raises(StatementRefusedError):
            session.query(case["sql"], rationale="hostile corpus")


BYPASS = [c for c in DUCK if c.get("bypass") == "error"]


@pytest.mark.parametrize("case", BYPASS, ids=_id)
def test_session_fails_it_even_when_the_guard_is_bypassed(case: dict[str, Any], warehouse_file: Path) -> None:
    """Defence in depth: the read-only, locked, no-external-access session refuses it by itself."""
    before = warehouse_file.stat().st_mtime_ns, sorted(p.name for p in warehouse_file.parent.iterdir())
    with DuckDBWarehouse(warehouse_file, AuditLog(None)) as wh:
        with pytest.raises(duckdb.Error):
            wh._run(case["sql"], None)
        assert wh._run("select count(*) from app.orders", None)[1] == [(20,)]
    assert (warehouse_file.stat().st_mtime_ns, sorted(p.name for p in warehouse_file.parent.iterdir())) == before


def test_bypassing_the_guard_cannot_reattach_copy_or_create_files(warehouse_file: Path) -> None:
    """DETACH plus a read-write ATTACH, COPY ... TO next to an allowed file, a new database file: all fail."""
    truth = warehouse_file.parent / "x.csv"
    with DuckDBWarehouse(warehouse_file, AuditLog(None)) as wh:
        wh.stage_file("truth", truth)  # the one file a spec named
        assert wh._run("select * from truth", None)[1] == [(1,)]
        for sql in (
            "detach wh",
            "use memory",
            f"attach '{warehouse_file}' as rw (read_only false)",
            f"attach '{warehouse_file.parent / 'new.duckdb'}' as fresh",
            f"copy (select * from app.customers) to '{warehouse_file.parent / 'leak.csv'}'",
            f"copy (select 1) to '{truth}' (use_tmp_file false)",
            f"copy (select 1) to '{truth.parent}/x2.csv'",
            f"select * from read_csv('{truth}')",  # staged by the adapter, not readable by queries
            "create table app.evil as select 1",
        ):
            with pytest.raises(duckdb.Error):
                wh._run(sql, None)
    assert sorted(p.name for p in warehouse_file.parent.iterdir()) == ["wh.duckdb", "x.csv"]
    assert truth.read_text() == "a\n1\n"


def test_a_ten_megabyte_statement_is_refused_before_parsing() -> None:
    sql = "select 1 as x" + " union all select 1" * (10_000_000 // 19)
    start = time.perf_counter()
    with pytest.raises(StatementRefusedError, match="split it") as refused:
        check_read_only(sql, "duckdb")
    elapsed = time.perf_counter() - start
    assert refused.value.reason == "too_large" and len(sql) > MAX_STATEMENT_CHARS
    assert elapsed < 1.0, f"the size cap must apply before parsing ({elapsed:.2f}s)"


def test_verdicts_under_fakesnow(tmp_path: Path) -> None:
    fakesnow = pytest.importorskip("fakesnow")
    from dagster_agent_de.adapters.warehouse.snowflake import SnowflakeWarehouse
    from dagster_agent_de_tests.test_snowflake import _fake_snowflake

    with fakesnow.patch():
        resource = _fake_snowflake(
            "SHOP", "APP", "create or replace table SHOP.APP.ORDERS (id int, amount number(10,2), status varchar)",
            "insert into SHOP.APP.ORDERS values (1, 10.5, 'paid'), (2, 3.25, 'open')",
        )
        with SnowflakeWarehouse.from_resource(resource, AuditLog(None)) as wh:
            for case in SNOW:
                if case["verdict"] == "allowed":
                    wh.query(case["sql"], rationale="hostile corpus")
                else:
                    with pytest.raises(StatementRefusedError):
                        wh.query(case["sql"], rationale="hostile corpus")
            assert wh.query("select count(*) from SHOP.APP.ORDERS", rationale="intact").scalar() == 2


def test_policy_allowed_writes_still_stay_in_the_warehouse(tmp_path: Path) -> None:
    """With writes allowed (autonomy policy), a write runs, but file, URL and session access are refused
    by the guard and by the hardened read-write session."""
    path = duck(tmp_path / "rw.duckdb", "create table t (a int)")
    with DuckDBWarehouse(path, AuditLog(None), read_only=False) as wh:
        wh.query("insert into t values (1)", rationale="allowed write", allow_write=True)
        assert wh.query("select count(*) from t", rationale="check").scalar() == 1
        for sql in (
            "insert into t select 1 from read_text('/etc/hostname')",
            f"copy t to '{tmp_path / 'out.csv'}'",
            "attach 'x.duckdb' as x",
            "install httpfs",
            "set enable_external_access = true",
            "create table u as select * from '/etc/passwd'",
        ):
            with pytest.raises(StatementRefusedError):
                wh.query(sql, rationale="write with a reach outside", allow_write=True)
        with pytest.raises(duckdb.Error):
            wh._run(f"copy t to '{tmp_path / 'out.csv'}'", None)
    assert not (tmp_path / "out.csv").exists()


@pytest.mark.parametrize("field, value", [
    ("compare", {"amount": {"against": "(select length(content) from read_blob('/proc/self/environ'))"}}),
    ("where_against", "status in (select content from read_text('/etc/hostname'))"),
    ("against", "'/etc/passwd'"),
])
def test_a_reconcile_spec_cannot_read_files(tmp_path: Path, field: str, value: object) -> None:
    """Spec expressions land in the agent's SQL, so they meet the guard (and the session) like any other."""
    from dagster_agent_de.engines.reconcile import ReconcileSpec, reconcile
    from dagster_agent_de.errors import AgentDEError
    from dagster_agent_de_tests.helpers import make_manifest

    path = duck(tmp_path / "wh.duckdb", "create table pipe as select 1 as id, 2.0 as amount, 'paid' as status",
                "create table truth as select 1 as id, 2.0 as amount, 'paid' as status")
    raw = {"name": "t", "model": "pipe", "against": "truth", "key": ["id"], "compare": {"amount": {}}, field: value}
    spec = ReconcileSpec.model_validate(raw)
    audit = AuditLog(None)
    with DuckDBWarehouse(path, audit) as wh, pytest.raises(AgentDEError):
        reconcile(spec, make_manifest({"pipe": '"wh"."main"."pipe"'}), wh)
    if field != "against":  # a path as `against` is not a relation: refused before any query
        assert any(e.outcome == "refused" and "outside the warehouse" in (e.error or "") for e in audit.events)
    assert not any(e.outcome == "ok" and ("read_blob" in e.statement or "read_text" in e.statement) for e in audit.events)
