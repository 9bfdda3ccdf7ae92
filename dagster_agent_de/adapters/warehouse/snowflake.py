"""Snowflake through ``dagster_snowflake.SnowflakeResource`` (imported lazily: it costs seconds)."""

from __future__ import annotations

import os
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

from dagster_agent_de.adapters.audit import AuditLog
from dagster_agent_de.adapters.warehouse.base import Capabilities, Warehouse, _Fetch
from dagster_agent_de.errors import ConfigError, WarehouseUnavailableError

ConnectionFactory = Callable[[], AbstractContextManager[Any]]

SNOWFLAKE_ENV_VARS = {
    "account": "SNOWFLAKE_ACCOUNT",
    "user": "SNOWFLAKE_USER",
    "password": "SNOWFLAKE_PASSWORD",
    "role": "SNOWFLAKE_ROLE",
    "warehouse": "SNOWFLAKE_WAREHOUSE",
    "database": "SNOWFLAKE_DATABASE",
    "schema": "SNOWFLAKE_SCHEMA",
}


def snowflake_resource_from_env() -> Any:
    """Build a ``SnowflakeResource`` from ``SNOWFLAKE_*`` environment variables."""
    try:
        from dagster_snowflake import SnowflakeResource
    except ImportError as e:
        raise ConfigError(
            "the snowflake target needs dagster-snowflake: pip install 'dagster-agent-de[snowflake]'"
        ) from e
    values = {k: os.environ.get(v) for k, v in SNOWFLAKE_ENV_VARS.items()}
    missing = [SNOWFLAKE_ENV_VARS[k] for k in ("account", "user") if not values[k]]
    if missing:
        raise ConfigError(f"the snowflake target needs environment variables {', '.join(missing)}")
    config: dict[str, Any] = {k: v for k, v in values.items() if v}
    return SnowflakeResource(**config)


class SnowflakeWarehouse(Warehouse):
    """Audited access to Snowflake.

    Args:
        connection_factory: a context manager factory yielding a DB-API connection, normally
            ``SnowflakeResource(...).get_connection`` (the same resource the user's Dagster
            deployment configures).
    """

    dialect = "snowflake"
    name = "snowflake"
    capabilities = Capabilities(temp_tables=True, information_schema=True, upper_case_identifiers=True)

    def __init__(self, connection_factory: ConnectionFactory, audit: AuditLog, *, read_only: bool = True) -> None:
        super().__init__(audit, read_only=read_only)
        self._factory = connection_factory
        self._cm: AbstractContextManager[Any] | None = None
        self._con: Any = None

    @classmethod
    def from_resource(cls, resource: Any, audit: AuditLog, *, read_only: bool = True) -> SnowflakeWarehouse:
        return cls(resource.get_connection, audit, read_only=read_only)

    def _connect(self) -> Any:
        if self._con is None:
            try:
                self._cm = self._factory()
                self._con = self._cm.__enter__()
            except Exception as e:
                self._cm = None
                raise WarehouseUnavailableError(
                    f"cannot connect to Snowflake ({type(e).__name__}: {e}); check the SNOWFLAKE_* "
                    "environment variables / the SnowflakeResource configuration"
                ) from e
        return self._con

    def _run(self, sql: str, max_rows: int | None) -> tuple[list[str], list[tuple[Any, ...]], bool, list[str]]:
        con = self._connect()
        cursor = con.cursor()
        try:
            cursor.execute(sql)
            return _Fetch(cursor, max_rows, _snowflake_type_name).fetch()
        finally:
            cursor.close()

    def close(self) -> None:
        if self._cm is not None:
            try:
                self._cm.__exit__(None, None, None)
            finally:
                self._cm = None
                self._con = None


def _snowflake_type_name(code: Any) -> str:
    """The connector's type code (0, 2, ...) as Snowflake names it (FIXED, TEXT, ...)."""
    from snowflake.connector.constants import FIELD_ID_TO_NAME

    return str(FIELD_ID_TO_NAME.get(code, code))
