"""PII scan in Dagster: a ``pii_tagging`` check on every source (non-blocking, not investigated),
run by the ``pii_scan`` job on its own schedule. Untagged PII raises an authority-gap escalation."""

# No `from __future__ import annotations` here: Dagster reads these decorated functions' annotations when they
# are defined (a string `context` annotation or `Config` class is refused; verified on Dagster 1.13).

from collections.abc import Sequence

from dagster import (
    AssetCheckExecutionContext,
    AssetCheckKey,
    AssetCheckSpec,
    AssetKey,
    AssetSelection,
    ScheduleDefinition,
    define_asset_job,
    multi_asset_check,
)

from dagster_agent_de.dagster.investigate import record_escalations_asset
from dagster_agent_de.dagster.resources import AgentWarehouseResource
from dagster_agent_de.dagster.translator import AgentDETranslator
from dagster_agent_de.errors import AgentDEError

PII_CHECK = "pii_tagging"
PII_JOB = "pii_scan"


def build_pii_checks(source_keys: Sequence[AssetKey], translator: AgentDETranslator | None = None):
    translator = translator or AgentDETranslator()
    specs = [AssetCheckSpec(PII_CHECK, asset=k, description="Values that look like personal data in columns not tagged PII.",
                            metadata={"agent_de/kind": "pii", "agent_de/investigate": False}) for k in source_keys]

    @multi_asset_check(specs=specs, name="pii_tagging_checks", can_subset=True)
    def pii_tagging_checks(context: AssetCheckExecutionContext, agent_warehouse: AgentWarehouseResource):
        from dagster_agent_de.engines.escalate.context_store import load_rules
        from dagster_agent_de.engines.escalate.raising import owner_of, raise_decisions
        from dagster_agent_de.engines.pii_scan import pii_escalation, scan_sources

        settings = agent_warehouse.settings()
        selected = set(context.selected_asset_check_keys)
        try:
            manifest = agent_warehouse.manifest()
            keys = agent_warehouse.asset_keys()
            with agent_warehouse.get_warehouse(context) as wh:
                results = scan_sources(manifest, wh, rules=load_rules(settings.project_dir, agent_warehouse.state()).rules)
        except AgentDEError as e:
            context.log.error(f"PII scan could not run: {e}")
            for key in selected:
                yield translator.error_check_result(e, "warn", "PII scan", key.asset_key, PII_CHECK)
            return
        store = agent_warehouse.state()
        raised = []
        for item in results:
            node = manifest.find(item.node)
            key = keys.key(node)
            if AssetCheckKey(key, PII_CHECK) not in selected:
                continue
            if item.error:
                yield translator.error_check_result(RuntimeError(item.error), "warn", "PII scan", key, PII_CHECK)
                continue
            if item.hits:
                raised += raise_decisions(store, [pii_escalation(item, node, owner_of(manifest, item.node))])
            yield translator.pii_check_result(key, PII_CHECK, item)
        for esc in raised:
            context.log.info(f"escalation {esc.id} ({esc.kind.value}): {esc.decision}")
        if raised:
            record_escalations_asset(context.op_execution_context, store, translator)

    return pii_tagging_checks


def build_pii_schedule(check_keys: Sequence[AssetCheckKey], cron_schedule: str = "30 6 * * *"):
    job = define_asset_job(PII_JOB, selection=AssetSelection.checks(*check_keys),
                           description="Scan the sources for personal data in columns not tagged PII (detection only).")
    return job, ScheduleDefinition(name="pii_scan_daily", job=job, cron_schedule=cron_schedule)
