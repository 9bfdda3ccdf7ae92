"""filter_row_drop: a WHERE clause removing a share of rows that matches what is missing.

An incremental model's cut-off (its ``is_incremental()`` block, e.g. ``ordered_at > (select max(ordered_at)
from {{ this }})``) is measured apart and said to be one: the rows it removes now were loaded by earlier runs
(or, arriving late, never will be), which is not a business rule dropping rows.
"""

from __future__ import annotations

from sqlglot import exp

from dagster_agent_de.core.models import ProposedFix
from dagster_agent_de.engines.investigate.context import InvestigationContext
from dagster_agent_de.engines.investigate.models import Hypothesis, agreement
from dagster_agent_de.manifest import Node
from dagster_agent_de.sql.facts import FilterFact

PATTERN = "filter_row_drop"
CUTOFF_CONFIDENCE = 0.3  # late rows are a possible cause; today's counts cannot tell them from rows loaded before


def detect(ctx: InvestigationContext, node: Node) -> list[Hypothesis]:
    out: list[Hypothesis] = []
    if node.is_source:
        return out
    for flt in ctx.facts(node).filters:
        where = f" (in the CTE {flt.scope})" if flt.scope != "main" else ""
        business = flt.business
        if business is not None:
            h = _business(ctx, node, flt, business, where)
            if h is not None:
                out.append(h)
        if flt.cutoff:
            h = _cutoff(ctx, node, flt, business, where)
            if h is not None:
                out.append(h)
    return out


def _business(ctx: InvestigationContext, node: Node, flt: FilterFact, pred_expr: exp.Expr, where: str) -> Hypothesis | None:
    pred = pred_expr.sql(dialect=ctx.dialect)
    apart = " (without its incremental cut-off, measured apart)" if flt.cutoff else ""
    sql = ctx.counts_sql(flt.select, {"rows_in": None, "rows_kept": pred_expr})
    res, ev = ctx.run(sql, f"share of rows the WHERE of {node.name}{where}{apart} removes")
    if res is None:
        return None
    row = res.one()
    rows_in, kept = int(row["rows_in"] or 0), int(row["rows_kept"] or 0)
    dropped = rows_in - kept
    if rows_in == 0 or dropped == 0:
        return None
    pct = dropped * 100.0 / rows_in
    conf = 0.2 + 0.4 * agreement(pct, ctx.failure.missing_pct)
    counted, refill = ctx.refill(node)
    return Hypothesis(
        pattern=PATTERN, model=node.name, confidence=round(conf, 3),
        summary=f"WHERE {pred}{where} in {node.name} removes {dropped:,} of {rows_in:,} rows ({pct:.1f}%).{counted}",
        evidence=[ev], proposed_fix=ProposedFix(description=f"Check that `{pred}` should exclude these rows; no diff is "
                                                            f"proposed because which rows belong is a business rule{refill}."),
    )


def _cutoff(ctx: InvestigationContext, node: Node, flt: FilterFact, business: exp.Expr | None,
            where: str) -> Hypothesis | None:
    cut = " and ".join(c.sql(dialect=ctx.dialect) for c in flt.cutoff)
    sql = ctx.counts_sql(flt.select, {"rows_in": business, "rows_kept": flt.predicate})
    res, ev = ctx.run(sql, f"rows entering the incremental cut-off of {node.name}{where} and rows beyond it "
                           f"(newer than the latest already in {node.name})")
    if res is None:
        return None
    row = res.one()
    rows_in, kept = int(row["rows_in"] or 0), int(row["rows_kept"] or 0)
    if rows_in == 0 or kept == rows_in:
        return None
    behind = rows_in - kept
    return Hypothesis(
        pattern=PATTERN, model=node.name, confidence=CUTOFF_CONFIDENCE,
        summary=(f"WHERE {cut}{where} in {node.name} is its incremental cut-off (the `is_incremental()` "
                 f"filter), not a business filter: of the {rows_in:,} rows "
                 f"entering it now it keeps the {kept:,} rows newer than the latest already in {node.name}. The other "
                 f"{behind:,} were loaded by earlier runs, or, if they arrived after a run had passed them, are never "
                 "loaded: rows missing from it may be such late rows."),
        evidence=[ev], proposed_fix=ProposedFix(description=(
            f"If the missing rows arrived late (at or before the cut-off when a run passed them), load them with "
            f"`dbt build --full-refresh -s {node.name}` (or a backfill of the range), and give the cut-off a lookback "
            f"(e.g. `>= max(...) - interval '3 days'` with a unique_key so re-read rows merge) if late rows are "
            "normal; no diff is proposed because the lookback window is a business choice.")),
    )
