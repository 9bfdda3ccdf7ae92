"""currency_mixing: summing or averaging an amount across currencies without converting it."""

from __future__ import annotations

import re

from dagster_agent_de.engines.investigate.context import InvestigationContext
from dagster_agent_de.engines.investigate.fixes import file_diff
from dagster_agent_de.engines.investigate.models import Hypothesis
from dagster_agent_de.manifest import Node

PATTERN = "currency_mixing"
MONEY = re.compile(r"(amount|revenue|price|total|value|gmv|paid|fee|cost)", re.I)
RATE = re.compile(r"(rate|fx|conversion|exchange)", re.I)
NOT_A_RATE = re.compile(r"(date|time|_at$|_id$|^id$|currency|source)", re.I)
SINGLE_CURRENCY_OUTPUT = re.compile(r"_(usd|eur|gbp|reporting)$", re.I)


def detect(ctx: InvestigationContext, node: Node) -> list[Hypothesis]:
    facts = ctx.facts(node)
    out = []
    for agg in facts.aggregates:
        if agg.func not in ("sum", "avg") or not agg.columns:
            continue
        names = [c.name for c in agg.columns]
        if not any(MONEY.search(n) for n in names) or any(RATE.search(n) for n in names):
            continue
        money = next(c for c in agg.columns if MONEY.search(c.name))
        labelled = bool(SINGLE_CURRENCY_OUTPUT.search(agg.output))
        grouped_by_currency = any("currency" in g.lower() for g in agg.group_by)
        if grouped_by_currency and not labelled:
            continue  # per-currency totals are fine
        relation = money.relation or next(iter(facts.relations.values()), None)
        if relation is None:
            continue
        if labelled:
            # named for one currency: every input row must already be in it (or be converted)
            sql = f"select count(distinct currency) as currencies from {relation}"
            why = f"{node.name}.{agg.output} is named for one currency: how many currencies feed it?"
        else:
            # mixing happens only if one group adds up more than one currency
            groups = [g.split(".")[-1] for g in agg.group_by]
            if groups:
                g = ", ".join(groups)
                sql = (f"select count(*) as mixed_groups, max(currencies) as currencies from (select {g}, "
                       f"count(distinct currency) as currencies from {relation} group by {g} "
                       f"having count(distinct currency) > 1) t")
            else:
                sql = f"select count(distinct currency) as currencies from {relation}"
            why = f"does {agg.func}({money.name}) in {node.name} add up more than one currency per group?"
        res, ev = ctx.run(sql, why)
        if res is None:
            continue
        row = res.one()
        n = int(row.get("currencies") or 0)
        if n <= 1 or ("mixed_groups" in row and int(row["mixed_groups"] or 0) == 0):
            continue
        rate_col = _rate_column(ctx, node)
        expr = agg.expression.sql(dialect=ctx.dialect)
        desc = (f"Convert before aggregating: {agg.func}({money.sql()} * {rate_col})" if rate_col
                else f"Convert {money.name} to the reporting currency before {agg.func}(), or group by currency")
        fix = None
        if rate_col:
            pattern = rf"(?i){agg.func}\(\s*{re.escape(money.sql())}\s*\)(\s+as\s+{re.escape(agg.output)})"
            replacement = f"{agg.func}({money.sql()} * {rate_col})\\1"
            fix = file_diff(ctx.manifest, node, lambda t, p=pattern, r=replacement: re.sub(p, r, t, count=1), desc)
        out.append(Hypothesis(
            pattern=PATTERN, model=node.name, confidence=0.85, columns=[agg.output, money.name],
            summary=(f"{node.name}.{agg.output} = {expr} adds amounts in {n} currencies without converting them"
                     + (" although the column is named for one currency" if SINGLE_CURRENCY_OUTPUT.search(agg.output) else "")),
            evidence=[ev], proposed_fix=fix,
        ))
    return out


def _rate_column(ctx: InvestigationContext, node: Node) -> str | None:
    """A rate column already available in the model (from a joined FX table)."""
    for alias, relation in ctx.facts(node).relations.items():
        rel = ctx.relation_node(relation)
        if rel is None:
            continue
        sql = ctx.manifest.compiled_sql(rel.unique_id) or ""
        cols = [c for c in rel.columns] + re.findall(r"\bas\s+(\w+)", sql, re.I) + re.findall(r"^\s*(\w+),?\s*$", sql, re.M)
        candidates = [c for c in dict.fromkeys(cols) if RATE.search(c) and not NOT_A_RATE.search(c)]
        if candidates:
            best = sorted(candidates, key=lambda c: (not re.search(r"to_(usd|reporting)", c, re.I), len(c)))[0]
            return f"{alias}.{best}"
    return None
