"""Asset checks the agent adds to dbt assets: reconciliation (and, by later features, drift)."""

# No `from __future__ import annotations` here: Dagster reads these decorated functions' annotations when they
# are defined (a string `context` annotation or `Config` class is refused; verified on Dagster 1.13).

from collections.abc import Sequence

from dagster import (
    AssetCheckExecutionContext,
    AssetCheckKey,
    AssetChecksDefinition,
    AssetKey,
    AssetSelection,
    ScheduleDefinition,
    asset_check,
    define_asset_job,
)

from dagster_agent_de.dagster.resources import AgentWarehouseResource
from dagster_agent_de.dagster.translator import AgentDETranslator
from dagster_agent_de.engines.reconcile import InvalidSpec, ReconcileSpec, reconcile
from dagster_agent_de.errors import AgentDEError

RECONCILE_JOB = "reconcile"


def build_reconcile_checks(
    specs: Sequence[ReconcileSpec | InvalidSpec],
    *,
    asset_key_for_model: dict[str, AssetKey] | None = None,
    translator: AgentDETranslator | None = None,
) -> list[AssetChecksDefinition]:
    """One asset check per reconcile spec, on the model's asset, named after the spec.

    An :class:`InvalidSpec` still gets its check: it fails with the spec's error when it runs, so one
    bad spec neither stops the code location from loading nor hides the others.
    """
    translator = translator or AgentDETranslator()
    checks = []
    for spec in specs:
        key = (asset_key_for_model or {}).get(spec.model, AssetKey([spec.model]))
        if isinstance(spec, InvalidSpec):
            checks.append(_invalid_spec_check(spec, key, translator))
        else:
            checks.append(_reconcile_check(spec, key, translator))
    return checks


def _invalid_spec_check(spec: InvalidSpec, key: AssetKey, translator: AgentDETranslator) -> AssetChecksDefinition:
    @asset_check(
        asset=key,
        name=spec.name,
        description=f"Invalid reconcile spec on {spec.model}: {spec.error}"[:1000],
        metadata={"agent_de/kind": "reconciliation", "agent_de/invalid_spec": str(spec.error)[:1000]},
    )
    def _check(context: AssetCheckExecutionContext):
        context.log.error(f"reconcile spec {spec.model}.{spec.name} is invalid: {spec.error}")
        return translator.error_check_result(spec.error, "error", "reconciliation")

    return _check


def _reconcile_check(spec: ReconcileSpec, key: AssetKey, translator: AgentDETranslator) -> AssetChecksDefinition:
    @asset_check(
        asset=key,
        name=spec.name,
        blocking=spec.blocking,
        description=(spec.description or f"Reconcile {spec.model} against {spec.against}") + f" (key {', '.join(spec.key)})",
        metadata={"agent_de/kind": "reconciliation", "agent_de/against": spec.against,
                  "agent_de/investigate": spec.investigate},
    )
    def _check(context: AssetCheckExecutionContext, agent_warehouse: AgentWarehouseResource):
        settings = agent_warehouse.settings()
        try:
            manifest = agent_warehouse.manifest()
            with agent_warehouse.get_warehouse(context) as wh:
                report = reconcile(spec, manifest, wh, search_dirs=[settings.project_dir, settings.state_dir])
        except AgentDEError as e:
            context.log.error(f"reconciliation {spec.model}.{spec.name} could not run: {e}")
            return translator.error_check_result(e, spec.severity, "reconciliation")
        context.log.info(report.summary())
        return translator.reconcile_check_result(report, key)

    return _check


def build_reconcile_schedule(
    checks: Sequence[AssetChecksDefinition], cron_schedule: str = "0 6 * * *"
) -> tuple[object, ScheduleDefinition]:
    """A job that runs only the reconciliation checks (no model rebuild) and its schedule."""
    keys: list[AssetCheckKey] = [k for c in checks for k in c.check_keys]
    job = define_asset_job(
        RECONCILE_JOB, selection=AssetSelection.checks(*keys),
        description="Re-run every reconciliation check against its source of truth, without rebuilding models.",
    )
    return job, ScheduleDefinition(name="reconcile_daily", job=job, cron_schedule=cron_schedule)
