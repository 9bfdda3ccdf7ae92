"""cross_join: a cartesian product (``cross join``, a comma join with no condition, or a join whose
condition the engine cannot hash on) emitting far more rows than either input.

The plan shows a ``CROSS_PRODUCT`` or nested-loop join multiplying its inputs. The missing condition is
the model author's to state (no rewrite is guessed); the finding names the join and its numbers.
"""

from __future__ import annotations

from sqlglot import exp

from dagster_agent_de.engines.performance.models import PerfContext, PerfHypothesis

PATTERN = "cross_join"
MIN_ROWS = 10_000
"""A product of fewer rows than this is a lookup, not a problem (a one-row parameter table, scalar subqueries)."""
FANOUT = 2.0
_PRODUCTS = ("CROSS_PRODUCT", "NESTED_LOOP_JOIN", "BLOCKWISE_NL_JOIN", "PIECEWISE_MERGE_JOIN")


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
    if not products:
        return []
    op = max(products, key=lambda o: o.rows)
    written = _written_cross_joins(ctx.tree)
    where = f" (the join to {written[0]} has no condition)" if written else ""
    conf = 0.85 if written else 0.6
    return [PerfHypothesis(
        pattern=PATTERN, confidence=conf,
        summary=(f"{op.name} multiplies inputs of {' x '.join(f'{c.rows:,}' for c in op.children)} rows into "
                 f"{op.rows:,}{where}: {ctx.plan.share(op):.0%} of the operators' time; state the join condition"),
        operators=[op.evidence()],
    )]
