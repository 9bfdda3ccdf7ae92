"""Warehouse adapters: one module per engine, a name-to-class registry."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dagster_agent_de.adapters.audit import AuditLog
from dagster_agent_de.adapters.warehouse.base import Capabilities, QueryResult, Warehouse
from dagster_agent_de.adapters.warehouse.duckdb import DuckDBWarehouse
from dagster_agent_de.config import Settings
from dagster_agent_de.core.masking import configure_masking
from dagster_agent_de.errors import ConfigError


def open_warehouse(settings: Settings, audit: AuditLog, *, read_only: bool = True,
                   snowflake_resource: Any | None = None) -> Warehouse:
    """Open the warehouse of the dbt profile's target: the output's ``type`` picks the adapter and the
    output's fields are the connection (``snowflake_resource``: a team's own ``SnowflakeResource``,
    library mode, used instead of the profile's credentials).

    Also sets this process's PII masking key (``AGENT_DE_MASK_KEY`` or the state directory's key).
    """
    configure_masking(Path(settings.state_dir))
    kind = settings.warehouse_type
    if kind == "duckdb":
        return DuckDBWarehouse(Path(settings.duckdb_path), audit, read_only=read_only,
                               missing_fix=settings.duckdb_missing_fix)
    if kind == "snowflake":
        from dagster_agent_de.adapters.warehouse.snowflake import (
            SnowflakeWarehouse,
            snowflake_resource_from_profile,
        )

        resource = snowflake_resource or snowflake_resource_from_profile(settings.profile_target, run_id=audit.run_id)
        return SnowflakeWarehouse.from_resource(resource, audit, read_only=read_only)
    if kind == "postgres":
        from dagster_agent_de.adapters.warehouse.postgres import PostgresWarehouse

        return PostgresWarehouse.from_profile_output(settings.profile_target.output, audit, read_only=read_only,
                                                     run_id=audit.run_id)
    raise ConfigError(f"{settings.profile_target.describe()}: no adapter for warehouse type {kind!r}")


__all__ = ["AuditLog", "Capabilities", "DuckDBWarehouse", "QueryResult", "Warehouse", "open_warehouse"]
