"""join_row_drop: an INNER join (or a LEFT join turned inner by a WHERE) losing rows, in any CTE."""

from __future__ import annotations

from dagster_agent_de.core.models import ProposedFix
from dagster_agent_de.engines.investigate.context import InvestigationContext
from dagster_agent_de.engines.investigate.fixes import file_diff, rewrite_join
from dagster_agent_de.engines.investigate.models import Hypothesis, agreement
from dagster_agent_de.manifest import Node
from dagster_agent_de.sql.facts import join_drop_query

PATTERN = "join_row_drop"
MIN_DROP_PCT = 0.5


def detect(ctx: InvestigationContext, node: Node) -> list[Hypothesis]:
    if node.is_source:
        return []
    facts = ctx.facts(node)
    out = []
    for join in facts.joins:
        if not join.effectively_inner or join.kind == "cross":
            continue
        sql = join_drop_query(join, ctx.dialect)
        if sql is None:
            continue
        res, ev = ctx.run(sql, f"rows of {node.name} that find no match in {join.right_alias} ({join.kind} join)")
        if res is None:
            out.append(Hypothesis(PATTERN, node.name, f"could not measure the {join.kind} join on {join.right_alias}",
                                  0.2, evidence=[ev], verified=False))
            continue
        row = res.one()
        rows_in, lost = int(row["rows_in"] or 0), int(row["rows_without_match"] or 0)
        pct = lost * 100.0 / rows_in if rows_in else 0.0
        if pct < MIN_DROP_PCT:
            continue
        keys = [f"{a.sql()} = {b.sql()}" for a, b in join.pairs]
        conf = 0.45 + 0.5 * agreement(pct, ctx.failure.missing_pct)
        how = f"LEFT join turned inner by WHERE {join.turned_inner_by}" if join.turned_inner_by else "INNER join"
        right_node = ctx.relation_node(join.right_relation)
        right_name = right_node.display_name if right_node is not None else join.right_alias
        where = f" (in the CTE {join.scope})" if join.scope != "main" else ""
        names = [join.right_name, right_node.name if right_node is not None else "", join.right_alias]
        counted, refill = ctx.refill(node, "join")
        if join.turned_inner_by:
            fix_desc = (f"Move the predicate on {join.right_alias} (`{join.turned_inner_by}`) from WHERE into the LEFT "
                        f"JOIN's ON clause, so rows without a match are kept; no diff is proposed because moving a "
                        f"predicate changes which rows it filters{refill}")
            fix: ProposedFix | None = ProposedFix(description=fix_desc)
        else:
            fix_desc = (f"Make the join to {right_name}{where} a LEFT JOIN so rows without a match are kept "
                        f"(their {join.right_alias} columns become NULL){refill}")
            fix = file_diff(ctx.manifest, node, lambda t, n=names: rewrite_join(t, n, kind="left"), fix_desc)
        out.append(Hypothesis(
            pattern=PATTERN, model=node.name, confidence=round(conf, 3),
            columns=[b.name for _, b in join.pairs],
            summary=(f"The {how}{where} from {node.name} to {right_name} on {' and '.join(keys)} drops {lost:,} of "
                     f"{rows_in:,} rows ({pct:.1f}%): they have no match in {right_name}.{counted}"),
            evidence=[ev], proposed_fix=fix,
        ))
    return out
