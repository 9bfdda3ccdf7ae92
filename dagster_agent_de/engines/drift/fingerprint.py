"""Column fingerprints: is a column that appeared the one that disappeared, judged by its values?

One query per table (never one per column) reads, for the chosen columns: the row count, null
count, approximate distinct count, min and max (numeric and date columns), and the hashes of
the values of a deterministic sample of up to 1,000 keys: the keys with the smallest hash of
the table's key (a dbt ``unique`` test, a ``primary_key`` constraint or ``meta.agent_de.key``).
Numbers are hashed from a canonical decimal form, so ``12.5``, ``12.50`` and ``1250 / 100`` hash
equal; a column that appeared or changed type is also hashed divided by ``10**k`` (``k`` in ±1..3)
so a unit change (dollars to cents, renamed or in place) shows up as a match at ``k``. Text is
hashed, never stored. Tables above a size cap are skipped (the size comes from one metadata query
per database).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from functools import cache
from typing import Any

from dagster_agent_de.adapters.warehouse import Warehouse
from dagster_agent_de.adapters.warehouse.base import Capabilities
from dagster_agent_de.engines.drift.models import (
    ColumnFingerprint,
    ColumnSchema,
    RenameEvidence,
    Snapshot,
    TableFingerprint,
    TableSchema,
)
from dagster_agent_de.engines.drift.snapshot import relation_key
from dagster_agent_de.errors import ConfigError
from dagster_agent_de.manifest import Manifest

SAMPLE_KEYS = 1000
MAX_ROWS_ENV = "AGENT_DE_DRIFT_FINGERPRINT_MAX_ROWS"
DEFAULT_MAX_ROWS = 20_000_000
WIDTH = 8  # hex characters kept of each md5: 32 bits, plenty to tell 1,000 values apart
NULL = "n" * WIDTH  # a NULL value (not a hex digit: never equal to a hash)
SCALES = (-3, -2, -1, 1, 2, 3)
SAME, DIFFERENT = 0.9, 0.5  # match rates: at or above SAME the values are the same; at or below DIFFERENT they differ
MIN_KEYS = 10  # fewer shared sampled keys than this (unless the tables are that small) prove nothing
_NUMERIC = ("TINYINT", "SMALLINT", "INTEGER", "INT", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER",
            "UBIGINT", "UHUGEINT", "DECIMAL", "NUMERIC", "NUMBER", "DOUBLE", "FLOAT", "REAL", "FLOAT4", "FLOAT8",
            "DOUBLE PRECISION", "FIXED")
_TIME = ("DATE", "TIMESTAMP", "DATETIME", "TIMESTAMP_NTZ", "TIMESTAMP_TZ", "TIMESTAMP_LTZ", "TIMESTAMPTZ",
         "TIMESTAMP WITH TIME ZONE", "TIME")


def max_rows_from_env(default: int = DEFAULT_MAX_ROWS) -> int:
    """The size cap: ``AGENT_DE_DRIFT_FINGERPRINT_MAX_ROWS`` (0 turns fingerprints off)."""
    raw = os.environ.get(MAX_ROWS_ENV)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw.replace("_", ""))
    except ValueError as e:
        raise ConfigError(f"{MAX_ROWS_ENV}={raw!r} is not a whole number of rows; set it to e.g. 20000000 (0: off)") from e
    if value < 0:
        raise ConfigError(f"{MAX_ROWS_ENV}={raw!r} is negative; set it to a number of rows (0: off)")
    return value


def family(data_type: str) -> str:
    """``number``, ``time`` or ``other`` (text, booleans, nested types: hashed as text)."""
    base = data_type.upper().split("(")[0].strip()
    if base in _NUMERIC:
        return "number"
    if base in _TIME or base.startswith("TIMESTAMP"):
        return "time"
    return "other"


# -- which tables, keyed by what ----------------------------------------------------------------
def fingerprinted_relations(manifest: Manifest) -> set[str]:
    """Relation keys of the tables dbt declares as sources and seeds."""
    return {relation_key(n.database, n.schema, n.identifier or n.name)
            for n in manifest.nodes.values() if n.is_source or n.resource_type == "seed"}


def table_keys(manifest: Manifest) -> dict[str, list[str]]:
    """Relation key -> key columns, from ``meta.agent_de.key``, ``primary_key`` constraints or ``unique`` tests."""
    rel = {uid: relation_key(n.database, n.schema, n.identifier or n.name)
           for uid, n in manifest.nodes.items() if n.is_source or n.resource_type == "seed"}
    out: dict[str, list[str]] = {}
    for test in sorted(manifest.raw_tests(), key=lambda t: t.get("unique_id", "")):
        meta = test.get("test_metadata") or {}
        col = test.get("column_name") or (meta.get("kwargs") or {}).get("column_name")
        parents = (test.get("depends_on") or {}).get("nodes") or []
        if meta.get("name") == "unique" and col and len(parents) == 1 and parents[0] in rel:
            out.setdefault(rel[parents[0]], [str(col)])
    for uid, key in rel.items():
        node = manifest.nodes[uid]
        for name, col in node.columns.items():
            if any((c or {}).get("type") == "primary_key" for c in col.get("constraints") or []):
                out[key] = [name]
        declared = node.agent_de_meta.get("key")
        if declared:
            out[key] = [declared] if isinstance(declared, str) else [str(c) for c in declared]
    return out


# -- the query ----------------------------------------------------------------------------------
def _table(relation: str):  # noqa: ANN202 - sqlglot expression
    from sqlglot import exp

    parts = relation.split(".")
    return exp.table_(parts[-1], db=parts[-2] if len(parts) > 1 else None,
                      catalog=parts[-3] if len(parts) > 2 else None, quoted=True)


@cache
def _type(name: str):  # noqa: ANN202
    from sqlglot import exp

    return exp.DataType.build(name)


def _cast(e, to: str):  # noqa: ANN001, ANN202
    from sqlglot import exp

    return exp.Cast(this=e, to=_type(to).copy())  # the type parsed once, not per cast


def _as(e, alias: str, table: bool = False):  # noqa: ANN001, ANN202
    from sqlglot import exp

    return exp.alias_(e, alias, table=table, copy=False)  # built from fresh nodes: nothing to copy


def _hash(e):  # noqa: ANN001, ANN202
    from sqlglot import exp

    return exp.Substring(this=exp.MD5(this=_cast(e, "VARCHAR")), start=exp.Literal.number(1),
                         length=exp.Literal.number(WIDTH))


def _value_hash(col, fam: str, scale: int = 0):  # noqa: ANN001, ANN202
    """The hash of a value in its canonical form; numbers divided by ``10**scale`` first."""
    from sqlglot import exp

    if fam != "number":
        return exp.Coalesce(this=_hash(col), expressions=[exp.Literal.string(NULL)])
    canon = _cast(col.copy(), "DECIMAL(38, 6)")
    if scale:
        factor = f"0.{'0' * (scale - 1)}1" if scale > 0 else str(10 ** -scale)
        canon = _cast(exp.Mul(this=canon, expression=exp.Literal.number(factor)), "DECIMAL(38, 6)")
    # guard the cast: NaN, infinities and values beyond DECIMAL(38, 6) hash as NULL, never fail the query
    small = exp.LT(this=exp.Abs(this=col.copy()), expression=exp.Literal.number("1e25"))
    return exp.Coalesce(this=exp.Case(ifs=[exp.If(this=small, true=_hash(canon))]), expressions=[exp.Literal.string(NULL)])


def _key_expr(key: list[str], names: list[str] | None = None):  # noqa: ANN202
    """The key as one string (hashed for the stored sample, on the sampled rows only)."""
    from sqlglot import exp

    cols = [exp.column(n) for n in names] if names else [exp.column(k, quoted=True) for k in key]
    parts = [exp.Coalesce(this=_cast(c, "VARCHAR"), expressions=[exp.Literal.string("")]) for c in cols]
    out: exp.Expression = parts[0]
    for p in parts[1:]:
        out = exp.DPipe(this=exp.DPipe(this=out, expression=exp.Literal.string("\x1f")), expression=p)
    return out


_DEFAULT_CAPABILITIES = Capabilities()


def fingerprint_query(table: TableSchema, columns: list[ColumnSchema], key: list[str], dialect: str,
                      *, capabilities: Capabilities = _DEFAULT_CAPABILITIES, sample: int = SAMPLE_KEYS,
                      scaled: Iterable[str] = ()) -> str:
    """One SELECT: stats of ``columns`` over the whole table and the hashes of a keyed sample.

    The result is one row: ``n``, then per column ``nn{i}``, ``d{i}``, ``lo{i}``, ``hi{i}``,
    then (with a key) ``k`` (the key hashes) and per column ``v{i}`` and, for the columns in
    ``scaled``, ``v{i}_{scale}`` — each a concatenation of fixed-width hashes, ordered by key.
    """
    from sqlglot import exp

    scaled = {s.lower() for s in scaled}

    def distinct(col: exp.Expression) -> exp.Expression:
        # without an approximate distinct count (PostgreSQL): the exact one (slower, same role)
        if capabilities.approx_distinct:
            return exp.ApproxDistinct(this=col)
        return exp.Count(this=exp.Distinct(expressions=[col]))

    stats: list[exp.Expression] = [_as(exp.Count(this=exp.Star()), "n")]
    for i, c in enumerate(columns):
        col = exp.column(c.name, quoted=True)
        fam = family(c.data_type)
        stats += [_as(exp.Count(this=col.copy()), f"nn{i}"), _as(distinct(col.copy()), f"d{i}")]
        if fam == "number":
            lo, hi = _cast(exp.Min(this=col.copy()), "DOUBLE"), _cast(exp.Max(this=col.copy()), "DOUBLE")
        elif fam == "time":
            lo, hi = _cast(exp.Min(this=col.copy()), "VARCHAR"), _cast(exp.Max(this=col.copy()), "VARCHAR")
        else:
            lo = hi = exp.Null()
        stats += [_as(lo, f"lo{i}"), _as(hi, f"hi{i}")]
    stats_q = exp.select(*stats).from_(_table(table.relation), copy=False)
    if not key or sample <= 0:
        return stats_q.sql(dialect)
    # the sample: the rows with the smallest hash of the key (the warehouse's fast native hash, on
    # the key as stored), so both snapshots sample the same keys while the table only grows
    names = [f"_k{j}" for j in range(len(key))]
    # without a native hash() (PostgreSQL): the md5 of the key's text (as fast a sample order there, the same role)
    key_hash = (exp.Anonymous(this="hash", expressions=[exp.column(k, quoted=True) for k in key])
                if capabilities.native_hash else exp.MD5(this=_key_expr(key)))
    inner = exp.select(_as(key_hash, "_h"),
                       *[_as(exp.column(k, quoted=True), n) for k, n in zip(key, names, strict=True)],
                       *[_as(exp.column(c.name, quoted=True), f"c{i}") for i, c in enumerate(columns)])
    inner = inner.from_(_table(table.relation), copy=False).order_by(exp.column("_h"), copy=False).limit(sample, copy=False)
    order = exp.column("_h")

    def agg(e: exp.Expression, alias: str) -> exp.Expression:
        return _as(exp.GroupConcat(this=exp.Order(this=e, expressions=[exp.Ordered(this=order.copy())]),
                                          separator=exp.Literal.string("")), alias)

    sampled = [agg(_hash(_key_expr(key, names)), "k")]
    for i, c in enumerate(columns):
        fam = family(c.data_type)
        sampled.append(agg(_value_hash(exp.column(f"c{i}"), fam), f"v{i}"))
        if fam == "number" and c.name.lower() in scaled:
            sampled += [agg(_value_hash(exp.column(f"c{i}"), fam, s), f"v{i}_{s}".replace("-", "m")) for s in SCALES]
    sample_q = exp.select(*sampled).from_(_as(exp.Subquery(this=inner), "s", table=True), copy=False)
    q = exp.select(exp.Star()).from_(_as(exp.Subquery(this=stats_q), "st", table=True), copy=False).join(
        _as(exp.Subquery(this=sample_q), "sa", table=True), join_type="cross", copy=False)
    return q.sql(dialect)


def _num(v: object) -> float | str | None:
    if v is None:
        return None
    if isinstance(v, int | float):
        return float(v)
    try:
        return float(str(v))
    except ValueError:
        return str(v)


def _parse(row: tuple, columns: list[ColumnSchema], key: list[str], scaled: set[str]) -> TableFingerprint:
    it = iter(row)
    rows = int(next(it) or 0)
    stats = []
    for c in columns:
        nn, d, lo, hi = next(it), next(it), next(it), next(it)
        fam = family(c.data_type)
        stats.append((int(nn or 0), int(d or 0), _num(lo) if fam == "number" else lo, _num(hi) if fam == "number" else hi))
    keys = str(next(it, "") or "") if key else ""
    cols = {}
    for c, (nn, d, lo, hi) in zip(columns, stats, strict=True):
        values, extra = "", {}
        if key:
            values = str(next(it) or "")
            if family(c.data_type) == "number" and c.name.lower() in scaled:
                extra = {s: str(next(it) or "") for s in SCALES}
        cols[c.name.lower()] = ColumnFingerprint(
            name=c.name, data_type=c.data_type, rows=rows, nulls=rows - nn, distinct=d,
            min=None if lo is None else (lo if isinstance(lo, float) else str(lo)),
            max=None if hi is None else (hi if isinstance(hi, float) else str(hi)),
            values=values, scaled=extra,
        )
    return TableFingerprint(rows=rows, key=key, keys=keys, columns=cols)


def table_sizes(warehouse: Warehouse, tables: Iterable[TableSchema]) -> dict[str, int | None]:
    """Row counts from the warehouse's catalog (no scan): each adapter reads its own, one query per database."""
    # as the warehouse names them: Snowflake quotes the database in its catalog query (case-sensitive there)
    relations = sorted({t.relation for t in tables})
    return warehouse.table_row_counts(relations, rationale=f"row counts of {len(relations)} table(s) from metadata: "
                                                           "is a fingerprint cheap?")


def _bounded_count(warehouse: Warehouse, table: TableSchema, cap: int) -> int | None:
    """Count a table the catalog has no estimate for (PostgreSQL before its first ANALYZE), reading at most
    ``cap + 1`` rows: enough to tell whether a fingerprint is under the cap (``cap + 1`` means "more").
    A view is never counted: it would run its query. None when the count fails (the table is then skipped,
    as before there was a count: detection goes on)."""
    from sqlglot import exp

    from dagster_agent_de.errors import WarehouseError, WarehouseUnavailableError

    rows = exp.select(exp.Literal.number(1)).from_(_table(table.relation), copy=False).limit(cap + 1, copy=False)
    sql = exp.select(_as(exp.Count(this=exp.Star()), "n")).from_(_as(exp.Subquery(this=rows), "t", table=True),
                                                                  copy=False).sql(warehouse.dialect)
    try:
        res = warehouse.query(sql, rationale=f"row count of {table.relation}, at most {cap + 1:,} rows read "
                                             "(the catalog has no estimate): is a fingerprint cheap?")
    except WarehouseUnavailableError:
        raise  # the warehouse went away: the run fails saying so, nothing is skipped quietly
    except WarehouseError:
        return None  # e.g. no SELECT on the table: skipped with "size unknown", as before
    return int(res.rows[0][0] or 0)


def fingerprint_tables(
    warehouse: Warehouse, tables: dict[str, tuple[TableSchema, list[ColumnSchema], set[str]]],
    keys: dict[str, list[str]], *, max_rows: int | None = None, sample: int = SAMPLE_KEYS,
) -> dict[str, TableFingerprint]:
    """Fingerprint ``tables`` (relation key -> (table, columns, columns to hash at every scale)).

    One metadata query for the sizes, then one query per table that is neither empty nor above
    ``max_rows`` (``AGENT_DE_DRIFT_FINGERPRINT_MAX_ROWS``, default 20M); the rest say why they were skipped.
    """
    cap = max_rows_from_env() if max_rows is None else max_rows
    if not tables:
        return {}
    if cap <= 0:
        return {k: TableFingerprint(skipped=f"fingerprints are off ({MAX_ROWS_ENV}=0)") for k in tables}
    sizes = table_sizes(warehouse, [t for t, _, _ in tables.values()])
    out: dict[str, TableFingerprint] = {}
    for rel, (table, columns, scaled) in tables.items():
        size = sizes.get(rel)
        if size is None and table.table_type.upper() == "BASE TABLE":
            size = _bounded_count(warehouse, table, cap)
        key = [k for k in keys.get(rel, []) if k.lower() in table.by_name()]
        key = [table.by_name()[k.lower()].name for k in key] if len(key) == len(keys.get(rel, [])) else []
        if size is None:
            out[rel] = TableFingerprint(skipped=f"size unknown ({table.table_type.lower()}): fingerprint skipped")
        elif size > cap:
            out[rel] = TableFingerprint(rows=size, skipped=f"{size:,} rows is above the fingerprint cap of {cap:,} ({MAX_ROWS_ENV})"
                                        if rel in sizes and sizes[rel] is not None else
                                        f"more than {cap:,} rows, the fingerprint cap ({MAX_ROWS_ENV})")
        elif size == 0 or not columns:
            out[rel] = TableFingerprint(rows=size, key=key)
        else:
            sql = fingerprint_query(table, columns, key, warehouse.dialect, capabilities=warehouse.capabilities,
                                    sample=sample, scaled=scaled)
            res = warehouse.query(sql, rationale=f"fingerprint {len(columns)} column(s) of {table.relation} "
                                                 "(stats and hashed sample: is a new column a renamed one?)")
            out[rel] = _parse(res.rows[0], columns, key, scaled)
    return out


def attach_fingerprints(
    warehouse: Warehouse, manifest: Manifest, current: Snapshot, previous: Snapshot | None,
    *, full: bool = False, max_rows: int | None = None,
) -> Snapshot:
    """Fingerprint the source and seed tables of ``current`` that need it.

    ``full`` (or no ``previous``): every column of every table, the baseline pass (what changed since
    ``previous``, if given, also at every scale). Otherwise only the columns that appeared or changed
    type since ``previous`` (one query per changed table); the other columns keep their fingerprint.
    """
    watched = fingerprinted_relations(manifest)
    prev_tables = previous.tables if previous is not None and not full else {}
    # a full pass over a previous snapshot still hashes what changed at every scale, so the baseline it records
    # can say which accepted change moved units
    scaled_since = previous.tables if previous is not None and full else {}
    todo: dict[str, tuple[TableSchema, list[ColumnSchema], set[str]]] = {}
    carried: dict[str, dict[str, ColumnFingerprint]] = {}
    found: dict[str, TableFingerprint] = {}
    for rel, table in current.tables.items():
        if rel not in watched:
            continue
        before = prev_tables.get(rel)
        if before is table and table.fingerprint is not None:
            continue  # unchanged since the previous snapshot: its fingerprint stands
        if before is None or before.fingerprint is None or before.fingerprint.skipped:
            since = before or scaled_since.get(rel)
            todo[rel] = (table, list(table.columns), set() if since is None else _changed(since, table))
            continue
        old, now = before.by_name(), table.by_name()
        keep = {n: fp for n, fp in before.fingerprint.columns.items()
                if n in now and n in old and old[n].data_type == now[n].data_type}
        changed = _changed(before, table)
        if changed:
            # the new sample may hold other keys: carried columns keep the keys their values were sampled at
            carried[rel] = {n: _own_keys(fp, before.fingerprint) for n, fp in keep.items()}
            todo[rel] = (table, [c for c in table.columns if c.name.lower() in changed], changed)
        else:
            found[rel] = before.fingerprint.model_copy(update={"columns": keep})
    found.update(fingerprint_tables(warehouse, todo, table_keys(manifest), max_rows=max_rows))
    if not found:
        return current
    tables = dict(current.tables)
    for rel, fp in found.items():
        if rel in carried and not fp.skipped:
            fp = fp.model_copy(update={"columns": {**carried[rel], **fp.columns}})
        tables[rel] = tables[rel].model_copy(update={"fingerprint": fp})
    return current.model_copy(update={"tables": tables})


def _changed(before: TableSchema, after: TableSchema) -> set[str]:
    """The columns to fingerprint at detection, at every scale: those that appeared (a rename?) and those whose
    type changed in place (a unit change under the same name?)."""
    old = before.by_name()
    return {c.name.lower() for c in after.columns
            if c.name.lower() not in old or old[c.name.lower()].data_type != c.data_type}


def _own_keys(col: ColumnFingerprint, table: TableFingerprint) -> ColumnFingerprint:
    """A column carried into a newer table fingerprint keeps the keys its values were sampled at."""
    return col if col.keys is not None or not table.keys else col.model_copy(update={"keys": table.keys})


# -- the comparison -----------------------------------------------------------------------------
def _pairs(col: ColumnFingerprint, table: TableFingerprint, values: str) -> dict[str, str]:
    keys = col.keys if col.keys is not None else table.keys
    n = min(len(keys), len(values)) // WIDTH
    return {keys[i * WIDTH:(i + 1) * WIDTH]: values[i * WIDTH:(i + 1) * WIDTH] for i in range(n)}


def _rate(old: dict[str, str], new: dict[str, str]) -> tuple[float | None, int]:
    shared = [k for k in old if k in new and not (old[k] == NULL and new[k] == NULL)]
    if not shared:
        return None, 0
    return sum(1 for k in shared if old[k] == new[k]) / len(shared), len(shared)


def compare_columns(
    old_table: TableFingerprint | None, old: ColumnSchema, new_table: TableFingerprint | None, new: ColumnSchema
) -> RenameEvidence:
    """Whether ``new`` holds ``old``'s values: the same, times ``10**k``, different, or unknown."""
    base: dict[str, Any] = {"old_column": old.name, "new_column": new.name}
    for t, c in ((old_table, old), (new_table, new)):
        if t is None:
            return RenameEvidence(verdict="names_only", reason="confidence from names only: no fingerprint of the "
                                  + ("baseline" if t is old_table else "new") + " table", **base)
        if t.skipped:
            return RenameEvidence(verdict="names_only", reason=f"confidence from names only: {t.skipped}", **base)
        if c.name.lower() not in t.columns and t.rows:
            return RenameEvidence(verdict="names_only", reason=f"confidence from names only: {c.name} was not fingerprinted", **base)
    assert old_table is not None and new_table is not None
    fo, fn = old_table.columns.get(old.name.lower()), new_table.columns.get(new.name.lower())
    if fo is None or fn is None or not fo.rows or not fn.rows:
        return RenameEvidence(verdict="names_only", reason="confidence from names only: a table is empty", **base)
    stats: dict[str, Any] = {"old_stats": fo.stats(), "new_stats": fn.stats()}
    if (fo.keys or old_table.keys) and (fn.keys or new_table.keys):
        o = _pairs(fo, old_table, fo.values)
        rate, shared = _rate(o, _pairs(fn, new_table, fn.values))
        if rate is None or shared < min(MIN_KEYS, len(o)):
            return RenameEvidence(verdict="inconclusive", keys_compared=shared, **base, **stats,
                                  reason=f"confidence from names only: {shared} sampled key(s) in both snapshots")
        if rate >= SAME:
            return RenameEvidence(verdict="same_values", match_rate=round(rate, 4), keys_compared=shared, **base, **stats)
        best = (rate, 0, shared)
        for s, values in sorted(fn.scaled.items()):
            r, n = _rate(o, _pairs(fn, new_table, values))
            if r is not None and r > best[0]:
                best = (r, s, n)
        if best[0] >= SAME:
            return RenameEvidence(verdict="unit_change", match_rate=round(best[0], 4), keys_compared=best[2],
                                  scale=best[1], **base, **stats)
        if best[0] <= DIFFERENT:
            return RenameEvidence(verdict="different_values", match_rate=round(rate, 4), keys_compared=shared, **base, **stats)
        return RenameEvidence(verdict="inconclusive", match_rate=round(rate, 4), keys_compared=shared, **base, **stats,
                              reason=f"confidence from names only: {rate:.0%} of {shared} sampled keys match")
    return _compare_stats(fo, fn, base, stats)


def _close(a: float, b: float, tol: float) -> bool:
    return abs(a - b) <= tol * max(abs(a), abs(b), 1.0)


def _compare_stats(fo: ColumnFingerprint, fn: ColumnFingerprint, base: dict[str, Any], stats: dict[str, Any]) -> RenameEvidence:
    """No key to line values up by: compare the stats (same rows, nulls, distinct, min/max or a 10^k ratio)."""
    if not _close(fo.rows, fn.rows, 0.001):
        return RenameEvidence(verdict="inconclusive", **base, **stats,
                              reason="confidence from names only: no key to compare values by, and the row count changed")
    if not _close(fo.nulls, fn.nulls, 0.01) or not _close(fo.distinct, fn.distinct, 0.05):
        return RenameEvidence(verdict="different_values", **base, **stats,
                              reason="different null or distinct counts (no key to compare values by)")
    lo_o, hi_o, lo_n, hi_n = fo.min, fo.max, fn.min, fn.max
    if isinstance(lo_o, float) and isinstance(hi_o, float) and isinstance(lo_n, float) and isinstance(hi_n, float):
        if _close(lo_o, lo_n, 1e-9) and _close(hi_o, hi_n, 1e-9):
            return RenameEvidence(verdict="same_values", **base, **stats, reason="same stats (no key to compare values by)")
        for s in SCALES:
            if _close(lo_o * 10 ** s, lo_n, 1e-9) and _close(hi_o * 10 ** s, hi_n, 1e-9) and (hi_o or lo_o):
                return RenameEvidence(verdict="unit_change", scale=s, **base, **stats,
                                      reason=f"same stats x 10^{s} (no key to compare values by)")
        return RenameEvidence(verdict="different_values", **base, **stats, reason="different min/max (no key to compare values by)")
    if fo.min is not None and (fo.min, fo.max) != (fn.min, fn.max):
        return RenameEvidence(verdict="different_values", **base, **stats, reason="different min/max (no key to compare values by)")
    return RenameEvidence(verdict="inconclusive", **base, **stats,
                          reason="confidence from names only: the stats agree but there is no key to compare values by")
