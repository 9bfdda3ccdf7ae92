"""Metric definitions in Dagster: the ``metric_audit`` job materializes ``agent_de/metric_definitions``
(every definition, the conflicts with their totals) and raises each conflict as a context gap."""

from dagster import (
    AssetKey,
    AssetMaterialization,
    MetadataValue,
    OpExecutionContext,
    ScheduleDefinition,
    job,
    op,
)

from dagster_agent_de.dagster.investigate import record_escalations_asset
from dagster_agent_de.dagster.resources import AgentWarehouseResource
from dagster_agent_de.dagster.translator import AgentDETranslator, default_table

METRICS_JOB = "metric_audit"
METRICS_ASSET = AssetKey(["agent_de", "metric_definitions"])


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
    context.log_event(AssetMaterialization(asset_key=METRICS_ASSET, metadata={
        "definitions": MetadataValue.int(len(audit.definitions)),
        "conflicts": MetadataValue.int(len(audit.conflicts)),
        "catalog": default_table([{"metric": d.metric, "model": d.model, "column": d.column, "aggregate": d.aggregate,
                                   "expression": d.expression, "filters": "; ".join(sorted(d.filters)) or "-"}
                                  for d in audit.definitions]),
        "conflict_detail": MetadataValue.md("\n\n".join(
            f"### {c.metric}\n" + "\n".join(f"- `{d.describe()}`" for d in c.definitions)
            + "\n" + "\n".join(f"- {x}" for x in c.differences)
            + (f"\n- totals: {ev.result_summary}" if (ev := audit.evidence[c.metric]) else "")
            for c in audit.conflicts) or "No conflicting definitions."),
        "notes": MetadataValue.md("\n".join(f"- {n}" for n in audit.notes) or "-"),
    }))
    if raised:
        record_escalations_asset(context, store, AgentDETranslator())
    return {"conflicts": audit.as_json(), "escalations": [e.id for e in raised]}


@job(name=METRICS_JOB, description="Catalog every metric definition and flag the ones computed differently in two places.",
     tags={"agent_de/kind": "metric_audit"})
def metric_audit_job():
    audit_metrics_op()


def build_metric_audit_schedule(cron_schedule: str = "0 7 * * 1") -> ScheduleDefinition:
    return ScheduleDefinition(name="metric_audit_weekly", job=metric_audit_job, cron_schedule=cron_schedule)
