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
        for _fn, col, _label in self.spec.aggregate_parts():
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



def key_names(spec: ReconcileSpec) -> list[str]:
    return [q(f"k{i}") for i in range(len(spec.key))]



def _union_grouped(spec: ReconcileSpec, model: SidePlan, truth: SidePlan) -> str:
    """Both sides in ONE hash aggregate by key (no join): per key, rows on each side and their values."""
    keys = key_names(spec)
    nullkey = " or ".join(f"{k} is null" for k in keys)
    m_cols = "".join(f", {q('c_' + c)} as {q('m_' + c)}, null as {q('a_' + c)}" for c in spec.compare)
    a_cols = "".join(f", null as {q('m_' + c)}, {q('c_' + c)} as {q('a_' + c)}" for c in spec.compare)
    aggs = "".join(f", min({q('m_' + c)}) as {q('m_' + c)}, min({q('a_' + c)}) as {q('a_' + c)}" for c in spec.compare)
    return f"""m_raw as ({model.select()}),
     a_raw as ({truth.select()}),
     u as (
        select {', '.join(keys)}, 1 as _m, 0 as _a{m_cols} from m_raw
        union all
        select {', '.join(keys)}, 0 as _m, 1 as _a{a_cols} from a_raw
     ),
     g as (
        select {', '.join(keys)}, case when {nullkey} then 1 else 0 end as _nullkey,
               sum(_m) as m_n, sum(_a) as a_n{aggs}
        from u group by {', '.join(keys)}
     )"""


def mismatch_sql(spec: ReconcileSpec, col: str, pipeline: str, truth: str) -> str:
    """True when the two values of ``col`` differ: beyond the tolerance for numbers, NULL-safe otherwise."""
    cmp = spec.compare[col]
    if cmp.abs_tol or cmp.rel_tol:
        tol = f"{cmp.abs_tol!r} + {cmp.rel_tol!r} * abs({truth})"
        return f"(({pipeline} is null) <> ({truth} is null) or abs({pipeline} - {truth}) > {tol})"
    return f"({pipeline} is distinct from {truth})"


def _mismatch(spec: ReconcileSpec, col: str) -> str:
    return mismatch_sql(spec, col, q("m_" + col), q("a_" + col))


def classes(spec: ReconcileSpec) -> dict[str, str]:
    both = "_nullkey = 0 and m_n > 0 and a_n > 0"
    any_mm = " or ".join(_mismatch(spec, c) for c in spec.compare) or "false"
    return {
        "missing_in_pipeline": "_nullkey = 0 and m_n = 0 and a_n > 0",
        "extra_in_pipeline": "_nullkey = 0 and m_n > 0 and a_n = 0",
        "mismatched": f"{both} and ({any_mm})",
    }


def summary_sql(spec: ReconcileSpec, model: SidePlan, truth: SidePlan, sample_size: int = 0, dialect: str = "") -> str:
    """Counts of every class (and, on DuckDB, bounded samples) in one pass over both sides."""
    both = "_nullkey = 0 and m_n > 0 and a_n > 0"
    cls = classes(spec)
    col_flags = "".join(
        f",\n    coalesce(sum(case when {both} and {_mismatch(spec, c)} then 1 else 0 end), 0) as {q('mm_' + c)}"
        for c in spec.compare
    )
    samples = ""
    if sample_size and dialect == "duckdb":
        # DuckDB's top-n aggregate keeps the samples in the same pass, bounded by n
        fields = [f"'{spec.key[i]}': {k}" for i, k in enumerate(key_names(spec))]
        fields += [f"'pipeline_{c}': {q('m_' + c)}, 'truth_{c}': {q('a_' + c)}" for c in spec.compare]
        struct = "{" + ", ".join(fields) + "}"
        samples = "".join(f",\n    min({struct}, {int(sample_size)}) filter (where {pred}) as {q('sample_' + name)}"
                          for name, pred in cls.items())
    return f"""
with {_union_grouped(spec, model, truth)}
select
    coalesce(sum(m_n), 0) as rows_pipeline,
    coalesce(sum(a_n), 0) as rows_truth,
    coalesce(sum(case when _nullkey = 1 then m_n else 0 end), 0) as null_keys_pipeline,
    coalesce(sum(case when _nullkey = 1 then a_n else 0 end), 0) as null_keys_truth,
    coalesce(sum(case when _nullkey = 0 and m_n > 1 then 1 else 0 end), 0) as duplicate_keys_pipeline,
    coalesce(sum(case when _nullkey = 0 and a_n > 1 then 1 else 0 end), 0) as duplicate_keys_truth,
    coalesce(sum(case when {both} then 1 else 0 end), 0) as matched,
    coalesce(sum(case when {cls['missing_in_pipeline']} then 1 else 0 end), 0) as missing_in_pipeline,
    coalesce(sum(case when {cls['extra_in_pipeline']} then 1 else 0 end), 0) as extra_in_pipeline,
    coalesce(sum(case when {cls['mismatched']} then 1 else 0 end), 0) as mismatched_rows{col_flags}{samples}
from g
""".strip()


def side_stats_sql(spec: ReconcileSpec, side: SidePlan, dialect: str = "") -> str:
    """Rows, NULL-key rows, duplicate-key rows and distinct keys of one side.

    For a single key on DuckDB, COUNT(DISTINCT) is cheaper than grouping; ``dup_keys`` there counts
    surplus rows (exact duplicate-key counts then come from the grouped plan, which runs only when
    this is > 0).
    """
    if dialect == "duckdb" and len(spec.key) == 1:
        k = key_names(spec)[0]
        return f"""
select count(*) as n, count(*) - count({k}) as null_keys, count({k}) - count(distinct {k}) as dup_keys,
       count(distinct {k}) as distinct_keys
from ({side.select()}) t
""".strip()
    keys = ", ".join(key_names(spec))
    isnull = " or ".join(f"{k} is null" for k in key_names(spec))
    return f"""
with g as (select {keys}, count(*) as _n from ({side.select()}) t group by {keys})
select coalesce(sum(_n), 0) as n,
       coalesce(sum(case when {isnull} then _n else 0 end), 0) as null_keys,
       coalesce(sum(case when not ({isnull}) and _n > 1 then 1 else 0 end), 0) as dup_keys,
       coalesce(sum(case when not ({isnull}) then 1 else 0 end), 0) as distinct_keys
from g
""".strip()


def join_summary_sql(spec: ReconcileSpec, model: SidePlan, truth: SidePlan, sample_size: int = 0, dialect: str = "") -> str:
    """The fast plan when neither side has duplicate keys: one FULL OUTER JOIN on the key."""
    keys = key_names(spec)
    notnull_m = " and ".join(f"{k} is not null" for k in keys)
    on = " and ".join(f"m.{k} = a.{k}" for k in keys)
    present_m, present_a = f"m.{keys[0]} is not null", f"a.{keys[0]} is not null"
    both = f"{present_m} and {present_a}"

    def mm(c: str) -> str:
        return mismatch_sql(spec, c, f"m.{q('c_' + c)}", f"a.{q('c_' + c)}")

    any_mm = " or ".join(mm(c) for c in spec.compare) or "false"
    cls = {"missing_in_pipeline": f"not ({present_m})", "extra_in_pipeline": f"not ({present_a})",
           "mismatched": f"{both} and ({any_mm})"}
    col_flags = "".join(f",\n    coalesce(sum(case when {both} and {mm(c)} then 1 else 0 end), 0) as {q('mm_' + c)}"
                        for c in spec.compare)
    samples = ""
    if sample_size and dialect == "duckdb":
        fields = [f"'{spec.key[i]}': coalesce(m.{k}, a.{k})" for i, k in enumerate(keys)]
        fields += [f"'pipeline_{c}': m.{q('c_' + c)}, 'truth_{c}': a.{q('c_' + c)}" for c in spec.compare]
        struct = "{" + ", ".join(fields) + "}"
        samples = "".join(f",\n    min({struct}, {int(sample_size)}) filter (where {pred}) as {q('sample_' + name)}"
                          for name, pred in cls.items())
    return f"""
with m as (select * from ({model.select()}) t where {notnull_m}),
     a as (select * from ({truth.select()}) t where {notnull_m})
select
    coalesce(sum(case when {both} then 1 else 0 end), 0) as matched,
    coalesce(sum(case when {cls['missing_in_pipeline']} then 1 else 0 end), 0) as missing_in_pipeline,
    coalesce(sum(case when {cls['extra_in_pipeline']} then 1 else 0 end), 0) as extra_in_pipeline,
    coalesce(sum(case when {cls['mismatched']} then 1 else 0 end), 0) as mismatched_rows{col_flags}{samples}
from m full outer join a on {on}
""".strip()


def samples_sql(spec: ReconcileSpec, model: SidePlan, truth: SidePlan, n: int) -> str:
    """Portable samples (dialects without a top-n aggregate): up to ``n`` keys per class."""
    keys = key_names(spec)
    cls = classes(spec)
    key_out = ", ".join(f"{k}" for k in keys)
    col_out = "".join(f", {q('m_' + c)} as {q('pipeline_' + c)}, {q('a_' + c)} as {q('truth_' + c)}" for c in spec.compare)
    case = "case " + " ".join(f"when {pred} then '{name}'" for name, pred in cls.items()) + " end"
    return f"""
with {_union_grouped(spec, model, truth)},
     j as (select {key_out}{col_out}, {case} as _class from g),
     r as (select *, row_number() over (partition by _class order by {key_out}) as _rn from j where _class is not null)
select * from r where _rn <= {int(n)} order by _class, {key_out}
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
