"""Schema drift in Dagster: a blocking check on every source asset, and the schema-poll sensor.

The drift check is one multi-asset check (one ``information_schema`` read for all sources).
It is blocking: in the ``dbt_build`` job it runs in its own step before the dbt op, and a
breaking change stops every model from building on the changed schema.
"""

import hashlib
import json
from collections.abc import Sequence

from dagster import (
    AssetCheckExecutionContext,
    AssetCheckKey,
    AssetCheckSpec,
    AssetKey,
    AssetObservation,
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

from dagster_agent_de.dagster.keys import DbtAssetKeys
from dagster_agent_de.dagster.resources import AgentWarehouseResource
from dagster_agent_de.dagster.translator import AgentDETranslator
from dagster_agent_de.engines.drift import SnapshotStore, compare, take_snapshot
from dagster_agent_de.engines.drift.models import DriftReport, Snapshot
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


def _accept_non_risky(baseline: Snapshot, current: Snapshot, report: DriftReport) -> Snapshot:
    """Advance the baseline for tables whose changes are all info-level (e.g. an added column)."""
    risky = {c.relation.lower() for c in report.changes if c.severity.rank >= 1}
    tables = dict(baseline.tables)
    for key, table in current.tables.items():
        if key not in risky:
            tables[key] = table
    missing = sorted(set(baseline.missing) & set(current.missing))
    return baseline.model_copy(update={"tables": tables, "missing": missing, "taken_at": current.taken_at})


def run_drift(manifest: Manifest, wh, store: SnapshotStore) -> tuple[DriftReport, Snapshot, bool]:
    """Snapshot, compare with the accepted baseline; returns (report, snapshot, baseline_created)."""
    baseline = store.baseline()
    current = take_snapshot(manifest, wh, store.load("last") or baseline)
    if baseline is None:
        store.save("baseline", current)
        store.save("last", current)
        return DriftReport(baseline_at=None, snapshot_at=current.taken_at, baseline_created=True), current, True
    report = compare(baseline, current, manifest)
    store.save("baseline", _accept_non_risky(baseline, current, report))
    store.save("last", current)
    return report, current, False


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
            with agent_warehouse.get_warehouse(context) as wh:
                report, current, created = run_drift(manifest, wh, store)
        except AgentDEError as e:
            context.log.error(f"schema drift check could not run: {e}")
            for key in selected:
                yield translator.error_check_result(e, "error", "schema drift check", key.asset_key, DRIFT_CHECK)
            return
        by_rel = _key_for_relation(manifest, agent_warehouse.asset_keys())
        for rel, table in current.tables.items():
            key = by_rel.get(rel)
            if key is not None and AssetCheckKey(key, DRIFT_CHECK) in selected:
                context.op_execution_context.log_event(
                    AssetObservation(asset_key=key, metadata={"dagster/column_schema": translator.column_schema(table)})
                )
        if created:
            context.log.info(f"recorded the first schema snapshot as the baseline ({len(current.tables)} relations)")
        for check_key in sorted(selected, key=lambda k: k.asset_key.to_user_string()):
            rels = [r for r, k in by_rel.items() if k == check_key.asset_key]
            changes = [c for c in report.changes if c.relation.lower() in rels]
            yield translator.drift_check_result(check_key.asset_key, changes, report.notes)

    return schema_drift_checks


def build_drift_job(check_keys: Sequence[AssetCheckKey]):
    return define_asset_job(
        DRIFT_JOB, selection=AssetSelection.checks(*check_keys),
        description="Run the schema drift checks on every dbt source (requested by the schema-poll sensor).",
    )


def _fingerprint(snapshot: Snapshot) -> str:
    body = json.dumps({k: [t.table_type, t.signature] for k, t in sorted(snapshot.tables.items())}
                      | {"missing": snapshot.missing}, sort_keys=True)
    return hashlib.sha256(body.encode()).hexdigest()[:16]


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
                current = take_snapshot(manifest, wh, store.load("last"))
        except AgentDEError as e:
            return SkipReason(f"could not snapshot source schemas: {e}")
        fp = _fingerprint(current)
        if context.cursor == fp:
            return SkipReason("source schemas unchanged")
        baseline = store.baseline()
        by_rel = _key_for_relation(manifest, agent_warehouse.asset_keys())
        events = [
            AssetObservation(asset_key=by_rel[rel], metadata={"dagster/column_schema": translator.column_schema(t),
                                                               "agent_de/schema_fingerprint": fp})
            for rel, t in current.tables.items() if rel in by_rel
        ]
        if baseline is None:
            store.save("baseline", current)
            store.save("last", current)
            return SensorResult(skip_reason="first snapshot recorded as the baseline", cursor=fp, asset_events=events)
        report = compare(baseline, current, manifest)
        store.save("last", current)
        if not report.changes:
            return SensorResult(skip_reason="no drift against the baseline", cursor=fp, asset_events=events)
        if not any(c.severity.rank >= 1 for c in report.changes):
            store.save("baseline", _accept_non_risky(baseline, current, report))
            return SensorResult(skip_reason="only additive changes; baseline advanced", cursor=fp, asset_events=events)
        changed = sorted({by_rel[c.relation.lower()] for c in report.changes if c.relation.lower() in by_rel},
                         key=lambda k: k.to_user_string())
        context.log.info("schema drift: " + "; ".join(c.describe() for c in report.changes))
        return SensorResult(
            run_requests=[RunRequest(
                run_key=f"schema-drift-{fp}",
                asset_check_keys=[AssetCheckKey(k, DRIFT_CHECK) for k in changed],
                tags={"agent_de/trigger": "schema_poll_sensor", "agent_de/schema_fingerprint": fp},
            )],
            cursor=fp,
            asset_events=events,
        )

    return schema_poll_sensor
