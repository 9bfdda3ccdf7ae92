"""order_by: a model's final ``order by`` (no ``limit``): the whole result is sorted, and a table keeps no order.

The plan shows an ``ORDER_BY`` over every row of the result. Rows of a table or view are unordered to
whoever reads them, so the sort is pure cost (a consumer that needs an order sorts its own query). The
rewrite drops it; verification proves the rows are the same.
"""

from __future__ import annotations

import re

from sqlglot import exp

from dagster_agent_de.engines.performance.models import PerfContext, PerfHypothesis, Rewrite

PATTERN = "order_by"
MIN_ROWS = 10_000
_FINAL_ORDER = re.compile(r"(?is)\s+order\s+by\s+[^()]*?(?=\s*;?\s*$)")


def drop_final_order_by(text: str) -> str:
    """The text without its trailing ``order by`` clause (one with no parentheses, at the end).

    >>> drop_final_order_by("select a, b from t\\norder by a desc, b\\n")
    'select a, b from t\\n'
    >>> drop_final_order_by("select a from t order by a limit 5")
    'select a from t order by a limit 5'
    """
    m = _FINAL_ORDER.search(text)
    if m is None or re.search(r"(?i)\b(limit|offset|fetch)\b", m.group(0)):
        return text
    return text[: m.start()] + text[m.end():]


def detect(ctx: PerfContext) -> list[PerfHypothesis]:
    root = ctx.tree
    if not isinstance(root, (exp.Select, exp.SetOperation)) or root.args.get("order") is None:
        return []
    if root.args.get("limit") or root.args.get("offset") or root.args.get("fetch"):
        return []  # a top-N: the order is part of the result
    sorts = [o for o in ctx.plan.operators() if o.name == "ORDER_BY" and o.rows >= MIN_ROWS]
    if not sorts:
        return []
    op = max(sorts, key=lambda o: o.rows)
    return [PerfHypothesis(
        pattern=PATTERN, confidence=0.6,
        summary=(f"the model sorts its whole result ({op.rows:,} rows, {op.seconds:.3f}s in {op.name}, "
                 f"{ctx.plan.share(op):.0%} of the operators' time); a table keeps no order: drop the final order by"),
        operators=[op.evidence()],
        rewrites=[Rewrite("drop the final order by", drop_final_order_by)],
    )]
