"""currency_mixing: summing or averaging an amount across currencies without converting it.

Applies only where a currency-like column sits next to the amount (in the aggregate's own scope, a
CTE or the final select); the measurement runs in that scope, with the model's CTEs.
"""

from __future__ import annotations

import re

from sqlglot import exp

from dagster_agent_de.engines.investigate.context import InvestigationContext
from dagster_agent_de.engines.investigate.fixes import file_diff
from dagster_agent_de.engines.investigate.models import Hypothesis
from dagster_agent_de.manifest import Node
from dagster_agent_de.sql.facts import AggregateFact

PATTERN = "currency_mixing"
MONEY = re.compile(r"(amount|revenue|price|total|value|gmv|paid|fee|cost)", re.I)
RATE = re.compile(r"(rate|fx|conversion|exchange)", re.I)
NOT_A_RATE = re.compile(r"(date|time|_at$|_id$|^id$|currency|source)", re.I)
CURRENCY = re.compile(r"^(currency|currency_code|ccy|iso_currency|currency_iso)$", re.I)
SINGLE_CURRENCY_OUTPUT = re.compile(r"_(usd|eur|gbp|reporting)$", re.I)


def detect(ctx: InvestigationContext, node: Node) -> list[Hypothesis]:
    if node.is_source:
        return []
    facts = ctx.facts(node)
    out = []
    for agg in facts.aggregates:
        if agg.func not in ("sum", "avg") or not agg.columns:
            continue
        names = [c.name for c in agg.columns]
        if not any(MONEY.search(n) for n in names) or any(RATE.search(n) for n in names):
            continue
        money = next(c for c in agg.columns if MONEY.search(c.name))
        currency = _currency_column(ctx, node, agg, money.alias)
        if currency is None:
            continue  # no currency next to the amount: the detector does not apply
        label = agg.model_output or agg.output
        labelled = bool(SINGLE_CURRENCY_OUTPUT.search(label) or SINGLE_CURRENCY_OUTPUT.search(agg.output))
        grouped_by_currency = any(CURRENCY.search(g.split(".")[-1].strip('"')) for g in agg.group_by)
        if grouped_by_currency and not labelled:
            continue  # per-currency totals are fine
        if labelled or not agg.group_by:
            sql = ctx.scope_sql(agg.select, [f"count(distinct {currency}) as currencies"])
            why = f"{node.name}.{label} is named for one currency: how many currencies feed it?"
        else:
            inner = ctx.scope_sql(agg.select, [*agg.group_by, f"count(distinct {currency}) as currencies"])
            groups = ", ".join(agg.group_by)
            sql = (f"select count(*) as mixed_groups, max(currencies) as currencies from ({inner} group by {groups} "
                   f"having count(distinct {currency}) > 1) t")
            why = f"does {agg.func}({money.name}) in {node.name} add up more than one currency per group?"
        res, ev = ctx.run(sql, why)
        if res is None:
            continue
        row = res.one()
        n = int(row.get("currencies") or 0)
        if n <= 1 or ("mixed_groups" in row and int(row["mixed_groups"] or 0) == 0):
            continue
        rate_col = _rate_column(ctx, node, agg)
        expr = agg.expression.sql(dialect=ctx.dialect)
        desc = (f"Convert before aggregating: {agg.func}({money.sql()} * {rate_col})" if rate_col
                else f"Convert {money.name} to the reporting currency before {agg.func}(), or group by currency; no diff "
                     "is proposed because no exchange rate is joined in this model")
        fix = None
        if rate_col:
            written = rf"(?:\w+\s*\.\s*)?{re.escape(money.name)}" if money.alias else re.escape(money.name)
            pattern = rf"(?i)\b{agg.func}\(\s*({written})\s*\)(\s+as\s+{re.escape(agg.output)}\b)"
            replacement = rf"{agg.func}(\1 * {rate_col})\2"
            fix = file_diff(ctx.manifest, node, lambda t, p=pattern, r=replacement: re.sub(p, r, t, count=1), desc)
        out.append(Hypothesis(
            pattern=PATTERN, model=node.name, confidence=0.85, columns=[label, money.name],
            summary=(f"{node.name}.{label} = {expr} adds amounts in {n} currencies without converting them"
                     + (" although the column is named for one currency" if labelled else "")),
            evidence=[ev], proposed_fix=fix,
        ))
    return out


def _scope_columns(ctx: InvestigationContext, node: Node, agg: AggregateFact) -> dict[str, list[str]]:
    """alias -> column names each source of the aggregate's SELECT offers (known from its SQL or the relation)."""
    assert ctx.tracer is not None
    analysis = ctx.tracer.analysis(node)
    scope = analysis.scope_of(agg.select)
    out: dict[str, list[str]] = {}
    if scope is None:
        return out
    for alias, src in analysis.sources(scope).items():
        cols: list[str] = []
        if isinstance(src, exp.Table):
            rel = ctx.relation_node(analysis.source_relation(scope, alias))
            cols = _node_columns(ctx, rel)
        else:
            expr = src.expression
            selects = expr.selects if isinstance(expr, (exp.Select, exp.SetOperation)) else []
            for p in selects:
                if isinstance(p, exp.Star) or (isinstance(p, exp.Column) and isinstance(p.this, exp.Star)):
                    cols += _node_columns(ctx, ctx.relation_node(analysis.source_relation(scope, alias)))
                else:
                    cols.append(p.alias_or_name.lower())
        out[alias] = cols
    return out


def _node_columns(ctx: InvestigationContext, node: Node | None) -> list[str]:
    if node is None:
        return []
    assert ctx.tracer is not None
    if not node.is_source:
        ctx.tracer.analysis(node)
        known = ctx.tracer.output_columns(node)
        if known:
            return known
    return ctx.relation_columns(node)


def _currency_column(ctx: InvestigationContext, node: Node, agg: AggregateFact, money_alias: str | None) -> str | None:
    """A currency column readable in the aggregate's scope (preferably from the amount's own source)."""
    cols = _scope_columns(ctx, node, agg)
    order = ([money_alias] if money_alias in cols else []) + [a for a in cols if a != money_alias]
    for alias in order:
        for c in cols[alias]:
            if CURRENCY.search(c):
                return f"{alias}.{c}"
    return None


def _rate_column(ctx: InvestigationContext, node: Node, agg: AggregateFact) -> str | None:
    """A rate column already available in the aggregate's scope (from a joined FX table)."""
    for alias, cols in _scope_columns(ctx, node, agg).items():
        candidates = [c for c in dict.fromkeys(cols) if RATE.search(c) and not NOT_A_RATE.search(c)]
        if candidates:
            best = sorted(candidates, key=lambda c: (not re.search(r"to_(usd|reporting)", c, re.I), len(c)))[0]
            return f"{alias}.{best}"
    return None
