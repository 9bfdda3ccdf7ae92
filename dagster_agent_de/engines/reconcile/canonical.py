"""One canonical text rendering of a row, the same on every engine, and md5 checksums of it.

Engines hash differently (DuckDB's ``hash()`` matches nothing in PostgreSQL or Snowflake) and
print values differently, so a checksum compared across two connections is the md5 of a text
both engines render identically:

* numbers as fixed-point decimals at one scale chosen for the column from both sides' types
  (``10.5`` in a ``DECIMAL(10,3)`` and ``1050 / 100.0`` both become ``10.500000``);
* timestamps as UTC wall time to the microsecond (a zoned value is converted; a naive one is
  read as UTC, as the same-warehouse comparison reads it); dates as ``YYYY-MM-DD``;
* booleans as ``true``/``false``, text as is (its bytes: no collation is involved);
* NULL as ``n`` and any value ``v<text>``, so NULL and the text ``'NULL'`` differ.

Keys are listed in ``COLLATE "C"`` order of their canonical text (code point order, as Python
sorts strings), so samples come out in the same order whatever the engines' collations.

The expressions are built as sqlglot trees and generated per dialect; only turning hex digits
into an integer has no common form and is spelled per engine in :data:`_HEX_TO_INT`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

from dagster_agent_de.errors import ConfigError

Kind = Literal["integer", "number", "timestamp_tz", "timestamp", "date", "boolean", "text"]
DEFAULT_SCALE = 6
"""Scale of numbers whose type does not say (floats, unconstrained NUMERIC): 1e-6 is below any tolerance a spec names."""
SEP = "|"
_HEX_DIGITS = 15  # 60 bits: a positive BIGINT on every engine, and sums of millions fit in 38 digits
_HEX_TO_INT = {
    "duckdb": "CAST('0x' || SUBSTR({md5}, 1, 15) AS BIGINT)",
    "postgres": "CAST(CAST('x' || SUBSTR({md5}, 1, 15) AS BIT(60)) AS BIGINT)",
    "snowflake": "TO_NUMBER(SUBSTR({md5}, 1, 15), 'XXXXXXXXXXXXXXX')",
}
_TS_FORMAT = "%Y-%m-%d %H:%M:%S.%f"


def kind_of(type_name: str | None) -> Kind:
    """The canonical family of a driver's type name.

    >>> kind_of("DECIMAL(10,2)"), kind_of("INTEGER"), kind_of("TIMESTAMP WITH TIME ZONE"), kind_of("TIMESTAMP_NTZ")
    ('number', 'integer', 'timestamp_tz', 'timestamp')
    """
    t = (type_name or "").upper()
    if t.startswith(("BIGINT", "INTEGER", "INT", "SMALLINT", "TINYINT", "HUGEINT", "UBIGINT", "UINTEGER", "USMALLINT", "UTINYINT")):
        return "integer"
    if t.startswith(("DECIMAL", "NUMERIC", "NUMBER", "FIXED", "DOUBLE", "FLOAT", "REAL")):
        return "integer" if re.search(r"\(\s*\d+\s*,\s*0\s*\)", t) else "number"
    if "WITH TIME ZONE" in t or t.endswith(("_TZ", "_LTZ", "TIMESTAMPTZ")):
        return "timestamp_tz"
    if t.startswith(("TIMESTAMP", "DATETIME")):
        return "timestamp"
    if t == "DATE":
        return "date"
    if t.startswith("BOOL"):
        return "boolean"
    return "text"


def scale_of(type_name: str | None) -> int | None:
    """The declared scale of a decimal type, ``None`` when the type does not fix one.

    >>> scale_of("NUMERIC(10,2)"), scale_of("DOUBLE"), scale_of("INTEGER")
    (2, None, 0)
    """
    t = (type_name or "").upper()
    if kind_of(t) == "integer":
        return 0
    m = re.search(r"\(\s*\d+\s*,\s*(\d+)\s*\)", t)
    return int(m.group(1)) if m else None


@dataclass(frozen=True)
class Rendering:
    """How one column is rendered on both sides: the common kind, the decimal scale, each side's own kind."""

    kind: Kind
    scale: int = 0
    own: tuple[Kind, Kind] = ("text", "text")
    own_scale: tuple[int | None, int | None] = (None, None)
    """Each side's declared scale: a side whose type already has the chosen scale prints as is (no cast)."""


def rendering(type_model: str | None, type_truth: str | None) -> Rendering:
    """Choose one rendering for a column from its two sides' types.

    >>> rendering("DECIMAL(10,3)", "NUMERIC")
    Rendering(kind='number', scale=6, own=('number', 'number'), own_scale=(3, None))
    >>> rendering("INTEGER", "NUMERIC(12,2)").scale, rendering("TIMESTAMP", "TIMESTAMP WITH TIME ZONE").kind
    (2, 'timestamp')
    """
    a, b = kind_of(type_model), kind_of(type_truth)
    own = (a, b)
    if {a, b} <= {"integer", "number"}:
        if a == b == "integer":
            return Rendering("integer", 0, own)
        scales = (scale_of(type_model), scale_of(type_truth))
        scale = max(DEFAULT_SCALE if s is None else s for s in scales)
        return Rendering("number", scale, own, scales)
    if {a, b} <= {"timestamp", "timestamp_tz", "date"} and a != b:
        return Rendering("timestamp", 0, own)
    if a == b:
        return Rendering(a, 0, own)
    return Rendering("text", 0, own)


def _expr(column: str, r: Rendering, side: int) -> Any:
    from sqlglot import exp

    col: exp.Expression = exp.column(column, quoted=True)
    own = r.own[side]
    if r.kind == "integer" or (r.kind == "number" and own != "integer" and r.own_scale[side] == r.scale):
        # integers, and decimals already at the chosen scale, print alike on every engine: no cast needed
        return exp.cast(col, "TEXT")
    if r.kind == "number":
        return exp.cast(exp.cast(col, f"DECIMAL(38, {r.scale})"), "TEXT")
    if r.kind in ("timestamp", "timestamp_tz"):
        if own == "date":
            col = exp.cast(col, "TIMESTAMP")
        elif own == "timestamp_tz":
            col = exp.AtTimeZone(this=col, zone=exp.Literal.string("UTC"))
        return exp.TimeToStr(this=col, format=exp.Literal.string(_TS_FORMAT))
    if r.kind == "date":
        return exp.TimeToStr(this=col, format=exp.Literal.string("%Y-%m-%d"))
    if r.kind == "boolean":
        return exp.Case(ifs=[exp.If(this=col, true=exp.Literal.string("true")),
                             exp.If(this=exp.Not(this=col), true=exp.Literal.string("false"))])
    return exp.cast(col, "TEXT")


def canonical_sql(column: str, r: Rendering, side: int, dialect: str) -> str:
    """SQL for the canonical text of ``column`` on one side (0 pipeline, 1 source of truth), NULL as ``n``.

    >>> canonical_sql("paid_at", rendering("TIMESTAMP", "TIMESTAMP WITH TIME ZONE"), 1, "postgres")
    'COALESCE(\\'v\\' || TO_CHAR("paid_at" AT TIME ZONE \\'UTC\\', \\'YYYY-MM-DD HH24:MI:SS.US\\'), \\'n\\')'
    """
    from sqlglot import exp

    marked = exp.DPipe(this=exp.Literal.string("v"), expression=_expr(column, r, side), safe=True)
    return exp.Coalesce(this=marked, expressions=[exp.Literal.string("n")]).sql(dialect=dialect)


def checksum_sql(texts: list[str], dialect: str) -> str:
    """A 60-bit non-negative integer from the md5 of ``texts`` joined by :data:`SEP`, the same on every engine."""
    from sqlglot import exp

    if dialect not in _HEX_TO_INT:
        raise ConfigError(f"cross-connection checksums are not defined for {dialect}; supported: {', '.join(_HEX_TO_INT)}")
    joined = f" || '{SEP}' || ".join(texts)
    md5 = exp.MD5(this=exp.maybe_parse(joined, dialect=dialect)).sql(dialect=dialect)
    return _HEX_TO_INT[dialect].format(md5=md5)



_LEHMER_P, _LEHMER_A = 2147483647, 48271  # MINSTD: products stay below 2^47, exact in BIGINT on every engine


def bucket_sql(key_columns: list[str], key_texts: list[str], rends: list[Rendering], dialect: str) -> str:
    """A non-negative integer per key that places a key in the same bucket on every engine.

    A single integer key needs no md5: a Lehmer step spreads consecutive keys over the buckets in
    integer arithmetic every engine does exactly alike (and cheaply, so a level can filter on its
    bucket before any row is hashed). Any other key: the md5 of its canonical text.

    >>> bucket_sql(['"k0"'], [], [Rendering("integer")], "postgres")
    '(ABS(CAST("k0" AS BIGINT)) % 2147483647) * 48271 % 2147483647'
    """
    if len(key_columns) == 1 and rends[0].kind == "integer":
        return f"(ABS(CAST({key_columns[0]} AS BIGINT)) % {_LEHMER_P}) * {_LEHMER_A} % {_LEHMER_P}"
    return checksum_sql(key_texts, dialect)
