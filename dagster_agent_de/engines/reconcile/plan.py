"""SQL generation for reconciliation: each side normalised to the same column names.

Each side becomes ``select <keys as k0..>, <compare cols as c_*>, <segments as s_*>,
<aggregate inputs as a_*> from <relation> where <filter>``; the rest of the plan is written
once over those names.

The same-warehouse plan is two statements at most on a usual night:

1. :func:`checksum_sql`: per side, the row count and the sum of a row hash over the key and
   the compared columns (order-independent), plus the segment aggregates, in one scan of each
   side. Equal checksums: the sides hold the same rows (up to 64-bit hash collisions).
2. :func:`keyed_sql`: otherwise, one FULL OUTER JOIN of narrow rows (key and row hash), then a
   second, small pass that reads the compared columns of the differing keys only, counts the
   mismatches per column with their tolerances, samples them, and proves the keys unique.

Both are written once in portable SQL and rendered per dialect by sqlglot (:func:`render`);
the one function that differs between engines, the row hash, is chosen in :data:`ROW_HASH`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from sqlglot import exp

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
    hash_types: tuple[tuple[str, str], ...] = ()
    """(normalised column such as ``k0`` or ``c_amount``, SQL type) cast to before hashing, so that
    equal values of two different types (INTEGER and BIGINT, DECIMAL and DOUBLE) hash alike."""
    unhashable: tuple[str, ...] = ()
    """Normalised columns (``k0``, ``c_amount``) whose two sides cannot be brought to one exact
    representation: no checksum is tried, and such compared columns travel as values in the join
    instead of in the row hash (keys join by value anyway)."""
    types: tuple[tuple[str, str, str], ...] = ()
    """(normalised column, pipeline type, truth type) of the key and compared columns, as probed;
    empty when the driver did not say."""

    def hashed(self, name: str) -> str:
        """The normalised column ``name`` as it enters the row hash."""
        target = dict(self.hash_types).get(name)
        return f"cast({q(name)} as {target})" if target else q(name)

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


TOLERANCE_SLACK = 1e-12
"""The part of the two values' size forgiven on top of a tolerance. Float arithmetic (``amount_cents /
100.0``, a DOUBLE column) puts a difference of exactly the tolerance a few units in the last place above
it (20.01 - 20.0 = 0.010000000000001563), which would count one cent as a mismatch at ``abs_tol: 0.01``;
a DECIMAL difference is exact and, at any realistic scale, unaffected. The same slack in SQL
(:func:`mismatch_sql`) and in Python (the cross-connection comparison)."""


def beyond_tolerance(abs_tol: float, rel_tol: float, pipeline: float, truth: float) -> bool:
    """:func:`mismatch_sql`'s test for two non-NULL numbers, in Python.

    >>> beyond_tolerance(0.01, 0.0, 20.0, 2001 / 100.0), beyond_tolerance(0.01, 0.0, 20.0, 20.0100001)
    (False, True)
    """
    return abs(pipeline - truth) > abs_tol + rel_tol * abs(truth) + TOLERANCE_SLACK * (abs(pipeline) + abs(truth))


def mismatch_sql(spec: ReconcileSpec, col: str, pipeline: str, truth: str) -> str:
    """True when the two values of ``col`` differ: beyond the tolerance for numbers (with
    :data:`TOLERANCE_SLACK`), NULL-safe otherwise."""
    cmp = spec.compare[col]
    if cmp.abs_tol or cmp.rel_tol:
        tol = f"{cmp.abs_tol!r} + {cmp.rel_tol!r} * abs({truth}) + {TOLERANCE_SLACK!r} * (abs({pipeline}) + abs({truth}))"
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


def summary_sql(spec: ReconcileSpec, model: SidePlan, truth: SidePlan, sample_size: int = 0) -> str:
    """Counts of every class, one row per key (duplicate keys counted), and the samples, in one statement.

    ``g`` holds one row per key with each side's rows and values (:func:`_union_grouped`); ``c``
    counts over it; ``s`` numbers the differing keys per class (by key) and keeps ``sample_size``
    of each. One row per sample, each carrying the counts; one row with NULL sample columns when
    there is nothing to sample. Portable text, rendered per dialect by :func:`render`: no engine
    has a branch of its own.
    """
    both = "_nullkey = 0 and m_n > 0 and a_n > 0"
    cls = classes(spec)
    col_flags = "".join(
        f",\n    coalesce(sum(case when {both} and {_mismatch(spec, c)} then 1 else 0 end), 0) as {q('mm_' + c)}"
        for c in spec.compare
    )
    return f"""
with {_union_grouped(spec, model, truth)},
     c as (
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
            coalesce(sum(case when {cls['mismatched']} then 1 else 0 end), 0) as mismatched_rows{col_flags}
        from g
     ),
     {_sampled(spec, sample_size)}
select c.*, s.*
from c left join s on 1 = 1
order by s._class, s._rn
""".strip()


def _sampled(spec: ReconcileSpec, n: int) -> str:
    """CTEs ``j`` (each differing key of ``g`` with its class) and ``s`` (up to ``n`` of each class, by key)."""
    keys = key_names(spec)
    key_out = ", ".join(keys)
    col_out = "".join(f", {q('m_' + c)} as {q('pipeline_' + c)}, {q('a_' + c)} as {q('truth_' + c)}" for c in spec.compare)
    case = "case " + " ".join(f"when {pred} then '{name}'" for name, pred in classes(spec).items()) + " end"
    return f"""j as (select {key_out}{col_out}, {case} as _class from g),
     r as (select *, row_number() over (partition by _class order by {key_out}) as _rn from j where _class is not null),
     s as (select * from r where _rn <= {int(n)})"""


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


def samples_sql(spec: ReconcileSpec, model: SidePlan, truth: SidePlan, n: int) -> str:
    """The samples of :func:`summary_sql` alone: up to ``n`` differing keys per class, by key."""
    return f"""
with {_union_grouped(spec, model, truth)},
     {_sampled(spec, n)}
select * from s order by _class, {', '.join(key_names(spec))}
""".strip()


def side_segments_sql(spec: ReconcileSpec, side: SidePlan) -> str:
    segs = [q("s_" + c) for c in spec.segment_by]
    aggs = [f"{fn}({agg_input(spec, col)}) as {q(label)}" for fn, col, label in spec.aggregate_parts()]
    group = f" group by {', '.join(segs)}" if segs else ""
    return f"select {', '.join(segs + aggs)} from ({side.select()}) as t{group}"


def _by_segment(segs: list[str], names: list[tuple[str, str, str]], order: str) -> str:
    """Both sides' rows per segment side by side, NULL-safely: a UNION ALL grouped by the segment
    (each side has one row per segment, so ``max`` is that row's value). Every engine groups NULLs
    together; PostgreSQL cannot FULL JOIN on ``is not distinct from``. ``names``: (column in ``m``
    and ``a``, output for the pipeline side, output for the truth side)."""
    m_sel = segs + [f"{src} as {mo}, null as {ao}" for src, mo, ao in names]
    a_sel = segs + [f"null as {mo}, {src} as {ao}" for src, mo, ao in names]
    cols = segs + [f"max({o}) as {o}" for _src, mo, ao in names for o in (mo, ao)]
    return f"""u as (select {', '.join(m_sel)} from m union all select {', '.join(a_sel)} from a)
select {', '.join(cols)}
from u group by {', '.join(segs)}{order}"""


def segments_sql(spec: ReconcileSpec, model: SidePlan, truth: SidePlan) -> str:
    segs = [q("s_" + c) for c in spec.segment_by]
    labels = [label for _, _, label in spec.aggregate_parts()]
    if not segs:
        out = [f"m.{q(lb)} as {q('p_' + lb)}, a.{q(lb)} as {q('t_' + lb)}" for lb in labels]
        body = f"select {', '.join(out)}\nfrom m cross join a"
    else:
        order = f"\norder by {', '.join(str(i + 1) for i in range(len(segs)))}"
        body = _by_segment(segs, [(q(lb), q("p_" + lb), q("t_" + lb)) for lb in labels], order)
    return f"""
with m as ({side_segments_sql(spec, model)}),
     a as ({side_segments_sql(spec, truth)}){',' if segs else ''}
     {body}
""".strip()


def side_fields(side: SidePlan) -> list[tuple[str, str]]:
    """(spec field, SQL expression) of every expression the plan reads from this side, as a user wrote
    them: the key, the compared columns, the segments and aggregated columns (the ``where`` apart)."""
    spec, model = side.spec, side.side == "model"
    keys = spec.key if model else spec.keys_against
    out = [(f"{'key' if model or spec.key_against is None else 'key_against'}[{i}]", k) for i, k in enumerate(keys)]
    out += [(f"compare.{c}" + ("" if model or not spec.compare[c].against else ".against"), spec.compare_expr(c, side.side))
            for c in spec.compare]
    out += [(f"segment_by ({c})", spec.compare_expr(c, side.side)) for c in spec.segment_by if c not in spec.compare]
    out += [(f"aggregates ({fn}({col}))", spec.compare_expr(col, side.side)) for fn, col, _label in spec.aggregate_parts()
            if col != "*" and col not in spec.compare and col not in spec.segment_by]
    return out


def field_probes(side: SidePlan) -> list[tuple[str, str]]:
    """(spec field, statement) that each read one of this side's expressions and no row, in the order a
    failing one is looked for: the relation itself first (``""``: a missing table is not a field's fault),
    then :func:`side_fields`, then the ``where``."""
    where = side.spec.where if side.side == "model" else side.spec.where_against
    probes = [("", f"select 1 from {side.relation} limit 0")]
    probes += [(f"{field} = {expr!r}", f"select {expr} from {side.relation} limit 0") for field, expr in side_fields(side)]
    if where:
        probes.append((f"{'where' if side.side == 'model' else 'where_against'} = {where!r}",
                       f"select 1 from {side.relation} where {where} limit 0"))
    return probes


def types_probe_sql(side: SidePlan) -> str:
    """No rows, only the types of the key and compared columns (from the driver's result description),
    then the segment and aggregated columns and the ``where``: so that a column missing on a side fails
    here, before any scan, and :func:`side_fields` can name the spec field."""
    cols = [f"{e} as {q(f'k{i}')}" for i, e in enumerate(side.key_exprs())]
    cols += [f"{side.spec.compare_expr(c, side.side)} as {q('c_' + c)}" for c in side.spec.compare]
    cols += [f"{expr} as {q(f'x{i}')}" for i, (_field, expr) in enumerate(side_fields(side)[len(cols):])]
    where = side.spec.where if side.side == "model" else side.spec.where_against
    return f"select {', '.join(cols)} from {side.relation}" + (f" where {where}" if where else "") + " limit 0"


# -- the checksum and the lean keyed plan (rendered per dialect) ------------------------------

_HASH = "agent_de_row_hash"
"""Placeholder function of the portable plan text; :func:`render` replaces it with :data:`ROW_HASH`."""


def _pg_hash(args: list[exp.Expression]) -> exp.Expression:
    # a row constructor's text form quotes separators and tells NULL from '' apart
    row = exp.Cast(this=exp.Anonymous(this="row", expressions=args), to=exp.DataType.build("text"))
    return exp.Anonymous(this="hashtextextended", expressions=[row, exp.Literal.number(0)])


ROW_HASH: dict[str, Callable[[list[exp.Expression]], exp.Expression]] = {
    "duckdb": lambda args: exp.Anonymous(this="hash", expressions=args),  # UBIGINT, NULL-aware, typed
    "snowflake": lambda args: exp.Anonymous(this="hash", expressions=args),  # signed 64-bit, varargs
    "postgres": _pg_hash,  # bigint
}
"""The one place where engines differ: a 64-bit hash of several values (NULL-aware, order-sensitive)."""

_NOT_LOWERED = {"VAR", "IDENTIFIER", "STRING", "NUMBER", "NATIONAL_STRING", "RAW_STRING", "HEREDOC_STRING",
                "BIT_STRING", "HEX_STRING", "BYTE_STRING", "UNICODE_STRING", "PARAMETER", "PLACEHOLDER"}


@functools.cache
def _dialect(dialect: str) -> Any:
    from sqlglot.dialects.dialect import Dialect

    return Dialect.get_or_raise(dialect)


def render(sql: str, dialect: str) -> str:
    """The portable plan text ``sql`` in ``dialect``: parsed and written back by sqlglot.

    User fragments (``expr``, ``where``, the relation) are already in the warehouse's dialect, and
    the skeleton is plain SQL, so the whole statement parses as ``dialect``; the row hash
    placeholder becomes that engine's hash. Keywords and function names are written in lower
    case, like the rest of the project's SQL (identifiers and strings are left as they are), and
    the statement is pretty-printed (one clause per line), as the audit log shows it.

    >>> print(render("select sum(agent_de_row_hash(a, b)) as h from t full outer join u on t.k = u.k", "duckdb"))
    select
      sum(hash(a, b)) as h
    from t
    full outer join u
      on t.k = u.k
    >>> print(render("select agent_de_row_hash(a, cast(b as double)) as h from t", "postgres"))
    select
      hashtextextended(cast(row(a, cast(b as double precision)) as text), 0) as h
    from t
    """
    import sqlglot

    if dialect not in ROW_HASH:
        from dagster_agent_de.errors import ConfigError

        raise ConfigError(f"reconciliation has no row hash for the {dialect!r} dialect (known: {', '.join(ROW_HASH)})")
    hash_fn = ROW_HASH[dialect]

    def swap(node: exp.Expression) -> exp.Expression:
        if isinstance(node, exp.Anonymous) and str(node.this).lower() == _HASH:
            return hash_fn(list(node.expressions))
        return node

    tree = sqlglot.parse_one(sql, read=dialect).transform(swap, copy=False)
    out = tree.sql(dialect=dialect, normalize_functions="lower", pretty=True)
    tokens = _dialect(dialect).tokenize(out)  # a fresh tokenizer: safe when checks run in threads
    chars = list(out)
    for i, tok in enumerate(tokens):
        name = tok.token_type.name
        is_call = name == "VAR" and i + 1 < len(tokens) and tokens[i + 1].token_type.name == "L_PAREN"
        if name not in _NOT_LOWERED or is_call:
            chars[tok.start:tok.end + 1] = out[tok.start:tok.end + 1].lower()
    return "".join(chars)


def segments_follow(spec: ReconcileSpec) -> bool:
    """True when identical checksums imply identical segment aggregates.

    So when every ``segment_by`` column and every aggregated column is a compared column (their
    values are in the row hash); the truth side's aggregates are then needed only when the
    checksums differ, and :func:`checksum_sql` groups the pipeline side only.
    """
    return bool(spec.aggregates) and all(c in spec.compare for c in spec.segment_by) and all(
        col == "*" or col in spec.compare for _fn, col, _label in spec.aggregate_parts())


def segments_derivable(spec: ReconcileSpec) -> bool:
    """True when the truth side's segment aggregates follow from the pipeline side's and the differing rows.

    When :func:`segments_follow` holds, a key whose row hashes are equal adds the same to both
    sides' aggregates, so the truth side's ``sum`` and ``count`` per segment are the pipeline's
    minus what its differing rows add plus what the truth's differing rows add: the keyed
    statement returns those (``segment_deltas``) and the truth side needs no pass of its own.
    ``min``, ``max`` and ``avg`` do not subtract; those specs read the truth side's aggregates.
    """
    return segments_follow(spec) and all(fn in ("sum", "count") for fn, _col, _label in spec.aggregate_parts())


def checksum_sql(spec: ReconcileSpec, model: SidePlan, truth: SidePlan, derive_segments: bool = False) -> str:
    """One scan of each side: rows, NULL-key rows, the sum of row hashes and the segment aggregates.

    The row hash covers the key and every compared column as the keyed plan normalises them
    (same ``where``, mapping expressions and casts), so equal sums for equal counts mean both
    sides hold the same rows, up to 64-bit hash collisions. One row per segment when the spec
    has aggregates (the totals are the sums over the rows); the aggregates are those of
    :func:`segments_sql` (``p_*``, and ``t_*`` unless :func:`segments_follow`: then the truth
    side is one ungrouped row repeated on every segment, and its aggregates are read only if the
    checksums differ, with :func:`side_segments_sql`).
    """
    segs = [q("s_" + c) for c in spec.segment_by] if spec.aggregates else []
    labels = [label for _, _, label in spec.aggregate_parts()]
    isnull = " or ".join(f"{k} is null" for k in key_names(spec))
    # one key: count(*) - count(key) needs no per-row CASE (~8% of the scan at 10M rows on DuckDB)
    nk = f"count(*) - count({key_names(spec)[0]})" if len(spec.key) == 1 else f"sum(case when {isnull} then 1 else 0 end)"
    follow = segments_follow(spec)
    # the pipeline side's non-NULL counts of each summed column, when the truth's sums are to be derived
    # (``derive_segments``: the engine decided it from the probed types): a derived sum over no values is NULL
    summed = [p for p in spec.aggregate_parts() if p[0] == "sum"] if derive_segments and segments_follow(spec) else []

    def side(sp: SidePlan, grouped: bool) -> str:
        hashed = [sp.hashed(f"k{i}") for i in range(len(spec.key))] + [sp.hashed("c_" + c) for c in spec.compare]
        aggs = ["count(*) as _n", f"{nk} as _nk",
                f"sum({_HASH}({', '.join(hashed)})) as _h"]
        if not grouped:
            return f"select {', '.join(aggs)} from ({sp.select(joined=True)}) as t"
        aggs += [f"{fn}({agg_input(spec, col)}) as {q(label)}" for fn, col, label in spec.aggregate_parts()]
        aggs += [f"count({agg_input(spec, col)}) as {q('nn_' + label)}" for fn, col, label in summed]
        group = f" group by {', '.join(segs)}" if segs else ""
        return f"select {', '.join(segs + aggs)} from ({sp.select()}) as t{group}"

    order = f"\norder by {', '.join(str(i + 1) for i in range(len(segs)))}" if segs else ""
    if follow:
        out = [f"m.{s} as {s}" for s in segs]
        out += [f"m.{n} as {q('m' + n)}, a.{n} as {q('a' + n)}" for n in ("_n", "_nk", "_h")]
        out += [f"m.{q(lb)} as {q('p_' + lb)}" for lb in labels]
        out += [f"m.{q('nn_' + lb)} as {q('p_nn_' + lb)}" for _fn, _col, lb in summed]
        # the left join keeps the truth's totals when the pipeline side has no rows (no segment)
        body = f"from a left join m on 1 = 1{order}"
    else:
        names = [(n, q("m" + n), q("a" + n)) for n in ("_n", "_nk", "_h")]
        names += [(q(lb), q("p_" + lb), q("t_" + lb)) for lb in labels]
        if segs:
            return f"""
with m as ({side(model, True)}),
     a as ({side(truth, True)}),
     {_by_segment(segs, names, order)}
""".strip()
        out = [f"m.{src} as {mo}, a.{src} as {ao}" for src, mo, ao in names]
        body = "from m cross join a"
    return f"""
with m as ({side(model, bool(spec.aggregates))}),
     a as ({side(truth, bool(spec.aggregates) and not follow)})
select {', '.join(out)}
{body}
""".strip()


def keyed_sql(
    spec: ReconcileSpec, model: SidePlan, truth: SidePlan, sample_size: int = 0, side_counts: bool = True,
    segment_deltas: bool = False,
) -> str:
    """The keyed comparison when the checksums differ: a join of narrow rows, then a pass over the differences.

    * ``m``/``a``: each side's non-NULL keys with one hash of its compared columns (columns
      that cannot be hashed alike on both sides travel as values);
    * ``j``: one FULL OUTER JOIN on the key classifies each key: 1 missing in the pipeline,
      2 extra, 3 the hashes differ, 0 equal;
    * ``g``: one aggregate over the join, grouped by the key alone, keeps each differing key with
      its class and join rows, and folds all equal keys into a single row under a NULL key (so
      the join is read once and nothing of its size is kept); a key has one class (on both
      sides, or on one), so ``max(_cls)`` is that class and the group needs no second column;
      ``d`` is the differing keys;
    * ``x`` reads the compared columns of ``d`` from both sides (a semi-join on ``d``, which is
      small when the data is close, so each engine builds its hash table on the differing keys,
      not on the side) and applies the comparison with its tolerances: a hash
      difference within tolerance is no mismatch (``_c`` = 0);
    * the keys are proven unique in the same statement: a key on both sides and duplicated
      fans the join out (``join_rows_*`` above the side's non-NULL rows), and a duplicated key
      on one side only has two join rows in ``g`` (``one_sided_duplicates``).

    One row per sample (at most ``sample_size`` per class, by key), each carrying the counts;
    one row with NULL sample columns when there is nothing to sample. ``side_counts`` adds each
    side's rows and NULL-key rows (known already when the checksum ran). ``segment_deltas``
    (only when :func:`segments_derivable`) adds, per side and segment, what the differing rows
    add to each aggregate (``_side`` 'p' or 't', ``s_*``, ``d_n`` rows, ``d_<label>``, and
    ``d_nn_<label>`` non-NULL values of a summed column), one row each after the samples: the
    truth side's aggregates are then the pipeline's minus the one plus the other.
    """
    keys = key_names(spec)
    notnull = " and ".join(f"{k} is not null" for k in keys)
    isnull = " or ".join(f"{k} is null" for k in keys)
    on = lambda x, y: " and ".join(f"{x}.{k} = {y}.{k}" for k in keys)  # noqa: E731
    hashed = [c for c in spec.compare if "c_" + c not in model.unhashable]
    raw = [c for c in spec.compare if "c_" + c in model.unhashable]

    def narrow(sp: SidePlan) -> str:
        cols = list(keys)
        if hashed:
            cols.append(f"{_HASH}({', '.join(sp.hashed('c_' + c) for c in hashed)}) as _h")
        cols += [q("c_" + c) for c in raw]
        return f"select {', '.join(cols)} from ({sp.select(joined=True)}) as t where {notnull}"

    differ = ([ "m._h <> a._h"] if hashed else []) + [mismatch_sql(spec, c, "m." + q("c_" + c), "a." + q("c_" + c)) for c in raw]
    differ_sql = " or ".join(differ) or "false"
    flags = {c: q("f_" + c) for c in spec.compare}
    flag_cols = "".join(f", {mismatch_sql(spec, c, 'pm.' + q('c_' + c), 'pa.' + q('c_' + c))} as {f}" for c, f in flags.items())
    value_cols = "".join(f", pm.{q('c_' + c)} as {q('pipeline_' + c)}, pa.{q('c_' + c)} as {q('truth_' + c)}" for c in spec.compare)
    any_mm = " or ".join(flags.values()) or "false"
    col_counts = "".join(f", sum(case when _c = 3 and {f} then 1 else 0 end) as {q('mm_' + c)}" for c, f in flags.items())
    counts_ctes = counts_from = ""
    if side_counts:
        counts_ctes = "".join(
            f",\n     c{name[0]} as (select count(*) as rows_{name}, sum(case when {isnull} then 1 else 0 end) as null_keys_{name}"
            f" from ({sp.select(joined=True)}) as t)"
            for sp, name in ((model, "pipeline"), (truth, "truth")))
        counts_from = " cross join cp cross join ct"
    sample_cols = ", ".join([f"s.{k}" for k in keys] + [f"s.{q('pipeline_' + c)}, s.{q('truth_' + c)}" for c in spec.compare])
    presence = ""
    rows_cte, tail = "", f"s._c as _class, s._rn as _rn, {sample_cols}"
    joined_rows = f"left join s on s._rn <= {int(sample_size)}\norder by s._c, s._rn"
    if segment_deltas:
        presence = (f", case when pm.{keys[0]} is null then 0 else 1 end as _inp"
                    f", case when pa.{keys[0]} is null then 0 else 1 end as _ina")
        rows_cte, tail, joined_rows = _delta_rows(spec, keys, sample_cols, int(sample_size))
    return f"""
with m as ({narrow(model)}),
     a as ({narrow(truth)}),
     j as (
        select case when m.{keys[0]} is null then 1 when a.{keys[0]} is null then 2 when {differ_sql} then 3 else 0 end as _cls,
               {', '.join(f'm.{k} as {q(f"mk{i}")}, a.{k} as {q(f"ak{i}")}' for i, k in enumerate(keys))}
        from m full outer join a on {on('m', 'a')}
     ),
     g as (
        select {', '.join(f'case when _cls = 0 then null else coalesce({q(f"mk{i}")}, {q(f"ak{i}")}) end as {k}' for i, k in enumerate(keys))},
               max(_cls) as _cls, count(*) as _n
        from j group by {', '.join(str(i + 1) for i in range(len(keys)))}
     ),
     d as (select {', '.join(keys)}, _cls from g where _cls <> 0),
     pm as (select t.* from ({model.select(joined=True)}) as t where exists (select 1 from d where {on('d', 't')})),
     pa as (select t.* from ({truth.select(joined=True)}) as t where exists (select 1 from d where {on('d', 't')})),
     x as (
        select {', '.join(f'd.{k}' for k in keys)}, d._cls{value_cols}{flag_cols}{presence}
        from d left join pm on {on('pm', 'd')} left join pa on {on('pa', 'd')}
     ),
     y as (select *, case when _cls <> 3 then _cls when {any_mm} then 3 else 0 end as _c from x),
     s as (select *, row_number() over (partition by _c order by {', '.join(keys)}) as _rn from y where _c <> 0),
     cj as (
        select coalesce(sum(case when _cls <> 1 then _n else 0 end), 0) as join_rows_pipeline,
               coalesce(sum(case when _cls <> 2 then _n else 0 end), 0) as join_rows_truth,
               coalesce(sum(case when _cls in (0, 3) then _n else 0 end), 0) as matched
        from g
     ),
     cy as (
        select coalesce(sum(case when _c = 1 then 1 else 0 end), 0) as missing_in_pipeline,
               coalesce(sum(case when _c = 2 then 1 else 0 end), 0) as extra_in_pipeline,
               coalesce(sum(case when _c = 3 then 1 else 0 end), 0) as mismatched_rows{col_counts}
        from y
     ),
     cd as (select count(*) as one_sided_duplicates from g where _cls in (1, 2) and _n > 1){counts_ctes}{rows_cte}
select cj.*, cy.*, cd.*{', cp.*, ct.*' if side_counts else ''}, {tail}
from cj cross join cy cross join cd{counts_from} {joined_rows}
""".strip()


def _delta_rows(spec: ReconcileSpec, keys: list[str], sample_cols: str, sample_size: int) -> tuple[str, str, str]:
    """For :func:`keyed_sql` with ``segment_deltas``: the CTEs ``sc`` (per side and segment, what the
    differing rows add to each aggregate) and ``r`` (the samples, then those rows, in one column
    list), and the final select's columns and join."""
    segs = spec.segment_by
    parts = spec.aggregate_parts()

    def side(tag: str, prefix: str, flag: str) -> str:
        cols = [f"'{tag}' as _side"] + [f"{q(prefix + c)} as {q('s_' + c)}" for c in segs] + ["count(*) as d_n"]
        for fn, col, label in parts:
            arg = "*" if col == "*" else q(prefix + col)
            cols.append(f"{fn}({arg}) as {q('d_' + label)}")
            cols.append(f"count({arg}) as {q('d_nn_' + label)}" if fn == "sum" else f"null as {q('d_nn_' + label)}")
        group = f" group by {', '.join(q(prefix + c) for c in segs)}" if segs else ""
        return f"select {', '.join(cols)} from y where {flag} = 1{group}"

    delta_names = ["_side"] + [q("s_" + c) for c in segs] + ["d_n"] + [
        q(f"{pre}{label}") for _fn, _col, label in parts for pre in ("d_", "d_nn_")]
    sample_names = ["_class", "_rn"] + [k for k in keys] + [
        q(f"{side}_{c}") for c in spec.compare for side in ("pipeline", "truth")]
    first = (f"select s._c as _class, s._rn as _rn, {sample_cols}, "
             + ", ".join(f"null as {n}" for n in delta_names) + f" from s where s._rn <= {sample_size}")
    second = ("select " + ", ".join(f"null as {n}" for n in sample_names) + ", " + ", ".join(delta_names) + " from sc")
    ctes = f""",
     sc as ({side('p', 'pipeline_', '_inp')}
            union all
            {side('t', 'truth_', '_ina')}),
     r as ({first}
           union all
           {second})"""
    return ctes, "r.*", "left join r on 1 = 1\norder by r._class, r._rn"
