"""null_semantics: comparisons that are never true for NULL silently drop rows (and COUNT(col)).

The NULLs are counted in the rows that enter the filter, in the scope the filter is in (a CTE
reads its CTEs), so a filter in a logical CTE on a column of an import CTE is measured as written.
"""

from __future__ import annotations

import re

from dagster_agent_de.engines.investigate.context import InvestigationContext
from dagster_agent_de.engines.investigate.fixes import file_diff
from dagster_agent_de.engines.investigate.models import Hypothesis, agreement
from dagster_agent_de.manifest import Node

PATTERN = "null_semantics"
_OPS = {"NEQ": "<>", "NOT IN": "not in"}


def detect(ctx: InvestigationContext, node: Node) -> list[Hypothesis]:
    if node.is_source:
        return []
    facts = ctx.facts(node)
    out = []
    seen = set()
    for flt in facts.filters:
        for col, op in flt.null_dropping:
            if op not in ("NEQ", "NOT IN") or (flt.scope, col.sql()) in seen:
                continue  # `a = 'x'` dropping NULLs is intended; `<>`/NOT IN is the classic trap
            seen.add((flt.scope, col.sql()))
            sql = ctx.scope_sql(flt.select, ["count(*) as rows_in",
                                             f"sum(case when {col.sql()} is null then 1 else 0 end) as null_rows"])
            where = f" (in the CTE {flt.scope})" if flt.scope != "main" else ""
            res, ev = ctx.run(sql, f"how many rows entering the filter of {node.name}{where} have {col.sql()} NULL "
                                   f"(dropped by `{_OPS[op]}`)?")
            if res is None:
                continue
            row = res.one()
            rows_in, nulls = int(row["rows_in"] or 0), int(row["null_rows"] or 0)
            if nulls == 0:
                continue
            pct = nulls * 100.0 / rows_in if rows_in else 0.0
            conf = 0.55 + 0.4 * agreement(pct, ctx.failure.missing_pct)
            opsql = _OPS[op]
            counted, refill = ctx.refill(node)
            desc = (f"`{col.sql()} {opsql} ...` is NULL (not true) for rows where {col.name} is NULL; "
                    f"use `{col.sql()} is distinct from ...` (or handle NULL explicitly) to keep them{refill}")
            fix = file_diff(ctx.manifest, node, lambda t, c=col, o=op: _keep_nulls(t, c.alias, c.name, o), desc)
            base = f" ({col.base})" if col.relation and col.column != col.name else ""
            out.append(Hypothesis(
                pattern=PATTERN, model=node.name, confidence=round(conf, 3), columns=[col.name],
                summary=(f"The filter `{flt.predicate.sql()}`{where} in {node.name} drops the {nulls:,} rows "
                         f"({pct:.1f}%) where {col.name}{base} is NULL: `{opsql}` is never true for NULL.{counted}"),
                evidence=[ev], proposed_fix=fix,
                needs_business_context=(f"Rows of {node.name} with {col.name} NULL: should they count "
                                        f"(as not '{_literal(flt.predicate.sql())}') or be excluded?"),
            ))
    for agg in facts.aggregates:
        if agg.func != "count" or not agg.columns:
            continue
        col = agg.columns[0]
        sql = ctx.scope_sql(agg.select, ["count(*) as rows_in", f"count({col.sql()}) as non_null"])
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


def _keep_nulls(text: str, alias: str | None, name: str, op: str) -> str:
    """``status <> 'x'`` -> ``status is distinct from 'x'``; ``status not in (...)`` -> ``coalesce(status not in (...), true)``."""
    col = rf"(?:\b{re.escape(alias)}\s*\.\s*)?{re.escape(name)}\b" if alias else rf"(?<![\w.]){re.escape(name)}\b"
    if op == "NEQ":
        return re.sub(rf"(?i)({col})\s*(<>|!=)\s*", r"\1 is distinct from ", text, count=1)
    return re.sub(rf"(?i)(?<![\w.])({col}\s+not\s+in\s*\([^)]*\))", r"coalesce(\1, true)", text, count=1)


def _literal(sql: str) -> str:
    m = re.search(r"'([^']*)'", sql)
    return m.group(1) if m else "the value"
