"""The detectors on models in dbt's CTE style: import CTEs, logical CTEs, `select * from final`."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from dagster_agent_de.adapters.audit import AuditLog
from dagster_agent_de.adapters.warehouse import DuckDBWarehouse
from dagster_agent_de.engines.intents import derive_intents
from dagster_agent_de.engines.investigate import Failure, investigate
from dagster_agent_de.engines.investigate.detectors import (
    currency_mixing,
    duplicate_key,
    join_fanout,
    join_row_drop,
    null_semantics,
)
from dagster_agent_de.engines.investigate.failure import failure_from_check, known_checks
from dagster_agent_de.engines.metrics import metric_definitions
from dagster_agent_de.errors import ConfigError
from dagster_agent_de_tests.engines.test_detectors import CUSTOMERS_SOME, ORDERS, SRC, ctx_for, project
from dagster_agent_de_tests.helpers import duck

IMPORTS = ("with orders as (\n    select * from {{ source('raw', 'orders') }}\n),\n"
           "customers as (\n    select * from {{ source('raw', 'customers') }}\n),\n")


def test_join_fanout_with_a_cte_on_the_right_fixes_the_join_not_the_result(tmp_path: Path) -> None:
    dup = "create table raw.customers as select range % 10 as customer_id, 'x' || range as segment from range(20)"
    sql = (IMPORTS + "final as (\n    select orders.id, customers.segment\n    from orders\n"
           "    left join customers on orders.customer_id = customers.customer_id\n)\nselect * from final\n")
    m, db = project(tmp_path, {"m": sql}, [ORDERS, dup], sources=SRC, tests={"m": ["id"]})
    (h,) = join_fanout.detect(ctx_for(m, db, Failure(asset="m", check="unique_m_id")), m.find("m"))
    assert "up to 2x per key" in h.summary and "in the CTE final" in h.summary and h.confidence >= 0.9
    diff = h.proposed_fix.diff
    assert ("+    left join (select customer_id, max(segment) as segment from customers group by customer_id) as customers"
            in diff)
    assert "qualify" not in diff and "row_number" not in diff
    # the unique test fails: the fan-out outranks the duplicate, which names no dedupe for it
    report = investigate(Failure(asset="m", check="unique_m_id"), m, DuckDBWarehouse(db, AuditLog(None)))
    assert report.findings[0].pattern == "join_fanout"
    dupe = next(f for f in report.findings if f.pattern == "duplicate_key")
    assert "produces them" in dupe.summary and not (dupe.proposed_fix and dupe.proposed_fix.diff)


def test_join_fanout_outranks_the_duplicate_when_a_reconciliation_finds_duplicate_keys(tmp_path: Path) -> None:
    # a reconciliation on the model's key: every key matches (no extra, no missing), but the pipeline
    # side holds duplicate keys; the join that fans out is the cause, with its diff, ranked first
    dup = "create table raw.customers as select range % 10 as customer_id, 'x' || range as segment from range(20)"
    sql = (IMPORTS + "final as (\n    select orders.id, customers.segment\n    from orders\n"
           "    left join customers on orders.customer_id = customers.customer_id\n)\nselect * from final\n")
    m, db = project(tmp_path, {"m": sql}, [ORDERS, dup], sources=SRC, tests={"m": ["id"]})
    failure = Failure(asset="m", check="m_vs_orders", kind="reconciliation",
                      metadata={"missing_pct": 0.0, "extra_pct": 0.0, "mismatched_pct": 0.0, "duplicate_keys_pipeline": 100})
    report = investigate(failure, m, DuckDBWarehouse(db, AuditLog(None)))
    assert report.findings[0].pattern == "join_fanout" and report.findings[0].confidence >= 0.9
    assert report.findings[0].proposed_fix is not None and report.findings[0].proposed_fix.diff
    # no duplicates on the pipeline side: the fan-out is not what the reconciliation saw
    clean = Failure(asset="m", check="m_vs_orders", kind="reconciliation",
                    metadata={"missing_pct": 0.0, "extra_pct": 0.0, "mismatched_pct": 5.0, "duplicate_keys_pipeline": 0})
    (h,) = join_fanout.detect(ctx_for(m, db, clean), m.find("m"))
    assert h.confidence < 0.9


def test_null_semantics_on_a_cte_column_with_a_diff_of_the_ctes_line(tmp_path: Path) -> None:
    sql = (IMPORTS + "kept as (\n    select * from orders\n    where orders.status != 'cancelled'\n),\n"
           "final as (\n    select id from kept\n)\nselect * from final\n")
    m, db = project(tmp_path, {"m": sql}, [ORDERS, CUSTOMERS_SOME], sources=SRC)
    (h,) = null_semantics.detect(ctx_for(m, db, Failure(asset="m", metadata={"missing_pct": 20.0})), m.find("m"))
    assert "20 rows (20.0%)" in h.summary and "in the CTE kept" in h.summary and h.confidence > 0.9
    assert "-    where orders.status != 'cancelled'\n+    where orders.status is distinct from 'cancelled'" in h.proposed_fix.diff


def test_join_row_drop_in_a_cte_gives_a_diff(tmp_path: Path) -> None:
    sql = (IMPORTS + "joined as (\n    select orders.id\n    from orders\n"
           "    inner join customers on orders.customer_id = customers.customer_id\n)\nselect * from joined\n")
    m, db = project(tmp_path, {"m": sql}, [ORDERS, CUSTOMERS_SOME], sources=SRC)
    (h,) = join_row_drop.detect(ctx_for(m, db, Failure(asset="m", metadata={"missing_pct": 70.0})), m.find("m"))
    assert "drops 70 of 100 rows" in h.summary
    assert "-    inner join customers on" in h.proposed_fix.diff and "+    left join customers on" in h.proposed_fix.diff


def test_duplicates_already_in_the_source_name_the_loader(tmp_path: Path) -> None:
    dup = "create table raw.charges as select (range % 8) as id, 1.0 as amount, now() as _loaded_at from range(10)"
    sql = ("with source as (\n    select * from {{ source('raw', 'charges') }}\n),\n"
           "renamed as (\n    select id as charge_id, amount from source\n)\nselect * from renamed\n")
    m, db = project(tmp_path, {"stg": sql}, [dup], sources={"charges": {"loaded_at_field": "_loaded_at"}},
                    tests={"stg": ["charge_id"]})
    (h,) = duplicate_key.detect(ctx_for(m, db, Failure(asset="stg", check="unique_stg_charge_id")), m.find("stg"))
    assert "already in raw.charges.id" in h.summary and "introduced" not in h.summary
    assert h.needs_authority and "loader of raw.charges" in h.needs_authority
    # the dedupe goes where the rows enter: the import CTE
    assert ("    select * from {{ source('raw', 'charges') }}\n"
            "+    qualify row_number() over (partition by id order by _loaded_at desc) = 1") in h.proposed_fix.diff


def test_currency_detector_does_not_apply_without_a_currency_column(tmp_path: Path) -> None:
    data = "create table raw.orders as select range as id, 10.0 as amount, date '2026-01-01' as d from range(10)"
    sql = ("with orders as (select * from {{ source('raw', 'orders') }}),\n"
           "daily as (select d, sum(amount) as revenue_usd from orders group by d)\nselect * from daily\n")
    m, db = project(tmp_path, {"m": sql}, [data], sources={"orders": {}})
    ctx = ctx_for(m, db)
    assert currency_mixing.detect(ctx, m.find("m")) == []
    assert not ctx.query_failures
    report = investigate(Failure(asset="m", check="c"), m, DuckDBWarehouse(db, AuditLog(None)))
    assert "currency_mixing" not in report.findings[0].summary  # never "ruled out" where it does not apply


def test_a_failed_query_of_the_agent_is_a_note_never_ruled_out(tmp_path: Path) -> None:
    sql = (IMPORTS + "joined as (\n    select orders.id from orders\n"
           "    inner join customers on orders.customer_id = customers.customer_id\n)\nselect * from joined\n")
    m, db = project(tmp_path, {"m": sql}, [ORDERS, CUSTOMERS_SOME], sources=SRC)
    duck(db, "drop view main.m", "drop table raw.customers")  # the model's input is gone since the failure
    report = investigate(Failure(asset="m", check="c"), m, DuckDBWarehouse(db, AuditLog(None)))
    top = report.findings[0]
    assert top.pattern == "unexplained"
    ruled_out = top.summary.split("Ruled out:")[1].split(".")[0]
    assert "join_row_drop" not in ruled_out and "query of the agent failed: " in top.summary
    assert any("join_row_drop" in n and "a query of the agent failed" in n for n in report.notes)


def test_a_relationships_test_looks_at_both_sides(tmp_path: Path) -> None:
    models = {
        "orders": "select id, customer_id from {{ source('raw', 'orders') }}",
        # the `to:` side lost customers: an inner join in its own lineage
        "customers": ("with c as (select * from {{ source('raw', 'customers') }}), o as (select * from {{ source('raw', 'orders') }})\n"
                      "select distinct c.customer_id from c inner join o on c.customer_id = o.customer_id and o.status = 'ok'"),
    }
    m, db = project(tmp_path, models, [ORDERS, "create table raw.customers as select range as customer_id from range(20)"],
                    sources=SRC)
    m.data["nodes"]["test.p.relationships_orders_customer_id"] = {
        "name": "relationships_orders_customer_id", "resource_type": "test", "column_name": "customer_id",
        "test_metadata": {"name": "relationships", "kwargs": {"to": "ref('customers')", "field": "customer_id"}},
        "depends_on": {"nodes": ["model.p.customers", "model.p.orders"]},
    }
    from dagster_agent_de.manifest import Manifest

    m2 = Manifest(m.data, tmp_path)
    report = investigate(Failure(asset="orders", check="relationships_orders_customer_id", kind="dbt_test"), m2,
                         DuckDBWarehouse(db, AuditLog(None)))
    assert any("and of customers (what relationships_orders_customer_id also reads)" in n for n in report.notes)
    assert any(f.model == "customers" for f in report.findings), [(f.pattern, f.model) for f in report.findings]


def test_metrics_and_derived_intents_find_sums_inside_ctes(tmp_path: Path) -> None:
    models = {
        "stg_orders": "with source as (select * from {{ source('raw', 'orders') }}) select * from source",
        "revenue": ("with orders as (select * from {{ ref('stg_orders') }}),\n"
                    "final as (select currency, sum(amount) as revenue from orders group by 1)\nselect * from final\n"),
    }
    m, _ = project(tmp_path, models, [ORDERS], sources={"orders": {}})
    m.data["nodes"]["model.p.revenue"]["depends_on"] = {"nodes": ["model.p.stg_orders"]}
    m.data["nodes"]["model.p.stg_orders"]["depends_on"] = {"nodes": ["source.p.raw.orders"]}
    from dagster_agent_de.manifest import Manifest

    m = Manifest(m.data, tmp_path)
    defs, notes = metric_definitions(m, "duckdb")
    (d,) = [d for d in defs if d.model == "revenue"]
    assert (d.metric, d.aggregate, d.sources) == ("revenue", "SUM", frozenset({"raw.orders.amount"}))
    (intent,) = derive_intents(m, "duckdb")
    assert (intent.model, intent.column, intent.derived_from) == ("stg_orders", "amount", "revenue.revenue")


def test_check_must_exist_on_the_asset(tmp_path: Path) -> None:
    m, db = project(tmp_path, {"m": "select id from {{ source('raw', 'orders') }}"}, [ORDERS], sources={"orders": {}},
                    tests={"m": ["id"]})
    with DuckDBWarehouse(db, AuditLog(None)) as wh:
        with pytest.raises(ConfigError, match=r"'no_such_check' is not a check of m; its checks are: .*unique_m_id"):
            failure_from_check(m, "m", "no_such_check", wh, [tmp_path], strict=True)
        assert failure_from_check(m, "m", "unique_m_id", wh, [tmp_path], strict=True).kind == "dbt_test"
    # the list names the checks the asset has: drift and PII checks are on sources, volume checks on models
    assert {"schema_drift", "pii_tagging"}.isdisjoint(known_checks(m, m.find("m")))
    assert {"schema_drift", "pii_tagging"} <= set(known_checks(m, m.find("raw.orders")))
    assert "row_volume" in known_checks(m, m.find("m")) and "row_volume" not in known_checks(m, m.find("raw.orders"))


def test_cli_check_no_such_check_exits_2(demo_env) -> None:
    from dagster_agent_de.cli import main

    res = CliRunner().invoke(main, ["--project-dir", str(demo_env.project_dir), "--state-dir", str(demo_env.settings.state_dir),
                                    "investigate", "--asset", "fct_orders", "--check", "no_such_check", "--no-llm"])
    assert res.exit_code == 2, res.output
    assert "no_such_check" in res.output and "orders_vs_stripe" in res.output


def test_a_unique_test_on_a_source_looks_at_its_loader(tmp_path: Path) -> None:
    dup = "create table raw.charges as select (range % 8) as id, now() as _loaded_at from range(10)"
    m, db = project(tmp_path, {}, [dup], sources={"charges": {"loaded_at_field": "_loaded_at"}})
    m.data["nodes"]["test.p.source_unique_raw_charges_id"] = {
        "name": "source_unique_raw_charges_id", "resource_type": "test", "column_name": "id",
        "test_metadata": {"name": "unique", "kwargs": {"column_name": "id"}},
        "depends_on": {"nodes": ["source.p.raw.charges"]},
    }
    report = investigate(Failure(asset="raw.charges", check="source_unique_raw_charges_id", kind="dbt_test"), m,
                         DuckDBWarehouse(db, AuditLog(None)))
    top = report.findings[0]
    assert (top.pattern, top.model) == ("duplicate_key", "raw.charges")
    assert "loader of raw.charges" in top.summary and top.needs_authority
