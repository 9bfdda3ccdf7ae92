"""Conflicting metric definitions on a tiny project: found by lineage and filters, totals as evidence."""

from __future__ import annotations

from pathlib import Path

from dagster_agent_de.adapters.audit import AuditLog
from dagster_agent_de.adapters.warehouse import DuckDBWarehouse
from dagster_agent_de.core.models import EscalationKind
from dagster_agent_de.engines.metrics import (
    conflict_escalation,
    conflict_evidence,
    find_conflicts,
    metric_definitions,
)
from dagster_agent_de_tests.engines.test_detectors import project

MODELS = {
    "fct_orders": "select * from {{ source('raw', 'orders') }} where status <> 'cancelled'",
    # finance's daily revenue: from fct_orders, so cancelled orders are out
    "fct_revenue": "select o.currency, sum(o.amount) as revenue from {{ ref('fct_orders') }} o group by o.currency",
    "exec_kpis": "select sum(amount) as revenue, count(*) as orders from {{ ref('fct_orders') }}",
    # marketing's dashboard reads the raw orders: cancelled orders count as revenue
    "marketing_dashboard": "select sum(amount) as revenue, avg(amount) as aov from {{ source('raw', 'orders') }}",
}
DATA = ["create table raw.orders as select range as order_id, ['paid', 'cancelled', 'paid', 'paid'][1 + range % 4] as status, "
        "10.0 as amount, 'USD' as currency from range(100)"]


def test_same_name_different_filters_is_a_conflict_with_totals(tmp_path: Path) -> None:
    manifest, db = project(tmp_path, MODELS, DATA, sources={"orders": {}})
    defs, notes = metric_definitions(manifest, "duckdb")
    assert not notes
    revenue = {d.model: d for d in defs if d.metric == "revenue"}
    assert set(revenue) == {"fct_revenue", "exec_kpis", "marketing_dashboard"}
    assert revenue["fct_revenue"].sources == revenue["marketing_dashboard"].sources == frozenset({"raw.orders.amount"})
    assert revenue["fct_revenue"].filters == frozenset({"status <> 'cancelled' (fct_orders)"})

    (conflict,) = find_conflicts(defs)  # `orders` and `aov` are defined once
    assert conflict.metric == "revenue"
    assert [d.model for d in conflict.definitions] == ["exec_kpis", "marketing_dashboard"]
    assert conflict.same_as["exec_kpis"] == ["fct_revenue"]  # same definition, no conflict between them
    assert conflict.differences == ["only exec_kpis filters status <> 'cancelled' (fct_orders)"]

    with DuckDBWarehouse(db, AuditLog(None)) as wh:
        ev = conflict_evidence(conflict, manifest, wh)
    assert ev.rows_sample == [{"exec_kpis.revenue": 750.0, "marketing_dashboard.revenue": 1000.0}]
    esc = conflict_escalation(conflict, ev)
    assert esc.kind == EscalationKind.CONTEXT_GAP and esc.recommendation is None
    assert "total 1,000.00" in esc.options[1].evidence and "also used by fct_revenue" in esc.options[0].evidence


def test_a_meta_metric_name_joins_differently_named_columns(tmp_path: Path) -> None:
    models = {"a": "select sum(amount) as gross_revenue from {{ source('raw', 'orders') }}",
              "b": "select sum(amount) as revenue from {{ source('raw', 'orders') }} where status = 'paid'"}
    manifest, _ = project(tmp_path, models, DATA, sources={"orders": {}})
    manifest.find("a").raw["columns"] = {"gross_revenue": {"name": "gross_revenue", "meta": {"agent_de": {"metric": "revenue"}}}}
    (conflict,) = find_conflicts(metric_definitions(manifest, "duckdb")[0])
    assert {d.model for d in conflict.definitions} == {"a", "b"}
    assert conflict.differences == ["only b filters status = 'paid' (b)"]


def test_no_conflict_when_every_definition_agrees(tmp_path: Path) -> None:
    models = {k: MODELS[k] for k in ("fct_orders", "fct_revenue", "exec_kpis")}
    manifest, _ = project(tmp_path, models, DATA, sources={"orders": {}})
    assert find_conflicts(metric_definitions(manifest, "duckdb")[0]) == []


def test_cli_on_the_demo_finds_none_then_a_new_dashboard_conflicts(demo_env) -> None:
    """`agent-de metrics` on the demo: its revenue is defined once; a dashboard over raw orders conflicts."""
    import json

    from click.testing import CliRunner

    from dagster_agent_de.adapters.state import open_state_store
    from dagster_agent_de.cli import main
    from dagster_agent_de_tests.helpers import drop_escalations

    def run():
        return CliRunner().invoke(main, ["--project-dir", str(demo_env.project_dir), "--state-dir", str(demo_env.settings.state_dir),
                                         "metrics", "--json"], catch_exceptions=False)

    clean = run()
    assert clean.exit_code == 0, clean.output
    assert json.loads(clean.output)["conflicts"] == []
    rel = "models/marts/marketing_revenue.sql"
    path = demo_env.project_dir / rel
    path.write_text("select cast(ordered_at as date) as order_date, sum(amount_cents / 100.0) as revenue "
                    "from {{ source('app', 'orders') }} group by 1\n")
    store = open_state_store(demo_env.settings)
    before = {e.id for e in store.escalations()}
    try:
        demo_env.dbt("run", "-s", "marketing_revenue", "-q")
        got = run()
        assert got.exit_code == 1, got.output
        (conflict,) = json.loads(got.output)["conflicts"]
        assert conflict["metric"] == "revenue"
        assert {d["model"] for d in conflict["definitions"]} == {"fct_revenue", "marketing_revenue"}
        assert any("only fct_revenue filters status <> 'cancelled' (fct_orders)" == d for d in conflict["differences"])
        totals = conflict["evidence"]["rows_sample"][0]
        assert totals["marketing_revenue.revenue"] > totals["fct_revenue.revenue"]  # cancelled orders counted
        new = [e for e in store.escalations() if e.id not in before]
        assert [(e.kind.value, e.finding_pattern) for e in new] == [("context_gap", "conflicting_metric_definitions")]
    finally:
        path.unlink()
        drop_escalations(store, lambda e: e.id in before)
        demo_env.write("drop table if exists main.marketing_revenue")
        demo_env.dbt("parse", "-q")
