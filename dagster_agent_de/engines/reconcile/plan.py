"""SQL generation for reconciliation: each side normalised to the same column names.

Each side becomes ``select <keys as k0..>, <compare cols as c_*>, <segments as s_*>,
<aggregate inputs as a_*> from <relation> where <filter>``; the rest of the plan is written
once over those names.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from dagster_agent_de.engines.reconcile.spec import ReconcileSpec

Side = Literal["model", "against"]


def q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


@dataclass(frozen=True)
class SidePlan:
    relation: str
    spec: ReconcileSpec
    side: Side
    cast_keys_to_text: bool = False

    def key_exprs(self) -> list[str]:
        cols = self.spec.key if self.side == "model" else self.spec.keys_against
        return [f"cast({c} as varchar)" if self.cast_keys_to_text else c for c in cols]

    def select(self) -> str:
        parts = [f"{e} as {q(f'k{i}')}" for i, e in enumerate(self.key_exprs())]
        for col in self.spec.compare:
            parts.append(f"{self.spec.compare_expr(col, self.side)} as {q('c_' + col)}")
        for col in self.spec.segment_by:
            parts.append(f"{self.spec.compare_expr(col, self.side)} as {q('s_' + col)}")
        for fn, col, _label in self.spec.aggregate_parts():
            if col != "*" and col not in self.spec.compare and col not in self.spec.segment_by:
                parts.append(f"{self.spec.compare_expr(col, self.side)} as {q('a_' + col)}")
        where = self.spec.where if self.side == "model" else self.spec.where_against
        sql = f"select {', '.join(parts)} from {self.relation}"
        if where:
            sql += f" where {where}"
        return sql


def agg_input(spec: ReconcileSpec, col: str) -> str:
    if col == "*":
        return "*"
    if col in spec.compare:
        return q("c_" + col)
    if col in spec.segment_by:
        return q("s_" + col)
    return q("a_" + col)


def mismatch_predicate(spec: ReconcileSpec, col: str, m: str = "m", a: str = "a") -> str:
    cmp = spec.compare[col]
    mc, ac = f"{m}.{q('c_' + col)}", f"{a}.{q('c_' + col)}"
    if cmp.abs_tol or cmp.rel_tol:
        tol = f"{cmp.abs_tol!r} + {cmp.rel_tol!r} * abs({ac})"
        return f"(({mc} is null) <> ({ac} is null) or abs({mc} - {ac}) > {tol})"
    return f"({mc} is distinct from {ac})"


def key_names(spec: ReconcileSpec) -> list[str]:
    return [q(f"k{i}") for i in range(len(spec.key))]


def grouped_side(spec: ReconcileSpec, name: str) -> str:
    """Group a normalised side by key: one row per key with its multiplicity (duplicates)."""
    keys = key_names(spec)
    cols = [f"min({q('c_' + c)}) as {q('c_' + c)}" for c in spec.compare]
    nullkey = " or ".join(f"{k} is null" for k in keys)
    return (
        f"select {', '.join(keys)}, count(*) as _n, "
        f"max(case when {nullkey} then 1 else 0 end) as _nullkey"
        + (", " + ", ".join(cols) if cols else "")
        + f" from {name} group by {', '.join(keys)}"
    )


def summary_sql(spec: ReconcileSpec, model: SidePlan, truth: SidePlan) -> str:
    keys = key_names(spec)
    on = " and ".join(f"m.{k} = a.{k}" for k in keys)
    col_flags = [
        f"sum(case when m._n is not null and a._n is not null and {mismatch_predicate(spec, c)} then 1 else 0 end) as {q('mm_' + c)}"
        for c in spec.compare
    ]
    any_mm = " or ".join(mismatch_predicate(spec, c) for c in spec.compare) or "false"
    both = "m._n is not null and a._n is not null"
    return f"""
with m_raw as ({model.select()}),
     a_raw as ({truth.select()}),
     m as ({grouped_side(spec, 'm_raw')}),
     a as ({grouped_side(spec, 'a_raw')})
select
    coalesce(sum(m._n), 0) as rows_pipeline,
    coalesce(sum(a._n), 0) as rows_truth,
    coalesce(sum(case when m._nullkey = 1 then m._n else 0 end), 0) as null_keys_pipeline,
    coalesce(sum(case when a._nullkey = 1 then a._n else 0 end), 0) as null_keys_truth,
    coalesce(sum(case when m._nullkey = 0 and m._n > 1 then 1 else 0 end), 0) as duplicate_keys_pipeline,
    coalesce(sum(case when a._nullkey = 0 and a._n > 1 then 1 else 0 end), 0) as duplicate_keys_truth,
    coalesce(sum(case when {both} then 1 else 0 end), 0) as matched,
    coalesce(sum(case when m._n is null and a._nullkey = 0 then 1 else 0 end), 0) as missing_in_pipeline,
    coalesce(sum(case when a._n is null and m._nullkey = 0 then 1 else 0 end), 0) as extra_in_pipeline,
    coalesce(sum(case when {both} and ({any_mm}) then 1 else 0 end), 0) as mismatched_rows
    {''.join(', ' + f for f in col_flags)}
from m full outer join a on {on}
""".strip()


def samples_sql(spec: ReconcileSpec, model: SidePlan, truth: SidePlan, n: int) -> str:
    keys = key_names(spec)
    on = " and ".join(f"m.{k} = a.{k}" for k in keys)
    any_mm = " or ".join(mismatch_predicate(spec, c) for c in spec.compare) or "false"
    key_out = ", ".join(f"coalesce(m.{k}, a.{k}) as {k}" for k in keys)
    col_out = "".join(
        f", m.{q('c_' + c)} as {q('pipeline_' + c)}, a.{q('c_' + c)} as {q('truth_' + c)}" for c in spec.compare
    )
    order = ", ".join(keys)
    return f"""
with m_raw as ({model.select()}),
     a_raw as ({truth.select()}),
     m as ({grouped_side(spec, 'm_raw')}),
     a as ({grouped_side(spec, 'a_raw')}),
     j as (
        select {key_out}{col_out},
            case when m._n is null then 'missing_in_pipeline'
                 when a._n is null then 'extra_in_pipeline'
                 else 'mismatched' end as _class
        from m full outer join a on {on}
        where (m._n is null and a._nullkey = 0) or (a._n is null and m._nullkey = 0)
           or (m._n is not null and a._n is not null and ({any_mm}))
     ),
     r as (select *, row_number() over (partition by _class order by {order}) as _rn from j)
select * from r where _rn <= {int(n)} order by _class, {order}
""".strip()


def side_segments_sql(spec: ReconcileSpec, side: SidePlan) -> str:
    segs = [q("s_" + c) for c in spec.segment_by]
    aggs = [f"{fn}({agg_input(spec, col)}) as {q(label)}" for fn, col, label in spec.aggregate_parts()]
    group = f" group by {', '.join(segs)}" if segs else ""
    return f"select {', '.join(segs + aggs)} from ({side.select()}) as t{group}"


def segments_sql(spec: ReconcileSpec, model: SidePlan, truth: SidePlan) -> str:
    segs = [q("s_" + c) for c in spec.segment_by]
    labels = [label for _, _, label in spec.aggregate_parts()]
    seg_out = [f"coalesce(m.{s}, a.{s}) as {s}" for s in segs]
    val_out = [f"m.{q(lb)} as {q('p_' + lb)}, a.{q(lb)} as {q('t_' + lb)}" for lb in labels]
    on = " and ".join(f"m.{s} is not distinct from a.{s}" for s in segs) or "true"
    return f"""
with m as ({side_segments_sql(spec, model)}),
     a as ({side_segments_sql(spec, truth)})
select {', '.join(seg_out + val_out)}
from m full outer join a on {on}
order by {', '.join(f'{i + 1}' for i in range(len(segs))) or '1'}
""".strip()


def key_type_probe_sql(side: SidePlan, dialect: str) -> str | None:
    fn = {"duckdb": "typeof", "snowflake": "system$typeof"}.get(dialect)
    if fn is None:
        return None
    cols = ", ".join(f"{fn}({e}) as {q(f'k{i}')}" for i, e in enumerate(side.key_exprs()))
    return f"select {cols} from {side.relation} limit 1"
