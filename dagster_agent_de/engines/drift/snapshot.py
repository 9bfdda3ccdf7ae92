"""Read live schemas: one ``information_schema`` query per database, never one per table."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterable

from dagster_agent_de.adapters.warehouse import Warehouse
from dagster_agent_de.engines.drift.models import ColumnSchema, Snapshot, TableSchema


def _lit(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _type_name(data_type: str, length: object, precision: object, scale: object) -> str:
    t = str(data_type).upper()
    if "(" in t:
        return t
    if t in ("NUMBER", "DECIMAL", "NUMERIC") and precision is not None:
        return f"{t}({precision},{scale or 0})"
    if t in ("VARCHAR", "TEXT", "CHAR", "CHARACTER VARYING") and length is not None and int(length) < 16777216:
        return f"{t}({length})"
    return t


def relation_key(database: str | None, schema: str | None, table: str) -> str:
    return ".".join(p for p in (database, schema, table) if p).lower()


def snapshot_schema(warehouse: Warehouse, relations: Iterable[tuple[str | None, str, str]]) -> Snapshot:
    """Snapshot the columns of ``relations`` (database, schema, table).

    One query per database joins ``information_schema.columns`` to ``.tables`` (for views vs
    tables) filtered by schema; relations that are not found are listed in ``missing``.
    """
    start = time.perf_counter()
    wanted: dict[str | None, dict[str, tuple[str | None, str, str]]] = defaultdict(dict)
    for db, schema, table in relations:
        wanted[db][relation_key(db, schema, table)] = (db, schema, table)
    tables: dict[str, TableSchema] = {}
    cols: dict[str, list[ColumnSchema]] = defaultdict(list)
    types: dict[str, str] = {}
    names: dict[str, str] = {}
    statements = []
    upper = warehouse.capabilities.upper_case_identifiers
    for db, rels in wanted.items():
        schemas = sorted({s for _, s, _ in rels.values()})
        schema_list = ", ".join(_lit(s.upper() if upper else s) for s in schemas)
        if warehouse.dialect == "snowflake":
            prefix = f"{warehouse.quote(db.upper())}.information_schema" if db else "information_schema"
            catalog_filter = ""
        else:
            prefix = "information_schema"
            catalog_filter = f" and lower(c.table_catalog) = {_lit(db.lower())}" if db else ""
        sql = (
            "select c.table_catalog, c.table_schema, c.table_name, c.column_name, c.ordinal_position, "
            "c.data_type, c.is_nullable, c.character_maximum_length, c.numeric_precision, c.numeric_scale, "
            "t.table_type "
            f"from {prefix}.columns c join {prefix}.tables t "
            "on t.table_catalog = c.table_catalog and t.table_schema = c.table_schema and t.table_name = c.table_name "
            f"where upper(c.table_schema) in ({schema_list.upper()}){catalog_filter}"
        )
        statements.append(sql)
        res = warehouse.query(sql, rationale=f"snapshot the schema of {len(rels)} relation(s) in {db or 'the default database'}")
        for cat, sch, tab, col, pos, dtype, nullable, length, precision, scale, ttype in res.rows:
            key = relation_key(cat, sch, tab)
            if key not in rels:
                continue
            names[key] = f"{cat}.{sch}.{tab}"
            types[key] = str(ttype)
            cols[key].append(ColumnSchema(
                name=str(col), position=int(pos), data_type=_type_name(dtype, length, precision, scale),
                nullable=str(nullable).upper() in ("YES", "TRUE", "Y"),
            ))
    missing = []
    for rels in wanted.values():
        for key in rels:
            if key in cols:
                tables[key] = TableSchema(relation=names[key], table_type=types[key],
                                          columns=sorted(cols[key], key=lambda c: c.position))
            else:
                missing.append(key)
    return Snapshot(dialect=warehouse.dialect, tables=tables, missing=sorted(missing), statements=statements,
                    duration_ms=(time.perf_counter() - start) * 1000)
