"""filter_row_drop: a WHERE clause removing a share of rows that matches what is missing."""

from __future__ import annotations

from dagster_agent_de.core.models import ProposedFix
from dagster_agent_de.engines.investigate.context import InvestigationContext
from dagster_agent_de.engines.investigate.models import Hypothesis, agreement
from dagster_agent_de.manifest import Node

PATTERN = "filter_row_drop"


def detect(ctx: InvestigationContext, node: Node) -> list[Hypothesis]:
    out: list[Hypothesis] = []
    if node.is_source:
        return out
    for flt in ctx.facts(node).filters:
        pred = flt.predicate.sql(dialect=ctx.dialect)
        sql = ctx.scope_sql(flt.select, ["count(*) as rows_in", f"sum(case when ({pred}) then 1 else 0 end) as rows_kept"])
        where = f" (in the CTE {flt.scope})" if flt.scope != "main" else ""
        res, ev = ctx.run(sql, f"share of rows the WHERE of {node.name}{where} removes")
        if res is None:
            continue
        row = res.one()
        rows_in, kept = int(row["rows_in"] or 0), int(row["rows_kept"] or 0)
        dropped = rows_in - kept
        if rows_in == 0 or dropped == 0:
            continue
        pct = dropped * 100.0 / rows_in
        conf = 0.2 + 0.4 * agreement(pct, ctx.failure.missing_pct)
        counted, refill = ctx.refill(node)
        out.append(Hypothesis(
            pattern=PATTERN, model=node.name, confidence=round(conf, 3),
            summary=f"WHERE {pred}{where} in {node.name} removes {dropped:,} of {rows_in:,} rows ({pct:.1f}%).{counted}",
            evidence=[ev], proposed_fix=ProposedFix(description=f"Check that `{pred}` should exclude these rows; no diff is "
                                                                f"proposed because which rows belong is a business rule{refill}."),
        ))
    return out
