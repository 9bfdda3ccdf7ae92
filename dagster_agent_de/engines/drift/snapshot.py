"""Read live schemas: one ``information_schema`` query per database, never one per table."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterable

from dagster_agent_de.adapters.warehouse import Warehouse
from dagster_agent_de.engines.drift.models import ColumnSchema, Snapshot, TableSchema


def _lit(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _type_name(data_type: str, length: int | str | None, precision: int | str | None, scale: int | str | None) -> str:
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


_COL_SEP, _FIELD_SEP = "\x1e", "\x1f"


def _agg(dialect: str, expr: str) -> str:
    if dialect == "snowflake":
        return f"listagg({expr}, '{_COL_SEP}') within group (order by c.ordinal_position)"
    return f"string_agg({expr}, '{_COL_SEP}' order by c.ordinal_position)"


def _decode(signature: str) -> list[ColumnSchema]:
    cols = []
    for item in signature.split(_COL_SEP):
        name, pos, dtype, nullable, length, precision, scale = item.split(_FIELD_SEP)
        cols.append(ColumnSchema(
            name=name, position=int(pos),
            data_type=_type_name(dtype, length or None, precision or None, scale or None),
            nullable=nullable.upper() in ("YES", "TRUE", "Y"),
        ))
    return cols


def snapshot_schema(
    warehouse: Warehouse, relations: Iterable[tuple[str | None, str, str]], previous: Snapshot | None = None
) -> Snapshot:
    """Snapshot the columns of ``relations`` (database, schema, table).

    One query per database reads ``information_schema.columns`` (joined to ``.tables`` for views
    vs tables) and folds each table's columns into one canonical string in the warehouse, so
    only tables whose string changed since ``previous`` are decoded in Python. Relations that
    are not found are listed in ``missing``.
    """
    if warehouse.dialect == "snowflake":
        return snapshot_schema_show(warehouse, relations, previous)
    start = time.perf_counter()
    wanted: dict[str | None, dict[str, tuple[str | None, str, str]]] = defaultdict(dict)
    for db, schema, table in relations:
        wanted[db][relation_key(db, schema, table)] = (db, schema, table)
    tables: dict[str, TableSchema] = {}
    statements = []
    upper = warehouse.capabilities.upper_case_identifiers
    known = previous.tables if previous is not None else {}
    for db, rels in wanted.items():
        schemas = sorted({s for _, s, _ in rels.values()})
        schema_list = ", ".join(_lit(s.upper() if upper else s) for s in schemas)
        if warehouse.dialect == "snowflake":
            prefix = f"{warehouse.quote(db.upper())}.information_schema" if db else "information_schema"
            catalog_filter = ""
        else:
            prefix = "information_schema"
            catalog_filter = f" and lower(c.table_catalog) = {_lit(db.lower())}" if db else ""
        f = _FIELD_SEP
        field = (f"c.column_name || '{f}' || cast(c.ordinal_position as varchar) || '{f}' || c.data_type || '{f}' || "
                 f"c.is_nullable || '{f}' || coalesce(cast(c.character_maximum_length as varchar), '') || '{f}' || "
                 f"coalesce(cast(c.numeric_precision as varchar), '') || '{f}' || coalesce(cast(c.numeric_scale as varchar), '')")
        sql = (
            f"select c.table_catalog, c.table_schema, c.table_name, max(t.table_type) as table_type, "
            f"{_agg(warehouse.dialect, field)} as signature "
            f"from {prefix}.columns c join {prefix}.tables t "
            "on t.table_catalog = c.table_catalog and t.table_schema = c.table_schema and t.table_name = c.table_name "
            f"where upper(c.table_schema) in ({schema_list.upper()}){catalog_filter} "
            "group by c.table_catalog, c.table_schema, c.table_name"
        )
        statements.append(sql)
        res = warehouse.query(sql, rationale=f"snapshot the schema of {len(rels)} relation(s) in {db or 'the default database'}")
        for cat, sch, tab, ttype, signature in res.rows:
            key = relation_key(cat, sch, tab)
            if key not in rels:
                continue
            prev = known.get(key)
            if prev is not None and prev.signature == signature and prev.table_type == str(ttype):
                tables[key] = prev  # unchanged: no decoding
            else:
                tables[key] = TableSchema(relation=f"{cat}.{sch}.{tab}", table_type=str(ttype),
                                          columns=sorted(_decode(signature), key=lambda c: c.position), signature=signature)
    missing = sorted(k for rels in wanted.values() for k in rels if k not in tables)
    return Snapshot(dialect=warehouse.dialect, tables=tables, missing=missing, statements=statements,
                    duration_ms=(time.perf_counter() - start) * 1000)


SHOW_ROW_CAP = 10_000
"""Snowflake caps SHOW output at 10,000 rows: a result that size may be cut, so it proves nothing missing."""
_SHOW_TYPES = {"FIXED": "NUMBER", "REAL": "FLOAT", "TEXT": "TEXT", "BINARY": "BINARY", "BOOLEAN": "BOOLEAN",
               "DATE": "DATE", "TIME": "TIME", "TIMESTAMP_NTZ": "TIMESTAMP_NTZ", "TIMESTAMP_LTZ": "TIMESTAMP_LTZ",
               "TIMESTAMP_TZ": "TIMESTAMP_TZ", "VARIANT": "VARIANT", "OBJECT": "OBJECT", "ARRAY": "ARRAY"}


def _show_type(raw: str) -> tuple[str, object, object, object]:
    """``SHOW COLUMNS``'s JSON ``data_type`` as (type, length, precision, scale), named as information_schema names it.

    >>> _show_type('{"type":"FIXED","precision":10,"scale":2,"nullable":true}')
    ('NUMBER', None, 10, 2)
    """
    import json

    try:
        d = json.loads(raw)
    except ValueError:
        return str(raw).upper(), None, None, None
    t = _SHOW_TYPES.get(str(d.get("type", "")).upper(), str(d.get("type", "")).upper())
    return t, d.get("length"), d.get("precision"), d.get("scale")


def snapshot_schema_show(
    warehouse: Warehouse, relations: Iterable[tuple[str | None, str, str]], previous: Snapshot | None = None
) -> Snapshot:
    """Snowflake: ``SHOW TERSE OBJECTS`` and ``SHOW COLUMNS`` per schema. Metadata commands run in cloud
    services and need no running warehouse, so a poll every minute does not keep one awake (an
    ``information_schema`` query would). Identifiers are quoted by sqlglot. A schema whose output reaches
    Snowflake's 10,000-row cap keeps its previous snapshot (a note says so): a cut list is never read as
    dropped columns."""
    from sqlglot import exp

    start = time.perf_counter()
    by_schema: dict[tuple[str | None, str], dict[str, tuple[str | None, str, str]]] = defaultdict(dict)
    for db, schema, table in relations:
        by_schema[(db, schema)][relation_key(db, schema, table)] = (db, schema, table)
    known = previous.tables if previous is not None else {}
    tables: dict[str, TableSchema] = {}
    statements: list[str] = []
    notes: list[str] = []
    unknown: set[str] = set()
    for (db, schema), rels in by_schema.items():
        target = exp.Table(this=exp.to_identifier(schema.upper(), quoted=True),
                           db=exp.to_identifier(db.upper(), quoted=True) if db else None).sql(dialect="snowflake")
        objects_sql = f"SHOW TERSE OBJECTS IN SCHEMA {target}"
        columns_sql = f"SHOW COLUMNS IN SCHEMA {target}"
        statements += [objects_sql, columns_sql]
        objs = warehouse.query(objects_sql, rationale=f"list the objects of {db}.{schema} (metadata, no warehouse)").folded().dicts()
        cols = warehouse.query(columns_sql, rationale=f"columns of {db}.{schema} (metadata, no warehouse)").folded().dicts()
        if len(cols) >= SHOW_ROW_CAP or len(objs) >= SHOW_ROW_CAP:
            notes.append(f"{db}.{schema}: SHOW output reached {SHOW_ROW_CAP:,} rows and may be cut; its previous "
                         "snapshot stands until the schema is read another way")
            for key in rels:
                unknown.add(key)
                if key in known:
                    tables[key] = known[key]
            continue
        kinds = {str(o.get("name")).lower(): "VIEW" if "VIEW" in str(o.get("kind", "")).upper() else "BASE TABLE"
                 for o in objs}
        per_table: dict[str, list[dict[str, object]]] = defaultdict(list)
        for c in cols:
            per_table[str(c.get("table_name")).lower()].append(c)
        for key, (_db, _schema, table) in rels.items():
            rows = per_table.get(table.lower())
            if not rows:
                continue
            parts = []
            for pos, c in enumerate(rows, start=1):
                dtype, length, precision, scale = _show_type(str(c.get("data_type") or ""))
                nullable = "YES" if str(c.get("null?", "true")).lower() in ("true", "y", "yes") else "NO"
                parts.append(_FIELD_SEP.join([str(c.get("column_name")), str(pos), dtype, nullable,
                                              "" if length is None else str(length),
                                              "" if precision is None else str(precision),
                                              "" if scale is None else str(scale)]))
            signature = _COL_SEP.join(parts)
            ttype = kinds.get(table.lower(), "BASE TABLE")
            prev = known.get(key)
            if prev is not None and prev.signature == signature and prev.table_type == ttype:
                tables[key] = prev  # unchanged: nothing decoded
                continue
            cat = str(rows[0].get("database_name") or db or "")
            tables[key] = TableSchema(relation=f"{cat}.{rows[0].get('schema_name')}.{rows[0].get('table_name')}",
                                      table_type=ttype, columns=_decode(signature), signature=signature)
    missing = sorted(k for rels in by_schema.values() for k in rels if k not in tables and k not in unknown)
    return Snapshot(dialect=warehouse.dialect, tables=tables, missing=missing, statements=statements,
                    duration_ms=(time.perf_counter() - start) * 1000, notes=notes)
