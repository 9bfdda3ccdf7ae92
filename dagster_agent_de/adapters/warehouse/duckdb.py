"""DuckDB: the embedded default warehouse (the file dbt-duckdb builds)."""

from __future__ import annotations

import atexit
import functools
import os
import re
import shutil
import tempfile
import time
import warnings
import weakref
from pathlib import Path
from typing import Any

from dagster_agent_de.adapters.audit import AuditLog
from dagster_agent_de.adapters.warehouse.base import Capabilities, Warehouse, _Fetch
from dagster_agent_de.errors import ConfigError, WarehouseUnavailableError

_OPEN_SESSIONS: weakref.WeakSet[DuckDBWarehouse] = weakref.WeakSet()
"""The agent's open DuckDB sessions in this process. Weak: a warehouse nobody closed stops counting
(and its connection closes) when it is garbage-collected."""
_UNITS = {"": 1, "b": 1, "kb": 1000, "mb": 1000**2, "gb": 1000**3, "kib": 1024, "mib": 1024**2, "gib": 1024**3}
_MIN_SESSION_MEMORY = 64 * 1000**2


def memory_budget_bytes(raw: str | None = None) -> int:
    """``AGENT_DE_DUCKDB_MEMORY_LIMIT`` (or ``raw``) in bytes.

    >>> memory_budget_bytes("640MB"), memory_budget_bytes("1GiB")
    (640000000, 1073741824)
    """
    raw = raw if raw is not None else os.environ.get("AGENT_DE_DUCKDB_MEMORY_LIMIT", "640MB")
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", raw)
    if not m or m.group(2).lower() not in _UNITS:
        raise ConfigError(f"AGENT_DE_DUCKDB_MEMORY_LIMIT={raw!r} is not a size; use e.g. 640MB or 2GiB")
    return int(float(m.group(1)) * _UNITS[m.group(2).lower()])


def session_memory_bytes() -> int:
    """The ``memory_limit`` a new session gets, fixed for its life (its configuration is locked).

    Half the process budget, so the two sessions of a cross-connection reconciliation fit together;
    a further session gets what is left (at least 64 MB).
    """
    budget = memory_budget_bytes()
    taken = sum(w._memory_limit for w in list(_OPEN_SESSIONS) if w._con is not None)
    return max(min(budget // 2, budget - taken), _MIN_SESSION_MEMORY)


@functools.lru_cache(maxsize=1)
def _spill_root() -> str:
    """This process's private spill directory (DuckDB lets a session write its temp directory, so
    it is not shared with anything else); removed when the process exits."""
    root = tempfile.mkdtemp(prefix="agent_de_duckdb_spill_")
    atexit.register(shutil.rmtree, root, True)
    return root


def _setting(name: str, value: str | bool | list[str]) -> str:
    """``SET name = value`` with the value quoted by sqlglot (paths may hold quotes)."""
    from sqlglot import exp

    if isinstance(value, bool):
        literal: exp.Expression = exp.Boolean(this=value)
    elif isinstance(value, list):
        literal = exp.Array(expressions=[exp.Literal.string(v) for v in value])
    else:
        literal = exp.Literal.string(value)
    item = exp.SetItem(this=exp.EQ(this=exp.column(name), expression=literal))
    return exp.Set(expressions=[item]).sql("duckdb")


def _attach_read_only(path: Path, catalog: str) -> str:
    """``ATTACH 'path' AS "catalog" (READ_ONLY)`` built by sqlglot."""
    from sqlglot import exp

    return exp.Attach(
        this=exp.Alias(this=exp.Literal.string(path.as_posix()), alias=exp.to_identifier(catalog, quoted=True)),
        expressions=[exp.AttachOption(this=exp.var("READ_ONLY"))],
    ).sql("duckdb")


def _use(catalog: str) -> str:
    from sqlglot import exp

    return exp.Use(this=exp.Table(this=exp.to_identifier(catalog, quoted=True))).sql("duckdb")


def _file_scan(path: Path) -> str:
    """``SELECT * FROM read_parquet('path')`` / ``read_csv_auto('path', header = true)``, built by sqlglot."""
    from sqlglot import exp

    literal = exp.Literal.string(path.as_posix())
    if path.suffix.lower() in (".parquet", ".pq"):
        fn: exp.Expression = exp.Anonymous(this="read_parquet", expressions=[literal])
    else:
        header = exp.EQ(this=exp.column("header"), expression=exp.Boolean(this=True))
        fn = exp.Anonymous(this="read_csv_auto", expressions=[literal, header])
    return exp.select("*").from_(exp.Table(this=fn)).sql("duckdb")


class DuckDBWarehouse(Warehouse):
    """Audited, hardened access to a DuckDB file.

    In read-only mode the file is opened ``duckdb.connect(path, read_only=True)``: no statement,
    even one that slipped past the guard, can write it, DETACH it or re-ATTACH it read-write.
    The session set-up then closes the rest, in this order, and locks it:
    ``enable_external_access=false`` with no extra allowed paths (no file, URL, or ``COPY … TO``),
    no extension auto-install or auto-load, a ``memory_limit`` fixed at open (spilling to a private
    temporary directory), then ``lock_configuration=true``. A file or HTTP source of truth is staged
    by the adapter (see :meth:`stage_file`, :meth:`register_dataframe`) as a session-local view, so
    queries never need file access. Temporary tables live in memory, and the catalog keeps the
    file's stem as its name, as dbt-duckdb names it, so compiled SQL from the manifest runs unchanged.

    Set-up statements are built by the adapter with sqlglot-quoted literals and audited as
    ``session_setup`` events; nothing a spec, the LLM or a user writes reaches them.
    """

    dialect = "duckdb"
    name = "duckdb"
    capabilities = Capabilities()

    def __init__(self, path: str | Path, audit: AuditLog, *, read_only: bool = True,
                 missing_fix: str = "check the path") -> None:
        """``missing_fix``: what to do when the file does not exist (where the caller's path came from)."""
        super().__init__(audit, read_only=read_only)
        self.path = Path(path)
        self.missing_fix = missing_fix
        self.catalog = self.path.stem
        self._con: Any = None
        self._memory_limit = 0
        self._spill: Path | None = None

    @classmethod
    def in_memory(cls, audit: AuditLog) -> DuckDBWarehouse:
        """A private in-memory session (to read files or hold an API's rows)."""
        wh = cls(Path(":memory:"), audit)
        wh.name = "duckdb-local"
        return wh

    def _connect(self) -> Any:
        import duckdb

        if self._con is not None:
            return self._con
        memory_budget_bytes()  # a bad setting fails here, before the session counts against the budget
        if str(self.path) == ":memory:":
            con = duckdb.connect(":memory:")
            self._con = self._harden(con, [])
            _OPEN_SESSIONS.add(self)
            return self._con
        if not self.path.exists():
            raise WarehouseUnavailableError(
                f"DuckDB warehouse file {self.path} does not exist: {self.missing_fix}")
        try:
            if self.read_only:
                con, prelude = self._open_read_only()
                con = self._harden(con, prelude)
            else:  # writes the autonomy policy allowed: still no file, URL or extension access
                con = self._harden(duckdb.connect(str(self.path)), [])
        except duckdb.Error as e:
            raise WarehouseUnavailableError(
                f"cannot open DuckDB warehouse {self.path}: {e}. If another process holds it open "
                "for writing (a running `dbt build`), retry when it finishes"
            ) from e
        self._con = con
        _OPEN_SESSIONS.add(self)
        return con

    def _open_read_only(self) -> tuple[Any, list[str]]:
        """The file opened read-only; the fallback when this process already holds it differently."""
        import duckdb

        try:
            return duckdb.connect(str(self.path), read_only=True), []
        except duckdb.ConnectionException as e:
            if "different configuration" not in str(e):
                raise
        # dbt-duckdb (dagster-dbt's column metadata) can hold the file open in this process with
        # another configuration. Attach it READ_ONLY into a private in-memory session instead; the
        # guard still refuses DETACH and ATTACH there.
        con = duckdb.connect(":memory:")
        return con, [_attach_read_only(self.path, self.catalog), _use(self.catalog)]

    def _harden(self, con: Any, prelude: list[str]) -> Any:
        """Run the session set-up: ``prelude``, then the locked, closed configuration."""
        locked = con.execute("select current_setting('lock_configuration')").fetchall()[0][0]
        if locked:
            # Another agent session on the same file in this process shares DuckDB's instance and
            # locked it: accept it only if it is closed the same way.
            external = con.execute("select current_setting('enable_external_access')").fetchall()[0][0]
            if external:
                con.close()
                raise WarehouseUnavailableError(
                    f"DuckDB file {self.path} is open in this process with a locked configuration that allows "
                    "external access; the agent will not read through it. Close that connection first"
                )
            if prelude:
                self._setup(con, *prelude)
            return con
        self._spill = Path(tempfile.mkdtemp(prefix="session_", dir=_spill_root()))
        self._memory_limit = session_memory_bytes()
        statements = [
            *prelude,
            _setting("TimeZone", "UTC"),  # naive vs zoned timestamps compare the same on every machine
            _setting("temp_directory", self._spill.as_posix()),
            _setting("enable_external_access", False),
            _setting("autoinstall_known_extensions", False),
            _setting("autoload_known_extensions", False),
            _setting("memory_limit", f"{self._memory_limit // 1000**2}MB"),
            _setting("lock_configuration", True),
        ]
        try:
            self._setup(con, *statements)
        except Exception:
            con.close()
            raise
        return con

    def _setup(self, con: Any, *statements: str, rationale: str = "session set-up") -> Any:
        """Run adapter-built set-up statements, unguarded, and audit them as one ``session_setup`` event.

        Returns the last statement's result.
        """
        start = time.perf_counter()
        result = None
        try:
            for statement in statements:
                result = con.execute(statement)
        except Exception as e:
            self.audit.record(
                kind="session_setup", statement=";\n".join(statements), rationale=rationale, dialect=self.dialect,
                target=self.name, outcome="error", error=f"{type(e).__name__}: {e}",
                duration_ms=(time.perf_counter() - start) * 1000,
            )
            raise
        self.audit.record(
            kind="session_setup", statement=";\n".join(statements), rationale=rationale, dialect=self.dialect,
            target=self.name, duration_ms=(time.perf_counter() - start) * 1000,
        )
        return result

    def _run(self, sql: str, max_rows: int | None) -> tuple[list[str], list[tuple[Any, ...]], bool, list[str]]:
        import duckdb

        con = self._connect()
        try:
            cursor = con.execute(sql)
        except (duckdb.IOException, duckdb.ConnectionException) as e:
            self.close()
            raise WarehouseUnavailableError(f"DuckDB warehouse {self.path} became unavailable: {e}") from e
        return _Fetch(cursor, max_rows).fetch()

    def register_dataframe(self, name: str, df: Any) -> None:
        """Make a small in-memory frame queryable as ``name`` (used for file/API sources of truth)."""
        self._connect().register(name, df)
        self.audit.record(
            kind="session_setup", statement=f"register {name}", rationale="stage a source of truth",
            dialect=self.dialect, target=self.name, rows=len(df),
        )

    def stage_file(self, name: str, path: Path) -> None:
        """Load the CSV/Parquet file ``path`` into this session as the view ``name``.

        The file is read by a throwaway DuckDB session allowed exactly that path (set before
        ``enable_external_access=false``, then locked); this session never gets file access.
        """
        import duckdb

        reader = duckdb.connect(":memory:")
        statements = [
            _setting("allowed_paths", [path.as_posix()]),
            _setting("enable_external_access", False),
            _setting("autoinstall_known_extensions", False),
            _setting("autoload_known_extensions", False),
            _setting("lock_configuration", True),
        ]
        try:
            result = self._setup(reader, *statements, _file_scan(path), rationale=f"read the source of truth file {path}")
            with warnings.catch_warnings():
                # DuckDB 2.0 warns that Arrow from a DB-API result is one extra copy: a file's rows, once; the
                # statement must go through the audited set-up path, not `con.sql(...)`
                warnings.filterwarnings("ignore", message="Arrow output on a DB-API result", category=UserWarning)
                table = result.to_arrow_table()  # Arrow keeps DATE, DECIMAL, ... as the file's reader typed them
        except duckdb.Error as e:
            raise WarehouseUnavailableError(f"source of truth file {path} could not be read: {e}") from e
        finally:
            reader.close()
        self._connect().register(name, table)
        self.audit.record(
            kind="session_setup", statement=f"register {name}", rationale=f"stage the source of truth file {path}",
            dialect=self.dialect, target=self.name, rows=table.num_rows,
        )

    def table_row_counts(self, relations: list[str], *, rationale: str) -> dict[str, int | None]:
        """From ``duckdb_tables()``: its ``estimated_size`` is the exact row count of a table."""
        from sqlglot import exp

        def query(db: str, schemas: list[str]) -> str:
            where: exp.Condition = exp.func("lower", exp.column("schema_name")).isin(*[exp.Literal.string(s.lower()) for s in schemas])
            if db:
                where = where.and_(exp.func("lower", exp.column("database_name")).eq(exp.Literal.string(db.lower())))
            src = exp.Table(this=exp.Anonymous(this="duckdb_tables", expressions=[]))
            cols = ["database_name", "schema_name", "table_name", "estimated_size"]
            return exp.select(*cols).from_(src).where(where).sql(self.dialect)

        return self._catalog_counts(relations, rationale, query)

    def close(self) -> None:
        if self._con is not None:
            try:
                self._con.close()
            finally:
                self._con = None
                self._memory_limit = 0
                _OPEN_SESSIONS.discard(self)
