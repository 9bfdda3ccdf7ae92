"""The warehouse adapter: the only way the agent touches data.

A small abstract surface (``_run``) plus capability flags; every call goes through
:meth:`Warehouse.query`, which checks the statement with the read-only guard (unless a
policy allowed writes), times it, and records exactly one audit event.

The adapter contract
--------------------
A new engine (BigQuery, Redshift, Databricks...) is one module here, a subclass of
:class:`Warehouse`, registered in ``open_warehouse`` (``adapters/warehouse/__init__.py``). The
engines do not change; they read what they need from the class attributes and flags below.

What a subclass implements:

* ``dialect``: the sqlglot dialect name (``"duckdb"``, ``"snowflake"``, ``"postgres"``). The guard
  parses every statement with it, the SQL analysis reads compiled models with it, and the
  reconciliation generates its canonical row rendering with it.
* ``name``: what the audit log calls the target.
* ``_run(sql, max_rows)``: execute ONE already-guarded statement and return ``(columns, rows,
  truncated, types)``; ``rows`` are tuples, ``types`` the SQL type name of each column as the
  engine spells it (``DECIMAL(10,2)``, ``TIMESTAMP WITH TIME ZONE``; :class:`_Fetch` does the
  DB-API part). Connect lazily on first use; raise :class:`WarehouseUnavailableError` naming
  what to check when the engine cannot be reached, and let driver errors propagate (``query``
  audits them and wraps them in :class:`WarehouseError`).
* ``close()``: release the connection (``query`` may reconnect afterwards).
* A constructor from the user's existing configuration: the dbt profile output
  (``PostgresWarehouse.from_profile_output``) or the Dagster resource the deployment already
  has (``SnowflakeWarehouse.from_resource``). The driver is an optional extra imported lazily;
  its absence raises :class:`ConfigError` naming ``pip install 'dagster-agent-de[<extra>]'``.
* Read-only in depth: besides the guard, the session itself refuses writes where the engine
  can say so (DuckDB attaches the file ``READ_ONLY``; PostgreSQL sessions run with
  ``default_transaction_read_only`` and ``SET TRANSACTION READ ONLY``; Snowflake relies on the
  role). Sessions read timestamps in UTC.
* ``catalog`` (optional attribute): the session's database, when the engine has one.

Capability flags (:class:`Capabilities`) say what the engine lacks, so an engine never skips a
check silently: the code reading a flag either uses an equivalent (exact ``count(distinct)``
for ``approx_count_distinct``, per-side aggregates merged in Python for a NULL-safe full join)
or raises an error saying the capability is not available on that engine.

Cross-connection reconciliation needs two things per dialect (``engines/reconcile/canonical.py``):
sqlglot must generate ``MD5``, ``CAST``, ``TO_CHAR``/``STRFTIME`` and ``AT TIME ZONE`` for it,
and ``_HEX_TO_INT`` must say how the engine turns 15 hex digits into a ``BIGINT``.

The shared test suite (``dagster_agent_de_tests/engines/test_common.py``) runs every engine
test on each adapter through the ``engine`` fixture; a new adapter adds itself there.
"""

from __future__ import annotations

import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field, replace
from typing import Any

from dagster_agent_de.adapters.audit import AuditLog
from dagster_agent_de.errors import (
    AgentDEError,
    StatementRefusedError,
    WarehouseError,
    WarehouseUnavailableError,
)
from dagster_agent_de.sql.guard import check_in_warehouse, check_read_only


@dataclass(frozen=True)
class QueryResult:
    """Columns and rows of a query (rows as tuples), with timing."""

    columns: list[str]
    rows: list[tuple[Any, ...]]
    duration_ms: float = 0.0
    statement: str = ""
    truncated: bool = False
    types: list[str] = field(default_factory=list)
    """The driver's type name of each column (``INTEGER``/``VARCHAR`` on DuckDB, ``FIXED``/``TEXT`` on Snowflake)."""

    @property
    def row_count(self) -> int:
        return len(self.rows)

    def dicts(self, limit: int | None = None) -> list[dict[str, Any]]:
        rows = self.rows if limit is None else self.rows[:limit]
        return [dict(zip(self.columns, r, strict=False)) for r in rows]

    def scalar(self) -> Any:
        return self.rows[0][0] if self.rows else None

    def folded(self) -> QueryResult:
        """Column names as the SQL wrote them: Snowflake upper-cases unquoted aliases (``matched`` -> ``MATCHED``)."""
        return replace(self, columns=[c.lower() if c.isupper() else c for c in self.columns])

    def one(self) -> dict[str, Any]:
        if not self.rows:
            raise WarehouseError(f"expected one row, got none from: {self.statement[:200]}")
        return dict(zip(self.columns, self.rows[0], strict=False))


@dataclass(frozen=True)
class Capabilities:
    """What an engine can do that the engines' SQL may rely on (see the module docstring)."""

    upper_case_identifiers: bool = False
    """Unquoted identifiers are stored upper-case (Snowflake)."""
    approx_distinct: bool = True
    """``approx_count_distinct(x)`` exists; otherwise profiling counts ``count(distinct x)`` exactly."""
    native_hash: bool = True
    """A fast native ``hash(a, b, ...)`` exists; otherwise a sample is ordered by the ``md5`` of the key's text."""
    jaro_winkler: bool = True
    """``jaro_winkler_similarity(a, b)`` exists; otherwise entity resolution scores names in Python."""
    full_join_on_any_condition: bool = True
    """``FULL JOIN ... ON a IS NOT DISTINCT FROM b`` runs (PostgreSQL only full-joins on ``=``). The
    reconciliation plan no longer relies on it (it merges segment rows with a UNION ALL grouped by
    segment, which every engine runs); kept for other SQL that might."""


class Warehouse(ABC):
    """Audited access to one warehouse connection.

    Subclasses implement :meth:`_run` (execute one statement, return columns and rows)
    and :meth:`close`; they never bypass :meth:`query`.
    """

    dialect: str = "duckdb"
    name: str = "warehouse"
    capabilities: Capabilities = Capabilities()

    def __init__(self, audit: AuditLog, *, read_only: bool = True) -> None:
        self.audit = audit
        self.read_only = read_only

    def query(
        self, sql: str, *, rationale: str, max_rows: int | None = None, allow_write: bool = False
    ) -> QueryResult:
        """Run ``sql`` and record one audit event.

        Args:
            sql: the statement, in this warehouse's dialect.
            rationale: why the agent runs it (shown in the audit log and the run log).
            max_rows: fetch at most this many rows (the result says if it was truncated).
            allow_write: only honoured when the adapter was opened with ``read_only=False``
                (the autonomy policy decides that, not the caller).
        """
        event_id = uuid.uuid4().hex
        try:
            if self.read_only or not allow_write:
                check_read_only(sql, self.dialect)
            else:
                check_in_warehouse(sql, self.dialect)  # a policy-allowed write still stays in the warehouse
        except StatementRefusedError as e:
            self.audit.record(
                statement=sql, rationale=rationale, dialect=self.dialect, target=self.name,
                outcome="refused", error=str(e), event_id=event_id,
            )
            raise
        start = time.perf_counter()
        try:
            columns, rows, truncated, types = self._run(self.tag_statement(sql, event_id), max_rows)
        except AgentDEError as e:
            self._record_error(sql, rationale, start, e, event_id)
            raise
        except Exception as e:  # driver errors: re-raise with context, after auditing
            self._record_error(sql, rationale, start, e, event_id)
            raise WarehouseError(f"{self.name} query failed ({type(e).__name__}: {e}); rationale: {rationale}") from e
        duration = (time.perf_counter() - start) * 1000
        self.audit.record(
            statement=sql, rationale=rationale, dialect=self.dialect, target=self.name,
            rows=len(rows), duration_ms=duration, outcome="ok", event_id=event_id,
        )
        return QueryResult(columns, rows, duration, sql, truncated, types)

    def _record_error(self, sql: str, rationale: str, start: float, e: Exception, event_id: str | None = None) -> None:
        self.audit.record(
            statement=sql, rationale=rationale, dialect=self.dialect, target=self.name,
            duration_ms=(time.perf_counter() - start) * 1000, outcome="error",
            error=f"{type(e).__name__}: {e}", event_id=event_id,
        )

    def tag_statement(self, sql: str, event_id: str) -> str:
        """The statement as sent: adapters whose warehouse keeps a query history append the audit
        event id (see :class:`SnowflakeWarehouse`); the guard has already checked ``sql`` itself."""
        return sql

    def statement_timeout(self, seconds: int, *, rationale: str) -> AbstractContextManager[None]:
        """A block in which the warehouse cancels any statement running longer than ``seconds``.

        The base adapter sets none (DuckDB runs in process; PostgreSQL sets ``statement_timeout`` at
        connect); :class:`SnowflakeWarehouse` sets the session's ``STATEMENT_TIMEOUT_IN_SECONDS``."""
        return nullcontext()

    def table_row_counts(self, relations: list[str], *, rationale: str) -> dict[str, int | None]:
        """Row counts of ``relations`` (``db.schema.table`` as the warehouse names them) from the engine's
        catalog, no scan; keyed by the lower-cased relation.

        Each adapter reads its own catalog (one audited query per database, named as the warehouse stores it:
        Snowflake quotes it); a relation it has no count for maps to None (unknown). The base adapter knows none."""
        return dict.fromkeys(r.lower() for r in relations)

    def _catalog_counts(self, relations: list[str], rationale: str,
                        query: Callable[[str, list[str]], str]) -> dict[str, int | None]:
        """Run ``query(db, schemas)`` once per database; its rows are (database, schema, table, count)."""
        by_db: dict[str, set[str]] = {}
        for r in relations:
            by_db.setdefault(r.split(".")[0] if r.count(".") == 2 else "", set()).add(r.lower())
        out: dict[str, int | None] = dict.fromkeys(r.lower() for r in relations)
        for db, rels in by_db.items():
            schemas = sorted({r.split(".")[-2] for r in rels})
            for cat, sch, tab, n in self.query(query(db, schemas), rationale=rationale).rows:
                key = f"{cat}.{sch}.{tab}".lower()
                if key in rels:
                    out[key] = None if n is None else int(n)
        return out

    @abstractmethod
    def _run(self, sql: str, max_rows: int | None) -> tuple[list[str], list[tuple[Any, ...]], bool, list[str]]:
        """Execute one statement; return (columns, rows, truncated, column type names)."""

    @abstractmethod
    def close(self) -> None: ...

    def quote(self, identifier: str) -> str:
        return '"' + identifier.replace('"', '""') + '"'

    def relation(self, *parts: str | None) -> str:
        return ".".join(self.quote(p) for p in parts if p)

    def __enter__(self) -> Warehouse:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass
class _Fetch:
    """Helper used by subclasses to fetch with a row cap from a DB-API cursor."""

    cursor: Any
    max_rows: int | None
    type_name: Callable[[Any], str] = str

    def fetch(self) -> tuple[list[str], list[tuple[Any, ...]], bool, list[str]]:
        desc = self.cursor.description or []
        columns = [d[0] for d in desc]
        types = [self.type_name(d[1]) for d in desc]
        if not desc:
            return columns, [], False, types
        if self.max_rows is None:
            return columns, [tuple(r) for r in self.cursor.fetchall()], False, types
        rows = [tuple(r) for r in self.cursor.fetchmany(self.max_rows + 1)]
        return columns, rows[: self.max_rows], len(rows) > self.max_rows, types


__all__ = [
    "Capabilities",
    "QueryResult",
    "Warehouse",
    "WarehouseError",
    "WarehouseUnavailableError",
]
