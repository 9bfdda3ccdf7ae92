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
    casts: tuple[tuple[str, str], ...] = ()
    """(column, SQL type) for compared columns whose two sides have different types."""

    def key_exprs(self) -> list[str]:
        cols = self.spec.key if self.side == "model" else self.spec.keys_against
        return [f"cast({c} as varchar)" if self.cast_keys_to_text else c for c in cols]

    def value_expr(self, col: str) -> str:
        expr = self.spec.compare_expr(col, self.side)
        target = dict(self.casts).get(col)
        if not target:
            return expr
        # try_cast: text that is not a number becomes NULL (counted as a mismatch), not a failed query
        return f"{'try_cast' if target == 'double' else 'cast'}({expr} as {target})"

    def select(self, joined: bool = False) -> str:
        """This side as ``k0.., c_*, s_*, a_*``; ``joined``: only keys and compared columns (what a keyed join needs)."""
        parts = [f"{e} as {q(f'k{i}')}" for i, e in enumerate(self.key_exprs())]
        for col in self.spec.compare:
            parts.append(f"{self.value_expr(col)} as {q('c_' + col)}")
        for col in ([] if joined else self.spec.segment_by):
            parts.append(f"{self.value_expr(col)} as {q('s_' + col)}")
        for _fn, col, _label in ([] if joined else self.spec.aggregate_parts()):
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


def join_summary_sql(
    spec: ReconcileSpec, model: SidePlan, truth: SidePlan, sample_size: int = 0, dialect: str = "", one_sided_cap: int = 0
) -> str:
    """The fast plan when neither side has duplicate keys: one FULL OUTER JOIN on the key.

    Each joined row is classified once (``_cls``: 0 equal, 1 missing in the pipeline, 2 extra in
    the pipeline, 3 mismatched) with one flag per compared column; the counts, per-column
    mismatches and samples are aggregates over that.

    With ``one_sided_cap`` (DuckDB) the same statement also proves there are no duplicate keys,
    so no pre-check pass is needed:

    * ``rows_*``/``null_keys_*`` come from a plain count of each side (a scan, no hashing);
    * ``join_rows_*`` count each side's rows in the join output: a key present on both sides
      and duplicated on either fans the join out, so ``join_rows_pipeline`` exceeds the
      pipeline's non-NULL-key rows (or the truth's likewise);
    * duplicates among keys present on one side only do not fan out; those keys are few when
      the data is close (they are the missing and extra rows), so up to ``one_sided_cap + 1``
      of them come back as ``extra_keys``/``missing_keys`` for an exact count. More than the
      cap means "unknown": the engine then runs the exact pre-check.
    """
    keys = key_names(spec)
    notnull = " and ".join(f"{k} is not null" for k in keys)
    on = " and ".join(f"m.{k} = a.{k}" for k in keys)
    flags = {c: q("f_" + c) for c in spec.compare}
    flag_cols = "".join(f",\n            {mismatch_sql(spec, c, 'm.' + q('c_' + c), 'a.' + q('c_' + c))} as {f}"
                        for c, f in flags.items())
    value_cols = "".join(f", m.{q('c_' + c)} as {q('m_' + c)}, a.{q('c_' + c)} as {q('a_' + c)}" for c in spec.compare)
    any_mm = " or ".join(flags.values()) or "false"
    key_out = ", ".join(f"coalesce(m.{k}, a.{k}) as {k}" for k in keys)
    col_counts = "".join(f",\n    sum(case when _cls = 3 and {f} then 1 else 0 end) as {q('mm_' + c)}" for c, f in flags.items())
    samples = sides = one_sided = ""
    if sample_size and dialect == "duckdb":
        fields = [f"'{spec.key[i]}': {k}" for i, k in enumerate(keys)]
        fields += [f"'pipeline_{c}': {q('m_' + c)}, 'truth_{c}': {q('a_' + c)}" for c in spec.compare]
        struct = "{" + ", ".join(fields) + "}"
        samples = "".join(f",\n    min({struct}, {int(sample_size)}) filter (where _cls = {n}) as {q('sample_' + name)}"
                          for n, name in ((1, "missing_in_pipeline"), (2, "extra_in_pipeline"), (3, "mismatched")))
    if one_sided_cap:
        isnull = " or ".join(f"{k} is null" for k in keys)
        key_value = keys[0] if len(keys) == 1 else "{" + ", ".join(f"'k{i}': {k}" for i, k in enumerate(keys)) + "}"
        cap = int(one_sided_cap) + 1
        sides = "".join(
            f"\n    (select count(*) from ({side.select(joined=True)}) t) as rows_{name},"
            f"\n    (select count(*) from ({side.select(joined=True)}) t where {isnull}) as null_keys_{name},"
            for side, name in ((model, "pipeline"), (truth, "truth"))
        )
        one_sided = (f",\n    sum(case when _cls <> 1 then 1 else 0 end) as join_rows_pipeline,"
                     f" sum(case when _cls <> 2 then 1 else 0 end) as join_rows_truth,"
                     f"\n    min({key_value}, {cap}) filter (where _cls = 2) as extra_keys,"
                     f"\n    min({key_value}, {cap}) filter (where _cls = 1) as missing_keys")
    return f"""
with m as (select * from ({model.select(joined=True)}) t where {notnull}),
     a as (select * from ({truth.select(joined=True)}) t where {notnull}),
     j as (
        select {key_out}, m.{keys[0]} is not null as _in_m, a.{keys[0]} is not null as _in_a{value_cols}{flag_cols}
        from m full outer join a on {on}
     ),
     d as (
        select *, case when not _in_m then 1 when not _in_a then 2 when {any_mm} then 3 else 0 end as _cls from j
     )
select{sides}
    coalesce(sum(case when _cls in (0, 3) then 1 else 0 end), 0) as matched,
    coalesce(sum(case when _cls = 1 then 1 else 0 end), 0) as missing_in_pipeline,
    coalesce(sum(case when _cls = 2 then 1 else 0 end), 0) as extra_in_pipeline,
    coalesce(sum(case when _cls = 3 then 1 else 0 end), 0) as mismatched_rows{col_counts}{samples}{one_sided}
from d
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


def types_probe_sql(side: SidePlan) -> str:
    """No rows, only the types of the key and compared columns (from the driver's result description)."""
    cols = [f"{e} as {q(f'k{i}')}" for i, e in enumerate(side.key_exprs())]
    cols += [f"{side.spec.compare_expr(c, side.side)} as {q('c_' + c)}" for c in side.spec.compare]
    return f"select {', '.join(cols)} from {side.relation} limit 0"
