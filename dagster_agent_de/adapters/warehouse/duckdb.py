"""DuckDB: the embedded default warehouse (the file dbt-duckdb builds)."""

from __future__ import annotations

import os
import re
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


def _share_memory_budget() -> None:
    open_ = [w._con for w in list(_OPEN_SESSIONS) if w._con is not None]
    if not open_:
        return
    each = max(memory_budget_bytes() // len(open_), 64 * 1000**2)
    for con in open_:
        con.execute(f"SET memory_limit = '{each // 1000**2}MB'")


class DuckDBWarehouse(Warehouse):
    """Audited access to a DuckDB file.

    In read-only mode the file is attached ``READ_ONLY`` into an in-memory session, so
    even a statement that slipped past the guard cannot write, temporary tables (used to
    stage a file or API source of truth) live in memory, and dbt can keep writing the
    file from another process. The catalog keeps the file's stem as its name, as dbt-duckdb
    names it, so compiled SQL from the manifest runs unchanged.
    """

    dialect = "duckdb"
    name = "duckdb"
    capabilities = Capabilities(temp_tables=True, information_schema=True)

    def __init__(self, path: str | Path, audit: AuditLog, *, read_only: bool = True) -> None:
        super().__init__(audit, read_only=read_only)
        self.path = Path(path)
        self.catalog = self.path.stem
        self._con: Any = None

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
        if str(self.path) == ":memory:":
            self._con = self._bounded(duckdb.connect(":memory:"))
            self._register()
            return self._con
        if not self.path.exists():
            raise WarehouseUnavailableError(
                f"DuckDB warehouse file {self.path} does not exist; run `agent-de demo` (or `dbt build`) "
                "first, or set AGENT_DE_DUCKDB_PATH / --state-dir to the file dbt builds"
            )
        try:
            if self.read_only:
                con = self._bounded(duckdb.connect(":memory:"))
                con.execute(f"ATTACH '{self.path.as_posix()}' AS {self.quote(self.catalog)} (READ_ONLY)")
                con.execute(f"USE {self.quote(self.catalog)}")
            else:
                con = duckdb.connect(str(self.path))
                con.execute("SET TimeZone = 'UTC'")
        except duckdb.Error as e:
            raise WarehouseUnavailableError(
                f"cannot open DuckDB warehouse {self.path}: {e}. If another process holds it open "
                "for writing (a running `dbt build`), retry when it finishes"
            ) from e
        self._con = con
        if self.read_only:
            self._register()
        return con

    def _register(self) -> None:
        _OPEN_SESSIONS.add(self)
        _share_memory_budget()

    def _bounded(self, con: Any) -> Any:
        """Cap the agent's DuckDB memory (spilling to a temp dir), so a 10M-row diff stays under 1 GB.

        ``AGENT_DE_DUCKDB_MEMORY_LIMIT`` (default 640MB) is a budget for the whole process: the
        sessions open at once (the pipeline's and a second file's, in a cross-connection
        reconciliation) share it.
        """
        import tempfile

        memory_budget_bytes()  # a bad setting fails here, before the session counts against the budget
        spill = Path(tempfile.gettempdir()) / "agent_de_duckdb_spill"
        con.execute("SET TimeZone = 'UTC'")  # naive vs zoned timestamps compare the same on every machine
        con.execute(f"SET temp_directory = '{spill.as_posix()}'")
        return con

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

    def close(self) -> None:
        if self._con is not None:
            try:
                self._con.close()
            finally:
                self._con = None
                if self in _OPEN_SESSIONS:
                    _OPEN_SESSIONS.discard(self)
                    _share_memory_budget()
