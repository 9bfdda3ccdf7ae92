"""The engines' test suite over several adapters, as data-diff's common suite does.

A test takes the ``engine`` fixture (parametrised in ``conftest.py`` over DuckDB and a real
PostgreSQL server), writes its tables with :meth:`Engine.execute` (a writable connection of the
test's own, not the agent's) and hands :meth:`Engine.warehouse` (the agent's read-only adapter)
to the code under test. SQL written by tests uses the subset both engines accept.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dagster_agent_de.adapters.audit import AuditLog
from dagster_agent_de.adapters.warehouse import DuckDBWarehouse, Warehouse
from dagster_agent_de.adapters.warehouse.postgres import PostgresWarehouse
from dagster_agent_de_tests.deployment.postgres import Postgres

_db_names = itertools.count(1)


class PgServer:
    """A throwaway PostgreSQL server (the one the deployment test starts) for the engine tests."""

    def __init__(self) -> None:
        self.server = Postgres()
        self.server.start()
        self.port = self.server.port

    def output(self, dbname: str, **over: Any) -> dict[str, Any]:
        """A dbt-postgres profile output for ``dbname`` (superuser, trust auth unless ``over`` says otherwise)."""
        return {"type": "postgres", "host": "127.0.0.1", "port": self.port, "user": "postgres", "dbname": dbname,
                "schema": "public", "threads": 1, **over}

    def admin(self, *statements: str, dbname: str = "postgres") -> list[list[tuple[Any, ...]]]:
        """Run statements as the superuser, autocommit (test setup, never the agent)."""
        import psycopg

        out = []
        with psycopg.connect(host="127.0.0.1", port=self.port, user="postgres", dbname=dbname, autocommit=True) as con:
            for sql in statements:
                cur = con.execute(sql)  # type: ignore[arg-type]
                out.append(cur.fetchall() if cur.description else [])
        return out

    def create_database(self, prefix: str = "wh") -> str:
        name = f"{prefix}_{next(_db_names)}"
        self.admin(f'create database "{name}"')
        return name

    def drop_database(self, name: str) -> None:
        self.admin(f'drop database if exists "{name}" with (force)')

    def stop(self) -> None:
        self.server.stop()


@dataclass
class Engine:
    """One engine under test: a database of the test's own, the schema tests write to."""

    kind: str
    database: str
    schema: str
    path: Path | None = None  # DuckDB
    pg: PgServer | None = None  # PostgreSQL
    opened: list[Warehouse] = field(default_factory=list)

    def execute(self, *statements: str) -> None:
        """Write test data (outside the agent: no guard, no audit)."""
        if self.kind == "duckdb":
            from dagster_agent_de.demo.data import execute_sql

            assert self.path is not None
            execute_sql(self.path, *statements)
        else:
            assert self.pg is not None
            self.pg.admin(*statements, dbname=self.database)

    def relation(self, table: str, schema: str | None = None) -> str:
        return f'"{self.database}"."{schema or self.schema}"."{table}"'

    def warehouse(self, audit: AuditLog | None = None) -> Warehouse:
        """The agent's read-only adapter on this database (closed at teardown)."""
        audit = audit or AuditLog(None)
        wh: Warehouse
        if self.kind == "duckdb":
            assert self.path is not None
            wh = DuckDBWarehouse(self.path, audit)
        else:
            assert self.pg is not None
            wh = PostgresWarehouse.from_profile_output(self.pg.output(self.database), audit)
        self.opened.append(wh)
        return wh

    def connection(self) -> dict[str, Any]:
        """This database as a reconcile spec's ``connection`` (the source of truth on another connection)."""
        if self.kind == "duckdb":
            return {"type": "duckdb", "path": str(self.path)}
        assert self.pg is not None
        return {"type": "postgres", "host": "127.0.0.1", "port": self.pg.port, "user": "postgres", "dbname": self.database}

    def close(self) -> None:
        for wh in self.opened:
            wh.close()
        if self.kind == "postgres" and self.pg is not None:
            self.pg.drop_database(self.database)


def make_engine(kind: str, tmp_path: Path, pg: PgServer, name: str = "wh") -> Engine:
    return duckdb_engine(tmp_path, name) if kind == "duckdb" else postgres_engine(pg, name)


def duckdb_engine(tmp_path: Path, name: str = "wh") -> Engine:
    import duckdb

    path = tmp_path / f"{name}.duckdb"
    duckdb.connect(str(path)).close()
    return Engine("duckdb", name, "main", path=path)


def postgres_engine(pg: PgServer, prefix: str = "wh") -> Engine:
    return Engine("postgres", pg.create_database(prefix), "public", pg=pg)
