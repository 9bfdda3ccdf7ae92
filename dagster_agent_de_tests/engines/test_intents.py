"""Intent-based checks on constructed data: declared and derived, each violation explained by its why."""

from __future__ import annotations

from pathlib import Path

import pytest

from dagster_agent_de.adapters.audit import AuditLog
from dagster_agent_de.adapters.warehouse import DuckDBWarehouse
from dagster_agent_de.engines.intents import derive_intents, evaluate_intent, intents_from_manifest
from dagster_agent_de.errors import SpecError
from dagster_agent_de_tests.engines.test_detectors import project

MODELS = {
    "stg_orders": "select * from {{ source('raw', 'orders') }}",
    "fct_orders": "select order_id, order_date, amount from {{ ref('stg_orders') }} where status = 'paid'",
    "fct_revenue": "select order_date, sum(amount) as revenue from {{ ref('fct_orders') }} group by 1",
}
# 8 weeks of paid orders, 20 a week, then the last complete week only 10; one NULL and one negative amount;
# order 7 is paid but (a bug) missing from fct_orders: we delete it from the mart below
DATA = ["""create table raw.orders as
    select range as order_id, date '2026-01-05' + cast((range // 20) * 7 as integer) as order_date,
           case when range = 3 then null when range = 4 then -5.0 else 10.0 end as amount, 'paid' as status
    from range(150)"""]


def _project(tmp_path: Path, intents: list[dict] | None):
    manifest, db = project(tmp_path, MODELS, DATA, sources={"orders": {}})
    if intents is not None:
        manifest.find("fct_orders").raw["meta"] = {"agent_de": {"intents": intents}}
    return manifest, db


def _eval(manifest, db, intent):
    with DuckDBWarehouse(db, AuditLog(None)) as wh:
        return evaluate_intent(intent, manifest, wh)


def test_declared_intents_fail_with_their_why(tmp_path: Path) -> None:
    manifest, db = _project(tmp_path, [
        {"kind": "never_negative", "column": "amount", "why": "refunds live in their own column"},
        {"kind": "no_drop", "measure": "count(*)", "period": "order_date", "grain": "week", "max_drop_pct": 30,
         "why": "orders should not fall week over week by more than 30%"},
        {"kind": "covers", "of": "ref('stg_orders')", "key": "order_id", "where": "status = 'paid'",
         "why": "every paid order must reach the mart exactly once"},
    ])
    intents = intents_from_manifest(manifest)
    assert [i.kind for i in intents] == ["never_negative", "no_drop", "covers"]
    neg, drop, covers = (_eval(manifest, db, i) for i in intents)
    assert (neg.passed, neg.violations) == (False, 1) and neg.message.endswith("refunds live in their own column")
    # weeks hold 20 orders except the current (last, 10 orders) which is still filling: the last two complete agree
    assert drop.passed and drop.numbers["drop_pct"] == 0.0
    assert covers.passed


def test_no_drop_and_covers_catch_a_broken_mart(tmp_path: Path) -> None:
    manifest, db = _project(tmp_path, None)
    # the mart is a table now, with the last complete week half loaded and order 7 lost
    from dagster_agent_de.demo.data import execute_sql

    execute_sql(db, "create or replace view main.fct_orders as select order_id, order_date, amount from raw.orders "
                    "where status = 'paid' and order_id <> 7 and not (order_id between 120 and 129)")
    from dagster_agent_de.engines.intents.intents import Covers, NoDrop

    drop = _eval(manifest, db, NoDrop(kind="no_drop", model="fct_orders", period="order_date", why="orders must not fall"))
    assert not drop.passed and drop.numbers == {"drop_pct": 50.0, "previous": 20.0, "latest": 10.0}
    assert "fell 50.0%" in drop.message and drop.message.endswith("orders must not fall")
    covers = _eval(manifest, db, Covers(kind="covers", model="fct_orders", of="ref('stg_orders')", key="order_id",
                                        where="status = 'paid'", why="every paid order reaches the mart"))
    assert not covers.passed and covers.numbers == {"missing": 11, "duplicated": 0} and "first missing: 7" in covers.message


def test_not_null_is_derived_for_columns_summed_into_a_metric(tmp_path: Path) -> None:
    manifest, db = _project(tmp_path, None)
    (derived,) = derive_intents(manifest, "duckdb")
    assert (derived.model, derived.column, derived.derived_from) == ("fct_orders", "amount", "fct_revenue.revenue")
    result = _eval(manifest, db, derived)
    assert (result.passed, result.violations) == (False, 1)
    assert "silently drops its row from revenue" in result.message
    # declared already: not derived twice
    (tmp_path / "b").mkdir()
    manifest2, _ = _project(tmp_path / "b", [{"kind": "not_null", "column": "amount", "why": "declared by finance"}])
    assert derive_intents(manifest2, "duckdb", intents_from_manifest(manifest2)) == []


def test_a_bad_intent_names_the_model_and_field(tmp_path: Path) -> None:
    manifest, _ = _project(tmp_path, [{"kind": "no_drop", "period": "order_date", "max_drop_pct": 300, "why": "x y z"}])
    with pytest.raises(SpecError, match=r"model fct_orders, meta.agent_de.intents\[0\]: no_drop.max_drop_pct: "):
        intents_from_manifest(manifest)
    (tmp_path / "c").mkdir()
    manifest, _ = _project(tmp_path / "c", [{"kind": "not_null", "column": "amount"}])
    with pytest.raises(SpecError, match="why: Field required"):
        intents_from_manifest(manifest)


def test_summed_inputs_come_from_sources_too_and_a_model_with_none_says_why(tmp_path: Path) -> None:
    """The derived intents cover a source column summed directly (a NULL there drops the row from the SUM as
    well); a summing model with nothing derived says why: no column summed, every input declared, or its SQL
    unreadable (its check then fails: the inputs are unchecked, never passed)."""
    from dagster_agent_de.engines.intents import sum_inputs

    models = {**MODELS,
              "src_revenue": "select order_date, sum(amount) as revenue from {{ source('raw', 'orders') }} group by 1",
              "order_count": "select order_date, sum(1) as orders from {{ ref('fct_orders') }} group by 1",
              "broken_sum": "select sum(amount) as revenue from {{ ref('fct_orders') }}"}
    manifest, db = project(tmp_path, models, DATA, sources={"orders": {}})
    (tmp_path / "models" / "broken_sum.sql").write_text("select sum(amount) as revenue from {{ ref('fct_orders') }} group by (")
    got = sum_inputs(manifest, "duckdb")
    derived = {(i.model, i.column): i for i in got.intents}
    assert set(derived) == {("fct_orders", "amount"), ("raw.orders", "amount")}
    src = _eval(manifest, db, derived[("raw.orders", "amount")])
    assert (src.passed, src.violations) == (False, 1) and "silently drops its row from revenue" in src.message
    assert got.notes == {"order_count": "order_count's sums read no column: nothing can be NULL"}
    assert set(got.unreadable) == {"broken_sum"} and "could not be analysed" in got.unreadable["broken_sum"]
    declared = intents_from_manifest(manifest) + [
        i.model_copy(update={"derived_from": None, "why": "declared"}) for i in derived.values()]
    covered = sum_inputs(manifest, "duckdb", declared)
    assert covered.intents == [] and covered.notes["src_revenue"] == (
        "every column src_revenue sums has a declared not_null intent (raw.orders.amount), checked by its own check")


def _sum_inputs(tmp_path: Path, models: dict[str, str]):
    from dagster_agent_de.engines.intents import sum_inputs

    manifest, _ = project(tmp_path, models, DATA, sources={"orders": {}})
    return sum_inputs(manifest, "duckdb")


def test_two_models_summing_one_column_each_check_it(tmp_path: Path) -> None:
    """fct_revenue and fct_rev2 both sum fct_orders.amount: each model's check holds the derived intent. Before,
    the intent was kept for the first model only and the other's check passed saying its sums 'read no column'."""
    got = _sum_inputs(tmp_path, {**MODELS, "fct_rev2": "select order_date, sum(amount) as rev2 from {{ ref('fct_orders') }} group by 1"})
    by_model = {(i.derived_from.split(".")[0], i.model, i.column) for i in got.intents}
    assert by_model == {("fct_revenue", "fct_orders", "amount"), ("fct_rev2", "fct_orders", "amount")}
    assert got.notes == {}


def test_a_sum_over_a_table_outside_the_project_is_unchecked_not_passed(tmp_path: Path) -> None:
    """A model summing a column of a relation dbt does not know (no source declared) cannot have its input
    checked: its check must warn it is unchecked, not pass saying 'its sums read no column: nothing can be NULL'."""
    got = _sum_inputs(tmp_path, {**MODELS, "fct_revenue": "select order_date, sum(amount) as revenue from raw.orders group by 1"})
    assert got.intents == [] and "fct_revenue" not in got.notes
    assert "raw.orders" in got.unreadable["fct_revenue"]


def test_a_coalesced_sum_derives_no_not_null(tmp_path: Path) -> None:
    """sum(coalesce(amount, 0)) counts a NULL as 0 on purpose: no not_null is derived, and the check says why."""
    got = _sum_inputs(tmp_path, {**MODELS, "fct_revenue":
                                 "select order_date, sum(coalesce(amount, 0)) as revenue from {{ source('raw', 'orders') }} group by 1"})
    assert [(i.model, i.column) for i in got.intents] == []
    assert got.notes == {"fct_revenue": "fct_revenue's sums (revenue) replace a NULL before summing it (coalesce, case): no row is dropped"}
