"""Run a reconciliation: pushed down in one warehouse, or bisected across two connections."""

from __future__ import annotations

import math
import re
import time
from pathlib import Path
from typing import Any, Literal

from dagster_agent_de.adapters.audit import AuditLog
from dagster_agent_de.adapters.warehouse import Warehouse
from dagster_agent_de.engines.reconcile import plan
from dagster_agent_de.engines.reconcile.plan import SidePlan
from dagster_agent_de.engines.reconcile.report import ColumnMismatch, ReconcileReport, SegmentDelta, _pct
from dagster_agent_de.engines.reconcile.segments import _segments
from dagster_agent_de.engines.reconcile.spec import InvalidSpec, ReconcileSpec
from dagster_agent_de.engines.reconcile.truth import Truth, resolve_truth
from dagster_agent_de.errors import AgentDEError, SpecError, WarehouseError, WarehouseUnavailableError
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
        built = manifest.last_build(node.unique_id)
        if built is not None and built[0] not in ("success", "pass"):
            notes.append(f"the last dbt run ({built[1]} UTC) did not build {spec.model} (status {built[0]}): this "
                         "compares the table an earlier run left")
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
        try:
            res = conn.query(plan.types_probe_sql(side), rationale=f"column types of {spec.model}.{spec.name} ({side.side} side)")
        except WarehouseUnavailableError:
            raise
        except WarehouseError as e:
            raise _field_error(spec, side, conn, truth.label, e) from e
        types.append(res.types or None)
    if types[0] is None or types[1] is None:
        return m, a
    nk = len(spec.key)
    mixed = []
    for i, (tm, ta) in enumerate(zip(types[0][:nk], types[1][:nk], strict=False)):
        if _category(tm) != _category(ta):
            mixed.append(f"{spec.key[i]} is {tm} in the pipeline but {spec.keys_against[i]} is {ta} in the source of truth")
    casts: list[tuple[str, str]] = []
    hash_types: list[tuple[str, str]] = []
    unhashable: list[str] = []
    for i, (tm, ta) in enumerate(zip(types[0][:nk], types[1][:nk], strict=False)):
        target = None if mixed else _hash_type(tm, ta)
        if target:
            hash_types.append((f"k{i}", target))
        elif target is not None:
            unhashable.append(f"k{i}")
    for col, tm, ta in zip(spec.compare, types[0][nk:], types[1][nk:], strict=False):
        cm, ca = _category(tm), _category(ta)
        if {cm, ca} == {"text", "number"}:
            numeric = bool(spec.compare[col].abs_tol or spec.compare[col].rel_tol)
            casts.append((col, "double" if numeric else "varchar"))
            notes.append(f"{col} is {tm} in the pipeline but {ta} in the source of truth: compared as "
                         + ("numbers (text that is not a number counts as a mismatch)" if numeric else "text"))
            continue
        if _tz(tm) is not None and _tz(ta) is not None and _tz(tm) != _tz(ta):
            notes.append(f"{col} is {tm} in the pipeline but {ta} in the source of truth: the time-zone-less side is "
                         "read as UTC")
        target = _hash_type(tm, ta)
        if target:
            hash_types.append(("c_" + col, target))
        elif target is not None:
            unhashable.append("c_" + col)
    if mixed:
        notes.append("keys compared as text because " + "; ".join(mixed) + " (values like '01' vs 1 will not match)")
    names = [f"k{i}" for i in range(nk)] + ["c_" + c for c in spec.compare]
    probed = tuple((n, tm, ta) for n, tm, ta in zip(names, types[0], types[1], strict=False))
    return (SidePlan(m.relation, spec, "model", bool(mixed), tuple(casts), tuple(hash_types), tuple(unhashable), probed),
            SidePlan(a.relation, spec, "against", bool(mixed), tuple(casts), tuple(hash_types), tuple(unhashable), probed))


def _field_error(spec: ReconcileSpec, side: SidePlan, conn: Warehouse, label: str, error: WarehouseError) -> AgentDEError:
    """The spec field whose expression does not run on ``side`` (a column missing or renamed there), as a
    SpecError naming the spec, the field, the side and the relation; ``error`` itself when the relation is
    missing or each field runs alone (then the combination is at fault)."""
    model = side.side == "model"
    for field, sql in plan.field_probes(side):
        try:
            conn.query(sql, rationale=f"which field of {spec.model}.{spec.name} fails on the {side.side} side")
        except WarehouseUnavailableError:
            raise
        except WarehouseError as e:
            if not field:  # the relation itself: the warehouse's own error says it
                return error
            what = f"the model {spec.model} ({side.relation})" if model else f"the source of truth {label}"
            cause = str(e.__cause__ or e).strip().splitlines()[0][:300].rstrip(".!")
            return SpecError(f"reconcile spec {spec.model}.{spec.name}: {field} does not run on {what}: {cause}. "
                             f"Fix meta.agent_de.reconcile on {spec.model}, or the "
                             f"{'model' if model else 'source of truth'}, if a column was renamed or dropped")
    return error


def _derivable(spec: ReconcileSpec, m: SidePlan) -> bool:
    """True when the truth side's segment aggregates may be derived from the differing rows (see
    :func:`plan.segments_derivable`), given the probed types: each segment column has one type on both
    sides (values of two types, DECIMAL 0.10 and DOUBLE 0.1, or CHAR and VARCHAR, would meet in the
    keyed statement as one type and no longer match the pipeline's segments), and each summed column
    adds exactly on both sides (integers and decimals: a float sum minus and plus the same rows is not
    the float sum, and a segment that nets to zero would read as off by 100%)."""
    if not plan.segments_derivable(spec) or not m.types:
        return False
    types = {name: (tm, ta) for name, tm, ta in m.types}
    same = all(tm and tm == ta for tm, ta in (types.get("c_" + col, ("", "")) for col in spec.segment_by))
    exact = all(_category(t) == "number" and not t.upper().startswith(_FLOAT)
                for fn, col, _label in spec.aggregate_parts() if fn == "sum" for t in types.get("c_" + col, ("", "")))
    return same and exact


_FLOAT = ("DOUBLE", "FLOAT", "REAL")
_INTEGER = ("TINYINT", "SMALLINT", "INTEGER", "INT", "BIGINT", "UTINYINT", "USMALLINT", "UINTEGER")
_DECIMAL = re.compile(r"^(?:DECIMAL|NUMERIC|NUMBER)\((\d+),\s*(\d+)\)$")


def _hash_type(tm: str, ta: str) -> str | None | Literal[""]:
    """The type both sides of a column are cast to before hashing, so that equal values hash alike.

    ``None``: none needed (same type). ``""``: no exact common representation is known; the column
    is then compared as values (and the checksum is skipped). A float on either side casts both to
    double, which is how the comparison itself treats them; integers widen to bigint; PostgreSQL's
    unbounded NUMERIC against a decimal or an integer stays NUMERIC; decimals to the larger precision
    and scale, when that fits in 38 digits.
    """
    if tm == ta:
        return None
    cm, ca = _category(tm), _category(ta)
    if cm == ca == "text":
        return "varchar"
    if cm != "number" or ca != "number":
        return ""
    um, ua = tm.upper(), ta.upper()
    if um.startswith(_FLOAT) or ua.startswith(_FLOAT):
        return "double"
    if um in _INTEGER and ua in _INTEGER:
        return "bigint"
    if "NUMERIC" in (um, ua):
        # PostgreSQL's unbounded NUMERIC (what arithmetic on a NUMERIC(p,s) column yields): no common
        # precision, but NUMERIC holds both exactly. Its text keeps the scale (1.50 vs 1.5), so equal
        # values of different scales hash apart: the keyed plan then compares them by value (no
        # mismatch), and the checksum never calls unequal values identical.
        return "numeric"
    digits = []
    for t in (um, ua):
        if t in _INTEGER:
            digits.append((19, 0))
        elif d := _DECIMAL.match(t):
            digits.append((int(d.group(1)) - int(d.group(2)), int(d.group(2))))
        else:
            return ""
    whole, scale = max(w for w, _ in digits), max(s for _, s in digits)
    return f"decimal({whole + scale}, {scale})" if whole + scale <= 38 else ""


ONE_SIDED_CAP = 10_000
"""No longer read by the plan: keys present on one side only are now checked for duplicates
exactly, over the differing keys, in the keyed statement itself (see ``plan.keyed_sql``)."""

IDENTICAL_NOTE = (
    "identical (checksum): both sides have the same row count and the same sum of 64-bit row hashes over "
    "the key and the compared columns, so they hold the same rows, exact up to hash collisions (as in "
    "data-diff); the keys were not checked for uniqueness, since a duplicated key would be duplicated alike on both sides"
)


def _pushdown(
    spec: ReconcileSpec, wh: Warehouse, m: SidePlan, a: SidePlan, label: str, notes: list[str]
) -> ReconcileReport:
    statements: list[str] = []
    what = f"reconcile {spec.model} against {label} by key {spec.key}"
    segments: list[SegmentDelta] = []
    known: dict[str, int] | None = None
    derive: list[dict[str, Any]] | None = None  # the pipeline's segment rows, when the truth's are derived
    if not m.unhashable:
        # the usual night: one scan of each side proves "identical" (and gives the segment aggregates)
        derivable = _derivable(spec, m)
        sql = plan.render(plan.checksum_sql(spec, m, a, derive_segments=derivable), wh.dialect)
        statements.append(sql)
        rows = wh.query(sql, rationale=f"checksum of {spec.model} and {label} (rows and sum of row hashes)").folded().dicts()
        follow = plan.segments_follow(spec)
        total = {k: sum(int(r[k] or 0) for r in rows) for k in ("m_n", "m_nk", "m_h")}
        total |= {k: (sum if not follow else _first)(int(r[k] or 0) for r in rows) for k in ("a_n", "a_nk", "a_h")}
        identical = (total["m_n"], total["m_h"]) == (total["a_n"], total["a_h"])
        if follow:
            seg_rows = [r for r in rows if r["m_n"] is not None]
            if identical:
                seg_rows = [{**r, **{f"t_{lb}": r[f"p_{lb}"] for _, _, lb in spec.aggregate_parts()}} for r in seg_rows]
                segments = _segments(spec, seg_rows)
            elif derivable and total["m_nk"] == total["a_nk"] == 0:
                derive = seg_rows  # NULL-key rows join nothing: with none, every other row is in the keyed plan
            else:
                segments = _segments(spec, _merge_segments(spec, seg_rows, _truth_segments(spec, wh, a, label, statements)))
        elif spec.aggregates:
            segments = _segments(spec, rows)
        if identical:
            return ReconcileReport(
                spec_name=spec.name, model=spec.model, against=label, method="checksum",
                rows_pipeline=total["m_n"], rows_truth=total["a_n"], null_keys_pipeline=total["m_nk"],
                null_keys_truth=total["a_nk"], matched=total["m_n"] - total["m_nk"],
                columns=[ColumnMismatch(column=c, mismatched=0, pct=0.0) for c in spec.compare],
                segments=segments, statements=statements, notes=[*notes, IDENTICAL_NOTE], severity=spec.severity,
            )
        known = {"rows_pipeline": total["m_n"], "rows_truth": total["a_n"],
                 "null_keys_pipeline": total["m_nk"], "null_keys_truth": total["a_nk"]}
    elif spec.aggregates:
        sql_g = plan.render(plan.segments_sql(spec, m, a), wh.dialect)
        statements.append(sql_g)
        res = wh.query(sql_g, rationale=f"aggregates of {spec.model} vs {label} per {spec.segment_by or 'total'}")
        segments = _segments(spec, res.folded().dicts())
    sql = plan.render(plan.keyed_sql(spec, m, a, spec.sample_size, side_counts=known is None,
                                     segment_deltas=derive is not None), wh.dialect)
    statements.append(sql)
    out = wh.query(sql, rationale=what + " (a join of key and row hash; checks the keys are unique in the same pass)")
    rows = out.folded().dicts()
    row = {**rows[0], **(known or {})}
    fanned = any(int(row[f"join_rows_{s}"] or 0) > int(row[f"rows_{s}"] or 0) - int(row[f"null_keys_{s}"] or 0)
                 for s in ("pipeline", "truth"))
    if fanned or int(row["one_sided_duplicates"] or 0):
        if derive is not None:  # the differing rows of a fanned-out join do not add up: read the truth side
            segments = _segments(spec, _merge_segments(spec, derive, _truth_segments(spec, wh, a, label, statements)))
        return _grouped(spec, wh, m, a, label, notes, statements, segments)
    if derive is not None:
        segments = _segments(spec, _merge_segments(spec, derive, _derived_truth(spec, derive, [r for r in rows if r.get("_side")])))
    samples: dict[str, list[dict[str, Any]]] = {}
    names = {1: "missing_in_pipeline", 2: "extra_in_pipeline", 3: "mismatched"}
    for r in rows:
        if r["_class"] is None:
            continue
        rec: dict[str, Any] = {spec.key[i]: r[f"k{i}"] for i in range(len(spec.key))}
        for c in spec.compare:
            rec[f"pipeline_{c}"], rec[f"truth_{c}"] = r[f"pipeline_{c}"], r[f"truth_{c}"]
        samples.setdefault(names[int(r["_class"])], []).append(rec)
    return _report(spec, label, row, samples, segments, statements, notes)


def _grouped(
    spec: ReconcileSpec, wh: Warehouse, m: SidePlan, a: SidePlan, label: str, notes: list[str],
    statements: list[str], segments: list[SegmentDelta],
) -> ReconcileReport:
    """Duplicate keys would fan the join out: compare one row per key instead (slower, exact counts).

    The counts and the samples in one statement, rendered per dialect by sqlglot: the same plan on
    every engine.
    """
    sql = plan.render(plan.summary_sql(spec, m, a, spec.sample_size), wh.dialect)
    statements.append(sql)
    what = f"reconcile {spec.model} against {label} by key {spec.key} (one row per key: there are duplicate keys)"
    rows = wh.query(sql, rationale=what).folded().dicts()
    row = rows[0]
    cols = ["_class", *(f"k{i}" for i in range(len(spec.key))),
            *(f"{side}_{c}" for c in spec.compare for side in ("pipeline", "truth"))]
    samples = _group_samples(spec, [{c: r[c] for c in cols} for r in rows if r["_class"] is not None])
    return _report(spec, label, row, samples, segments, statements, notes)


def _report(
    spec: ReconcileSpec, label: str, row: dict[str, Any], samples: dict[str, list[dict[str, Any]]],
    segments: list[SegmentDelta], statements: list[str], notes: list[str],
) -> ReconcileReport:
    columns = [
        ColumnMismatch(column=c, mismatched=int(row[f"mm_{c}"] or 0), pct=_pct(int(row[f"mm_{c}"] or 0), int(row["matched"])))
        for c in spec.compare
    ]
    counts: dict[str, Any] = {k: int(row.get(k) or 0) for k in (
        "rows_pipeline", "rows_truth", "null_keys_pipeline", "null_keys_truth", "duplicate_keys_pipeline",
        "duplicate_keys_truth", "matched", "missing_in_pipeline", "extra_in_pipeline", "mismatched_rows",
    )}
    return ReconcileReport(
        spec_name=spec.name, model=spec.model, against=label, method="pushdown", columns=columns,
        segments=segments, samples=samples, statements=statements, notes=notes, severity=spec.severity, **counts,
    )


def _truth_segments(spec: ReconcileSpec, wh: Warehouse, a: SidePlan, label: str, statements: list[str]) -> list[dict[str, Any]]:
    """The truth side's aggregates per segment, read from the truth side (one pass)."""
    sql = plan.render(plan.side_segments_sql(spec, a), wh.dialect)
    statements.append(sql)
    return wh.query(sql, rationale=f"aggregates of {label} per {spec.segment_by or 'total'}").folded().dicts()


def _plus(x: Any, y: Any) -> Any:
    """``x + y`` of SQL aggregates: exact for integers and decimals; floats when either side is one."""
    if isinstance(x, float) or isinstance(y, float):
        return float(x) + float(y)
    return x + y


def _derived_truth(spec: ReconcileSpec, pipeline: list[dict[str, Any]], deltas: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The truth side's aggregates per segment (as :func:`_truth_segments` returns them), derived.

    ``pipeline``: the checksum's rows (``m_n``, ``p_<label>``, ``p_nn_<label>`` per segment);
    ``deltas``: the keyed statement's ``segment_deltas`` rows. Keys with equal row hashes add alike
    to both sides (:func:`plan.segments_derivable`), so per segment the truth holds the pipeline's
    figures minus what the pipeline's differing rows add plus what the truth's add. A segment with
    no truth rows left is absent, and a sum over no values is NULL, as the truth's own pass gives.
    """
    def seg(r: dict[str, Any]) -> tuple[Any, ...]:
        return tuple(r.get(f"s_{c}") for c in spec.segment_by)

    parts = spec.aggregate_parts()
    names = ["n"] + [f"{pre}{lb}" for _fn, _col, lb in parts for pre in ("", "nn_")]
    acc: dict[tuple[Any, ...], dict[str, Any]] = {}
    for r in pipeline:
        acc[seg(r)] = {"n": r["m_n"] or 0, **{lb: r.get(f"p_{lb}") or 0 for _fn, _col, lb in parts},
                       **{f"nn_{lb}": r.get(f"p_nn_{lb}") or 0 for _fn, _col, lb in parts}}
    for r in deltas:
        cur = acc.setdefault(seg(r), dict.fromkeys(names, 0))
        for name in names:
            v = r.get(f"d_{name}") or 0
            cur[name] = _plus(cur[name], -v if r["_side"] == "p" else v)
    out = []
    if not spec.segment_by and not acc:
        acc[()] = dict.fromkeys(names, 0)  # one total row, as an ungrouped aggregate gives, even over no rows
    for key, cur in acc.items():
        if cur["n"] == 0 and spec.segment_by:  # no truth rows left in the segment: absent, as a GROUP BY gives
            continue
        rec: dict[str, Any] = {f"s_{c}": v for c, v in zip(spec.segment_by, key, strict=True)}
        for fn, _col, lb in parts:
            rec[lb] = None if fn == "sum" and cur[f"nn_{lb}"] == 0 else cur[lb]
        out.append(rec)
    return out


def _first(values: Any) -> int:
    return next(iter(values), 0)


def _merge_segments(spec: ReconcileSpec, model_rows: list[dict[str, Any]], truth_rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per-segment rows of each side (``p_*`` already named, truth as plain labels) as :func:`_segments` reads them."""
    merged: dict[tuple[Any, ...], dict[str, Any]] = {}
    for r in model_rows:
        merged[tuple(r.get(f"s_{c}") for c in spec.segment_by)] = dict(r)
    for r in truth_rows:
        rec = merged.setdefault(tuple(r.get(f"s_{c}") for c in spec.segment_by), {f"s_{c}": r.get(f"s_{c}") for c in spec.segment_by})
        for _fn, _col, lb in spec.aggregate_parts():
            rec[f"t_{lb}"] = r.get(lb)
    return [merged[k] for k in sorted(merged, key=_segment_order)]


def _segment_order(key: tuple[Any, ...]) -> tuple[Any, ...]:
    # as SQL's ORDER BY does by default on DuckDB and Snowflake: NULLs last
    return tuple((v is None, "" if v is None else v) for v in key)


def _group_samples(spec: ReconcileSpec, rows: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        cls = r.pop("_class")
        r.pop("_rn", None)
        rec = {spec.key[i]: r.pop(f"k{i}") for i in range(len(spec.key))}
        rec.update(r)
        out.setdefault(cls, []).append(rec)
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
