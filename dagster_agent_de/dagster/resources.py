"""Dagster resources: the audited warehouse the agent's ops and checks use."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

from dagster import ConfigurableResource
from pydantic import Field

from dagster_agent_de.adapters.audit import AuditLog
from dagster_agent_de.adapters.state import open_state_store
from dagster_agent_de.adapters.warehouse import Warehouse, open_warehouse
from dagster_agent_de.config import Settings, resolve_settings
from dagster_agent_de.core.models import AuditEvent
from dagster_agent_de.core.state import StateStore
from dagster_agent_de.manifest import Manifest
from dagster_agent_de.project import DbtProjectInfo

_MANIFESTS: dict[str, tuple[tuple[str, int, str], Manifest]] = {}


class AgentWarehouseResource(ConfigurableResource):
    """The agent's audited, read-only access to the warehouse dbt builds.

    DuckDB is the default (``<state dir>/warehouse.duckdb``); with ``target="snowflake"`` the
    connection comes from ``dagster_snowflake.SnowflakeResource`` configured by the
    ``SNOWFLAKE_*`` environment variables. Every statement is checked by the read-only guard
    and written to the run log and the durable audit log.
    """

    target: str = Field(default="duckdb", description="dbt target / warehouse kind: duckdb or snowflake.")
    state_dir: str | None = Field(
        default=None, description="State directory (default: AGENT_DE_STATE_DIR or ./.agent_de)."
    )
    project_dir: str | None = Field(default=None, description="dbt project directory (default: resolved).")
    duckdb_path: str | None = Field(default=None, description="DuckDB file (default: <state dir>/warehouse.duckdb).")
    read_only: bool = Field(
        default=True, description="Refuse every statement that is not a read. Only a policy may lower this."
    )

    def settings(self) -> Settings:
        settings = resolve_settings(self.state_dir, self.project_dir, self.target)
        if self.duckdb_path:
            settings = replace(settings, duckdb_path=Path(self.duckdb_path))
        return settings

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
        manifest = Manifest(info.load_manifest(env=settings.dbt_env()), settings.project_dir)
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
        wh = open_warehouse(self.settings(), self.audit_log(context), read_only=self.read_only)
        try:
            yield wh
        finally:
            wh.close()


def _log_event(log: Any, event: AuditEvent) -> None:
    if event.outcome == "ok":
        log.info(event.one_line())
    else:
        log.warning(event.one_line())
