"""PostgreSQL through psycopg 3 (the ``postgres`` extra, imported lazily).

The connection comes from a dbt-postgres profile output (``host``, ``port``, ``user``,
``password`` or libpq's ``PGPASSFILE``, ``dbname``, ``schema``, ``sslmode``,
``connect_timeout``), so the agent reads the database dbt builds, or an application
database named the same way.

A read-only session is read-only three times: the guard refuses any statement that is not a
read; the session starts with ``default_transaction_read_only=on``; and every statement runs
in its own transaction opened with ``SET TRANSACTION READ ONLY``. Each session also carries a
``statement_timeout`` and an ``application_name`` naming the agent and the run, so a row of
``pg_stat_activity`` can be matched to the audit log.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from dagster_agent_de.adapters.audit import AuditLog
from dagster_agent_de.adapters.warehouse.base import Capabilities, Warehouse, _Fetch
from dagster_agent_de.errors import ConfigError, WarehouseError, WarehouseUnavailableError

INSTALL_HINT = "pip install 'dagster-agent-de[postgres]'"
DEFAULT_STATEMENT_TIMEOUT_S = 600.0
PARALLEL_TUPLE_COST = 0.01
_PROFILE_KEYS = ("host", "port", "user", "password", "dbname", "sslmode", "connect_timeout", "sslcert", "sslkey",
                 "sslrootcert", "keepalives_idle")


_TYPE_NAMES = {"INT2": "SMALLINT", "INT4": "INTEGER", "INT8": "BIGINT", "FLOAT4": "REAL", "FLOAT8": "DOUBLE PRECISION",
               "BPCHAR": "CHAR", "BOOL": "BOOLEAN", "TIMESTAMPTZ": "TIMESTAMP WITH TIME ZONE", "TIMETZ": "TIME WITH TIME ZONE"}


def _type_name(display: str) -> str:
    """psycopg's ``type_display`` (``int4``, ``numeric(10,2)``, ``timestamptz``) as SQL names it.

    >>> _type_name("int4"), _type_name("numeric(10,2)"), _type_name("timestamptz"), _type_name("bpchar(3)")
    ('INTEGER', 'NUMERIC(10,2)', 'TIMESTAMP WITH TIME ZONE', 'CHAR(3)')
    """
    t = display.upper()
    base, paren, rest = t.partition("(")
    return _TYPE_NAMES.get(base, base) + paren + rest


def _psycopg() -> Any:
    try:
        import psycopg
    except ImportError as e:
        raise ConfigError(f"the postgres target needs psycopg 3: {INSTALL_HINT}") from e
    return psycopg


def application_name(actor: str | None, run_id: str | None) -> str:
    """What ``pg_stat_activity.application_name`` shows: the agent, and the run (or the actor) it works for.

    PostgreSQL keeps 63 printable ASCII characters, so anything else is replaced.

    >>> application_name("op:reconcile", "0b7c9d52-6c0e-4c43-9a2f-2f0f1f4b6f11")
    'agent-de run=0b7c9d52-6c0e-4c43-9a2f-2f0f1f4b6f11'
    >>> application_name("cli", None)
    'agent-de actor=cli'
    """
    who = f"run={run_id}" if run_id else f"actor={actor or 'unknown'}"
    return re.sub(r"[^\x20-\x7e]", "?", f"agent-de {who}")[:63]


class PostgresWarehouse(Warehouse):
    """Audited access to one PostgreSQL database.

    Args:
        conninfo: libpq connection parameters (``host``, ``port``, ``user``, ``password``,
            ``dbname``, ``sslmode``, ``connect_timeout``...); a missing ``password`` is
            looked up by libpq in ``PGPASSFILE`` (or ``~/.pgpass``).
        audit: where every statement is recorded.
        read_only: see the module docstring; ``False`` only when the autonomy policy allows writes.
        run_id: the run named in ``application_name`` (default: the audit log's run).
        schema: the profile's schema (dbt builds there; used as the default schema to profile).
        search_path: set as the session's ``search_path`` when given (as dbt-postgres does).
        statement_timeout_s: PostgreSQL cancels any statement running longer.
    """

    dialect = "postgres"
    name = "postgres"
    # CREATE TEMP TABLE is refused in a read-only transaction: files and APIs are staged on a local
    # DuckDB session (engines/reconcile/truth.py), as for every engine but DuckDB itself
    capabilities = Capabilities(approx_distinct=False, native_hash=False, jaro_winkler=False,
                                full_join_on_any_condition=False)

    def __init__(
        self,
        conninfo: Mapping[str, Any],
        audit: AuditLog,
        *,
        read_only: bool = True,
        run_id: str | None = None,
        schema: str | None = None,
        search_path: str | None = None,
        statement_timeout_s: float = DEFAULT_STATEMENT_TIMEOUT_S,
    ) -> None:
        super().__init__(audit, read_only=read_only)
        if not conninfo.get("dbname"):
            raise ConfigError("the postgres connection needs a dbname (the profile output's `dbname` or `database`)")
        if statement_timeout_s <= 0:
            raise ConfigError(f"statement_timeout_s must be positive, got {statement_timeout_s}")
        self.conninfo = {k: v for k, v in conninfo.items() if v is not None and v != ""}
        self.catalog = str(self.conninfo["dbname"])
        self.schema = schema
        self.search_path = search_path
        self.statement_timeout_s = statement_timeout_s
        self.application_name = application_name(audit.actor, run_id or audit.run_id)
        self._con: Any = None

    @classmethod
    def from_profile_output(
        cls,
        output: Mapping[str, Any],
        audit: AuditLog,
        *,
        read_only: bool = True,
        run_id: str | None = None,
        statement_timeout_s: float = DEFAULT_STATEMENT_TIMEOUT_S,
    ) -> PostgresWarehouse:
        """Open the database of a dbt-postgres profile output (a rendered ``outputs.<target>`` mapping).

        ``type`` may be absent; if present it must be ``postgres``. ``database`` is accepted for
        ``dbname`` and ``pass`` for ``password``, as dbt-postgres accepts them.
        """
        kind = output.get("type", "postgres")
        if kind != "postgres":
            raise ConfigError(f"profile output has type {kind!r}; the postgres adapter reads type: postgres outputs")
        raw = dict(output)
        raw.setdefault("dbname", raw.pop("database", None))
        raw.setdefault("password", raw.pop("pass", None))
        missing = [k for k in ("host", "user", "dbname") if not raw.get(k)]
        if missing:
            raise ConfigError(f"the postgres profile output is missing {', '.join(missing)}")
        conninfo = {k: raw.get(k) for k in _PROFILE_KEYS}
        conninfo["port"] = int(raw.get("port") or 5432)
        return cls(conninfo, audit, read_only=read_only, run_id=run_id, schema=raw.get("schema"),
                   search_path=raw.get("search_path"), statement_timeout_s=statement_timeout_s)

    def describe(self) -> str:
        """``user@host:port/dbname``, never the password."""
        c = self.conninfo
        return f"{c.get('user', '')}@{c.get('host', 'localhost')}:{c.get('port', 5432)}/{self.catalog}"

    def _options(self) -> str:
        opts = [f"statement_timeout={int(self.statement_timeout_s * 1000)}", "TimeZone=UTC",
                # the planner cannot see that `group by _h % m` has at most m groups, so at the default (0.1) it
                # never splits a checksum pass across workers; max_parallel_workers_per_gather still bounds them
                # (set it to 0 for the agent's role to keep it on one core)
                f"parallel_tuple_cost={PARALLEL_TUPLE_COST}"]
        if self.read_only:
            opts.append("default_transaction_read_only=on")
        if self.search_path:
            opts.append("search_path=" + self.search_path.replace(" ", "").replace(",", r"\,"))
        return " ".join(f"-c {o}" for o in opts)

    def _connect(self) -> Any:
        if self._con is not None:
            return self._con
        psycopg = _psycopg()
        try:
            self._con = psycopg.connect(
                **self.conninfo, options=self._options(), application_name=self.application_name, autocommit=True,
            )
        except psycopg.Error as e:
            raise WarehouseUnavailableError(
                f"cannot connect to PostgreSQL {self.describe()} ({type(e).__name__}: {str(e).strip()}); check "
                "host, port, user, dbname and the password (the profile's `password`, or PGPASSFILE)"
            ) from e
        return self._con

    def _run(self, sql: str, max_rows: int | None) -> tuple[list[str], list[tuple[Any, ...]], bool, list[str]]:
        psycopg = _psycopg()
        con = self._connect()
        try:
            with con.transaction(), con.cursor() as cur:
                if self.read_only:
                    # the SELECT takes the transaction's first snapshot: after it, even a statement that
                    # slipped past the guard cannot switch the transaction back to read-write
                    cur.execute("SET TRANSACTION READ ONLY; SELECT 1")
                cur.execute(sql)
                columns, rows, truncated, _ = _Fetch(cur, max_rows).fetch()
                types = [_type_name(str(getattr(d, "type_display", d[1]))) for d in cur.description or []]
                return columns, rows, truncated, types
        except psycopg.errors.QueryCanceled as e:
            raise WarehouseError(
                f"PostgreSQL cancelled the statement after statement_timeout={self.statement_timeout_s:g}s ({e}); "
                "narrow the query or raise the timeout"
            ) from e
        except psycopg.OperationalError as e:
            self.close()
            raise WarehouseUnavailableError(f"PostgreSQL {self.describe()} became unavailable: {e}") from e

    def table_row_counts(self, relations: list[str], *, rationale: str) -> dict[str, int | None]:
        """The planner's estimate in ``pg_class.reltuples`` (kept by ANALYZE and autovacuum, no scan);
        -1 (never analyzed) is unknown."""
        from sqlglot import exp

        def query(db: str, schemas: list[str]) -> str:
            tuples = exp.column("reltuples", "c")
            cols: list[exp.Expr] = [exp.func("current_database"), exp.column("nspname", "n"), exp.column("relname", "c"),
                                    exp.Case(ifs=[exp.If(this=tuples >= 0, true=exp.cast(tuples, "BIGINT"))])]
            where: exp.Condition = exp.func("lower", exp.column("nspname", "n")).isin(*[exp.Literal.string(s.lower()) for s in schemas])
            where = where.and_(exp.column("relkind", "c").isin(*[exp.Literal.string(k) for k in ("r", "p", "m")]))
            src = exp.select(*cols).from_("pg_catalog.pg_class AS c").join(
                "pg_catalog.pg_namespace AS n", on="n.oid = c.relnamespace").where(where).subquery("t")
            return exp.select("*").from_(src).sql(self.dialect)

        return self._catalog_counts(relations, rationale, query)

    def close(self) -> None:
        if self._con is not None:
            try:
                self._con.close()
            finally:
                self._con = None
