"""Per-segment deltas of a reconciliation's aggregates: shared by the one-query engine and the bisection
(so neither imports the other)."""

from __future__ import annotations

from typing import Any

from dagster_agent_de.adapters.warehouse import Warehouse
from dagster_agent_de.engines.reconcile import plan
from dagster_agent_de.engines.reconcile.plan import SidePlan
from dagster_agent_de.engines.reconcile.report import SegmentDelta
from dagster_agent_de.engines.reconcile.spec import ReconcileSpec


def segments_per_side(
    spec: ReconcileSpec, wh_model: Warehouse, m: SidePlan, wh_truth: Warehouse, a: SidePlan, label: str
) -> list[SegmentDelta]:
    """Each side's aggregates per segment in its own engine, merged here: across connections, and where
    the engine cannot FULL JOIN segments NULL-safely (PostgreSQL). Few rows: one per segment."""
    seg_m = wh_model.query(plan.render(plan.side_segments_sql(spec, m), wh_model.dialect), rationale=f"aggregates of {spec.model} per segment").folded().dicts()
    seg_a = wh_truth.query(plan.render(plan.side_segments_sql(spec, a), wh_truth.dialect), rationale=f"aggregates of {label} per segment").folded().dicts()
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
