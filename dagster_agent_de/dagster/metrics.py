"""Metric definitions in Dagster: the ``metric_audit`` job materializes ``agent_de/metric_definitions``
(every definition, the conflicts with their totals) and raises each conflict as a context gap."""

# No `from __future__ import annotations` here: Dagster reads these decorated functions' annotations when they
# are defined (a string `context` annotation or `Config` class is refused; verified on Dagster 1.13).

from dagster import (
    AssetKey,
    JobDefinition,
    OpExecutionContext,
    ScheduleDefinition,
    job,
    op,
)

from dagster_agent_de.dagster.investigate import record_escalations_asset
from dagster_agent_de.dagster.resources import AgentWarehouseResource
from dagster_agent_de.dagster.translator import AgentDETranslator

METRICS_JOB = "metric_audit"
METRICS_ASSET = AssetKey(["agent_de", "metric_definitions"])


def build_metric_audit_job(translator: AgentDETranslator | None = None) -> JobDefinition:
    """The ``metric_audit`` job; its events are built by ``translator``."""
    translator = translator or AgentDETranslator()

    @op(name="audit_metrics", description="Find metrics defined more than once, differently; raise each as a context gap.")
    def audit_metrics_op(context: OpExecutionContext, agent_warehouse: AgentWarehouseResource) -> dict:
        from dagster_agent_de.engines.escalate.raising import raise_decisions
        from dagster_agent_de.engines.metrics import audit_metrics

        manifest = agent_warehouse.manifest()
        with agent_warehouse.get_warehouse(context) as wh:
            audit = audit_metrics(manifest, wh)
        store = agent_warehouse.state()
        raised = raise_decisions(store, audit.escalations(manifest))
        for c in audit.conflicts:
            context.log.warning(f"conflicting definitions of {c.metric}: {'; '.join(c.differences)}")
        context.log_event(translator.metrics_materialization(METRICS_ASSET, audit))
        if raised:
            record_escalations_asset(context, store, translator)
        return {"conflicts": audit.as_json(), "escalations": [e.id for e in raised]}

    @job(name=METRICS_JOB, description="Catalog every metric definition and flag the ones computed differently in two places.",
         tags={"agent_de/kind": "metric_audit"})
    def metric_audit_job():
        audit_metrics_op()

    return metric_audit_job


metric_audit_job = build_metric_audit_job()
"""The ``metric_audit`` job with the default translator (``build_definitions`` builds its own)."""


def build_metric_audit_schedule(cron_schedule: str = "0 7 * * 1", job_def: JobDefinition | None = None) -> ScheduleDefinition:
    return ScheduleDefinition(name="metric_audit_weekly", job=job_def or metric_audit_job, cron_schedule=cron_schedule)
