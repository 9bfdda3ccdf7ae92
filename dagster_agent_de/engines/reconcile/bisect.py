"""Checksum bisection across two connections (or a file/API staged on a local session).

Split the key space into buckets by the md5 of each key's canonical text, compare ``count`` and
``sum(md5 of the row's canonical text)`` per bucket on each side, recurse only into buckets that
differ, and fetch rows only from small differing buckets. Both sides compute their checksums in
their own engine from the same canonical rendering (:mod:`.canonical`), so a DuckDB bucket and a
PostgreSQL bucket holding the same rows have the same checksum; the data moved is proportional to
the differences, not to the tables.
"""

from __future__ import annotations

from typing import Any

from dagster_agent_de.adapters.warehouse import Warehouse
from dagster_agent_de.engines.reconcile import plan
from dagster_agent_de.engines.reconcile.canonical import Rendering, canonical_sql, checksum_sql, rendering
from dagster_agent_de.engines.reconcile.plan import SidePlan, q
from dagster_agent_de.engines.reconcile.report import ColumnMismatch, ReconcileReport, _pct
from dagster_agent_de.engines.reconcile.spec import ReconcileSpec

FANOUT = 64
LEAF_ROWS = 64
MAX_DEPTH = 5
FIRST_LEVEL_ROWS = FANOUT * LEAF_ROWS
"""The first level has enough buckets for about this many rows each (a 1M-row table starts at 4,096 buckets)."""


def _stats(spec: ReconcileSpec, wh: Warehouse, side: SidePlan) -> dict[str, int]:
    sql = plan.side_stats_sql(spec, side)  # portable form: exact duplicate keys on both connections
    row = wh.query(sql, rationale=f"row, null-key and duplicate-key counts of the {side.side} side of {spec.model}.{spec.name}").folded().one()
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


def first_level(rows: int) -> int:
    """The level whose buckets hold about :data:`FIRST_LEVEL_ROWS` rows (levels above it would all differ anyway).

    >>> first_level(10_000), first_level(1_000_000), first_level(100_000_000)
    (0, 1, 2)
    """
    level = 0
    while level < MAX_DEPTH - 1 and rows / FANOUT ** (level + 1) > FIRST_LEVEL_ROWS:
        level += 1
    return level


class _Side:
    def __init__(self, spec: ReconcileSpec, wh: Warehouse, side: SidePlan, rends: list[Rendering], index: int) -> None:
        self.spec, self.wh, self.side = spec, wh, side
        nk = len(spec.key)
        self.key_texts = [canonical_sql(f"k{i}", rends[i], index, wh.dialect) for i in range(nk)]
        self.value_texts = {c: canonical_sql(f"c_{c}", rends[nk + j], index, wh.dialect) for j, c in enumerate(spec.compare)}
        self.key_hash = checksum_sql(self.key_texts, wh.dialect)
        self.row_hash = checksum_sql(self.key_texts + list(self.value_texts.values()), wh.dialect)
        self.notnull = " and ".join(f"{k} is not null" for k in plan.key_names(spec))
        self.rows_moved = 0
        self.checksums = 0
        self.queries = 0
        self.bytes_moved = 0

    def _base(self) -> str:
        return (
            f"with t as ({self.side.select(joined=True)}), "
            f"h as (select *, {self.key_hash} as _h, {self.row_hash} as _r from t where {self.notnull})"
        )

    def buckets(self, level: int, prefixes: list[int] | None) -> dict[int, tuple[int, int]]:
        mod = FANOUT ** (level + 1)
        where = ""
        if prefixes is not None:
            where = f" where (_h % {FANOUT ** level}) in ({', '.join(map(str, prefixes))})"
        sql = f"{self._base()} select _h % {mod} as b, count(*) as n, sum(_r) as s from h{where} group by 1"
        res = self.wh.query(sql, rationale=f"checksum level {level} of {len(prefixes) if prefixes else 'all'} bucket(s), {self.side.side} side")
        self.checksums += res.row_count
        self.queries += 1
        self._account(res.rows)
        return {int(b): (int(n), int(s)) for b, n, s in res.rows}

    def fetch(self, level: int, buckets: list[int]) -> list[dict[str, Any]]:
        if not buckets:
            return []
        cols = plan.key_names(self.spec) + [q("c_" + c) for c in self.spec.compare]
        cols += [f"{t} as {q(f'_ck{i}')}" for i, t in enumerate(self.key_texts)]
        cols += [f"{t} as {q('_cv_' + c)}" for c, t in self.value_texts.items()]
        sql = (
            f"{self._base()} select {', '.join(cols)} from h "
            f"where (_h % {FANOUT ** (level + 1)}) in ({', '.join(map(str, buckets))})"
        )
        res = self.wh.query(sql, rationale=f"fetch rows of {len(buckets)} differing bucket(s), {self.side.side} side")
        self.rows_moved += res.row_count
        self.queries += 1
        self._account(res.rows)
        return res.folded().dicts()

    def _account(self, rows: list[tuple[Any, ...]]) -> None:
        self.bytes_moved += sum(len(str(v)) for r in rows for v in r)


def _differs(spec: ReconcileSpec, col: str, row_m: dict[str, Any], row_a: dict[str, Any]) -> bool:
    """Compare one column of two fetched rows: within the tolerance for numbers, else by canonical text."""
    cmp = spec.compare[col]
    mv, av = row_m[f"c_{col}"], row_a[f"c_{col}"]
    if (cmp.abs_tol or cmp.rel_tol) and mv is not None and av is not None:
        try:
            return abs(float(mv) - float(av)) > cmp.abs_tol + cmp.rel_tol * abs(float(av))
        except (TypeError, ValueError):
            pass
    return bool(row_m[f"_cv_{col}"] != row_a[f"_cv_{col}"])


def bisect_reconcile(
    spec: ReconcileSpec, wh_model: Warehouse, wh_truth: Warehouse, m: SidePlan, a: SidePlan, label: str, notes: list[str]
) -> ReconcileReport:
    rends = renderings(spec, _types(spec, wh_model, m), _types(spec, wh_truth, a))
    sm, sa = _Side(spec, wh_model, m, rends, 0), _Side(spec, wh_truth, a, rends, 1)
    stats_m, stats_a = _stats(spec, wh_model, m), _stats(spec, wh_truth, a)
    leaves: dict[int, list[int]] = {}
    prefixes: list[int] | None = None
    start = first_level(max(stats_m["n"], stats_a["n"]))
    for level in range(start, MAX_DEPTH):
        bm, ba = sm.buckets(level, prefixes), sa.buckets(level, prefixes)
        differing = [b for b in set(bm) | set(ba) if bm.get(b) != ba.get(b)]
        small = [b for b in differing if max(bm.get(b, (0, 0))[0], ba.get(b, (0, 0))[0]) <= LEAF_ROWS]
        big = [b for b in differing if b not in set(small)]
        if level == MAX_DEPTH - 1:
            small, big = differing, []
        if small:
            leaves.setdefault(level, []).extend(small)
        if not big:
            break
        prefixes = sorted(big)
    rows_m: dict[tuple[Any, ...], dict[str, Any]] = {}
    rows_a: dict[tuple[Any, ...], dict[str, Any]] = {}
    nk = len(spec.key)
    for level, buckets in leaves.items():
        for r in sm.fetch(level, sorted(buckets)):
            rows_m.setdefault(tuple(r[f"_ck{i}"] for i in range(nk)), r)
        for r in sa.fetch(level, sorted(buckets)):
            rows_a.setdefault(tuple(r[f"_ck{i}"] for i in range(nk)), r)
    kinds = ", ".join(f"{c} as {r.kind}" + (f"({r.scale})" if r.kind == "number" else "")
                      for c, r in zip([*spec.key, *spec.compare], rends, strict=True))
    notes.append(f"checksummed across connections ({wh_model.dialect} vs {wh_truth.dialect}) on one canonical rendering "
                 f"({kinds}): {sm.queries + sa.queries} queries, {sm.checksums + sa.checksums:,} bucket checksums, "
                 f"{sm.rows_moved + sa.rows_moved:,} rows fetched from differing buckets")
    # canonical key texts sort by code point: COLLATE "C" order, whatever either engine's collation
    missing = sorted(set(rows_a) - set(rows_m))
    extra = sorted(set(rows_m) - set(rows_a))
    col_mm = {c: 0 for c in spec.compare}
    mismatched_keys = []
    for key in sorted(set(rows_m) & set(rows_a)):
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
        from dagster_agent_de.engines.reconcile.engine import segments_per_side

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
