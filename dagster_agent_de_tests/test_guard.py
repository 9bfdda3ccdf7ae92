from __future__ import annotations

import pytest

from dagster_agent_de.errors import StatementRefusedError
from dagster_agent_de.sql.guard import check_read_only, statement_kinds

WRITES = [
    "insert into t values (1)",
    "insert into t select * from s",
    "update t set a = 1",
    "delete from t where a = 1",
    "merge into t using s on t.id = s.id when matched then update set a = s.a",
    "create table x as select 1",
    "create or replace view v as select 1",
    "create temp table x (a int)",
    "drop table t",
    "alter table t add column b int",
    "alter table t rename column a to b",
    "copy t to 'out.csv'",
    "copy t from 'in.csv'",
    "attach 'other.duckdb' as o",
    "detach o",
    "truncate table t",
    "select 1; drop table t",
    "select 1; delete from t",
    "select 1;\n-- harmless\ninsert into t values (1)",
    "with x as (delete from t returning *) select * from x",
    "with x as (select 1) insert into t select * from x",
    "select * into t2 from t",
    "explain analyze delete from t",
    "install httpfs",
    "load httpfs",
    "set threads = 1",
    "pragma enable_profiling",
    "checkpoint",
    "call dbgen(sf = 1)",
    "grant select on t to public",
    "this is not sql",
    "",
]

READS = [
    "select 1",
    "SELECT a, count(*) FROM t GROUP BY a",
    "with a as (select 1 as x) select * from a",
    "select * from t union all select * from s",
    "describe t",
    "show tables",
    "explain select * from t",
    "select * from information_schema.columns where table_schema = 'app'",
    "(select 1) except (select 2)",
]


@pytest.mark.parametrize("sql", WRITES)
def test_refuses_every_write_form(sql: str) -> None:
    with pytest.raises(StatementRefusedError, match="refused"):
        check_read_only(sql, "duckdb")


@pytest.mark.parametrize("sql", READS)
def test_allows_reads(sql: str) -> None:
    check_read_only(sql, "duckdb")


@pytest.mark.parametrize("sql", ["insert into t values (1)", "select 1; drop table t", "create table x (a int)"])
def test_refuses_writes_in_snowflake_dialect(sql: str) -> None:
    with pytest.raises(StatementRefusedError):
        check_read_only(sql, "snowflake")


def test_message_names_the_offending_statement() -> None:
    with pytest.raises(StatementRefusedError, match="statement 2 of 2 is DROP"):
        check_read_only("select 1; drop table t", "duckdb")
    assert statement_kinds("select 1; drop table t", "duckdb") == ["SELECT", "DROP"]
