"""The code location: ``defs`` for ``dagster dev -w workspace.yaml``.

The dbt project becomes dbt assets (dbt tests as asset checks), its sources become
external assets, and the agent's resources are bound. Everything is resolved from
:func:`dagster_agent_de.config.resolve_settings` (environment variables), so the same
module serves the demo and a user's project.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dagster import (
    AssetKey,
    AssetsDefinition,
    AssetSelection,
    AssetSpec,
    DefaultSensorStatus,
    Definitions,
    define_asset_job,
)
from dagster_dbt import (
    DagsterDbtTranslator,
    DbtCliResource,
    dbt_assets,
)
from dagster_dbt.asset_utils import DAGSTER_DBT_TRANSLATOR_METADATA_KEY

from dagster_agent_de.config import (
    BUNDLED_PROJECT_DIR,
    Cadence,
    Mode,
    Settings,
    demo_working_copy,
    resolve_mode,
    resolve_settings,
)
from dagster_agent_de.dagster.checks import build_reconcile_checks, build_reconcile_schedule
from dagster_agent_de.dagster.drift import build_drift_checks, build_drift_job, build_schema_poll_sensor
from dagster_agent_de.dagster.entities import ENTITIES_ASSET, build_entities_job
from dagster_agent_de.dagster.escalations import build_answer_job
from dagster_agent_de.dagster.intents import build_intent_checks, models_that_sum
from dagster_agent_de.dagster.investigate import (
    ESCALATIONS_ASSET,
    FINDINGS_ASSET,
    build_failed_check_sensor,
    build_investigate_job,
)
from dagster_agent_de.dagster.keys import DbtAssetKeys, resolve_translator, translator_ref
from dagster_agent_de.dagster.metrics import (
    METRICS_ASSET,
    build_metric_audit_job,
    build_metric_audit_schedule,
)
from dagster_agent_de.dagster.notify import build_digest_schedule, digest_job
from dagster_agent_de.dagster.onboard import ONBOARDING_ASSET, build_onboard_job
from dagster_agent_de.dagster.pii import build_pii_checks, build_pii_schedule
from dagster_agent_de.dagster.resources import AgentWarehouseResource, register_snowflake_resource
from dagster_agent_de.dagster.runtime import build_runtime_checks
from dagster_agent_de.dagster.sidecar import CHECKS_JOB, build_after_dbt_run_sensors
from dagster_agent_de.dagster.translator import AgentDETranslator
from dagster_agent_de.dagster.volume import build_volume_checks
from dagster_agent_de.engines.intents import read_intents
from dagster_agent_de.engines.performance.runtime import RuntimePolicy
from dagster_agent_de.engines.reconcile import specs_from_manifest
from dagster_agent_de.errors import ConfigError
from dagster_agent_de.manifest import Manifest, Node
from dagster_agent_de.project import DbtProjectInfo, dbt_executable

DBT_BUILD_JOB = "dbt_build"


def source_specs(view: Manifest, keys: DbtAssetKeys) -> list[AssetSpec]:
    """External assets for every dbt source (standalone mode), so lineage starts at the raw tables."""
    specs = []
    for node in view.sources():
        source = node.raw
        specs.append(
            AssetSpec(
                key=keys.key(node),
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


def _runtime_policy(node: Node) -> RuntimePolicy | ConfigError:
    """The model's runtime policy, or the error of a bad ``meta.agent_de.runtime``: the model's check then
    fails with it when it runs (one model's typo does not stop the location from loading)."""
    try:
        return RuntimePolicy.from_meta(node.name, node.agent_de_meta.get("runtime"))
    except ConfigError as e:
        return e


def build_definitions(settings: Settings | None = None, mode: str | None = None,
                      agent_translator: AgentDETranslator | None = None) -> Definitions:
    """The code location for the project in ``settings`` (default: resolved from the environment).

    ``standalone`` (the bundled demo's default) owns the dbt assets and runs ``dbt build``;
    ``sidecar`` (any other project's default) attaches checks, jobs and sensors to the team's own
    dbt assets in another code location, under the keys their translator gives them.
    ``agent_translator`` builds every event and metadata entry (default: :class:`AgentDETranslator`).
    """
    settings = settings or resolve_settings()
    if settings.project_dir == BUNDLED_PROJECT_DIR:
        settings = demo_working_copy(settings)  # never parse or build inside the installed package
    chosen = resolve_mode(settings, mode)
    if chosen == "library":
        raise ConfigError("library mode is built by build_agent_de_definitions(...) in your own definitions "
                          "module; AGENT_DE_MODE is standalone or sidecar for this module")
    project = DbtProjectInfo.from_settings(settings)
    manifest = project.load_manifest()
    translator = resolve_translator()
    return _build(settings, chosen, manifest, translator, project, agent_translator=agent_translator)


def build_agent_de_definitions(
    *,
    dbt_project: Any = None,
    dbt_assets: Sequence[AssetsDefinition] = (),
    dagster_dbt_translator: DagsterDbtTranslator | None = None,
    snowflake: Any = None,
    state_dir: str | Path | None = None,
    target: str | None = None,
    agent_translator: AgentDETranslator | None = None,
) -> Definitions:
    """Library mode: the agent's checks, jobs, sensors and resources for your own dbt assets.

    Merge the result into your definitions; the agent defines no dbt asset and never runs dbt::

        from dagster import Definitions
        from dagster_agent_de import build_agent_de_definitions

        defs = Definitions.merge(
            Definitions(assets=[my_dbt_assets], resources={"dbt": DbtCliResource(project_dir=my_project)}),
            build_agent_de_definitions(dbt_project=my_project, dbt_assets=[my_dbt_assets]),
        )

    Args:
        dbt_project: a ``dagster_dbt.DbtProject`` or the project directory.
        dbt_assets: your ``@dbt_assets`` definitions; their translator is used when none is given.
        dagster_dbt_translator: your translator (asset keys of models, sources and dbt tests).
        snowflake: your ``dagster_snowflake.SnowflakeResource``, used for the agent's read-only
            sessions instead of the profile's credentials.
        state_dir: the agent's state directory (default ``AGENT_DE_STATE_DIR`` or ``./.agent_de``).
        target: the dbt target (default: your ``DbtProject``'s target, else the profile's).
        agent_translator: an :class:`AgentDETranslator` (or your subclass) that builds every check
            result, observation, materialization and metadata entry of the agent.
    """
    project_dir = getattr(dbt_project, "project_dir", dbt_project)
    target = target or getattr(dbt_project, "target", None)
    settings = resolve_settings(state_dir, project_dir, target)
    if dagster_dbt_translator is None:
        for assets_def in dbt_assets:
            for spec in assets_def.specs:
                found = (spec.metadata or {}).get(DAGSTER_DBT_TRANSLATOR_METADATA_KEY)
                if isinstance(found, DagsterDbtTranslator):
                    dagster_dbt_translator = found
                    break
            if dagster_dbt_translator is not None:
                break
    translator = dagster_dbt_translator or resolve_translator()
    project = DbtProjectInfo.from_settings(settings)
    return _build(settings, "library", project.load_manifest(), translator, project, snowflake=snowflake,
                  agent_translator=agent_translator)


def _build(settings: Settings, mode: Mode, manifest: dict[str, Any], translator: DagsterDbtTranslator,
           project: DbtProjectInfo, snowflake: Any = None, agent_translator: AgentDETranslator | None = None) -> Definitions:
    view = Manifest(manifest, project.project_dir, project.compiled_after)
    events = agent_translator or AgentDETranslator()  # the one instance every check, job and sensor uses
    cadence = Cadence.from_env()  # schedules and sensor intervals: the environment, read once
    # standalone: @dbt_assets first, so the key map reads the translator's memoized specs (one pass, not two)
    dbt_models = _owned_dbt_assets(manifest, translator) if mode == "standalone" else None
    keys = DbtAssetKeys.build(manifest, translator)
    key_for = keys.model_keys(view)
    ref = translator_ref(translator)

    reconcile_checks = build_reconcile_checks(specs_from_manifest(view), asset_key_for_model=key_for, translator=events)
    reconcile_job, reconcile_schedule = build_reconcile_schedule(
        reconcile_checks, cadence.reconcile_cron
    )
    source_keys = [keys.key(n) for n in view.sources()]
    drift_checks = build_drift_checks(source_keys, events)
    pii_checks = build_pii_checks(source_keys, events)
    intents, invalid_intents = read_intents(view)
    intent_checks = build_intent_checks(intents, models_that_sum(view), key_for, events, invalid=invalid_intents)
    extra_checks = [c for c in (intent_checks,) if c is not None]
    pii_job, pii_schedule = build_pii_schedule(list(pii_checks.check_keys), cadence.pii_cron)
    volume_checks = build_volume_checks({
        n.name: (key_for.get(n.name, AssetKey([n.name])), n.relation_name,
                 (n.raw.get("config") or {}).get("materialized") == "incremental")
        for n in view.models()
        if n.relation_name and _wants_volume_check(n)
    }, events)
    policies = {n.name: _runtime_policy(n) for n in view.models()}
    # tables and incremental models only: a view's dbt runtime is its CREATE VIEW (its cost is paid by
    # whoever reads it, and shows in their runtime), so timing it measures dbt, not the model
    runtime_checks = build_runtime_checks({
        n.name: (key_for.get(n.name, AssetKey([n.name])), n.unique_id, policies[n.name])
        for n in view.models() if n.relation_name and not getattr(policies[n.name], "ignore", False)
        and (n.raw.get("config") or {}).get("materialized") in _LOADED
    }, run_results=project.target_path / "run_results.json", translator=events)
    drift_job = build_drift_job(list(drift_checks.check_keys))
    poll_sensor = build_schema_poll_sensor(
        cadence.schema_poll_seconds, translator=events,
        default_status=DefaultSensorStatus.STOPPED
        if not cadence.schema_poll else DefaultSensorStatus.RUNNING,
    )
    model_checks = [*[k for c in extra_checks for k in c.check_keys], *volume_checks.check_keys, *runtime_checks.check_keys,
                    *[k for c in reconcile_checks for k in c.check_keys]]

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
    investigate_job = build_investigate_job(events)
    opted_out = [keys.key(n) for n in view.models() if n.agent_de_meta.get("investigate") is False and n.unique_id in keys.by_uid]
    failed_check_sensor = build_failed_check_sensor(
        cadence.failed_check_seconds, lookback_hours=cadence.investigate_lookback_hours,
        retry_backoff_seconds=cadence.retry_backoff_seconds, opted_out_assets=opted_out,
        watched_check_keys=keys.dbt_test_check_keys if mode != "standalone" else (), investigate=investigate_job,
    )
    agent_warehouse = AgentWarehouseResource(
        target=settings.resolved_target,
        state_dir=str(settings.state_dir),
        project_dir=str(settings.project_dir),
        duckdb_path=str(settings.duckdb_override) if settings.duckdb_override else None,
        dbt_translator=ref,
        snowflake_resource=register_snowflake_resource(snowflake) if snowflake is not None else None,
    )
    metric_audit_job = build_metric_audit_job(events)
    jobs: list[Any] = [reconcile_job, drift_job, investigate_job, build_answer_job(events), build_onboard_job(events), pii_job,
                       metric_audit_job, build_entities_job(events), digest_job]
    sensors: list[Any] = [poll_sensor, failed_check_sensor]
    assets: list[Any] = [*plugin_assets]
    resources: dict[str, Any] = {"agent_warehouse": agent_warehouse}
    if dbt_models is not None:
        settings.export_env()  # dagster-dbt starts dbt with os.environ
        assets = [dbt_models, *source_specs(view, keys), *assets]
        # The blocking drift checks on the sources run in their own step before the dbt op: a breaking
        # change stops the build before any model reads the changed schema. dbt source tests are checks
        # on the source assets too; reconciliation checks run after their model, in the same run.
        jobs.insert(0, define_asset_job(
            DBT_BUILD_JOB,
            selection=AssetSelection.assets(dbt_models)
            | AssetSelection.checks(*dbt_models.check_keys)
            | AssetSelection.checks(*drift_checks.check_keys)
            | AssetSelection.checks(*model_checks),
            description="Schema drift gate, then dbt build (models and dbt tests), then reconciliation and volume checks.",
        ))
        resources["dbt"] = DbtCliResource(
            project_dir=str(project.project_dir), profiles_dir=str(project.profiles_dir),
            target=settings.resolved_target, dbt_executable=dbt_executable(),
        )
    else:
        # Sidecar and library mode: the team's location owns the dbt assets and runs dbt; the agent's
        # checks run in a checks-only job after each of their runs (a sensor watching every location).
        checks_job = define_asset_job(
            CHECKS_JOB, selection=AssetSelection.checks(*drift_checks.check_keys, *model_checks),
            description="The agent's checks on your dbt assets (drift, reconciliation, volume, intents); "
                        "launched after each run of yours that materializes them.",
            tags={"agent_de/kind": "checks"},
        )
        jobs.append(checks_job)
        sensors += build_after_dbt_run_sensors(checks_job, model_checks, own_jobs=[CHECKS_JOB, *(
            getattr(j, "name", "") for j in jobs)], minimum_interval_seconds=cadence.after_run_seconds)
    return Definitions(
        assets=assets,
        asset_checks=[*reconcile_checks, drift_checks, volume_checks, runtime_checks, pii_checks, *extra_checks],
        jobs=jobs,
        schedules=[reconcile_schedule, pii_schedule,
                   build_metric_audit_schedule(cadence.metrics_cron, metric_audit_job),
                   build_digest_schedule(cadence.digest_cron)],
        sensors=sensors,
        resources=resources,
    )


def _owned_dbt_assets(manifest: dict[str, Any], translator: DagsterDbtTranslator) -> AssetsDefinition:
    @dbt_assets(manifest=manifest, dagster_dbt_translator=translator, name="dbt_models")
    def dbt_models(context, dbt: DbtCliResource):  # no annotation: this module uses postponed annotations
        yield from dbt.cli(["build"], context=context).stream()

    return dbt_models


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
