"""Warehouse adapters: one module per engine, a name-to-class registry."""

from __future__ import annotations

from pathlib import Path

from dagster_agent_de.adapters.audit import AuditLog
from dagster_agent_de.adapters.warehouse.base import Capabilities, QueryResult, Warehouse
from dagster_agent_de.adapters.warehouse.duckdb import DuckDBWarehouse
from dagster_agent_de.config import Settings
from dagster_agent_de.errors import ConfigError


def open_warehouse(settings: Settings, audit: AuditLog, *, read_only: bool = True) -> Warehouse:
    """Open the warehouse of ``settings.target`` (DuckDB, Snowflake from ``SNOWFLAKE_*``, PostgreSQL from the dbt profile output)."""
    if settings.target == "duckdb":
        return DuckDBWarehouse(Path(settings.duckdb_path), audit, read_only=read_only)
    if settings.target == "snowflake":
        from dagster_agent_de.adapters.warehouse.snowflake import (
            SnowflakeWarehouse,
            snowflake_resource_from_env,
        )

        return SnowflakeWarehouse.from_resource(snowflake_resource_from_env(), audit, read_only=read_only)
    if settings.target == "postgres":
        from dagster_agent_de.adapters.warehouse.postgres import PostgresWarehouse

        # the rendered dbt profile output of the target; Settings gains it with the config rework that reads
        # connections from the dbt profile (until then the postgres target is not among SUPPORTED_TARGETS)
        output = getattr(settings, "profile_output", None)
        if not output:
            raise ConfigError(
                "the postgres target reads its connection from the dbt profile output (type: postgres); "
                "none was found in the settings"
            )
        return PostgresWarehouse.from_profile_output(output, audit, read_only=read_only)
    raise ConfigError(f"unknown target {settings.target!r}")


__all__ = ["AuditLog", "Capabilities", "DuckDBWarehouse", "QueryResult", "Warehouse", "open_warehouse"]
