"""Checksum bisection across two connections (or a file/API staged on a local session).

Each key falls in a bucket (a Lehmer step of a single integer key, or the md5 of the key's
canonical text); each side returns ``count`` and ``sum(md5 of the row's canonical text)`` per bucket,
computed in its own engine from the same canonical rendering (:mod:`.canonical`), so a DuckDB
bucket and a PostgreSQL bucket holding the same rows have the same checksum. The first level has
buckets of about :data:`FIRST_LEVEL_ROWS` rows; only differing buckets are split further (a level
hashes only the rows of the buckets it looks at), and rows are fetched only from differing buckets
of at most :data:`LEAF_ROWS` rows. Both sides run each step at once, each in its own engine. The rows
moved are proportional to the differences, not to the tables.

Key statistics (rows, NULL keys, duplicated keys) cost a pass of their own only when needed: a unique,
non-partial index (an application database's primary key) proves one side's keys unique, and then the
other side's duplicated keys are counted from the rows fetched anyway (see :func:`_first_level`).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from functools import partial
from typing import Any, TypeVar

from dagster_agent_de.adapters.warehouse import Warehouse
from dagster_agent_de.engines.reconcile import plan
from dagster_agent_de.engines.reconcile.canonical import (
    Rendering,
    bucket_sql,
    canonical_sql,
    checksum_sql,
    rendering,
)
from dagster_agent_de.engines.reconcile.plan import SidePlan, beyond_tolerance, q
from dagster_agent_de.engines.reconcile.report import ColumnMismatch, ReconcileReport, _pct
from dagster_agent_de.engines.reconcile.segments import segments_per_side
from dagster_agent_de.engines.reconcile.spec import ReconcileSpec
from dagster_agent_de.errors import WarehouseError

T = TypeVar("T")
U = TypeVar("U")
FANOUT = 64
LEAF_ROWS = 16
"""A differing bucket of at most this many rows is fetched; a larger one is split (its rows are not hashed again
outside it). Small: fewer rows move, at the cost of a level that only rehashes the differing buckets."""
MAX_DEPTH = 5
FIRST_LEVEL_ROWS = 64
"""The first level has buckets of about this many rows (a 1M-row table starts at 16,384 buckets), so that
when few rows differ, few buckets do, and the next level rehashes only their rows."""
MAX_MODULUS = 2**31 - 1
_COLUMN = re.compile(r'^([A-Za-z_][A-Za-z0-9_]*|"[^"]+")$')  # bucket numbers come from a Lehmer step mod 2^31 - 1 (or 60 bits of an md5)


def _stats(spec: ReconcileSpec, wh: Warehouse, side: SidePlan) -> dict[str, int]:
    what = f"row, null-key and duplicate-key counts of the {side.side} side of {spec.model}.{spec.name}"
    # the engine's cheapest form first (DuckDB: count distinct); its dup_keys may count surplus rows, so
    # when there are any, the portable grouped form gives the exact number of duplicated keys
    row = wh.query(plan.side_stats_sql(spec, side, wh.dialect), rationale=what).folded().one()
    if int(row["dup_keys"] or 0) and plan.side_stats_sql(spec, side, wh.dialect) != plan.side_stats_sql(spec, side):
        row = wh.query(plan.side_stats_sql(spec, side), rationale=what + " (exact duplicate keys)").folded().one()
    return {k: int(v or 0) for k, v in row.items()}


def _unique_by_index(spec: ReconcileSpec, wh: Warehouse, side: SidePlan) -> bool:
    """True when a unique, non-partial index of the side's table proves its keys unique (PostgreSQL: the
    application database's primary key), so no pass over the rows has to count distinct keys.

    Only for a side reading plain key columns of one table: a ``where`` keeps a subset of unique keys unique,
    and rows with a NULL key are counted apart (a unique index allows several NULLs).
    """
    from sqlglot import exp

    cols = spec.key if side.side == "model" else spec.keys_against
    if wh.dialect != "postgres" or side.cast_keys_to_text or not all(_COLUMN.match(c) for c in cols):
        return False
    names = [c[1:-1] if c.startswith('"') else c.lower() for c in cols]
    relation = exp.Literal.string(side.relation).sql("postgres")
    wanted = exp.Array(expressions=[exp.Literal.string(n) for n in names]).sql("postgres")
    sql = (
        "select count(*) as n from pg_catalog.pg_index i "
        f"where i.indrelid = to_regclass({relation}) and i.indisunique and i.indpred is null and i.indexprs is null "
        "and (select bool_and(a.attname = any(" + wanted + ")) from pg_catalog.pg_attribute a "
        "where a.attrelid = i.indrelid and a.attnum = any(i.indkey))"
    )
    try:
        row = wh.query(sql, rationale=f"is the key of {side.relation} unique by an index (no distinct count needed)?"
                       ).folded().one()
    except WarehouseError:
        return False  # not a plain table name (a subquery, a view of another schema): count instead
    return int(row["n"] or 0) > 0


def _counts(spec: ReconcileSpec, wh: Warehouse, side: SidePlan) -> dict[str, int]:
    """Rows and NULL-key rows of one side (one cheap pass, no distinct count)."""
    isnull = " or ".join(f"{k} is null" for k in plan.key_names(spec))
    sql = f"select count(*) as n, sum(case when {isnull} then 1 else 0 end) as null_keys from ({side.select(joined=True)}) t"
    row = wh.query(sql, rationale=f"row and null-key counts of the {side.side} side of {spec.model}.{spec.name}").folded().one()
    return {k: int(v or 0) for k, v in row.items()}


def _types(spec: ReconcileSpec, wh: Warehouse, side: SidePlan) -> list[str]:
    """The types of ``k0.., c_*`` as this side's engine computes them (no rows)."""
    res = wh.query(f"select * from ({side.select(joined=True)}) t limit 0",
                   rationale=f"types of the keys and compared columns of {spec.model}.{spec.name} ({side.side} side)")
    return list(res.types)


def renderings(spec: ReconcileSpec, types_model: list[str], types_truth: list[str]) -> list[Rendering]:
    """One canonical rendering per key and compared column, chosen from both sides' types."""
    n = len(spec.key) + len(spec.compare)
    tm = (types_model + [""] * n)[:n]
    ta = (types_truth + [""] * n)[:n]
    return [rendering(a, b) for a, b in zip(tm, ta, strict=True)]


def first_modulus(rows: int) -> int:
    """Buckets of the first level: a power of two giving about :data:`FIRST_LEVEL_ROWS` rows each.

    >>> first_modulus(1_000), first_modulus(1_000_000), first_modulus(10_000_000)
    (64, 16384, 262144)
    """
    m = FANOUT
    while rows / m > FIRST_LEVEL_ROWS and m * 2 * FANOUT <= MAX_MODULUS:
        m *= 2
    return m


class _Side:
    def __init__(self, spec: ReconcileSpec, wh: Warehouse, side: SidePlan, rends: list[Rendering], index: int) -> None:
        self.spec, self.wh, self.side = spec, wh, side
        nk = len(spec.key)
        self.key_texts = [canonical_sql(f"k{i}", rends[i], index, wh.dialect) for i in range(nk)]
        self.value_texts = {c: canonical_sql(f"c_{c}", rends[nk + j], index, wh.dialect) for j, c in enumerate(spec.compare)}
        self.key_hash = bucket_sql(plan.key_names(spec), self.key_texts, rends[:nk], wh.dialect)
        self.row_hash = checksum_sql(self.key_texts + list(self.value_texts.values()), wh.dialect)
        self.notnull = " and ".join(f"{k} is not null" for k in plan.key_names(spec))
        self.rows_moved = 0
        self.checksums = 0
        self.queries = 0
        self.bytes_moved = 0

    def _base(self) -> str:
        # the bucket only (cheap); each statement filters on it before any row is hashed
        return (
            f"with t as ({self.side.select(joined=True)}), "
            f"f as (select *, {self.key_hash} as _h from t where {self.notnull})"
        )

    def buckets(self, mod: int, parent: int | None, prefixes: list[int] | None) -> dict[int, tuple[int, int]]:
        where = ""
        if parent is not None and prefixes is not None:
            where = f" where (_h % {parent}) in ({', '.join(map(str, prefixes))})"
        sql = f"{self._base()} select _h % {mod} as b, count(*) as n, sum({self.row_hash}) as s from f{where} group by 1"
        res = self.wh.query(sql, rationale=f"checksums of {mod:,} buckets ({len(prefixes) if prefixes else 'all'} parent "
                                           f"bucket(s)), {self.side.side} side")
        self.checksums += res.row_count
        self.queries += 1
        self._account(res.rows)
        return {int(b): (int(n), int(s)) for b, n, s in res.rows}

    def fetch(self, mod: int, buckets: list[int]) -> list[dict[str, Any]]:
        if not buckets:
            return []
        cols = plan.key_names(self.spec) + [q("c_" + c) for c in self.spec.compare]
        cols += [f"{t} as {q(f'_ck{i}')}" for i, t in enumerate(self.key_texts)]
        cols += [f"{t} as {q('_cv_' + c)}" for c, t in self.value_texts.items()]
        sql = (
            f"{self._base()} select {', '.join(cols)} from f "
            f"where (_h % {mod}) in ({', '.join(map(str, buckets))})"
        )
        res = self.wh.query(sql, rationale=f"fetch rows of {len(buckets)} differing bucket(s), {self.side.side} side")
        self.rows_moved += res.row_count
        self.queries += 1
        self._account(res.rows)
        return res.folded().dicts()

    def _account(self, rows: list[tuple[Any, ...]]) -> None:
        self.bytes_moved += sum(len(str(v)) for r in rows for v in r)


def _prelude(spec: ReconcileSpec, wh: Warehouse, side: SidePlan) -> dict[str, int]:
    out = _counts(spec, wh, side)
    if _unique_by_index(spec, wh, side):
        out |= {"dup_keys": 0, "distinct_keys": out["n"] - out["null_keys"]}
    return out


def _first_level(spec: ReconcileSpec, s: _Side, mod: int, counts: dict[str, int], other_unique: bool
                 ) -> tuple[dict[int, tuple[int, int]], dict[str, int]]:
    """One side's first level, then its exact key statistics, unless they need no pass of their own: an index
    proved this side's keys unique, or the other side's. In that case every duplicated key of this side has
    more rows in its bucket than the other side at every level, so its bucket differs down to the leaves and
    its rows are all fetched: the duplicates are counted there (:func:`_duplicates_from_rows`)."""
    got = s.buckets(mod, None, None)
    if "dup_keys" in counts or other_unique:
        return got, counts
    return got, _stats(spec, s.wh, s.side)


def _duplicates_from_rows(counts: dict[str, int], seen: Counter[tuple[Any, ...]]) -> dict[str, int]:
    """Key statistics of a side whose duplicated keys were all fetched (see :func:`_first_level`).

    >>> _duplicates_from_rows({"n": 6, "null_keys": 1}, Counter({("v7",): 3, ("v1",): 1}))
    {'n': 6, 'null_keys': 1, 'dup_keys': 1, 'distinct_keys': 3}
    """
    if "dup_keys" in counts:
        return counts
    surplus = sum(c - 1 for c in seen.values() if c > 1)
    return counts | {"dup_keys": sum(1 for c in seen.values() if c > 1),
                     "distinct_keys": counts["n"] - counts["null_keys"] - surplus}


def _key_order(kinds: list[str], key: tuple[str, ...]) -> tuple[Any, ...]:
    """Sort keys the same whatever either engine's collation: numbers by value, anything else by its canonical
    text in code point order (``COLLATE "C"``; ISO timestamps sort in time order).

    >>> sorted([("v10",), ("v9",)], key=partial(_key_order, ["integer"])), sorted([("vb",), ("vB",)], key=partial(_key_order, ["text"]))
    ([('v9',), ('v10',)], [('vB',), ('vb',)])
    """
    return tuple(Decimal(t[1:]) if kind in ("integer", "number") else t for kind, t in zip(kinds, key, strict=True))


def _differs(spec: ReconcileSpec, col: str, row_m: dict[str, Any], row_a: dict[str, Any]) -> bool:
    """Compare one column of two fetched rows: within the tolerance for numbers, else by canonical text."""
    cmp = spec.compare[col]
    mv, av = row_m[f"c_{col}"], row_a[f"c_{col}"]
    if (cmp.abs_tol or cmp.rel_tol) and mv is not None and av is not None:
        try:
            return beyond_tolerance(cmp.abs_tol, cmp.rel_tol, float(mv), float(av))
        except (TypeError, ValueError):
            pass
    return bool(row_m[f"_cv_{col}"] != row_a[f"_cv_{col}"])


def _both(fm: Callable[[], T], fa: Callable[[], U]) -> tuple[T, U]:
    """Run one step on both connections at once: each side computes in its own engine, so the step takes
    as long as the slower side, not the sum. Each connection is used by one thread at a time."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        future = pool.submit(fa)
        got_m = fm()
        return got_m, future.result()


def bisect_reconcile(
    spec: ReconcileSpec, wh_model: Warehouse, wh_truth: Warehouse, m: SidePlan, a: SidePlan, label: str, notes: list[str]
) -> ReconcileReport:
    # one after the other: each side connects here, in this thread (opening a DuckDB session re-shares the
    # memory budget across the open sessions, which must not happen while the other side runs a query)
    rends = renderings(spec, _types(spec, wh_model, m), _types(spec, wh_truth, a))
    sm, sa = _Side(spec, wh_model, m, rends, 0), _Side(spec, wh_truth, a, rends, 1)
    # the counts first (cheap), for the first level's modulus; a side whose keys an index proves unique needs
    # no distinct count, and any other side counts its distinct keys right after its first level, so that the
    # faster engine does it while the slower one is still hashing (each side runs its chain on its own)
    counts_m, counts_a = _both(partial(_prelude, spec, wh_model, m), partial(_prelude, spec, wh_truth, a))
    leaves: dict[int, list[int]] = {}  # modulus -> differing buckets small enough to fetch
    prefixes: list[int] | None = None
    parent: int | None = None
    mod = first_modulus(max(counts_m["n"], counts_a["n"]))
    (bm, stats_m), (ba, stats_a) = _both(partial(_first_level, spec, sm, mod, counts_m, "dup_keys" in counts_a),
                                         partial(_first_level, spec, sa, mod, counts_a, "dup_keys" in counts_m))
    for depth in range(MAX_DEPTH):
        if depth:
            bm, ba = _both(partial(sm.buckets, mod, parent, prefixes), partial(sa.buckets, mod, parent, prefixes))
        differing = [b for b in set(bm) | set(ba) if bm.get(b) != ba.get(b)]
        small = [b for b in differing if max(bm.get(b, (0, 0))[0], ba.get(b, (0, 0))[0]) <= LEAF_ROWS]
        big = [b for b in differing if b not in set(small)]
        if depth == MAX_DEPTH - 1 or mod * FANOUT > MAX_MODULUS:
            small, big = differing, []
        if small:
            leaves.setdefault(mod, []).extend(small)
        if not big:
            break
        prefixes, parent, mod = sorted(big), mod, mod * FANOUT
    rows_m: dict[tuple[Any, ...], dict[str, Any]] = {}
    rows_a: dict[tuple[Any, ...], dict[str, Any]] = {}
    seen_m: Counter[tuple[Any, ...]] = Counter()
    seen_a: Counter[tuple[Any, ...]] = Counter()
    nk = len(spec.key)
    for leaf_mod, buckets in leaves.items():
        got_m, got_a = _both(partial(sm.fetch, leaf_mod, sorted(buckets)), partial(sa.fetch, leaf_mod, sorted(buckets)))
        for r in got_m:
            rows_m.setdefault(tuple(r[f"_ck{i}"] for i in range(nk)), r)
            seen_m[tuple(r[f"_ck{i}"] for i in range(nk))] += 1
        for r in got_a:
            rows_a.setdefault(tuple(r[f"_ck{i}"] for i in range(nk)), r)
            seen_a[tuple(r[f"_ck{i}"] for i in range(nk))] += 1
    stats_m, stats_a = _duplicates_from_rows(stats_m, seen_m), _duplicates_from_rows(stats_a, seen_a)
    kinds = ", ".join(f"{c} as {r.kind}" + (f"({r.scale})" if r.kind == "number" else "")
                      for c, r in zip([*spec.key, *spec.compare], rends, strict=True))
    notes.append(f"checksummed across connections ({wh_model.dialect} vs {wh_truth.dialect}) on one canonical rendering "
                 f"({kinds}): {sm.queries + sa.queries} queries, {sm.checksums + sa.checksums:,} bucket checksums, "
                 f"{sm.rows_moved + sa.rows_moved:,} rows fetched from differing buckets")
    order = partial(_key_order, [r.kind for r in rends[:nk]])
    missing = sorted(set(rows_a) - set(rows_m), key=order)
    extra = sorted(set(rows_m) - set(rows_a), key=order)
    col_mm = {c: 0 for c in spec.compare}
    mismatched_keys = []
    for key in sorted(set(rows_m) & set(rows_a), key=order):
        bad = [c for c in spec.compare if _differs(spec, c, rows_m[key], rows_a[key])]
        for c in bad:
            col_mm[c] += 1
        if bad:
            mismatched_keys.append(key)
    matched = stats_a["distinct_keys"] - len(missing)
    n = spec.sample_size

    def sample(keys: list[tuple[Any, ...]]) -> list[dict[str, Any]]:
        out = []
        for key in keys[:n]:
            row = rows_m.get(key) or rows_a[key]
            rec: dict[str, Any] = {spec.key[i]: row[f"k{i}"] for i in range(nk)}
            for c in spec.compare:
                rec[f"pipeline_{c}"] = rows_m.get(key, {}).get(f"c_{c}")
                rec[f"truth_{c}"] = rows_a.get(key, {}).get(f"c_{c}")
            out.append(rec)
        return out

    samples = {k: v for k, v in {
        "missing_in_pipeline": sample(missing), "extra_in_pipeline": sample(extra), "mismatched": sample(mismatched_keys),
    }.items() if v}
    segments = []
    statements = [sm._base() + " select ... (checksum per bucket)"]
    if spec.aggregates:
        segments = segments_per_side(spec, wh_model, m, wh_truth, a, label)
    return ReconcileReport(
        spec_name=spec.name, model=spec.model, against=label, method="bisection",
        rows_pipeline=stats_m["n"], rows_truth=stats_a["n"], matched=matched,
        missing_in_pipeline=len(missing), extra_in_pipeline=len(extra), mismatched_rows=len(mismatched_keys),
        null_keys_pipeline=stats_m["null_keys"], null_keys_truth=stats_a["null_keys"],
        duplicate_keys_pipeline=stats_m["dup_keys"], duplicate_keys_truth=stats_a["dup_keys"],
        columns=[ColumnMismatch(column=c, mismatched=v, pct=_pct(v, matched)) for c, v in col_mm.items()],
        segments=segments, samples=samples, notes=notes, statements=statements, severity=spec.severity,
        rows_moved=sm.rows_moved + sa.rows_moved, bytes_moved=sm.bytes_moved + sa.bytes_moved,
    )
