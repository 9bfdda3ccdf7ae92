"""null_semantics: comparisons that are never true for NULL silently drop rows (and COUNT(col))."""

from __future__ import annotations

import re

from dagster_agent_de.engines.investigate.context import InvestigationContext
from dagster_agent_de.engines.investigate.fixes import file_diff
from dagster_agent_de.engines.investigate.models import Hypothesis, agreement
from dagster_agent_de.manifest import Node

PATTERN = "null_semantics"
_OPS = {"NEQ": "<>", "NOT IN": "not in"}


def detect(ctx: InvestigationContext, node: Node) -> list[Hypothesis]:
    facts = ctx.facts(node)
    out = []
    seen = set()
    for flt in facts.filters:
        for col, op in flt.null_dropping:
            if op not in ("NEQ", "NOT IN") or not col.relation or (col.relation, col.name) in seen:
                continue  # `a = 'x'` dropping NULLs is intended; `<>`/NOT IN is the classic trap
            seen.add((col.relation, col.name))
            sql = (f"select count(*) as rows_in, sum(case when {col.name} is null then 1 else 0 end) as null_rows "
                   f"from {col.relation}")
            res, ev = ctx.run(sql, f"how many rows of {col.relation} have {col.name} NULL (dropped by `{op}`)?")
            if res is None:
                continue
            row = res.one()
            rows_in, nulls = int(row["rows_in"] or 0), int(row["null_rows"] or 0)
            if nulls == 0:
                continue
            pct = nulls * 100.0 / rows_in if rows_in else 0.0
            conf = 0.55 + 0.4 * agreement(pct, ctx.failure.missing_pct)
            opsql = _OPS[op]
            desc = (f"`{col.name} {opsql} ...` is NULL (not true) for rows where {col.name} is NULL; "
                    f"use `{col.name} is distinct from ...` (or handle NULL explicitly) to keep them")
            name = re.escape(col.name)
            fix = file_diff(ctx.manifest, node,
                            lambda t, n=name: re.sub(rf"(?i)\b((?:\w+\.)?{n})\s*(<>|!=)\s*", r"\1 is distinct from ", t, count=1),
                            desc)
            out.append(Hypothesis(
                pattern=PATTERN, model=node.name, confidence=round(conf, 3), columns=[col.name],
                summary=(f"The filter `{flt.predicate.sql()}` in {node.name} drops the {nulls:,} rows "
                         f"({pct:.1f}%) where {col.name} is NULL: `{opsql}` is never true for NULL."),
                evidence=[ev], proposed_fix=fix,
                needs_business_context=(f"Rows of {node.name} with {col.name} NULL: should they count "
                                        f"(as not '{_literal(flt.predicate.sql())}') or be excluded?"),
            ))
    for agg in facts.aggregates:
        if agg.func != "count" or not agg.columns or agg.columns[0].relation is None:
            continue
        col = agg.columns[0]
        sql = f"select count(*) as rows_in, count({col.name}) as non_null from {col.relation}"
        res, ev = ctx.run(sql, f"does COUNT({col.name}) in {node.name} skip NULLs?")
        if res is None:
            continue
        row = res.one()
        skipped = int(row["rows_in"] or 0) - int(row["non_null"] or 0)
        if skipped > 0:
            out.append(Hypothesis(
                pattern=PATTERN, model=node.name, confidence=0.35, columns=[col.name],
                summary=f"COUNT({col.name}) in {node.name} skips {skipped:,} NULL rows; COUNT(*) would count them.",
                evidence=[ev],
            ))
    return out


def _literal(sql: str) -> str:
    m = re.search(r"'([^']*)'", sql)
    return m.group(1) if m else "the value"
