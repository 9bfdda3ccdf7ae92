"""Run a reconciliation: pushed down in one warehouse, or bisected across two connections."""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

from dagster_agent_de.adapters.audit import AuditLog
from dagster_agent_de.adapters.warehouse import Warehouse
from dagster_agent_de.engines.reconcile import plan
from dagster_agent_de.engines.reconcile.plan import SidePlan
from dagster_agent_de.engines.reconcile.report import ColumnMismatch, ReconcileReport, SegmentDelta, _pct
from dagster_agent_de.engines.reconcile.spec import InvalidSpec, ReconcileSpec
from dagster_agent_de.engines.reconcile.truth import Truth, resolve_truth
from dagster_agent_de.errors import AgentDEError, WarehouseError
from dagster_agent_de.manifest import Manifest

_TEXT = ("VARCHAR", "TEXT", "STRING", "CHAR")
_NUM = ("FIXED", "INT", "BIGINT", "NUMBER", "DECIMAL", "NUMERIC", "DOUBLE", "FLOAT", "REAL", "HUGEINT", "SMALLINT", "TINYINT", "UBIGINT", "UINTEGER")


def _category(type_name: str | None) -> str | None:
    if not type_name:
        return None
    t = type_name.upper()
    if t.startswith(_TEXT):
        return "text"
    if t.startswith(_NUM):
        return "number"
    return t


def reconcile(
    spec: ReconcileSpec,
    manifest: Manifest,
    warehouse: Warehouse,
    *,
    search_dirs: list[Path] | None = None,
    audit: AuditLog | None = None,
) -> ReconcileReport:
    """Reconcile ``spec.model`` against its source of truth and return the report.

    Never passes silently: an unreachable source of truth raises (the Dagster layer turns it
    into a failed check with the cause); an empty source of truth is a breach.
    """
    start = time.perf_counter()
    node = manifest.find(spec.model)
    if not node.relation_name:
        raise AgentDEError(f"model {spec.model} has no relation in the warehouse (is it ephemeral?)")
    truth = resolve_truth(spec, manifest, warehouse, search_dirs=search_dirs or [], audit=audit or warehouse.audit)
    truth_relation = truth.relation
    try:
        model_side = SidePlan(node.relation_name, spec, "model")
        truth_side = SidePlan(truth.relation, spec, "against")
        notes: list[str] = []
        model_side, truth_side = _align_types(spec, warehouse, truth, model_side, truth_side, notes)
        if truth.same_warehouse:
            report = _pushdown(spec, warehouse, model_side, truth_side, truth.label, notes)
        else:
            from dagster_agent_de.engines.reconcile.bisect import bisect_reconcile

            report = bisect_reconcile(spec, warehouse, truth.warehouse, model_side, truth_side, truth.label, notes)
    finally:
        truth.close()
    report = _judge(spec, mask_pii(spec, report, manifest, node, truth_relation, warehouse.dialect))
    return report.model_copy(update={"duration_ms": (time.perf_counter() - start) * 1000})


def _tz(type_name: str) -> bool | None:
    """True for a time-zone-aware timestamp type, False for a naive one, None for anything else."""
    t = type_name.upper()
    if "WITH TIME ZONE" in t or t.endswith(("_TZ", "_LTZ", "TIMESTAMPTZ")):
        return True
    if t.startswith(("TIMESTAMP", "DATETIME")):
        return False
    return None


def _align_types(
    spec: ReconcileSpec, wh: Warehouse, truth: Truth, m: SidePlan, a: SidePlan, notes: list[str]
) -> tuple[SidePlan, SidePlan]:
    """Probe both sides' key and compared column types; compare like with like and say what was done."""
    types = []
    for side, conn in ((m, wh), (a, truth.warehouse)):
        res = conn.query(plan.types_probe_sql(side), rationale=f"column types of {spec.model}.{spec.name} ({side.side} side)")
        types.append(res.types or None)
    if types[0] is None or types[1] is None:
        return m, a
    nk = len(spec.key)
    mixed = []
    for i, (tm, ta) in enumerate(zip(types[0][:nk], types[1][:nk], strict=False)):
        if _category(tm) != _category(ta):
            mixed.append(f"{spec.key[i]} is {tm} in the pipeline but {spec.keys_against[i]} is {ta} in the source of truth")
    casts: list[tuple[str, str]] = []
    for col, tm, ta in zip(spec.compare, types[0][nk:], types[1][nk:], strict=False):
        cm, ca = _category(tm), _category(ta)
        if {cm, ca} == {"text", "number"}:
            numeric = bool(spec.compare[col].abs_tol or spec.compare[col].rel_tol)
            casts.append((col, "double" if numeric else "varchar"))
            notes.append(f"{col} is {tm} in the pipeline but {ta} in the source of truth: compared as "
                         + ("numbers (text that is not a number counts as a mismatch)" if numeric else "text"))
        elif _tz(tm) is not None and _tz(ta) is not None and _tz(tm) != _tz(ta):
            notes.append(f"{col} is {tm} in the pipeline but {ta} in the source of truth: the time-zone-less side is "
                         "read as UTC")
    if mixed:
        notes.append("keys compared as text because " + "; ".join(mixed) + " (values like '01' vs 1 will not match)")
    return (SidePlan(m.relation, spec, "model", bool(mixed), tuple(casts)),
            SidePlan(a.relation, spec, "against", bool(mixed), tuple(casts)))


ONE_SIDED_CAP = 10_000
"""How many keys present on one side only the DuckDB fast plan returns to prove they are unique."""


def _pushdown(
    spec: ReconcileSpec, wh: Warehouse, m: SidePlan, a: SidePlan, label: str, notes: list[str]
) -> ReconcileReport:
    statements: list[str] = []
    inline_samples = wh.dialect == "duckdb"
    n = spec.sample_size if inline_samples else 0
    what = f"reconcile {spec.model} against {label} by key {spec.key}"
    row: dict[str, Any] | None = None
    if wh.dialect == "duckdb":
        # optimistic: one join that also proves the keys unique (see plan.join_summary_sql)
        sql = plan.join_summary_sql(spec, m, a, n, wh.dialect, one_sided_cap=ONE_SIDED_CAP)
        statements.append(sql)
        got = wh.query(sql, rationale=what + " (one join; checks the keys are unique in the same pass)").folded().one()
        dups = _duplicates_seen(got)
        if dups is False:
            row = {**got, "duplicate_keys_pipeline": 0, "duplicate_keys_truth": 0}
        elif dups is None:
            # too many one-sided keys to count here (a large breach): the exact pre-check decides
            stats_sql = _stats_sql(spec, wh, m, a)
            statements.append(stats_sql)
            stats = wh.query(stats_sql, rationale=f"duplicate keys of {spec.model} and {label}").folded().one()
            if not (stats["duplicate_keys_pipeline"] or stats["duplicate_keys_truth"]):
                row = {**got, **stats}
    else:
        stats_sql = _stats_sql(spec, wh, m, a)
        statements.append(stats_sql)
        stats = wh.query(stats_sql, rationale=f"rows, NULL keys and duplicate keys of {spec.model} and {label}").folded().one()
        if not (stats["duplicate_keys_pipeline"] or stats["duplicate_keys_truth"]):
            sql = plan.join_summary_sql(spec, m, a, n, wh.dialect)
            statements.append(sql)
            row = {**stats, **wh.query(sql, rationale=what).folded().one()}
    if row is None:
        # duplicates would fan the join out: compare one row per key instead (slower, exact)
        sql = plan.summary_sql(spec, m, a, n, wh.dialect)
        statements.append(sql)
        row = wh.query(sql, rationale=what + " (one row per key: there are duplicate keys)").folded().one()
    # the grouped plan returns exact duplicate-key counts; the stats pre-check only said "some"
    columns = [
        ColumnMismatch(column=c, mismatched=int(row[f"mm_{c}"] or 0), pct=_pct(int(row[f"mm_{c}"] or 0), int(row["matched"])))
        for c in spec.compare
    ]
    counts = {k: int(row[k] or 0) for k in (
        "rows_pipeline", "rows_truth", "null_keys_pipeline", "null_keys_truth", "duplicate_keys_pipeline",
        "duplicate_keys_truth", "matched", "missing_in_pipeline", "extra_in_pipeline", "mismatched_rows",
    )}
    samples: dict[str, list[dict[str, Any]]] = {}
    differences = counts["missing_in_pipeline"] + counts["extra_in_pipeline"] + counts["mismatched_rows"]
    if inline_samples:
        for cls in ("missing_in_pipeline", "extra_in_pipeline", "mismatched"):
            sample = row.get(f"sample_{cls}")
            if sample:
                samples[cls] = [dict(r) for r in sample]
    elif differences and spec.sample_size:
        sql_s = plan.samples_sql(spec, m, a, spec.sample_size)
        statements.append(sql_s)
        res = wh.query(sql_s, rationale=f"sample differing keys of {spec.model}.{spec.name}")
        samples = _group_samples(spec, res.folded().dicts())
    segments = []
    if spec.aggregates and not wh.capabilities.full_join_on_any_condition:
        segments = segments_per_side(spec, wh, m, wh, a, label)
    elif spec.aggregates:
        sql_g = plan.segments_sql(spec, m, a)
        statements.append(sql_g)
        res = wh.query(sql_g, rationale=f"aggregates of {spec.model} vs {label} per {spec.segment_by or 'total'}")
        segments = _segments(spec, res.folded().dicts())
    return ReconcileReport(
        spec_name=spec.name, model=spec.model, against=label, method="pushdown", columns=columns,
        segments=segments, samples=samples, statements=statements, notes=notes, severity=spec.severity, **counts,
    )


def _stats_sql(spec: ReconcileSpec, wh: Warehouse, m: SidePlan, a: SidePlan) -> str:
    return (f"select m.n as rows_pipeline, m.null_keys as null_keys_pipeline, m.dup_keys as duplicate_keys_pipeline, "
            f"a.n as rows_truth, a.null_keys as null_keys_truth, a.dup_keys as duplicate_keys_truth "
            f"from ({plan.side_stats_sql(spec, m, wh.dialect)}) m cross join ({plan.side_stats_sql(spec, a, wh.dialect)}) a")


def _duplicates_seen(row: dict[str, Any]) -> bool | None:
    """From the fast plan's own output: True if a key is duplicated, False if none is, None if it cannot tell."""
    for side in ("pipeline", "truth"):
        if int(row[f"join_rows_{side}"] or 0) > int(row[f"rows_{side}"]) - int(row[f"null_keys_{side}"]):
            return True  # a key on both sides is duplicated on one of them: the join fanned out
    unknown = False
    for name in ("extra_keys", "missing_keys"):
        keys = row.get(name) or []
        if len(keys) > ONE_SIDED_CAP:
            unknown = True
            continue
        seen = [tuple(k.values()) if isinstance(k, dict) else k for k in keys]
        if len(set(seen)) < len(seen):
            return True
    return None if unknown else False


def _group_samples(spec: ReconcileSpec, rows: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        cls = r.pop("_class")
        r.pop("_rn", None)
        rec = {spec.key[i]: r.pop(f"k{i}") for i in range(len(spec.key))}
        rec.update(r)
        out.setdefault(cls, []).append(rec)
    return out


def segments_per_side(
    spec: ReconcileSpec, wh_model: Warehouse, m: SidePlan, wh_truth: Warehouse, a: SidePlan, label: str
) -> list[SegmentDelta]:
    """Each side's aggregates per segment in its own engine, merged here: across connections, and where
    the engine cannot FULL JOIN segments NULL-safely (PostgreSQL). Few rows: one per segment."""
    seg_m = wh_model.query(plan.side_segments_sql(spec, m), rationale=f"aggregates of {spec.model} per segment").folded().dicts()
    seg_a = wh_truth.query(plan.side_segments_sql(spec, a), rationale=f"aggregates of {label} per segment").folded().dicts()
    merged: dict[tuple[Any, ...], dict[str, Any]] = {}
    for prefix, rows in (("p_", seg_m), ("t_", seg_a)):
        for r in rows:
            seg = tuple(r.get(f"s_{c}") for c in spec.segment_by)
            rec = merged.setdefault(seg, {f"s_{c}": r.get(f"s_{c}") for c in spec.segment_by})
            for _fn, _col, lb in spec.aggregate_parts():
                rec[prefix + lb] = r.get(lb)
    return _segments(spec, [merged[k] for k in sorted(merged, key=repr)])


def _segments(spec: ReconcileSpec, rows: list[dict[str, Any]]) -> list[SegmentDelta]:
    out = []
    for r in rows:
        seg = {c: r.get(f"s_{c}") for c in spec.segment_by}
        for _fn, _col, label in spec.aggregate_parts():
            p, t = r.get(f"p_{label}"), r.get(f"t_{label}")
            pf = float(p) if p is not None else None
            tf = float(t) if t is not None else None
            delta = (pf or 0.0) - (tf or 0.0)
            if tf:
                pct = abs(delta) * 100.0 / abs(tf)
            else:
                pct = 100.0 if abs(delta) > 1e-9 else 0.0
            out.append(SegmentDelta(segment=seg, metric=label, pipeline=pf, truth=tf, delta=delta, pct=pct))
    return out


def _judge(spec: ReconcileSpec, report: ReconcileReport) -> ReconcileReport:
    th = spec.thresholds
    eps = 1e-9  # float noise in sums must not breach a 0% threshold
    breaches = []
    if report.rows_truth == 0:
        breaches.append(f"the source of truth {report.against} returned no rows: nothing vouches for {spec.model}")
    if report.missing_pct > th.missing_pct + eps:
        breaches.append(f"missing_pct {report.missing_pct:.3f}% > {th.missing_pct}%")
    if report.extra_pct > th.extra_pct + eps:
        breaches.append(f"extra_pct {report.extra_pct:.3f}% > {th.extra_pct}%")
    if report.mismatched_pct > th.mismatched_pct + eps:
        breaches.append(f"mismatched_pct {report.mismatched_pct:.3f}% > {th.mismatched_pct}%")
    dups = report.duplicate_keys_pipeline + report.duplicate_keys_truth
    if dups > th.duplicate_keys:
        breaches.append(
            f"duplicate keys: {report.duplicate_keys_pipeline} in the pipeline, {report.duplicate_keys_truth} in the source of truth"
        )
    worst = [s for s in report.segments if s.pct > th.aggregate_pct + eps and not math.isnan(s.pct)]
    if worst:
        w = max(worst, key=lambda s: s.pct)
        seg = ", ".join(f"{k}={v}" for k, v in w.segment.items()) or "total"
        breaches.append(f"{len(worst)} segment aggregates off by more than {th.aggregate_pct}% (worst: {w.metric} {seg} {w.pct:.2f}%)")
    return report.model_copy(update={"breaches": breaches})


def _columns_of(expr: str, dialect: str) -> set[str]:
    """Column names an expression of a spec reads (the expression itself when it cannot be parsed)."""
    import sqlglot
    from sqlglot import exp
    from sqlglot.errors import SqlglotError

    try:
        return {c.name.lower() for c in sqlglot.parse_one(expr, read=dialect).find_all(exp.Column)} or {expr.lower()}
    except SqlglotError:
        return {expr.lower()}


def mask_pii(
    spec: ReconcileSpec, report: ReconcileReport, manifest: Manifest, node: Any, truth_relation: str, dialect: str
) -> ReconcileReport:
    """Mask every value of a PII column (tagged, or derived by lineage, on either side) in the report:
    keys of both sides, compared columns, segment values. Masked values stay comparable (HMAC)."""
    from dagster_agent_de.core.masking import masker
    from dagster_agent_de.engines.pii_lineage import pii_index
    from dagster_agent_de.sql.lineage import normalize_relation

    index = pii_index(manifest, dialect)
    if not index.any:
        return report
    model_pii = index.node_pii(node)
    truth_pii = index.relation_pii(normalize_relation(truth_relation)) if truth_relation else set()
    masked_cols: set[str] = set()
    for key, key_against in zip(spec.key, spec.keys_against, strict=False):
        if key.lower() in model_pii or key_against.lower() in truth_pii:
            masked_cols.add(key.lower())
    for col in spec.compare:
        if (_columns_of(spec.compare_expr(col, "model"), dialect) & model_pii
                or _columns_of(spec.compare_expr(col, "against"), dialect) & truth_pii):
            masked_cols |= {col.lower(), f"pipeline_{col}".lower(), f"truth_{col}".lower()}
    segment_cols = {c.lower() for c in spec.segment_by if c.lower() in model_pii | truth_pii}
    if not masked_cols and not segment_cols:
        return report
    m = masker()
    samples = {cls: [m.mask_row(r, masked_cols) for r in rows] for cls, rows in report.samples.items()}
    segments = [s.model_copy(update={"segment": m.mask_row(s.segment, segment_cols)}) for s in report.segments]
    return report.model_copy(update={"samples": samples, "segments": segments})


def reconcile_all(
    specs: list[ReconcileSpec | InvalidSpec], manifest: Manifest, warehouse: Warehouse, *,
    search_dirs: list[Path] | None = None,
) -> list[tuple[ReconcileSpec | InvalidSpec, ReconcileReport | AgentDEError]]:
    """Run several specs; an error in one (invalid spec, unreachable truth, missing table) is returned, not raised."""
    out: list[tuple[ReconcileSpec | InvalidSpec, ReconcileReport | AgentDEError]] = []
    for spec in specs:
        if isinstance(spec, InvalidSpec):
            out.append((spec, spec.error))
            continue
        try:
            out.append((spec, reconcile(spec, manifest, warehouse, search_dirs=search_dirs)))
        except AgentDEError as e:
            out.append((spec, e))
    return out


__all__ = ["WarehouseError", "reconcile", "reconcile_all"]
