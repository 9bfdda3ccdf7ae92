"""filter_row_drop: a WHERE clause removing a share of rows that matches what is missing."""

from __future__ import annotations

from dagster_agent_de.core.models import ProposedFix
from dagster_agent_de.engines.investigate.context import InvestigationContext
from dagster_agent_de.engines.investigate.models import Hypothesis, agreement
from dagster_agent_de.manifest import Node

PATTERN = "filter_row_drop"


def detect(ctx: InvestigationContext, node: Node) -> list[Hypothesis]:
    out = []
    for flt in ctx.facts(node).filters:
        select = flt.select.copy()
        pred = flt.predicate.sql(dialect=ctx.dialect)
        for arg in ("where", "group", "having", "order", "limit", "qualify", "distinct"):
            select.set(arg, None)
        import sqlglot

        select.set("expressions", [sqlglot.parse_one(
            "count(*) as rows_in", read=ctx.dialect), sqlglot.parse_one(
            f"sum(case when ({pred}) then 1 else 0 end) as rows_kept", read=ctx.dialect)])
        root = flt.select.root()
        with_ = root.args.get("with_") or root.args.get("with")
        if with_ is not None and flt.select is not root:
            select.set("with_" if "with_" in type(select).arg_types else "with", with_.copy())
        res, ev = ctx.run(select.sql(dialect=ctx.dialect), f"share of rows the WHERE of {node.name} removes")
        if res is None:
            continue
        row = res.one()
        rows_in, kept = int(row["rows_in"] or 0), int(row["rows_kept"] or 0)
        dropped = rows_in - kept
        if rows_in == 0 or dropped == 0:
            continue
        pct = dropped * 100.0 / rows_in
        conf = 0.2 + 0.4 * agreement(pct, ctx.failure.missing_pct)
        out.append(Hypothesis(
            pattern=PATTERN, model=node.name, confidence=round(conf, 3),
            summary=f"WHERE {pred} in {node.name} removes {dropped:,} of {rows_in:,} rows ({pct:.1f}%).",
            evidence=[ev], proposed_fix=ProposedFix(description=f"Check that `{pred}` should exclude these rows."),
        ))
    return out
