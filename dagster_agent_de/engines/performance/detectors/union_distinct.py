"""union_distinct: ``UNION`` (which de-duplicates the whole result) where ``UNION ALL`` is meant.

The plan shows it as a hash aggregate over the union's rows; when it removes no row, the
de-duplication is pure cost. The rewrite is ``UNION ALL``; verification proves it removes nothing.
"""

from __future__ import annotations

import re

from sqlglot import exp

from dagster_agent_de.engines.performance.models import PerfContext, PerfHypothesis, Rewrite
from dagster_agent_de.engines.performance.plan import Operator

PATTERN = "union_distinct"
_UNION = re.compile(r"(?i)\bunion\b(?!\s+all\b)(?:\s+distinct\b)?")


def union_all(text: str) -> str:
    """Every de-duplicating ``union`` as ``union all``.

    >>> union_all("select 1 union select 2 UNION ALL select 3 union distinct select 4")
    'select 1 union all select 2 UNION ALL select 3 union all select 4'
    """
    return _UNION.sub("union all", text)


def _dedupe_over_union(op: Operator) -> tuple[Operator, Operator] | None:
    """(the aggregate, the union) when ``op`` is a grouping whose input is a union (projections between)."""
    if op.name not in ("HASH_GROUP_BY", "PERFECT_HASH_GROUP_BY") or not op.children:
        return None
    child = op.children[0]
    while child.name == "PROJECTION" and child.children:
        child = child.children[0]
    return (op, child) if child.name == "UNION" else None


def detect(ctx: PerfContext) -> list[PerfHypothesis]:
    unions = [u for u in ctx.tree.find_all(exp.Union) if u.args.get("distinct")]
    if not unions:
        return []
    pairs = [p for p in (_dedupe_over_union(o) for o in ctx.plan.operators()) if p]
    if not pairs:
        return []
    agg, union = pairs[0]
    rows_in = sum(c.rows for c in union.children) or agg.children[0].rows
    removed = rows_in - agg.rows
    share = ctx.plan.share(agg)
    conf = (0.9 if removed == 0 else 0.45) * (0.7 + 0.3 * min(share * 2, 1.0))
    return [PerfHypothesis(
        pattern=PATTERN, confidence=round(conf, 2),
        summary=(f"`union` de-duplicates {rows_in:,} rows and removes {removed:,}: {agg.seconds:.3f}s in "
                 f"{agg.name} ({share:.0%} of the operators' time); `union all` is meant"),
        operators=[agg.evidence(), union.evidence()],
        rewrites=[Rewrite("union -> union all", union_all)],
    )]
