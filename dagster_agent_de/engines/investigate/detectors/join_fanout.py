"""join_fanout: joining on a key that is not unique on the joined side multiplies rows.

The right side is measured as the join reads it (a ref(), a CTE, a derived table). The fix fixes
the join: join on the full grain when the joined relation declares a unique key the left side also
has, else pre-aggregate the joined side to one row per key. Never a dedupe of the result, which
would hide the bug and keep an arbitrary row.
"""

from __future__ import annotations

from sqlglot import exp

from dagster_agent_de.engines.investigate.context import InvestigationContext
from dagster_agent_de.engines.investigate.fixes import file_diff, rewrite_join
from dagster_agent_de.engines.investigate.models import Hypothesis, agreement
from dagster_agent_de.manifest import Node
from dagster_agent_de.sql.facts import JoinFact

PATTERN = "join_fanout"


def detect(ctx: InvestigationContext, node: Node) -> list[Hypothesis]:
    if node.is_source:
        return []
    out = []
    for join in ctx.facts(node).joins:
        if not join.pairs or not join.right_from:
            continue
        keys = ", ".join(b.name for _, b in join.pairs)
        sql = (f"select count(*) as key_rows, count(*) - count(distinct ({keys})) as extra_rows, "
               f"max(n) as max_per_key from (select {keys}, count(*) over (partition by {keys}) as n "
               f"from {join.right_from} where {' and '.join(f'{b.name} is not null' for _, b in join.pairs)}) t")
        res, ev = ctx.run(sql, f"is ({keys}) unique in {join.right_alias}, which {node.name} joins on?")
        if res is None:
            continue
        row = res.one()
        extra, total, factor = int(row["extra_rows"] or 0), int(row["key_rows"] or 0), int(row["max_per_key"] or 1)
        if extra <= 0:
            continue
        pct = extra * 100.0 / max(total - extra, 1)
        conf = 0.4 + 0.5 * agreement(pct, ctx.failure.extra_pct)
        if _fails_uniqueness_here(ctx, node):
            # the model's own unique test fails, or a reconciliation of it found duplicate keys on the
            # pipeline side, and this join multiplies its rows
            conf = max(conf, 0.92)
        where = f" (in the CTE {join.scope})" if join.scope != "main" else ""
        out.append(Hypothesis(
            pattern=PATTERN, model=node.name, confidence=round(conf, 3), columns=[b.name for _, b in join.pairs],
            summary=(f"{node.name} joins {join.right_alias}{where} on ({keys}), which is not unique there: {extra:,} extra "
                     f"rows, up to {factor}x per key, so rows fan out."),
            evidence=[ev], proposed_fix=_fix(ctx, node, join, keys),
        ))
    return out


def _fails_uniqueness_here(ctx: InvestigationContext, node: Node) -> bool:
    check = (ctx.failure.check or "").lower()
    duplicated = ctx.failure.kind == "reconciliation" and int(ctx.failure.metadata.get("duplicate_keys_pipeline") or 0) > 0
    if not duplicated and not check.startswith(("unique", "dbt_utils_unique")):
        return False
    try:
        return ctx.manifest.find(ctx.failure.asset).unique_id == node.unique_id
    except Exception:
        return False


def _fix(ctx: InvestigationContext, node: Node, join: JoinFact, keys: str):
    right_node = ctx.relation_node(join.right_relation)
    names = [join.right_name, right_node.name if right_node is not None else "", join.right_alias]
    used = sorted({c.name for c in join.select.find_all(exp.Column)
                   if (c.table or "") == join.right_alias and c.name.lower() not in {b.name for _, b in join.pairs}})
    summed = {c.name for agg in join.select.find_all(exp.AggFunc) if isinstance(agg, (exp.Sum, exp.Count))
              for c in agg.find_all(exp.Column) if (c.table or "") == join.right_alias}
    cols = [f"{'sum' if c in summed else 'max'}({c}) as {c}" for c in used]
    target = f"(select {', '.join([keys, *cols])} from {{target}} group by {keys})"
    desc = (f"Fix the join: {join.right_alias} has several rows per ({keys}); pre-aggregate it to one row per key "
            f"before joining ({', '.join(cols) or 'no other column is read'}; choose how each column collapses), "
            "or join on its full grain. A dedupe of the result would hide the bug and keep an arbitrary row.")
    return file_diff(ctx.manifest, node, lambda t: rewrite_join(t, names, target=target), desc)
