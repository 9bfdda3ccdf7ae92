"""Checksum bisection across two connections (or a file/API staged on a local session).

Split the key space into hash buckets, compare ``count`` and ``sum(row hash)`` per bucket
on each side, recurse only into buckets that differ, and fetch rows only from small
differing buckets. Data moved is proportional to the differences, not the tables.
Both sides must use the same SQL dialect (same hash function); otherwise every bucket
differs and the result is still correct but moves all rows (a note says so).
"""

from __future__ import annotations

from typing import Any

from dagster_agent_de.adapters.warehouse import Warehouse
from dagster_agent_de.engines.reconcile import plan
from dagster_agent_de.engines.reconcile.plan import SidePlan, q
from dagster_agent_de.engines.reconcile.report import ColumnMismatch, ReconcileReport, _pct
from dagster_agent_de.engines.reconcile.spec import ReconcileSpec

FANOUT = 64
LEAF_ROWS = 64
MAX_DEPTH = 5
_MOD = 2147483647


def _hash_exprs(spec: ReconcileSpec, dialect: str) -> tuple[str, str, str]:
    keys = plan.key_names(spec)
    key_txt = ", ".join(f"cast({k} as varchar)" for k in keys)
    row_txt = ", ".join([f"cast({k} as varchar)" for k in keys] + [f"coalesce(cast({q('c_' + c)} as varchar), '<null>')" for c in spec.compare])
    # hash() exists in DuckDB and Snowflake; across two dialects buckets differ (see the module note)
    key_hash = f"abs(hash(concat_ws('|', {key_txt})) % 1152921504606846976)"  # 2^60: positive, exact in BIGINT
    row_hash = f"abs(hash(concat_ws('|', {row_txt})) % {_MOD})"
    notnull = " and ".join(f"{k} is not null" for k in keys)
    return key_hash, row_hash, notnull


def _stats(spec: ReconcileSpec, wh: Warehouse, side: SidePlan) -> dict[str, int]:
    sql = plan.side_stats_sql(spec, side)  # portable form: exact duplicate keys on both connections
    row = wh.query(sql, rationale=f"row, null-key and duplicate-key counts of the {side.side} side of {spec.model}.{spec.name}").folded().one()
    return {k: int(v or 0) for k, v in row.items()}


class _Side:
    def __init__(self, spec: ReconcileSpec, wh: Warehouse, side: SidePlan) -> None:
        self.spec, self.wh, self.side = spec, wh, side
        self.key_hash, self.row_hash, self.notnull = _hash_exprs(spec, wh.dialect)
        self.rows_moved = 0
        self.bytes_moved = 0

    def _base(self) -> str:
        return (
            f"with t as ({self.side.select()}), "
            f"h as (select *, {self.key_hash} as _h, {self.row_hash} as _r from t where {self.notnull})"
        )

    def buckets(self, level: int, prefixes: list[int] | None) -> dict[int, tuple[int, int]]:
        mod = FANOUT ** (level + 1)
        where = ""
        if prefixes is not None:
            where = f" where (_h % {FANOUT ** level}) in ({', '.join(map(str, prefixes))})"
        sql = f"{self._base()} select _h % {mod} as b, count(*) as n, sum(_r) as s from h{where} group by 1"
        res = self.wh.query(sql, rationale=f"checksum level {level} of {len(prefixes) if prefixes else 'all'} bucket(s), {self.side.side} side")
        self._account(res.rows)
        return {int(b): (int(n), int(s)) for b, n, s in res.rows}

    def fetch(self, level: int, buckets: list[int]) -> list[dict[str, Any]]:
        if not buckets:
            return []
        cols = plan.key_names(self.spec) + [q("c_" + c) for c in self.spec.compare]
        sql = (
            f"{self._base()} select {', '.join(cols)} from h "
            f"where (_h % {FANOUT ** (level + 1)}) in ({', '.join(map(str, buckets))})"
        )
        res = self.wh.query(sql, rationale=f"fetch rows of {len(buckets)} differing bucket(s), {self.side.side} side")
        self._account(res.rows)
        return res.folded().dicts()

    def _account(self, rows: list[tuple[Any, ...]]) -> None:
        self.rows_moved += len(rows)
        self.bytes_moved += sum(len(str(v)) for r in rows for v in r)


def _differs(spec: ReconcileSpec, col: str, mv: Any, av: Any) -> bool:
    cmp = spec.compare[col]
    if mv is None or av is None:
        return (mv is None) != (av is None)
    if cmp.abs_tol or cmp.rel_tol:
        try:
            return abs(float(mv) - float(av)) > cmp.abs_tol + cmp.rel_tol * abs(float(av))
        except (TypeError, ValueError):
            return mv != av
    return mv != av


def bisect_reconcile(
    spec: ReconcileSpec, wh_model: Warehouse, wh_truth: Warehouse, m: SidePlan, a: SidePlan, label: str, notes: list[str]
) -> ReconcileReport:
    if wh_model.dialect != wh_truth.dialect:
        notes.append(f"{wh_model.dialect} vs {wh_truth.dialect}: row hashes differ across dialects, so every row was compared")
    sm, sa = _Side(spec, wh_model, m), _Side(spec, wh_truth, a)
    stats_m, stats_a = _stats(spec, wh_model, m), _stats(spec, wh_truth, a)
    leaves: dict[int, list[int]] = {}
    prefixes: list[int] | None = None
    for level in range(MAX_DEPTH):
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
            rows_m.setdefault(tuple(r[f"k{i}"] for i in range(nk)), r)
        for r in sa.fetch(level, sorted(buckets)):
            rows_a.setdefault(tuple(r[f"k{i}"] for i in range(nk)), r)
    missing = sorted(set(rows_a) - set(rows_m), key=repr)
    extra = sorted(set(rows_m) - set(rows_a), key=repr)
    col_mm = {c: 0 for c in spec.compare}
    mismatched_keys = []
    for key in sorted(set(rows_m) & set(rows_a), key=repr):
        bad = [c for c in spec.compare if _differs(spec, c, rows_m[key][f"c_{c}"], rows_a[key][f"c_{c}"])]
        for c in bad:
            col_mm[c] += 1
        if bad:
            mismatched_keys.append(key)
    matched = stats_a["distinct_keys"] - len(missing)
    n = spec.sample_size

    def sample(keys: list[tuple[Any, ...]]) -> list[dict[str, Any]]:
        out = []
        for key in keys[:n]:
            rec: dict[str, Any] = {spec.key[i]: key[i] for i in range(nk)}
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
