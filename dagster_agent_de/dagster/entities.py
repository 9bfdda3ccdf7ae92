"""Entity resolution in Dagster: the ``resolve_entities`` job materializes ``agent_de/entities``
(per model: rows, merges, the review band) and raises the uncertain pairs as context gaps."""

# No `from __future__ import annotations` here: Dagster reads these decorated functions' annotations when they
# are defined (a string `context` annotation or `Config` class is refused; verified on Dagster 1.13).

from dagster import AssetKey, JobDefinition, OpExecutionContext, job, op

from dagster_agent_de.dagster.investigate import record_escalations_asset
from dagster_agent_de.dagster.resources import AgentWarehouseResource
from dagster_agent_de.dagster.translator import AgentDETranslator

ENTITIES_JOB = "resolve_entities"
ENTITIES_ASSET = AssetKey(["agent_de", "entities"])


def build_entities_job(translator: AgentDETranslator | None = None) -> JobDefinition:
    """The ``resolve_entities`` job; its events are built by ``translator``."""
    translator = translator or AgentDETranslator()

    @op(name="entity_resolution", description="Merge records at high confidence; raise the uncertain pairs for a human.")
    def resolve_entities_op(context: OpExecutionContext, agent_warehouse: AgentWarehouseResource) -> list:
        from dagster_agent_de.engines.entities import resolve_and_record, specs_from_manifest
        from dagster_agent_de.engines.escalate.context_store import load_rules

        settings = agent_warehouse.settings()
        manifest = agent_warehouse.manifest()
        specs = specs_from_manifest(manifest)
        if not specs:
            context.log.info("no model declares meta.agent_de.entities; nothing to resolve")
        store = agent_warehouse.state()
        out_dir = settings.entity_maps_dir
        with agent_warehouse.get_warehouse(context) as wh:
            results = resolve_and_record(specs, manifest, wh, rules=load_rules(settings.project_dir, store).rules,
                                         store=store, out_dir=out_dir)
        summary = [{"model": r.spec.model, "rows": r.rows, "keys_merged": len(r.entity_map),
                    "entities": len(set(r.entity_map.values())), "review": len(r.review), "escalations": len(raised),
                    "truncated": str(r.truncated)} for r, raised in results]
        context.log_event(translator.entities_materialization(ENTITIES_ASSET, results, summary, out_dir))
        if any(raised for _, raised in results):
            record_escalations_asset(context, store, translator)
        return summary

    @job(name=ENTITIES_JOB, description="Entity resolution for every model with meta.agent_de.entities.",
         tags={"agent_de/kind": "entity_resolution"})
    def resolve_entities_job():
        resolve_entities_op()

    return resolve_entities_job


resolve_entities_job = build_entities_job()
"""The ``resolve_entities`` job with the default translator (``build_definitions`` builds its own)."""
