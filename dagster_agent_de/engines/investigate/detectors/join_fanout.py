"""join_fanout: joining on a key that is not unique on the joined side multiplies rows."""

from __future__ import annotations

from dagster_agent_de.core.models import ProposedFix
from dagster_agent_de.engines.investigate.context import InvestigationContext
from dagster_agent_de.engines.investigate.models import Hypothesis, agreement
from dagster_agent_de.manifest import Node

PATTERN = "join_fanout"


def detect(ctx: InvestigationContext, node: Node) -> list[Hypothesis]:
    out = []
    for join in ctx.facts(node).joins:
        if not join.pairs or not join.right_relation:
            continue
        keys = ", ".join(b.name for _, b in join.pairs)
        sql = (f"select count(*) as key_rows, count(*) - count(distinct ({keys})) as extra_rows, "
               f"max(n) as max_per_key from (select {keys}, count(*) over (partition by {keys}) as n "
               f"from {join.right_relation} where {' and '.join(f'{b.name} is not null' for _, b in join.pairs)}) t")
        res, ev = ctx.run(sql, f"is ({keys}) unique in {join.right_alias}, which {node.name} joins on?")
        if res is None:
            continue
        row = res.one()
        extra, total, factor = int(row["extra_rows"] or 0), int(row["key_rows"] or 0), int(row["max_per_key"] or 1)
        if extra <= 0:
            continue
        pct = extra * 100.0 / max(total - extra, 1)
        conf = 0.4 + 0.5 * agreement(pct, ctx.failure.extra_pct)
        out.append(Hypothesis(
            pattern=PATTERN, model=node.name, confidence=round(conf, 3), columns=[b.name for _, b in join.pairs],
            summary=(f"{node.name} joins {join.right_alias} on ({keys}), which is not unique there: {extra:,} extra "
                     f"rows, up to {factor}x per key, so rows fan out."),
            evidence=[ev],
            proposed_fix=ProposedFix(description=f"Deduplicate {join.right_alias} to one row per ({keys}) before the join, "
                                                 "or join on the full grain."),
        ))
    return out
