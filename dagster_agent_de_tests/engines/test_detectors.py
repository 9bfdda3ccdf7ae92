"""Each detector on constructed SQL and data: it fires when its pattern is there, and only then."""

from __future__ import annotations

from pathlib import Path

import pytest

from dagster_agent_de.adapters.audit import AuditLog
from dagster_agent_de.adapters.warehouse import DuckDBWarehouse
from dagster_agent_de.engines.investigate import Failure, investigate
from dagster_agent_de.engines.investigate.context import InvestigationContext
from dagster_agent_de.engines.investigate.detectors import (
    currency_mixing,
    duplicate_key,
    filter_row_drop,
    join_fanout,
    join_row_drop,
    null_semantics,
    stale_input,
    type_coercion,
)
from dagster_agent_de.manifest import Manifest
from dagster_agent_de_tests.helpers import duck


def project(tmp_path: Path, models: dict[str, str], data: list[str], *, sources: dict[str, dict] | None = None,
            tests: dict[str, list[str]] | None = None) -> tuple[Manifest, Path]:
    """A tiny dbt-like project: model files on disk, a manifest pointing at them, a DuckDB file."""
    db = duck(tmp_path / "wh.duckdb", "create schema raw", *data)
    (tmp_path / "models").mkdir(exist_ok=True)
    nodes = {}
    for name, sql in models.items():
        (tmp_path / "models" / f"{name}.sql").write_text(sql)
        nodes[f"model.p.{name}"] = {
            "name": name, "resource_type": "model", "relation_name": f'"wh"."main"."{name}"', "database": "wh",
            "schema": "main", "alias": name, "package_name": "p", "original_file_path": f"models/{name}.sql",
            "depends_on": {"nodes": []}, "columns": {},
        }
    for model, cols in (tests or {}).items():
        for col in cols:
            nodes[f"test.p.unique_{model}_{col}"] = {
                "name": f"unique_{model}_{col}", "resource_type": "test", "column_name": col,
                "test_metadata": {"name": "unique", "kwargs": {"column_name": col}},
                "depends_on": {"nodes": [f"model.p.{model}"]},
            }
    srcs = {}
    for name, extra in (sources or {}).items():
        srcs[f"source.p.raw.{name}"] = {
            "name": name, "source_name": "raw", "resource_type": "source", "relation_name": f'"wh"."raw"."{name}"',
            "database": "wh", "schema": "raw", "identifier": name, **extra,
        }
    manifest = Manifest({"nodes": nodes, "sources": srcs}, tmp_path)
    # materialize the models as views, so detectors can query them
    sqls = [f"create view main.{n} as {manifest.render(s)}" for n, s in models.items()]
    duck(db, *sqls)
    return manifest, db


def ctx_for(manifest: Manifest, db: Path, failure: Failure | None = None) -> InvestigationContext:
    return InvestigationContext(manifest, DuckDBWarehouse(db, AuditLog(None)), failure or Failure(asset="x"))


ORDERS = "create table raw.orders as select range as id, range % 10 as customer_id, 'USD' as currency, 10.0 as amount, case when range % 5 = 0 then null when range % 7 = 0 then 'cancelled' else 'ok' end as status from range(100)"
CUSTOMERS_ALL = "create table raw.customers as select range as customer_id, 'c' || range as email from range(10)"
CUSTOMERS_SOME = "create table raw.customers as select range as customer_id from range(3)"
SRC = {"orders": {}, "customers": {}}


def test_join_row_drop_fires_on_a_lossy_inner_join(tmp_path: Path) -> None:
    sql = ("select o.id from {{ source('raw', 'orders') }} o inner join {{ source('raw', 'customers') }} c "
           "on o.customer_id = c.customer_id")
    m, db = project(tmp_path, {"m": sql}, [ORDERS, CUSTOMERS_SOME], sources=SRC)
    (h,) = join_row_drop.detect(ctx_for(m, db, Failure(asset="m", metadata={"missing_pct": 70.0})), m.find("m"))
    assert "drops 70 of 100 rows" in h.summary and h.confidence > 0.9
    assert "left join {{ source('raw', 'customers') }}" in h.proposed_fix.diff


def test_join_row_drop_silent_when_every_row_matches_or_join_is_left(tmp_path: Path) -> None:
    inner = ("select o.id from {{ source('raw', 'orders') }} o join {{ source('raw', 'customers') }} c "
             "on o.customer_id = c.customer_id")
    left = inner.replace(" join ", " left join ").replace("left left", "left")
    m, db = project(tmp_path, {"a": inner}, [ORDERS, CUSTOMERS_ALL], sources=SRC)
    assert join_row_drop.detect(ctx_for(m, db), m.find("a")) == []
    m2, db2 = project(tmp_path / "2", {"b": left}, [ORDERS, CUSTOMERS_SOME], sources=SRC) if (tmp_path / "2").mkdir() is None else None
    assert join_row_drop.detect(ctx_for(m2, db2), m2.find("b")) == []


def test_join_row_drop_sees_a_left_join_turned_inner_by_where(tmp_path: Path) -> None:
    sql = ("select o.id from {{ source('raw', 'orders') }} o left join {{ source('raw', 'customers') }} c "
           "on o.customer_id = c.customer_id where c.customer_id > 0")
    m, db = project(tmp_path, {"m": sql}, [ORDERS, CUSTOMERS_SOME], sources=SRC)
    (h,) = join_row_drop.detect(ctx_for(m, db), m.find("m"))
    assert "LEFT join turned inner" in h.summary


def test_join_fanout(tmp_path: Path) -> None:
    dup = "create table raw.customers as select range % 10 as customer_id from range(20)"
    sql = "select o.id from {{ source('raw', 'orders') }} o join {{ source('raw', 'customers') }} c on o.customer_id = c.customer_id"
    m, db = project(tmp_path, {"m": sql}, [ORDERS, dup], sources=SRC)
    (h,) = join_fanout.detect(ctx_for(m, db), m.find("m"))
    assert "up to 2x per key" in h.summary
    (tmp_path / "n").mkdir()
    m2, db2 = project(tmp_path / "n", {"m": sql}, [ORDERS, CUSTOMERS_ALL], sources=SRC)
    assert join_fanout.detect(ctx_for(m2, db2), m2.find("m")) == []


def test_null_semantics_not_equal_drops_nulls(tmp_path: Path) -> None:
    sql = "select id from {{ source('raw', 'orders') }} where status <> 'cancelled'"
    m, db = project(tmp_path, {"m": sql}, [ORDERS], sources={"orders": {}})
    (h,) = null_semantics.detect(ctx_for(m, db, Failure(asset="m", metadata={"missing_pct": 20.0})), m.find("m"))
    assert "20 rows" in h.summary and h.columns == ["status"]
    assert "status is distinct from 'cancelled'" in h.proposed_fix.diff


def test_null_semantics_silent_without_nulls_or_with_equality(tmp_path: Path) -> None:
    no_nulls = "create table raw.orders as select range as id, 'ok' as status from range(10)"
    sql = "select id from {{ source('raw', 'orders') }} where status <> 'cancelled'"
    m, db = project(tmp_path, {"m": sql}, [no_nulls], sources={"orders": {}})
    assert null_semantics.detect(ctx_for(m, db), m.find("m")) == []
    (tmp_path / "eq").mkdir()
    m2, db2 = project(tmp_path / "eq", {"m": "select id from {{ source('raw', 'orders') }} where status = 'ok'"},
                      [ORDERS], sources={"orders": {}})
    assert null_semantics.detect(ctx_for(m2, db2), m2.find("m")) == []


def test_count_column_vs_count_star(tmp_path: Path) -> None:
    sql = "select count(status) as n from {{ source('raw', 'orders') }}"
    m, db = project(tmp_path, {"m": sql}, [ORDERS], sources={"orders": {}})
    (h,) = null_semantics.detect(ctx_for(m, db), m.find("m"))
    assert "COUNT(status)" in h.summary and "20 NULL" in h.summary


def test_currency_mixing(tmp_path: Path) -> None:
    multi = ("create table raw.orders as select range as id, ['USD','EUR'][1 + range % 2] as currency, "
             "10.0 as amount, date '2026-01-01' as d from range(10)")
    bad = "select d, sum(amount) as revenue_usd from {{ source('raw', 'orders') }} group by d"
    m, db = project(tmp_path, {"m": bad}, [multi], sources={"orders": {}})
    (h,) = currency_mixing.detect(ctx_for(m, db), m.find("m"))
    assert "2 currencies" in h.summary
    (tmp_path / "ok").mkdir()
    fine = "select d, currency, sum(amount) as revenue from {{ source('raw', 'orders') }} group by d, currency"
    m2, db2 = project(tmp_path / "ok", {"m": fine}, [multi], sources={"orders": {}})
    assert currency_mixing.detect(ctx_for(m2, db2), m2.find("m")) == []
    (tmp_path / "one").mkdir()
    single = multi.replace("['USD','EUR'][1 + range % 2]", "'USD'")
    m3, db3 = project(tmp_path / "one", {"m": bad}, [single], sources={"orders": {}})
    assert currency_mixing.detect(ctx_for(m3, db3), m3.find("m")) == []  # one currency: nothing mixed


@pytest.mark.parametrize("placement", ["config", "property"])
def test_duplicate_key_traced_to_the_source(tmp_path: Path, placement: str) -> None:
    dup = "create table raw.charges as select (range % 8) as id, 1.0 as amount, now() as _loaded_at from range(10)"
    sql = "select id as charge_id, amount from {{ source('raw', 'charges') }}"
    m, db = project(tmp_path, {"stg": sql}, [dup], sources={"charges": _placed(placement, {"loaded_at_field": "_loaded_at"})},
                    tests={"stg": ["charge_id"]})
    (h,) = duplicate_key.detect(ctx_for(m, db, Failure(asset="stg", check="unique_stg_charge_id")), m.find("stg"))
    assert "2 values of charge_id" in h.summary and "raw.charges.id" in h.summary and h.confidence == 0.9
    assert "qualify row_number() over (partition by id order by _loaded_at desc) = 1" in h.proposed_fix.diff
    (tmp_path / "u").mkdir()
    uniq = "create table raw.charges as select range as id, 1.0 as amount, now() as _loaded_at from range(10)"
    m2, db2 = project(tmp_path / "u", {"stg": sql}, [uniq], sources={"charges": {"loaded_at_field": "_loaded_at"}},
                      tests={"stg": ["charge_id"]})
    assert duplicate_key.detect(ctx_for(m2, db2), m2.find("stg")) == []


def test_type_coercion_failed_casts(tmp_path: Path) -> None:
    data = "create table raw.t as select * from (values ('1'), ('2'), ('x'), (null)) v(code)"
    m, db = project(tmp_path, {"m": "select try_cast(code as integer) as code from {{ source('raw', 't') }}"},
                    [data], sources={"t": {}})
    (h,) = type_coercion.detect(ctx_for(m, db), m.find("m"))
    assert "1 values cannot be cast" in h.summary and "TRY_CAST" in h.summary
    (tmp_path / "ok").mkdir()
    clean = "create table raw.t as select * from (values ('1'), ('2')) v(code)"
    m2, db2 = project(tmp_path / "ok", {"m": "select cast(code as integer) as code from {{ source('raw', 't') }}"},
                      [clean], sources={"t": {}})
    assert type_coercion.detect(ctx_for(m2, db2), m2.find("m")) == []


def test_type_coercion_that_explains_a_reconciliations_mismatched_column(tmp_path: Path) -> None:
    """A truncating cast whose output is the column a reconciliation found mismatched, on about as many
    rows, is the cause (not a 45% aside); values the cast keeps equal (10.0 -> 10) are not counted as changed."""
    data = "create table raw.t as select range as id, 1000 + range * 7 as amount_cents from range(1, 201)"
    sql = "select id, cast(amount_cents / 100 as integer) as amount from {{ source('raw', 't') }}"
    m, db = project(tmp_path, {"m": sql}, [data], sources={"t": {}})
    failure = Failure(asset="m", check="m_vs_t", kind="reconciliation",
                      metadata={"missing_pct": 0.0, "extra_pct": 0.0, "mismatched_pct": 98.0, "mismatched_columns": ["amount"]})
    (h,) = type_coercion.detect(ctx_for(m, db, failure), m.find("m"))
    assert "198 values lose precision" in h.summary, h.summary  # 1700 and 2400 cents cast without loss
    assert h.confidence >= 0.85
    other = Failure(asset="m", check="m_vs_t", kind="reconciliation",
                    metadata={"missing_pct": 0.0, "extra_pct": 0.0, "mismatched_pct": 98.0, "mismatched_columns": ["id"]})
    (h2,) = type_coercion.detect(ctx_for(m, db, other), m.find("m"))
    assert h2.confidence < 0.5  # a cast of another column explains nothing here


def test_type_coercion_string_vs_number_join_keys(tmp_path: Path) -> None:
    data = ["create table raw.a as select range as id from range(3)", "create table raw.b as select range::varchar as id from range(3)"]
    sql = "select a.id from {{ source('raw', 'a') }} a join {{ source('raw', 'b') }} b on a.id = b.id"
    m, db = project(tmp_path, {"m": "select 1 as x"}, data, sources={"a": {}, "b": {}})
    (tmp_path / "models" / "m.sql").write_text(sql)
    hs = type_coercion.detect(ctx_for(m, db), m.find("m"))
    assert any("BIGINT" in h.summary and "VARCHAR" in h.summary for h in hs)


def _placed(placement: str, props: dict) -> dict:
    """Source properties as dbt 1.10+ wants them (under ``config:``) or as older projects have them."""
    return {"config": props} if placement == "config" else props


@pytest.mark.parametrize("placement", ["config", "property"])
def test_stale_input(tmp_path: Path, placement: str) -> None:
    old = "create table raw.t as select 1 as x, timestamp '2020-01-01' as _loaded_at"
    fresh = _placed(placement, {"loaded_at_field": "_loaded_at", "freshness": {"error_after": {"count": 24, "period": "hour"}}})
    m, db = project(tmp_path, {}, [old], sources={"t": fresh})
    (h,) = stale_input.detect(ctx_for(m, db), m.find("raw.t"))
    assert "last loaded" in h.summary
    (tmp_path / "f").mkdir()
    m2, db2 = project(tmp_path / "f", {}, ["create table raw.t as select 1 as x, now()::timestamp as _loaded_at"], sources={"t": fresh})
    assert stale_input.detect(ctx_for(m2, db2), m2.find("raw.t")) == []
    (tmp_path / "e").mkdir()
    m3, db3 = project(tmp_path / "e", {}, ["create table raw.t (x integer, _loaded_at timestamp)"], sources={"t": fresh})
    (h3,) = stale_input.detect(ctx_for(m3, db3), m3.find("raw.t"))
    assert "is empty" in h3.summary
    (tmp_path / "l").mkdir()  # 48 h old: stale by the default 24 h, fresh by the declared 72 h
    lenient = _placed(placement, {"loaded_at_field": "_loaded_at", "freshness": {"error_after": {"count": 3, "period": "day"}}})
    two_days = "create table raw.t as select 1 as x, (now() - interval 48 hour)::timestamp as _loaded_at"
    m4, db4 = project(tmp_path / "l", {}, [two_days], sources={"t": lenient})
    assert stale_input.detect(ctx_for(m4, db4), m4.find("raw.t")) == []
    (tmp_path / "d").mkdir()  # no freshness declared: the default 24 h
    m5, db5 = project(tmp_path / "d", {}, [two_days], sources={"t": _placed(placement, {"loaded_at_field": "_loaded_at"})})
    (h5,) = stale_input.detect(ctx_for(m5, db5), m5.find("raw.t"))
    assert "freshness limit 24 h" in h5.summary


def test_filter_row_drop(tmp_path: Path) -> None:
    m, db = project(tmp_path, {"m": "select id from {{ source('raw', 'orders') }} where amount > 100"}, [ORDERS],
                    sources={"orders": {}})
    (h,) = filter_row_drop.detect(ctx_for(m, db, Failure(asset="m", metadata={"missing_pct": 100.0})), m.find("m"))
    assert "removes 100 of 100 rows" in h.summary
    (tmp_path / "k").mkdir()
    m2, db2 = project(tmp_path / "k", {"m": "select id from {{ source('raw', 'orders') }} where amount > 1"}, [ORDERS],
                      sources={"orders": {}})
    assert filter_row_drop.detect(ctx_for(m2, db2), m2.find("m")) == []


def test_unparseable_sql_is_skipped_and_said(tmp_path: Path) -> None:
    m, db = project(tmp_path, {"m": "select id from {{ source('raw', 'orders') }}"}, [ORDERS], sources={"orders": {}})
    (tmp_path / "models" / "m.sql").write_text("select id from {{ source('raw', 'orders') }} where (((")
    report = investigate(Failure(asset="m"), m, DuckDBWarehouse(db, AuditLog(None)))
    assert any("SQL detectors skipped for m" in n for n in report.notes)
    assert report.findings[0].pattern == "unexplained"


def test_nothing_explains_means_unexplained_not_invented(tmp_path: Path) -> None:
    m, db = project(tmp_path, {"m": "select id from {{ source('raw', 'orders') }}"}, [ORDERS], sources={"orders": {}})
    report = investigate(Failure(asset="m", check="c"), m, DuckDBWarehouse(db, AuditLog(None)))
    top = report.findings[0]
    assert top.pattern == "unexplained" and top.confidence == 0.0 and "Ruled out" in top.summary


def test_a_query_that_fails_marks_the_hypothesis_unverified(tmp_path: Path) -> None:
    sql = ("select o.id from {{ source('raw', 'orders') }} o inner join {{ source('raw', 'customers') }} c "
           "on o.customer_id = c.customer_id")
    m, db = project(tmp_path, {"m": sql}, [ORDERS, CUSTOMERS_SOME], sources=SRC)
    duck(db, "drop table raw.customers")  # gone since the failure
    (h,) = join_row_drop.detect(ctx_for(m, db), m.find("m"))
    assert not h.verified and "query failed" in h.evidence[0].result_summary


def test_a_deleted_model_is_reported(tmp_path: Path) -> None:
    m, db = project(tmp_path, {"m": "select 1 as x"}, [ORDERS], sources={"orders": {}})
    report = investigate(Failure(asset="gone_model"), m, DuckDBWarehouse(db, AuditLog(None)))
    assert "not in the dbt manifest" in report.findings[0].summary


def test_context_rule_suppresses_a_known_business_rule(tmp_path: Path) -> None:
    from dagster_agent_de.engines.escalate.context_store import ContextRule

    sql = "select id from {{ source('raw', 'orders') }} where status <> 'cancelled'"
    m, db = project(tmp_path, {"m": sql}, [ORDERS], sources={"orders": {}})
    rule = ContextRule(id="R-1", rule="orders without status are test orders and are excluded on purpose",
                       applies_to=["m.status"], suppresses=["null_semantics"])
    plain = investigate(Failure(asset="m", metadata={"missing_pct": 20.0}), m, DuckDBWarehouse(db, AuditLog(None)))
    assert plain.findings[0].pattern == "null_semantics"
    ruled = investigate(Failure(asset="m", metadata={"missing_pct": 20.0}), m, DuckDBWarehouse(db, AuditLog(None)), rules=[rule])
    cited = [f for f in ruled.findings if f.cited_rules]
    assert cited and cited[0].cited_rules == ["R-1"] and "R-1" in cited[0].summary
    assert ruled.findings[0].pattern != "null_semantics"


@pytest.mark.parametrize("where", [
    "coalesce(status not in ('cancelled'), true)",  # the detector's own fix, applied
    "(status <> 'cancelled') is not false",
    "status is distinct from 'cancelled'",
    "(status <> 'cancelled' or status is null)",
    "coalesce(status, '') <> 'cancelled'",
])
def test_null_semantics_silent_when_the_filter_keeps_null_rows(tmp_path: Path, where: str) -> None:
    """A predicate wrapped so NULL becomes true keeps the NULL rows: nothing to report (the probe's
    `coalesce(order_state not in ('cancelled'), true)` was still said to drop them, at 95%)."""
    sql = f"select id from {{{{ source('raw', 'orders') }}}} where {where}"
    m, db = project(tmp_path, {"m": sql}, [ORDERS], sources={"orders": {}})
    assert null_semantics.detect(ctx_for(m, db, Failure(asset="m", metadata={"missing_pct": 20.0})), m.find("m")) == []


def test_null_semantics_proposed_fix_applied_is_not_flagged_again(tmp_path: Path) -> None:
    from dagster_agent_de.engines.investigate.fixes import apply_diff

    sql = "with o as (\n    select * from {{ source('raw', 'orders') }}\n)\nselect id from o\nwhere status not in ('cancelled')\n"
    m, db = project(tmp_path, {"m": sql}, [ORDERS], sources={"orders": {}})
    failure = Failure(asset="m", metadata={"missing_pct": 20.0})
    (h,) = null_semantics.detect(ctx_for(m, db, failure), m.find("m"))
    apply_diff(m, h.proposed_fix)
    assert "coalesce(status not in ('cancelled'), true)" in (tmp_path / "models" / "m.sql").read_text()
    assert null_semantics.detect(ctx_for(m, db, failure), m.find("m")) == []


def test_a_row_dropping_filter_is_not_the_cause_of_a_uniqueness_failure(tmp_path: Path) -> None:
    """The probe's ranking: `unique_fct_orders_order_id` "explained" by a filter dropping NULL rows at 75%.
    Dropping rows cannot repeat a key: the filter is named in a note, never ranked; what can (a join that
    fans out) still is."""
    sql = ("select o.id, c.email from {{ source('raw', 'orders') }} o left join {{ source('raw', 'customers') }} c "
           "on o.customer_id = c.customer_id where o.status <> 'cancelled'")
    m, db = project(tmp_path, {"m": sql}, [ORDERS, CUSTOMERS_ALL], sources=SRC, tests={"m": ["id"]})
    wh = DuckDBWarehouse(db, AuditLog(None))
    failure = Failure(asset="m", check="unique_m_id", kind="dbt_test", metadata={"missing_pct": 20.0})
    report = investigate(failure, m, wh)
    assert report.findings[0].pattern == "unexplained", report.findings[0]
    assert not {"null_semantics", "filter_row_drop"} & {f.pattern for f in report.findings}
    note = next(n for n in report.notes if n.startswith("not ranked as a cause"))
    assert "null_semantics in m" in note and "duplicate keys" in note and "unique_m_id" in note
    assert "null_semantics" not in report.findings[0].summary  # not "ruled out" either: found, but unfit
    # the same filter still explains a reconciliation's missing rows
    recon = investigate(Failure(asset="m", check="m_vs_x", kind="reconciliation", metadata={"missing_pct": 20.0}), m, wh)
    assert recon.findings[0].pattern == "null_semantics"
    wh.close()
    # and a join that fans out still explains the duplicates
    duck(db, "create or replace table raw.customers as select range % 10 as customer_id, 'e' as email from range(20)")
    with DuckDBWarehouse(db, AuditLog(None)) as wh2:
        assert investigate(failure, m, wh2).findings[0].pattern == "join_fanout"


def test_for_a_not_null_failure_rows_dropped_or_repeated_are_not_causes(tmp_path: Path) -> None:
    from dagster_agent_de.engines.investigate.failure import failure_symptom

    sql = ("select o.id, c.email from {{ source('raw', 'orders') }} o left join {{ source('raw', 'customers') }} c "
           "on o.customer_id = c.customer_id where o.status <> 'cancelled'")
    dup = "create table raw.customers as select range % 3 as customer_id, 'e' as email from range(6)"
    m, db = project(tmp_path, {"m": sql}, [ORDERS, dup], sources=SRC)
    m.data["nodes"]["test.p.not_null_m_email"] = {
        "name": "not_null_m_email", "resource_type": "test", "column_name": "email",
        "test_metadata": {"name": "not_null", "kwargs": {"column_name": "email"}}, "depends_on": {"nodes": ["model.p.m"]}}
    failure = Failure(asset="m", check="not_null_m_email", kind="dbt_test")
    assert failure_symptom(m, failure) == "nulls"
    report = investigate(failure, m, DuckDBWarehouse(db, AuditLog(None)))
    patterns = [f.pattern for f in report.findings]
    assert patterns[0] == "unmatched_left_join", patterns
    assert not {"null_semantics", "filter_row_drop", "join_fanout"} & set(patterns)
    assert any("join_fanout in m" in n and "NULLs" in n for n in report.notes)


def test_a_dbt_test_that_passes_now_says_so_first_and_asks_nothing(tmp_path: Path, state_store) -> None:
    """The sensor investigated an earlier run's failure after the data was fixed: the test's compiled SQL,
    run again, returns no row, so the report says so first and raises no escalation from its findings."""
    from dagster_agent_de.engines.escalate.policy import Policy
    from dagster_agent_de.engines.investigate.workflow import escalate_finding, investigate_failure

    sql = "select id, status from {{ source('raw', 'orders') }} where status <> 'cancelled'"
    m, db = project(tmp_path, {"m": sql}, [ORDERS], sources={"orders": {}})
    m.data["nodes"]["test.p.assert_m_ok"] = {
        "name": "assert_m_ok", "resource_type": "test", "package_name": "p", "path": "assert_m_ok.sql",
        "original_file_path": "tests/assert_m_ok.sql", "depends_on": {"nodes": ["model.p.m"]},
        "compiled_code": 'select * from "wh"."main"."m" where id < 0',  # fixed: no failing row now
    }
    recorded = {"failures": 3}  # what the earlier run's evaluation recorded
    with DuckDBWarehouse(db, AuditLog(None)) as wh:
        done = investigate_failure(m, wh, state_store, asset="m", check="assert_m_ok", project_dir=tmp_path,
                                   state_dir=tmp_path / "state", metadata=recorded)
    assert done.passes_now and done.failure.metadata["failing_rows_now"] == 0
    assert done.report.notes[0].startswith("assert_m_ok passes now"), done.report.notes
    assert done.report.findings[0].needs_context  # the library still sees the NULL filter ...
    esc = escalate_finding(state_store, m, done.report, Policy(), check="assert_m_ok", passes_now=done.passes_now)
    assert esc.raised == [] and state_store.escalations() == []  # ... but asks nothing about it

    # the newest compiled file under target/ wins over the manifest's compiled_code: it still fails
    compiled = tmp_path / "target" / "compiled" / "p" / "tests" / "assert_m_ok.sql"
    compiled.parent.mkdir(parents=True)
    compiled.write_text('select * from "wh"."main"."m" where id % 2 = 0\n')
    with DuckDBWarehouse(db, AuditLog(None)) as wh:
        failing = investigate_failure(m, wh, state_store, asset="m", check="assert_m_ok", project_dir=tmp_path,
                                      state_dir=tmp_path / "state", metadata=recorded)
    assert not failing.passes_now and failing.failure.metadata["failing_rows_now"] > 0
    assert not any("passes now" in n for n in failing.report.notes)
    raised = escalate_finding(state_store, m, failing.report, Policy(), check="assert_m_ok",
                              passes_now=failing.passes_now).raised
    assert raised  # a failing test's finding does ask


@pytest.mark.parametrize("load_col", ["_fivetran_synced", "updated_at"])
def test_duplicate_key_dedupe_orders_by_the_load_time_column_it_finds(tmp_path: Path, load_col: str) -> None:
    """No loaded_at_field declared, but the source has a load-time column: the dedupe keeps the latest by it."""
    dup = f"create table raw.charges as select (range % 8) as id, now() as {load_col}, now() as created_at from range(10)"
    sql = "with source as (\n    select * from {{ source('raw', 'charges') }}\n)\nselect id as charge_id from source\n"
    m, db = project(tmp_path, {"stg": sql}, [dup], sources={"charges": {}}, tests={"stg": ["charge_id"]})
    (h,) = duplicate_key.detect(ctx_for(m, db, Failure(asset="stg", check="unique_stg_charge_id")), m.find("stg"))
    assert f"+    qualify row_number() over (partition by id order by {load_col} desc) = 1" in h.proposed_fix.diff
    assert f"the latest load by {load_col}" in h.proposed_fix.description and h.needs_business_context is None


def test_duplicate_key_without_a_load_time_column_says_the_kept_copy_is_arbitrary(tmp_path: Path) -> None:
    """The probe's fix: `order by 1 desc` while claiming to keep "the latest load". With nothing to order by
    the fix says the copy is arbitrary (no ORDER BY pretending otherwise) and asks which one to keep."""
    dup = "create table raw.charges as select (range % 8) as id, 1.0 as amount, now() as created_at from range(10)"
    sql = "with source as (\n    select * from {{ source('raw', 'charges') }}\n)\nselect id as charge_id from source\n"
    m, db = project(tmp_path, {"stg": sql}, [dup], sources={"charges": {}}, tests={"stg": ["charge_id"]})
    (h,) = duplicate_key.detect(ctx_for(m, db, Failure(asset="stg", check="unique_stg_charge_id")), m.find("stg"))
    fix = h.proposed_fix
    assert "+    qualify row_number() over (partition by id) = 1" in fix.diff and "order by" not in fix.diff
    assert "latest" not in fix.description.split("Which copy")[0] and "arbitrary" in fix.description
    assert h.needs_business_context and "which one should stg keep" in h.needs_business_context


def test_a_null_filter_feeding_an_incremental_model_says_what_its_count_covers_and_that_a_full_refresh_is_needed(
        tmp_path: Path) -> None:
    """The probe: the NULL count (312) was over the whole view while the incremental model's new batch lost 35,
    and the fix did not say the rows already excluded come back only with a full refresh."""
    stg = "select id, status from {{ source('raw', 'orders') }} where status <> 'cancelled'"
    fct = "select * from {{ ref('stg') }}"
    m, db = project(tmp_path, {"stg": stg, "fct": fct}, [ORDERS], sources={"orders": {}})
    m.data["nodes"]["model.p.stg"].update(config={"materialized": "view"}, depends_on={"nodes": ["source.p.raw.orders"]})
    m.data["nodes"]["model.p.fct"].update(config={"materialized": "incremental"}, depends_on={"nodes": ["model.p.stg"]})
    m = Manifest(m.data, tmp_path)
    failure = Failure(asset="fct", check="fct_vs_ledger", kind="reconciliation", metadata={"missing_pct": 2.0})
    (h,) = null_semantics.detect(ctx_for(m, db, failure), m.find("stg"))
    assert "fct is incremental: the count is over every row entering the filter now" in h.summary
    assert "`dbt build --full-refresh -s fct`" in h.proposed_fix.description and h.proposed_fix.diff
    (f,) = filter_row_drop.detect(ctx_for(m, db, failure), m.find("stg"))
    assert "--full-refresh -s fct" in f.proposed_fix.description
    # a table downstream, not incremental: nothing to say
    m.data["nodes"]["model.p.fct"]["config"] = {"materialized": "table"}
    (h2,) = null_semantics.detect(ctx_for(Manifest(m.data, tmp_path), db, failure), m.find("stg"))
    assert "incremental" not in h2.summary and "full-refresh" not in h2.proposed_fix.description


def _incremental_project(tmp_path: Path, fct: str) -> tuple[Manifest, Path]:
    """``stg`` over raw.orders (an ``ordered_at`` per id) and ``fct``, an incremental model whose table holds the
    rows with id < 90 (loaded by earlier runs); its model file is ``fct`` (with its ``is_incremental()`` block)."""
    stg = "select id, status, date '2026-01-01' + cast(id as integer) as ordered_at from {{ source('raw', 'orders') }}"
    m, db = project(tmp_path, {"stg": stg, "fct": "select * from {{ ref('stg') }}"}, [ORDERS], sources={"orders": {}})
    duck(db, "drop view main.fct", "create table main.fct as select * from main.stg where id < 90")
    (tmp_path / "models" / "fct.sql").write_text(fct)
    m.data["nodes"]["model.p.stg"].update(config={"materialized": "view"}, depends_on={"nodes": ["source.p.raw.orders"]})
    m.data["nodes"]["model.p.fct"].update(config={"materialized": "incremental"}, depends_on={"nodes": ["model.p.stg"]})
    return Manifest(m.data, tmp_path), db


def test_the_incremental_cut_off_is_measured_apart_and_named_not_nested_in_an_aggregate(tmp_path: Path) -> None:
    """The probe on an incremental model: `where ordered_at > (select max(ordered_at) from {{ this }})` was put
    into `sum(case when ...)` and the query failed ("aggregate function calls cannot be nested")."""
    fct = ("{{ config(materialized='incremental') }}\nselect * from {{ ref('stg') }}\nwhere id % 10 <> 0\n"
           "{% if is_incremental() %}\n  and ordered_at > (select max(ordered_at) from {{ this }})\n{% endif %}\n")
    m, db = _incremental_project(tmp_path, fct)
    assert "(select max(ordered_at) from \"wh\".\"main\".\"fct\")" in m.compiled_sql("model.p.fct")
    ctx = ctx_for(m, db, Failure(asset="fct", check="fct_vs_ledger", kind="reconciliation", metadata={"missing_pct": 10.0}))
    found = filter_row_drop.detect(ctx, m.find("fct"))
    assert ctx.query_failures == []
    business, cutoff = sorted(found, key=lambda h: "cut-off" in h.summary)
    assert "removes 10 of 100 rows" in business.summary and "ordered_at" not in business.summary.split(" in fct")[0]
    assert "incremental cut-off" in cutoff.summary and "not a business filter" in cutoff.summary
    assert "keeps the 9 rows newer than the latest already in fct" in cutoff.summary, cutoff.summary
    assert "of the 90 rows entering it now" in cutoff.summary and "{" not in cutoff.summary, cutoff.summary
    assert cutoff.confidence < business.confidence
    # the cut-off (a subquery) is counted with the predicate in a WHERE, never inside an aggregate
    assert "sum(" not in cutoff.evidence[0].statement.lower() and "where" in cutoff.evidence[0].statement.lower()
    # the whole investigation: no query of the agent failed
    report = investigate(ctx.failure, m, DuckDBWarehouse(db, AuditLog(None)))
    assert not any("a query of the agent failed" in n for n in report.notes), report.notes


def test_a_full_refresh_compiles_no_incremental_filter(tmp_path: Path) -> None:
    fct = "select * from {{ ref('stg') }}\n{% if is_incremental() %}where ordered_at > (select max(ordered_at) from {{ this }}){% endif %}"
    m, db = _incremental_project(tmp_path, fct)
    m.data["nodes"]["model.p.fct"]["config"] = {"materialized": "table"}
    assert "max(ordered_at)" not in (Manifest(m.data, tmp_path).compiled_sql("model.p.fct") or "")


RECORDED_RECONCILIATION = {"missing_pct": 20.0, "missing_in_pipeline": 20, "matched": 69, "rows_truth": 89}
"""What Dagster recorded for ``m_vs_ledger`` when it failed (an earlier run)."""


def reconciled_project(tmp_path: Path) -> tuple[Manifest, Path]:
    """``m`` (a filter dropping the NULL-status orders) with the spec ``m_vs_ledger`` against raw.ledger, which
    holds exactly m's ids now (the reconciliation passes)."""
    sql = "select id, status from {{ source('raw', 'orders') }} where status <> 'cancelled'"
    ledger = "create table raw.ledger as select id from raw.orders where status <> 'cancelled'"
    m, db = project(tmp_path, {"m": sql}, [ORDERS, ledger], sources={"orders": {}, "ledger": {}})
    m.data["nodes"]["model.p.m"]["config"] = {"meta": {"agent_de": {"reconcile": [
        {"name": "m_vs_ledger", "against": "source('raw', 'ledger')", "key": ["id"]}]}}}
    return Manifest(m.data, tmp_path), db


def test_a_recorded_reconciliation_failure_is_measured_again_and_when_it_passes_now_asks_nothing(
        tmp_path: Path, state_store) -> None:
    """The sensor investigated an earlier run's failed reconciliation with the numbers Dagster recorded: the data
    was fixed since, yet the report explained the old failure and raised escalations. Measured again first."""
    from dagster_agent_de.engines.escalate.policy import Policy
    from dagster_agent_de.engines.investigate.workflow import escalate_finding, investigate_failure

    m, db = reconciled_project(tmp_path)
    recorded = RECORDED_RECONCILIATION

    def run() -> tuple:
        with DuckDBWarehouse(db, AuditLog(None)) as wh:
            done = investigate_failure(m, wh, state_store, asset="m", check="m_vs_ledger", project_dir=tmp_path,
                                       state_dir=tmp_path / "state", metadata=recorded)
        return done, escalate_finding(state_store, m, done.report, Policy(), check="m_vs_ledger",
                                      passes_now=done.passes_now)

    done, esc = run()
    assert done.passes_now and done.failure.metadata["missing_in_pipeline"] == 0
    assert done.report.notes[0].startswith("m_vs_ledger passes now"), done.report.notes
    assert sum("passes now" in n for n in done.report.notes) == 1
    assert esc.raised == [] and state_store.escalations() == []
    # still failing now: investigated on the recorded numbers, and its finding asks
    duck(db, "create or replace table raw.ledger as select id from raw.orders")
    failing, esc2 = run()
    assert not failing.passes_now and failing.failure.metadata["missing_pct"] == 20.0
    assert not any("passes now" in n for n in failing.report.notes)
    assert failing.report.findings[0].pattern == "null_semantics" and esc2.raised


def test_duplicates_upstream_are_top_only_when_they_are_the_failing_columns_origin(tmp_path: Path) -> None:
    """The probe: `unique_fct_id` failed because int joins stg_customers, whose customer_id holds duplicates;
    duplicate_key said 90% for those duplicates (any check named unique*), above the join that fans fct out."""
    dup = "create table raw.customers as select range % 10 as customer_id, 'e' as email from range(20)"
    stg_c = "select customer_id, email from {{ source('raw', 'customers') }}"
    inter = "select o.id, o.customer_id, c.email from {{ source('raw', 'orders') }} o join {{ ref('stg_c') }} c on o.customer_id = c.customer_id"
    m, db = project(tmp_path, {"stg_c": stg_c, "inter": inter, "fct": "select id, customer_id, email from {{ ref('inter') }}",
                               "dim": "select customer_id, email from {{ ref('stg_c') }}"},
                    [ORDERS, dup], sources=SRC, tests={"stg_c": ["customer_id"], "fct": ["id"], "dim": ["customer_id"]})
    deps = {"stg_c": ["source.p.raw.customers"], "inter": ["source.p.raw.orders", "model.p.stg_c"],
            "fct": ["model.p.inter"], "dim": ["model.p.stg_c"]}
    for name, parents in deps.items():
        m.data["nodes"][f"model.p.{name}"]["depends_on"] = {"nodes": parents}
    m = Manifest(m.data, tmp_path)
    fct_fails = Failure(asset="fct", check="unique_fct_id", kind="dbt_test")
    (h,) = duplicate_key.detect(ctx_for(m, db, fct_fails), m.find("stg_c"))
    assert h.confidence < 0.65, h  # fct.id does not come from stg_c.customer_id: it fans out through a join
    report = investigate(fct_fails, m, DuckDBWarehouse(db, AuditLog(None)))
    assert (report.findings[0].pattern, report.findings[0].model) == ("join_fanout", "inter"), report.findings[:2]
    # the failing column is (a copy of) the duplicated key: the duplicates are the cause
    dim_fails = Failure(asset="dim", check="unique_dim_customer_id", kind="dbt_test")
    (h2,) = duplicate_key.detect(ctx_for(m, db, dim_fails), m.find("stg_c"))
    assert h2.confidence == 0.9


def test_a_dbt_test_named_like_a_packages_test_is_the_one_on_the_failing_asset(tmp_path: Path) -> None:
    """A package has its own `orders` model with a `unique_orders_id` test (Dagster names checks by the test's name
    under each asset): the failure of the project's test is measured with the project's test, never the package's
    (which passes and said the project's 'passes now')."""
    from dagster_agent_de.engines.investigate.failure import dbt_test_now, failure_from_check

    sql = "select id, status from {{ source('raw', 'orders') }}"
    m, db = project(tmp_path, {"m": sql}, [ORDERS], sources={"orders": {}})
    common = {"name": "unique_m_id", "resource_type": "test", "path": "unique_m_id.sql",
              "original_file_path": "models/schema.yml", "column_name": "id",
              "test_metadata": {"name": "unique", "kwargs": {"column_name": "id"}}}
    m.data["nodes"] = {
        "test.pkg.unique_m_id.1": {**common, "package_name": "pkg", "attached_node": "model.pkg.m",
                                   "depends_on": {"nodes": ["model.pkg.m"]}, "compiled_code": "select 1 as id where false"},
        **m.data["nodes"],
        "test.p.unique_m_id.2": {**common, "package_name": "p", "attached_node": "model.p.m",
                                 "depends_on": {"nodes": ["model.p.m"]}, "compiled_code": "select 1 as id, 2 as n"},
    }
    node = m.find("m")
    with DuckDBWarehouse(db, AuditLog(None)) as wh:
        failure = failure_from_check(m, "m", "unique_m_id", wh, [tmp_path])
        assert failure.metadata["passed"] is False
        assert dbt_test_now(m, "unique_m_id", wh, node) == {"failing_rows_now": 1, "passed": False}


def test_duplicate_key_orders_by_a_load_time_column_of_the_duplicated_source_not_of_another_it_joins(
        tmp_path: Path) -> None:
    """stg reads charges (duplicated, no loaded_at_field, an updated_at column) and joins customers (loaded_at_field
    _synced): the dedupe in the CTE reading charges ordered by customers' _synced, a column charges does not have."""
    dup = "create table raw.charges as select (range % 8) as id, 1 as customer_id, now() as updated_at from range(10)"
    cust = "create table raw.customers as select 1 as customer_id, now() as _synced"
    sql = ("with source as (\n    select * from {{ source('raw', 'charges') }}\n),\n"
           "customers as (\n    select * from {{ source('raw', 'customers') }}\n)\n"
           "select s.id as charge_id from source s left join customers c on s.customer_id = c.customer_id\n")
    m, db = project(tmp_path, {"stg": sql}, [dup, cust], sources={"charges": {}, "customers": {"loaded_at_field": "_synced"}},
                    tests={"stg": ["charge_id"]})
    m.data["nodes"]["model.p.stg"]["depends_on"] = {"nodes": ["source.p.raw.customers", "source.p.raw.charges"]}
    m = Manifest(m.data, tmp_path)
    (h,) = duplicate_key.detect(ctx_for(m, db, Failure(asset="stg", check="unique_stg_charge_id")), m.find("stg"))
    assert "_synced" not in h.proposed_fix.diff, h.proposed_fix.diff
    assert "+    qualify row_number() over (partition by id order by updated_at desc) = 1" in h.proposed_fix.diff
