"""The metric_audit job on the demo: a catalog of definitions materialized; the demo's revenue is defined once."""

from __future__ import annotations

from dagster import DagsterInstance

from dagster_agent_de.dagster.definitions import build_definitions
from dagster_agent_de.dagster.metrics import METRICS_ASSET

QUIET = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}


def test_metric_audit_job_catalogs_definitions(demo_env) -> None:
    defs = build_definitions(demo_env.settings)
    assert defs.resolve_schedule_def("metric_audit_weekly").cron_schedule == "0 7 * * 1"
    with DagsterInstance.get() as instance:
        run = defs.resolve_job_def("metric_audit").execute_in_process(instance=instance, run_config=QUIET)
        assert run.success and run.output_for_node("audit_metrics")["conflicts"] == []
        mat = instance.get_latest_materialization_event(METRICS_ASSET).asset_materialization
    md = mat.metadata
    assert md["conflicts"].value == 0
    rows = {(r.data["model"], r.data["column"]): r.data for r in md["catalog"].value.records}
    assert rows[("fct_revenue", "revenue")]["filters"] == "status <> 'cancelled' (fct_orders)"
    assert {k for k in rows if k[0] == "fct_revenue"} == {("fct_revenue", c) for c in ("orders", "revenue", "revenue_usd")}
    assert rows[("fct_revenue", "orders")]["aggregate"] == "COUNT"
