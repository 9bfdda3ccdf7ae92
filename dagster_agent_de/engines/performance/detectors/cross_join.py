"""cross_join: a cartesian product (``cross join``, a comma join with no condition, or a join whose
condition the engine cannot hash on) emitting far more rows than either input, or spending most of the
query in a range join over it.

The plan shows a ``CROSS_PRODUCT`` or nested-loop join multiplying its inputs, or a written cross join
the engine runs as a range join (``PIECEWISE_MERGE_JOIN``, ``IE_JOIN``) because its only condition in
WHERE is a range. One such shape has a rewrite: a day bucket, ``x >= d.day and x < d.day + interval 1
day`` against a spine of dates, is the equality ``cast(x as date) = d.day``, which the engine hashes
(verification proves the rows are the same, i.e. that ``d.day`` holds dates). Otherwise the missing
condition is the model author's to state: the finding names the join and its numbers.
"""

from __future__ import annotations

import re

from sqlglot import exp

from dagster_agent_de.engines.performance.models import PerfContext, PerfHypothesis, Rewrite

PATTERN = "cross_join"
MIN_ROWS = 10_000
"""A product of fewer rows than this is a lookup, not a problem (a one-row parameter table, scalar subqueries)."""
FANOUT = 2.0
_PRODUCTS = ("CROSS_PRODUCT", "NESTED_LOOP_JOIN", "BLOCKWISE_NL_JOIN", "PIECEWISE_MERGE_JOIN")
_RANGE_JOINS = ("PIECEWISE_MERGE_JOIN", "IE_JOIN", "NESTED_LOOP_JOIN", "BLOCKWISE_NL_JOIN")
MIN_SHARE = 0.5
"""A range join over a written cross join taking this part of the operators' time is the problem."""
_DAY_BUCKET = re.compile(
    r"(?i)(?P<x>\b[\w.]+)\s*>=\s*(?P<d>\b\w+\.\w+)\s+and\s+(?P=x)\s*<\s*(?P=d)\s*\+\s*"
    r"interval\s*(?:'1'\s*day|1\s*day|'1 day')")


def day_bucket(text: str) -> str:
    """``x >= d.day and x < d.day + interval 1 day`` as ``cast(x as date) = d.day`` (a condition the engine hashes).

    >>> day_bucket("where o.ordered_at >= d.day and o.ordered_at < d.day + interval 1 day and o.x = 1")
    'where cast(o.ordered_at as date) = d.day and o.x = 1'
    """
    return _DAY_BUCKET.sub(lambda m: f"cast({m.group('x')} as date) = {m.group('d')}", text)


def _written_cross_joins(tree: exp.Expr) -> list[str]:
    """The joins written without a condition, as written (``cross join x``, ``from a, b``)."""
    out = []
    for join in tree.find_all(exp.Join):
        if join.args.get("on") is None and not join.args.get("using") and join.args.get("kind", "").upper() != "SEMI":
            out.append(join.this.sql(dialect="duckdb"))
    return out


def detect(ctx: PerfContext) -> list[PerfHypothesis]:
    products = [o for o in ctx.plan.operators() if o.name in _PRODUCTS and len(o.children) >= 2
                and o.rows >= MIN_ROWS and o.rows >= FANOUT * max(c.rows for c in o.children)]
    written = _written_cross_joins(ctx.tree)
    if not products and written:
        ranged = [o for o in ctx.plan.operators() if o.name in _RANGE_JOINS and len(o.children) >= 2
                  and o.rows >= MIN_ROWS and ctx.plan.share(o) >= MIN_SHARE]
        if ranged:
            op = max(ranged, key=lambda o: o.seconds)
            rewrites = [Rewrite("the day bucket as an equality the engine hashes", day_bucket)] if _DAY_BUCKET.search(
                ctx.sql) else []
            return [PerfHypothesis(
                pattern=PATTERN, confidence=0.8 if rewrites else 0.6,
                summary=(f"the cross join to {written[0]} is filtered by a range only ({op.info('Conditions') or '?'}): "
                         f"{op.name} over {' x '.join(f'{c.rows:,}' for c in op.children)} rows takes {op.seconds:.3f}s, "
                         f"{ctx.plan.share(op):.0%} of the operators' time; state it as an equality the engine can hash"),
                operators=[op.evidence()],
                rewrites=rewrites,
            )]
    if not products:
        return []
    op = max(products, key=lambda o: o.rows)
    where = f" (the join to {written[0]} has no condition)" if written else ""
    conf = 0.85 if written else 0.6
    return [PerfHypothesis(
        pattern=PATTERN, confidence=conf,
        summary=(f"{op.name} multiplies inputs of {' x '.join(f'{c.rows:,}' for c in op.children)} rows into "
                 f"{op.rows:,}{where}: {ctx.plan.share(op):.0%} of the operators' time; state the join condition"),
        operators=[op.evidence()],
    )]
