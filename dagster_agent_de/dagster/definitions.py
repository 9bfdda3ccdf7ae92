"""The code location: ``defs`` for ``dagster dev -w workspace.yaml``.

The dbt project becomes dbt assets (dbt tests as asset checks), its sources become
external assets, and the agent's resources are bound. Everything is resolved from
:func:`dagster_agent_de.config.resolve_settings` (environment variables), so the same
module serves the demo and a user's project.
"""

from __future__ import annotations

import os
from typing import Any

from dagster import (
    AssetKey,
    AssetSelection,
    AssetSpec,
    DefaultSensorStatus,
    Definitions,
    define_asset_job,
)
from dagster_dbt import (
    DagsterDbtTranslator,
    DagsterDbtTranslatorSettings,
    DbtCliResource,
    dbt_assets,
)

from dagster_agent_de.config import Settings, resolve_settings
from dagster_agent_de.dagster.checks import build_reconcile_checks, build_reconcile_schedule
from dagster_agent_de.dagster.drift import build_drift_checks, build_drift_job, build_schema_poll_sensor
from dagster_agent_de.dagster.entities import ENTITIES_ASSET, resolve_entities_job
from dagster_agent_de.dagster.escalations import answer_escalation_job
from dagster_agent_de.dagster.intents import build_intent_checks, models_that_sum
from dagster_agent_de.dagster.investigate import (
    ESCALATIONS_ASSET,
    FINDINGS_ASSET,
    build_failed_check_sensor,
    investigate_job,
)
from dagster_agent_de.dagster.metrics import METRICS_ASSET, build_metric_audit_schedule, metric_audit_job
from dagster_agent_de.dagster.onboard import ONBOARDING_ASSET, onboard_source_job
from dagster_agent_de.dagster.pii import build_pii_checks, build_pii_schedule
from dagster_agent_de.dagster.resources import AgentWarehouseResource
from dagster_agent_de.dagster.volume import build_volume_checks
from dagster_agent_de.engines.intents import intents_from_manifest
from dagster_agent_de.engines.reconcile import specs_from_manifest
from dagster_agent_de.manifest import Manifest, Node
from dagster_agent_de.project import DbtProjectInfo, dbt_executable

DBT_BUILD_JOB = "dbt_build"


def source_asset_key(source_name: str, table_name: str) -> AssetKey:
    """dagster-dbt's default key for a dbt source."""
    return AssetKey([source_name, table_name])


def source_specs(manifest: dict[str, Any]) -> list[AssetSpec]:
    """External assets for every dbt source, so lineage starts at the raw tables."""
    specs = []
    for source in manifest["sources"].values():
        specs.append(
            AssetSpec(
                key=source_asset_key(source["source_name"], source["name"]),
                description=source.get("description") or None,
                group_name="sources",
                kinds={"dbt", "source"},
                owners=[o for o in [_owner(source)] if o],
                metadata={
                    "relation": ".".join(p for p in (source.get("database"), source.get("schema"), source.get("identifier")) if p),
                    "loaded_at_field": source.get("loaded_at_field") or "",
                },
            )
        )
    return specs


def _owner(node: dict[str, Any]) -> str | None:
    owner = (node.get("meta") or {}).get("owner") or (node.get("source_meta") or {}).get("owner")
    if not owner:
        return None
    return owner if "@" in owner or owner.startswith("team:") else f"team:{owner.replace(' ', '-')}"


_LOADED = ("table", "incremental", "snapshot", "seed")


def _wants_volume_check(node: Node) -> bool:
    """Models that load data (tables, incremental, snapshots) get a volume check; views only with
    ``meta.agent_de.volume: true`` (counting a view runs it); ``false`` opts anything out."""
    wanted = node.agent_de_meta.get("volume")
    if wanted is not None:
        return bool(wanted)
    return node.resource_type in ("seed", "snapshot") or (node.raw.get("config") or {}).get("materialized") in _LOADED


def build_definitions(settings: Settings | None = None) -> Definitions:
    """Build the code location for the project in ``settings`` (default: resolved from env)."""
    settings = settings or resolve_settings()
    settings.export_env()
    project = DbtProjectInfo.from_settings(settings)
    manifest = project.load_manifest(env=settings.dbt_env())

    translator = DagsterDbtTranslator(
        settings=DagsterDbtTranslatorSettings(enable_asset_checks=True, enable_source_tests_as_checks=True)
    )

    @dbt_assets(manifest=manifest, dagster_dbt_translator=translator, name="dbt_models")
    def dbt_models(context, dbt: DbtCliResource):  # no annotation: this module uses postponed annotations
        yield from dbt.cli(["build"], context=context).stream()

    view = Manifest(manifest, project.project_dir)
    # one pass over the dbt specs (get_asset_key_for_model scans the manifest per call: quadratic on 2,000 models)
    key_for: dict[str, AssetKey] = {}
    for spec in dbt_models.specs:
        uid = (spec.metadata or {}).get("dagster_dbt/unique_id")
        if uid in view.nodes:
            key_for.setdefault(view.nodes[uid].name, spec.key)
    reconcile_checks = build_reconcile_checks(specs_from_manifest(view))
    reconcile_job, reconcile_schedule = build_reconcile_schedule(
        reconcile_checks, os.environ.get("AGENT_DE_RECONCILE_CRON", "0 6 * * *")
    )

    sources = source_specs(manifest)
    drift_checks = build_drift_checks([s.key for s in sources])
    pii_checks = build_pii_checks([s.key for s in sources])
    intent_checks = build_intent_checks(
        intents_from_manifest(view), models_that_sum(view), key_for)
    extra_checks = [c for c in (intent_checks,) if c is not None]
    pii_job, pii_schedule = build_pii_schedule(list(pii_checks.check_keys), os.environ.get("AGENT_DE_PII_CRON", "30 6 * * *"))
    volume_checks = build_volume_checks({
        n.name: (key_for.get(n.name, AssetKey([n.name])), n.relation_name,
                 (n.raw.get("config") or {}).get("materialized") == "incremental")
        for n in view.models()
        if n.relation_name and _wants_volume_check(n)
    })
    drift_job = build_drift_job(list(drift_checks.check_keys))
    poll_sensor = build_schema_poll_sensor(
        int(os.environ.get("AGENT_DE_SCHEMA_POLL_SECONDS", "60")),
        default_status=DefaultSensorStatus.STOPPED
        if os.environ.get("AGENT_DE_SCHEMA_POLL", "on").lower() in ("off", "0", "false") else DefaultSensorStatus.RUNNING,
    )

    # The blocking drift checks on the sources run in their own step before the dbt op: a breaking
    # change stops the build before any model reads the changed schema. dbt source tests are checks
    # on the source assets too; reconciliation checks run after their model, in the same run.
    dbt_build_job = define_asset_job(
        DBT_BUILD_JOB,
        selection=AssetSelection.assets(dbt_models)
        | AssetSelection.checks(*dbt_models.check_keys)
        | AssetSelection.checks(*drift_checks.check_keys)
        | AssetSelection.checks(*volume_checks.check_keys)
        | AssetSelection.checks(*[k for c in extra_checks for k in c.check_keys])
        | AssetSelection.checks(*[k for c in reconcile_checks for k in c.check_keys]),
        description="Schema drift gate, then dbt build (models and dbt tests), then reconciliation and volume checks.",
    )

    plugin_assets = [
        AssetSpec(FINDINGS_ASSET, group_name="agent_de", kinds={"agent_de"},
                  description="Recent findings of the agent's investigations (materialized by the investigate job)."),
        AssetSpec(ENTITIES_ASSET, group_name="agent_de", kinds={"agent_de"},
                  description="Entity maps: records merged at high confidence, pairs left for review (resolve_entities job)."),
        AssetSpec(METRICS_ASSET, group_name="agent_de", kinds={"agent_de"},
                  description="Every metric definition in the project and the ones computed differently (metric_audit job)."),
        AssetSpec(ONBOARDING_ASSET, group_name="agent_de", kinds={"agent_de"},
                  description="Source onboarding proposals (materialized by the onboard_source job)."),
        AssetSpec(ESCALATIONS_ASSET, group_name="agent_de", kinds={"agent_de"},
                  description="The open queue of decisions for humans: context gaps and authority gaps. "
                              "Answer with the answer_escalation job or `agent-de escalations answer`."),
    ]
    opted_out = [AssetKey([n.name]) for n in view.models() if n.agent_de_meta.get("investigate") is False]
    failed_check_sensor = build_failed_check_sensor(
        int(os.environ.get("AGENT_DE_FAILED_CHECK_SECONDS", "30")), opted_out_assets=opted_out
    )

    return Definitions(
        assets=[dbt_models, *sources, *plugin_assets],
        asset_checks=[*reconcile_checks, drift_checks, volume_checks, pii_checks, *extra_checks],
        jobs=[dbt_build_job, reconcile_job, drift_job, investigate_job, answer_escalation_job, onboard_source_job, pii_job,
              metric_audit_job, resolve_entities_job],
        schedules=[reconcile_schedule, pii_schedule,
                   build_metric_audit_schedule(os.environ.get("AGENT_DE_METRICS_CRON", "0 7 * * 1"))],
        sensors=[poll_sensor, failed_check_sensor],
        resources={
            "dbt": DbtCliResource(
                project_dir=str(project.project_dir),
                profiles_dir=str(project.profiles_dir),
                target=settings.target,
                dbt_executable=dbt_executable(),
            ),
            "agent_warehouse": AgentWarehouseResource(
                target=settings.target,
                state_dir=str(settings.state_dir),
                project_dir=str(settings.project_dir),
                duckdb_path=str(settings.duckdb_path),
            ),
        },
    )


_defs: Definitions | None = None


def __getattr__(name: str) -> Any:
    """``defs`` is built on first access (what workspace.yaml loads), not when the module is imported,
    so importing :func:`build_definitions` costs nothing."""
    global _defs
    if name == "defs":
        if _defs is None:
            _defs = build_definitions()
        return _defs
    raise AttributeError(name)
