"""Profile a warehouse table for onboarding: a fixed handful of queries, whatever its width.

1. its columns (the drift snapshot's one ``information_schema`` query);
2. one aggregate pass: row count, and per column non-NULL count, approximate distinct count,
   min/max where ordered;
3. exact uniqueness of the few key candidates;
4. value counts of the low-cardinality text columns (one UNION ALL);
5. a bounded sample of the text columns, scanned in memory for PII patterns and then dropped
   (no value from it is stored or written anywhere).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from dagster_agent_de.adapters.warehouse import Warehouse
from dagster_agent_de.engines.drift.snapshot import relation_key, snapshot_schema
from dagster_agent_de.errors import ConfigError

LOW_CARDINALITY = 12
SAMPLE_ROWS = 500
MAX_KEY_CANDIDATES = 4


def category(data_type: str) -> str:
    """text, integer, number, timestamp, date, boolean or other.

    >>> category("VARCHAR"), category("NUMBER(38,0)"), category("TIMESTAMP WITH TIME ZONE"), category("DOUBLE")
    ('text', 'integer', 'timestamp', 'number')
    """
    t = data_type.upper()
    if t.startswith(("VARCHAR", "TEXT", "STRING", "CHAR")):
        return "text"
    if t.startswith(("BIGINT", "INTEGER", "INT", "SMALLINT", "TINYINT", "HUGEINT", "UBIGINT", "UINTEGER")) or t in ("NUMBER", "NUMBER(38,0)"):
        return "integer"
    if t.startswith(("NUMBER", "DECIMAL", "NUMERIC", "DOUBLE", "FLOAT", "REAL")):
        return "number"
    if t.startswith(("TIMESTAMP", "DATETIME")):
        return "timestamp"
    if t == "DATE":
        return "date"
    if t.startswith("BOOL"):
        return "boolean"
    return "other"


@dataclass
class ColumnProfile:
    name: str
    data_type: str
    position: int
    non_null: int | None = None
    distinct: int | None = None  # approximate, except for key candidates (then exact)
    exact_unique: bool | None = None
    min: Any = None
    max: Any = None
    top_values: list[tuple[str, int]] | None = None  # all values, when few
    sample: list[str] = field(default_factory=list, repr=False)  # transient: for PII scanning only
    description: str = ""
    required: bool = False  # declared required (API schemas)
    pii_hint: str | None = None  # declared format (API schemas: email, ...)

    @property
    def kind(self) -> str:
        return category(self.data_type)


@dataclass
class TableProfile:
    database: str | None
    schema: str
    table: str
    relation: str
    rows: int | None
    columns: list[ColumnProfile]
    profiled_at: datetime | None = None
    from_data: bool = True  # False: an API schema, nothing measured
    statements: list[str] = field(default_factory=list)
    session_database: str | None = None  # the connection's default database (the dbt target's: same profile)

    @property
    def in_default_database(self) -> bool:
        """Whether the table is in the connection's default database: dbt resolves a source without
        ``database:`` there, in whichever target it runs (dev, prod), so the source must not pin it."""
        return self.database is None or (self.session_database or "").lower() == self.database.lower()

    def column(self, name: str) -> ColumnProfile | None:
        return next((c for c in self.columns if c.name.lower() == name.lower()), None)


def split_table(ref: str) -> tuple[str | None, str, str]:
    """``schema.table`` or ``database.schema.table`` -> (database, schema, table).

    >>> split_table("zendesk.tickets"), split_table("raw.zendesk.tickets")
    ((None, 'zendesk', 'tickets'), ('raw', 'zendesk', 'tickets'))
    """
    parts = [p.strip().strip('"') for p in ref.split(".")]
    if len(parts) == 2 and all(parts):
        return None, parts[0], parts[1]
    if len(parts) == 3 and all(parts):
        return parts[0], parts[1], parts[2]
    raise ConfigError(f"table {ref!r}: use schema.table or database.schema.table")


def profile_table(warehouse: Warehouse, schema: str, table: str, database: str | None = None) -> TableProfile:
    """Profile ``schema.table`` (in ``database``) through the audited, read-only warehouse."""
    # the session's database: DuckDB's attached file, Snowflake's current database (asked only when needed)
    session_database = getattr(warehouse, "catalog", None)
    if session_database is None:
        session_database = warehouse.query("select current_database()", rationale="the session's current database").scalar()
    if database is None:
        database = session_database
    snap = snapshot_schema(warehouse, [(database, schema, table)])
    found = snap.tables.get(relation_key(database, schema, table))
    if found is None:
        raise ConfigError(f"table {schema}.{table} was not found in the warehouse"
                          f"{f' (database {database})' if database else ''}; check the schema and table names "
                          "(the agent reads information_schema.columns with its own credentials)")
    relation = warehouse.relation(*found.relation.split("."))
    cols = [ColumnProfile(c.name, c.data_type, c.position) for c in sorted(found.columns, key=lambda c: c.position)]
    statements = list(snap.statements)

    # approximate where the engine has it; exact (slower, same answer) where it does not (PostgreSQL)
    distinct = "approx_count_distinct({})" if warehouse.capabilities.approx_distinct else "count(distinct {})"
    parts = ["count(*) as n"]
    for i, c in enumerate(cols):
        parts.append(f"count({warehouse.quote(c.name)}) as nn_{i}")
        parts.append(f"{distinct.format(warehouse.quote(c.name))} as nd_{i}")
        if c.kind in ("integer", "number", "timestamp", "date"):
            parts.append(f"min({warehouse.quote(c.name)}) as mn_{i}, max({warehouse.quote(c.name)}) as mx_{i}")
    sql = f"select {', '.join(parts)} from {relation}"
    statements.append(sql)
    row = warehouse.query(sql, rationale=f"profile {schema}.{table}: rows, NULLs, distinct values per column").folded().one()
    rows = int(row["n"])
    for i, c in enumerate(cols):
        c.non_null, c.distinct = int(row[f"nn_{i}"]), int(row[f"nd_{i}"])
        c.min, c.max = row.get(f"mn_{i}"), row.get(f"mx_{i}")

    candidates = [c for c in cols if rows and c.non_null == rows and c.distinct is not None and c.distinct >= rows * 0.97
                  and c.kind in ("integer", "text")][:MAX_KEY_CANDIDATES]
    if candidates:
        sql = "select " + ", ".join(f"count(distinct {warehouse.quote(c.name)}) as d_{i}" for i, c in enumerate(candidates)) + f" from {relation}"
        statements.append(sql)
        exact = warehouse.query(sql, rationale=f"exact uniqueness of key candidates of {schema}.{table}").folded().one()
        for i, c in enumerate(candidates):
            c.distinct = int(exact[f"d_{i}"])
            c.exact_unique = c.distinct == rows

    low = [c for c in cols if c.kind in ("text", "boolean") and c.distinct is not None and 0 < c.distinct <= LOW_CARDINALITY]
    if low:
        sql = " union all ".join(
            f"select '{c.name.replace(chr(39), chr(39) * 2)}' as col, cast({warehouse.quote(c.name)} as varchar) as val, count(*) as n "
            f"from {relation} where {warehouse.quote(c.name)} is not null group by 2" for c in low)
        statements.append(sql)
        res = warehouse.query(sql, rationale=f"values of the low-cardinality columns of {schema}.{table}", max_rows=LOW_CARDINALITY * len(low) * 2)
        values: dict[str, list[tuple[str, int]]] = {}
        for col, val, n in res.rows:
            values.setdefault(col, []).append((str(val), int(n)))
        for c in low:
            got = sorted(values.get(c.name, []), key=lambda v: (-v[1], v[0]))
            # only when they are all the values (approx_count_distinct may undercount)
            c.top_values = got if sum(n for _, n in got) == c.non_null else None

    text = [c for c in cols if c.kind == "text"]
    if text and rows:
        sql = f"select {', '.join(warehouse.quote(c.name) for c in text)} from {relation} limit {SAMPLE_ROWS}"
        statements.append(sql)
        res = warehouse.query(sql, rationale=f"sample {SAMPLE_ROWS} rows of the text columns of {schema}.{table} to detect PII "
                                               "(scanned in memory, never stored)", max_rows=SAMPLE_ROWS)
        for j, c in enumerate(text):
            c.sample = [str(r[j]) for r in res.rows if r[j] is not None]
    return TableProfile(database=found.relation.split(".")[0] if found.relation.count(".") == 2 else database,
                        schema=found.relation.split(".")[-2], table=found.relation.split(".")[-1], relation=relation,
                        rows=rows, columns=cols, profiled_at=datetime.now(), statements=statements,
                        session_database=str(session_database) if session_database else None)
