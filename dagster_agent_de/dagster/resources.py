"""Dagster resources: the audited warehouse the agent's ops and checks use."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from dagster import ConfigurableResource
from pydantic import Field

from dagster_agent_de.adapters.audit import AuditLog
from dagster_agent_de.adapters.state import open_state_store
from dagster_agent_de.adapters.warehouse import Warehouse, open_warehouse
from dagster_agent_de.config import Settings, resolve_settings
from dagster_agent_de.core.models import AuditEvent
from dagster_agent_de.core.state import StateStore
from dagster_agent_de.dagster.keys import DbtAssetKeys, resolve_translator
from dagster_agent_de.manifest import Manifest
from dagster_agent_de.project import DbtProjectInfo

_MANIFESTS: dict[str, tuple[tuple[str, int, str], Manifest]] = {}
_KEYS: dict[tuple[str, str], tuple[Manifest, DbtAssetKeys]] = {}
_SNOWFLAKE_RESOURCES: dict[str, Any] = {}


def register_snowflake_resource(resource: Any) -> str:
    """Library mode: the team's own ``SnowflakeResource`` (credentials, key pair...) for the agent's
    sessions. Registered by name so every process that loads the code location finds it."""
    ref = f"snowflake:{type(resource).__module__}:{id(type(resource))}"
    _SNOWFLAKE_RESOURCES[ref] = resource
    return ref


class AgentWarehouseResource(ConfigurableResource):
    """The agent's audited, read-only access to the warehouse dbt builds.

    The connection is the one the dbt profile's target describes (its ``type`` picks DuckDB or
    Snowflake; a Snowflake target becomes a ``dagster_snowflake.SnowflakeResource`` with the profile's
    auth and a ``QUERY_TAG`` naming the agent and the run). Every statement is checked by the read-only guard
    and written to the run log and the durable audit log.
    """

    target: str | None = Field(
        default=None, description="dbt target (any output of the project's profile; default: the profile's own)."
    )
    state_dir: str | None = Field(
        default=None, description="State directory (default: AGENT_DE_STATE_DIR or ./.agent_de)."
    )
    project_dir: str | None = Field(default=None, description="dbt project directory (default: resolved).")
    duckdb_path: str | None = Field(default=None, description="DuckDB file (default: the profile's path).")
    dbt_translator: str | None = Field(
        default=None, description="The team's DagsterDbtTranslator, package.module:ClassName (default: "
                                  "AGENT_DE_DBT_TRANSLATOR, a key prefix, or dagster-dbt's default).")
    asset_key_prefix: list[str] | None = Field(
        default=None, description="Prefix of every dbt asset key when the team's translator only adds one "
                                  "(default: AGENT_DE_ASSET_KEY_PREFIX).")
    snowflake_resource: str | None = Field(
        default=None, description="Library mode: name of the team's registered SnowflakeResource.")
    read_only: bool = Field(
        default=True, description="Refuse every statement that is not a read. Only a policy may lower this."
    )

    def settings(self) -> Settings:
        return resolve_settings(self.state_dir, self.project_dir, self.target, self.duckdb_path)

    def asset_keys(self) -> DbtAssetKeys:
        """The team's asset keys for every dbt node (their translator), built once per manifest version."""
        manifest = self.manifest()  # cached per manifest file version: the same object until it changes
        key = (self.dbt_translator or "", "/".join(self.asset_key_prefix or []))
        cached = _KEYS.get(key)
        if cached is None or cached[0] is not manifest:
            translator = resolve_translator(self.dbt_translator, self.asset_key_prefix)
            cached = _KEYS[key] = (manifest, DbtAssetKeys.build(manifest.data, translator))
        return cached[1]

    def state(self) -> StateStore:
        """The agent's state store, shared by the code server, the daemon's sensors and every run worker
        (``AGENT_DE_STATE_URL``, else the instance's PostgreSQL, else SQLite in the state dir)."""
        return open_state_store(self.settings())

    def manifest(self) -> Manifest:
        """The project's manifest (lineage, relations, compiled SQL), parsed once per version of the file.

        Sensors tick every minute in a long-lived code server; re-parsing a large manifest each tick
        would be the hot path.
        """
        settings = self.settings()
        info = DbtProjectInfo.from_settings(settings)
        path = info.ensure_manifest(env=settings.dbt_env())
        key = (str(path), path.stat().st_mtime_ns, str(settings.project_dir))
        cached = _MANIFESTS.get(key[0])
        if cached is not None and cached[0] == key:
            return cached[1]
        manifest = Manifest(info.load_manifest(env=settings.dbt_env()), settings.project_dir, info.compiled_after)
        _MANIFESTS[key[0]] = (key, manifest)
        return manifest

    def audit_log(self, context: Any | None = None) -> AuditLog:
        settings = self.settings()
        sinks = []
        actor, run_id = "dagster", None
        if context is not None:
            log = context.log
            sinks.append(lambda e: _log_event(log, e))
            run_id = getattr(context, "run_id", None)
            op_def = getattr(context, "op_def", None)
            actor = f"op:{op_def.name}" if op_def is not None else "dagster"
        return AuditLog(open_state_store(settings), actor=actor, run_id=run_id, sinks=sinks)

    @contextmanager
    def get_warehouse(self, context: Any | None = None) -> Iterator[Warehouse]:
        """Open the audited warehouse for one op/check; closed on exit."""
        settings = self.settings()
        if context is not None:
            for note in settings.overrides():
                context.log.info(note)
        snowflake = _SNOWFLAKE_RESOURCES.get(self.snowflake_resource or "")
        wh = open_warehouse(settings, self.audit_log(context), read_only=self.read_only, snowflake_resource=snowflake)
        try:
            yield wh
        finally:
            wh.close()


def _log_event(log: Any, event: AuditEvent) -> None:
    if event.outcome == "ok":
        log.info(event.one_line())
    else:
        log.warning(event.one_line())
