"""Schema drift in Dagster: a blocking check on every source asset, and the schema-poll sensor.

The drift check is one multi-asset check (one ``information_schema`` read for all sources).
It is blocking: in the ``dbt_build`` job it runs in its own step before the dbt op, and a
breaking change stops every model from building on the changed schema. A change that needs a
human's decision (which column replaces a dropped one?) raises its escalation through the drift
workflow, once, whichever of the check, the sensor or ``agent-de drift`` sees it first; the check's
metadata shows the open escalation on every evaluation until it is answered. An investigation's open question
about the same change, asked first, is withdrawn for it (an observation on the model it concerns says so).
"""

# No `from __future__ import annotations` here: Dagster reads these decorated functions' annotations when they
# are defined (a string `context` annotation or `Config` class is refused; verified on Dagster 1.13).

from collections.abc import Sequence

from dagster import (
    AssetCheckExecutionContext,
    AssetCheckKey,
    AssetCheckSpec,
    AssetKey,
    AssetSelection,
    DefaultSensorStatus,
    RunRequest,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    define_asset_job,
    multi_asset_check,
    sensor,
)

from dagster_agent_de.dagster.cursors import SchemaPollCursor
from dagster_agent_de.dagster.investigate import ESCALATIONS_ASSET, record_escalations_asset
from dagster_agent_de.dagster.keys import DbtAssetKeys
from dagster_agent_de.dagster.notify import log_deliveries, optional_notifier
from dagster_agent_de.dagster.resources import AgentWarehouseResource
from dagster_agent_de.dagster.translator import AgentDETranslator
from dagster_agent_de.engines.drift import SnapshotStore
from dagster_agent_de.engines.drift.workflow import (
    DriftRun,
    judge,
    run_drift,
    schema_fingerprint,
    take_current,
)
from dagster_agent_de.errors import AgentDEError
from dagster_agent_de.manifest import Manifest

DRIFT_CHECK = "schema_drift"
DRIFT_JOB = "schema_drift_check"


def _key_for_relation(manifest: Manifest, keys: DbtAssetKeys) -> dict[str, AssetKey]:
    out: dict[str, AssetKey] = {}
    for node in manifest.sources():
        rel = ".".join(p for p in (node.database, node.schema, node.identifier) if p).lower()
        out.setdefault(rel, keys.key(node))
    return out


def build_drift_checks(source_keys: Sequence[AssetKey], translator: AgentDETranslator | None = None):
    """One blocking ``schema_drift`` check per source asset, evaluated in a single step."""
    translator = translator or AgentDETranslator()
    specs = [
        AssetCheckSpec(DRIFT_CHECK, asset=k, blocking=True,
                       description="Live schema vs the accepted baseline: rename-aware, with column-level impact.",
                       metadata={"agent_de/kind": "schema_drift"})
        for k in source_keys
    ]

    @multi_asset_check(specs=specs, name="schema_drift_checks", can_subset=True)
    def schema_drift_checks(context: AssetCheckExecutionContext, agent_warehouse: AgentWarehouseResource):
        selected = set(context.selected_asset_check_keys)
        try:
            store = SnapshotStore(agent_warehouse.state())
            manifest = agent_warehouse.manifest()
            notifier = optional_notifier(agent_warehouse, context)  # those told of a question it withdraws
            with agent_warehouse.get_warehouse(context) as wh:
                run = run_drift(manifest, wh, store, notifier=notifier)
        except AgentDEError as e:
            context.log.error(f"schema drift check could not run: {e}")
            for key in selected:
                yield translator.error_check_result(e, "error", "schema drift check", key.asset_key, DRIFT_CHECK)
            return
        by_rel = _key_for_relation(manifest, agent_warehouse.asset_keys())
        for rel, table in run.snapshot.tables.items():
            key = by_rel.get(rel)
            if key is not None and AssetCheckKey(key, DRIFT_CHECK) in selected:
                context.op_execution_context.log_event(translator.schema_observation(key, table))
        if run.baseline_created:
            context.log.info(f"recorded the first schema snapshot as the baseline ({len(run.snapshot.tables)} relations)")
        if run.advanced:
            context.log.info("info-level changes only, baseline moved forward for: " + ", ".join(run.advanced))
        raised = {e.id for e in run.raised}
        for check_key in sorted(selected, key=lambda k: k.asset_key.to_user_string()):
            rels = [r for r, k in by_rel.items() if k == check_key.asset_key]
            changes = [c for c in run.report.changes if c.relation.lower() in rels]
            escalations = run.escalations_for(changes)
            for esc in escalations:
                if esc.id in raised:
                    context.log.info(f"escalation {esc.id} ({esc.kind.value}) for {esc.owner}: {esc.decision}")
                    context.op_execution_context.log_event(translator.escalation_observation(esc, check_key.asset_key))
            yield translator.drift_check_result(check_key.asset_key, changes, run.report.notes, escalations)
        for esc in run.withdrawn:
            context.log.info(f"escalation {esc.id} withdrawn: superseded by {esc.superseded_by}")
        log_deliveries(context, notifier)
        for event in _withdrawn_events(run, manifest, agent_warehouse.asset_keys(), translator):
            context.op_execution_context.log_event(event)
        if run.raised:
            record_escalations_asset(context.op_execution_context, store.state, translator)

    return schema_drift_checks


def _withdrawn_events(run: DriftRun, manifest: Manifest, keys: DbtAssetKeys, translator: AgentDETranslator) -> list:
    """The investigations' questions ``run``'s escalations replaced, withdrawn, on the models they concern."""
    return [translator.escalation_observation(esc, keys.key(manifest.find(esc.asset)))
            for esc in run.withdrawn if esc.asset]


def _escalation_events(run: DriftRun, by_rel: dict[str, AssetKey], store: SnapshotStore,
                       translator: AgentDETranslator, manifest: Manifest, keys: DbtAssetKeys) -> list:
    """The escalations ``run`` raised, on the sources they concern, the questions they replaced, and the open
    queue (for the sensor)."""
    if not run.raised:
        return []
    raised = {e.id for e in run.raised}
    events: list = []
    for rel, key in sorted(by_rel.items()):
        for esc in run.escalations_for([c for c in run.report.changes if c.relation.lower() == rel]):
            if esc.id in raised:
                events.append(translator.escalation_observation(esc, key))
    events += _withdrawn_events(run, manifest, keys, translator)
    return [*events, translator.escalations_materialization(ESCALATIONS_ASSET, store.state.escalations())]


def build_drift_job(check_keys: Sequence[AssetCheckKey]):
    return define_asset_job(
        DRIFT_JOB, selection=AssetSelection.checks(*check_keys),
        description="Run the schema drift checks on every dbt source (requested by the schema-poll sensor).",
    )


def build_schema_poll_sensor(
    minimum_interval_seconds: int = 60,
    translator: AgentDETranslator | None = None,
    default_status: DefaultSensorStatus = DefaultSensorStatus.RUNNING,
):
    """Poll source schemas (one information_schema read); on breaking drift request the drift checks.

    Changes are caught on the first tick after they happen, before the next scheduled build. The
    sensor records each new schema as an observation (``dagster/column_schema``) on the source asset.
    """
    translator = translator or AgentDETranslator()

    @sensor(
        name="schema_poll_sensor", job_name=DRIFT_JOB, minimum_interval_seconds=minimum_interval_seconds,
        default_status=default_status,
        description="Polls dbt source schemas and requests the schema drift checks when a breaking change appears.",
    )
    def schema_poll_sensor(context: SensorEvaluationContext, agent_warehouse: AgentWarehouseResource):
        try:
            store = SnapshotStore(agent_warehouse.state())
            manifest = agent_warehouse.manifest()
            with agent_warehouse.get_warehouse() as wh:
                current = take_current(manifest, wh, store)
        except AgentDEError as e:
            return SkipReason(f"could not snapshot source schemas: {e}")
        cursor = SchemaPollCursor.parse(context.cursor)
        if cursor.fingerprint == schema_fingerprint(current):
            return SkipReason("source schemas unchanged")
        notifier = optional_notifier(agent_warehouse, context)
        run = judge(manifest, store, current, notifier=notifier)
        new_cursor = SchemaPollCursor(fingerprint=run.fingerprint).dump()
        by_rel = _key_for_relation(manifest, agent_warehouse.asset_keys())
        events = [translator.schema_observation(by_rel[rel], t, run.fingerprint)
                  for rel, t in run.snapshot.tables.items() if rel in by_rel]
        events += _escalation_events(run, by_rel, store, translator, manifest, agent_warehouse.asset_keys())
        for esc in run.raised:
            context.log.info(f"escalation {esc.id} ({esc.kind.value}) for {esc.owner}: {esc.decision}")
        for esc in run.withdrawn:
            context.log.info(f"escalation {esc.id} withdrawn: superseded by {esc.superseded_by}")
        log_deliveries(context, notifier)
        if run.baseline_created:
            return SensorResult(skip_reason="first snapshot recorded as the baseline", cursor=new_cursor, asset_events=events)
        if not run.report.changes:
            return SensorResult(skip_reason="no drift against the baseline", cursor=new_cursor, asset_events=events)
        if not run.risky_relations():
            return SensorResult(skip_reason="only additive changes; baseline advanced", cursor=new_cursor, asset_events=events)
        report = run.report
        fp = run.fingerprint
        changed = sorted({by_rel[r] for r in run.risky_relations() if r in by_rel}, key=lambda k: k.to_user_string())
        context.log.info("schema drift: " + "; ".join(c.describe() for c in report.changes))
        return SensorResult(
            run_requests=[RunRequest(
                run_key=f"schema-drift-{fp}",
                asset_check_keys=[AssetCheckKey(k, DRIFT_CHECK) for k in changed],
                tags={"agent_de/trigger": "schema_poll_sensor", "agent_de/schema_fingerprint": fp},
            )],
            cursor=new_cursor,
            asset_events=events,
        )

    return schema_poll_sensor
