"""Snowflake through ``dagster_snowflake.SnowflakeResource`` (imported lazily: it costs seconds)."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

from sqlglot import exp

from dagster_agent_de.adapters.audit import AuditLog
from dagster_agent_de.adapters.warehouse.base import Capabilities, Warehouse, _Fetch
from dagster_agent_de.errors import ConfigError, WarehouseError, WarehouseUnavailableError
from dagster_agent_de.profile import ProfileTarget

ConnectionFactory = Callable[[], AbstractContextManager[Any]]

# dbt-snowflake profile keys -> SnowflakeResource fields (the rest of a profile is dbt's own business)
_PROFILE_FIELDS = {
    "account": "account", "user": "user", "password": "password", "role": "role", "warehouse": "warehouse",
    "database": "database", "schema": "schema_", "authenticator": "authenticator",
    "private_key": "private_key", "private_key_path": "private_key_path",
    "private_key_passphrase": "private_key_password", "connect_timeout": "login_timeout",
}


def query_tag(run_id: str | None) -> str:
    """The ``QUERY_TAG`` of the agent's sessions: names the agent and the Dagster run, as JSON.

    >>> query_tag("abc")
    '{"app": "dagster-agent-de", "run_id": "abc"}'
    """
    return json.dumps({"app": "dagster-agent-de", "run_id": run_id or ""})


TIMEOUT_PARAMETER = "STATEMENT_TIMEOUT_IN_SECONDS"
"""The session parameter bounding each statement's run time (Snowflake docs, ALTER SESSION / Parameters)."""


def alter_session_sql(parameter: str, value: int | None) -> str:
    """``ALTER SESSION SET parameter = value`` (``UNSET`` when ``value`` is None), built by sqlglot.

    >>> alter_session_sql("STATEMENT_TIMEOUT_IN_SECONDS", 600)
    'ALTER SESSION SET STATEMENT_TIMEOUT_IN_SECONDS = 600'
    >>> alter_session_sql("STATEMENT_TIMEOUT_IN_SECONDS", None)
    'ALTER SESSION UNSET STATEMENT_TIMEOUT_IN_SECONDS'
    """
    name = exp.column(exp.to_identifier(parameter))
    item = exp.SetItem(this=name if value is None else exp.EQ(this=name, expression=exp.Literal.number(int(value))))
    return exp.Alter(kind="SESSION", actions=[exp.AlterSession(expressions=[item], unset=value is None)]).sql(
        dialect="snowflake")


def snowflake_resource_from_profile(target: ProfileTarget, *, run_id: str | None = None) -> Any:
    """A ``SnowflakeResource`` for a dbt-snowflake profile output: account, user, role, warehouse,
    database, schema and its auth (password, ``private_key_path``/``private_key`` with
    ``private_key_passphrase``, ``authenticator`` incl. ``oauth`` with ``token``). The session sets
    ``QUERY_TAG`` at connect, so ``QUERY_HISTORY`` shows which run of the agent sent each statement."""
    try:
        from dagster_snowflake import SnowflakeResource
    except ImportError as e:
        raise ConfigError(
            "the snowflake target needs dagster-snowflake: pip install 'dagster-agent-de[snowflake]'"
        ) from e
    output, describe = target.output, target.describe()
    missing = [k for k in ("account", "user") if not output.get(k)]
    if missing:
        raise ConfigError(target.missing(*missing))
    config: dict[str, Any] = {field: str(output[key]) if key != "connect_timeout" else int(output[key])
                              for key, field in _PROFILE_FIELDS.items() if output.get(key) not in (None, "")}
    if "password" in config and ("private_key" in config or "private_key_path" in config):
        config.pop("password")  # dbt prefers the key pair when both are given
    if not ({"password", "private_key", "private_key_path", "authenticator"} & config.keys()):
        raise ConfigError(f"{describe} has no credentials: set password, private_key_path or authenticator")
    if "private_key_path" in config:
        _check_key_file(target, config["private_key_path"])
    session = {"QUERY_TAG": query_tag(run_id)}
    extra: dict[str, Any] = {"session_parameters": session}
    if output.get("token"):
        extra["token"] = str(output["token"])
    try:
        return SnowflakeResource(**config, additional_snowflake_connection_args=extra)
    except Exception as e:  # the resource validates the auth combination
        raise ConfigError(f"{describe} cannot configure a Snowflake connection: {e}") from e


def _check_key_file(target: ProfileTarget, path: str) -> None:
    """Raise a :class:`ConfigError` when the profile's ``private_key_path`` cannot be read, naming where
    the path came from (the profiles.yml field, and the ``env_var`` that set it) and what to change."""
    try:
        with open(path, "rb") as f:  # as the connector opens it: relative to the current directory
            f.read(1)
        return
    except OSError as e:
        why = e.strerror or str(e)
    where = f"the private_key_path of {target.describe()}"
    if not os.path.isabs(path):
        where += f" (relative to the current directory, {os.getcwd()})"
    names = target.env_vars("private_key_path")
    unset = [n for n in names if n not in os.environ]
    if unset:
        origin = (f"the path is the default of env_var('{unset[0]}') in profiles.yml, as {unset[0]} is not set; "
                  f"set {unset[0]} to the path of your private key file (PKCS#8, e.g. rsa_key.p8)")
    elif names:
        origin = (f"the path comes from the environment variable {names[0]} (env_var('{names[0]}') in profiles.yml); "
                  f"set {names[0]} to the path of a private key file you can read (PKCS#8, e.g. rsa_key.p8)")
    else:
        origin = f"change private_key_path in {target.profiles_path} to the path of a private key file you can read"
    raise ConfigError(f"the Snowflake private key file {path!r} cannot be read ({why}); it is {where}: {origin}")


class SnowflakeWarehouse(Warehouse):
    """Audited access to Snowflake.

    Args:
        connection_factory: a context manager factory yielding a DB-API connection, normally
            ``SnowflakeResource(...).get_connection`` (the same resource the user's Dagster
            deployment configures).
    """

    dialect = "snowflake"
    name = "snowflake"
    capabilities = Capabilities(upper_case_identifiers=True)

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
                    f"cannot connect to Snowflake ({type(e).__name__}: {e}); check the Snowflake target "
                    "in profiles.yml / the SnowflakeResource configuration"
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

    @contextmanager
    def statement_timeout(self, seconds: int, *, rationale: str) -> Iterator[None]:
        """Set the session's ``STATEMENT_TIMEOUT_IN_SECONDS`` for the block, then unset it (back to the
        user's or account's value). Each change is one audited ``session_setup`` event."""
        if isinstance(seconds, bool) or not isinstance(seconds, int) or seconds <= 0:
            raise ConfigError(f"a statement timeout is a whole number of seconds > 0, got {seconds!r}")
        self._setup(alter_session_sql(TIMEOUT_PARAMETER, seconds), rationale)
        try:
            yield
        finally:
            self._setup(alter_session_sql(TIMEOUT_PARAMETER, None), f"{rationale}: done")

    def _setup(self, sql: str, rationale: str) -> None:
        """Run one adapter-built session statement (never a caller's text), audited as ``session_setup``."""
        start = time.perf_counter()
        try:
            cursor = self._connect().cursor()
            try:
                cursor.execute(sql)
            finally:
                cursor.close()
        except Exception as e:
            self.audit.record(kind="session_setup", statement=sql, rationale=rationale, dialect=self.dialect,
                              target=self.name, outcome="error", error=f"{type(e).__name__}: {e}",
                              duration_ms=(time.perf_counter() - start) * 1000)
            if isinstance(e, WarehouseUnavailableError):
                raise
            raise WarehouseError(f"Snowflake refused {sql!r} ({type(e).__name__}: {e})") from e
        self.audit.record(kind="session_setup", statement=sql, rationale=rationale, dialect=self.dialect,
                          target=self.name, duration_ms=(time.perf_counter() - start) * 1000)

    def tag_statement(self, sql: str, event_id: str) -> str:
        """Each statement ends with a comment naming its audit event (``QUERY_HISTORY`` keeps comments)."""
        return f"{sql.rstrip().rstrip(';')}\n/* agent_de audit_event={event_id} */"

    def table_row_counts(self, relations: list[str], *, rationale: str) -> dict[str, int | None]:
        """From the database's ``information_schema.tables.row_count`` (kept by Snowflake, no scan)."""

        def query(db: str, schemas: list[str]) -> str:
            src = exp.table_("tables", db="information_schema", catalog=db or None, quoted=False)
            if db:
                src.set("catalog", exp.to_identifier(db, quoted=True))
            cols = ["table_catalog", "table_schema", "table_name", "row_count"]
            where = exp.func("upper", exp.column("table_schema")).isin(*[exp.Literal.string(s.upper()) for s in schemas])
            return exp.select(*cols).from_(src).where(where).sql(self.dialect)

        return self._catalog_counts(relations, rationale, query)

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
