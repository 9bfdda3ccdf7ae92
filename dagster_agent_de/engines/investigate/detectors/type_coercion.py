"""type_coercion: casts that fail or truncate silently, and join keys of different types."""

from __future__ import annotations

from dagster_agent_de.core.models import ProposedFix
from dagster_agent_de.engines.investigate.context import InvestigationContext
from dagster_agent_de.engines.investigate.models import Hypothesis
from dagster_agent_de.manifest import Node

PATTERN = "type_coercion"
_TYPEOF = {"duckdb": "typeof", "snowflake": "system$typeof"}


def detect(ctx: InvestigationContext, node: Node) -> list[Hypothesis]:
    if node.is_source:
        return []
    facts = ctx.facts(node)
    out = []
    for cast in facts.casts:
        col = cast.column
        if col is None or ctx.dialect != "duckdb":
            continue
        c = col.sql()  # measured in the cast's own scope (a CTE reads its CTEs), on the rows it sees
        sql = ctx.scope_sql(cast.select, [
            "count(*) as rows_in",
            f"sum(case when {c} is not null and try_cast({c} as {cast.to_type}) is null then 1 else 0 end) as failed",
            f"sum(case when try_cast({c} as {cast.to_type}) is not null "
            f"and cast(try_cast({c} as {cast.to_type}) as varchar) <> cast({c} as varchar) then 1 else 0 end) as changed"])
        res, ev = ctx.run(sql, f"does cast({col.name} as {cast.to_type}) in {node.name} fail or change values?")
        if res is None:
            continue
        row = res.one()
        failed, changed = int(row["failed"] or 0), int(row["changed"] or 0)
        if failed == 0 and (changed == 0 or not _lossy(cast.to_type)):
            continue
        what = f"{failed:,} values cannot be cast" if failed else f"{changed:,} values lose precision"
        out.append(Hypothesis(
            pattern=PATTERN, model=node.name, confidence=0.55 if failed else 0.45, columns=[col.name],
            summary=f"cast({col.name} as {cast.to_type}) in {node.name}: {what}"
                    + (" (TRY_CAST turns them into NULL silently)" if cast.safe else ""),
            evidence=[ev], proposed_fix=ProposedFix(description=f"Clean {col.name} before casting, or cast to a type that holds it."),
        ))
    fn = _TYPEOF.get(ctx.dialect)
    for join in facts.joins:
        if fn is None or not join.pairs:
            continue
        left, right = join.pairs[0]
        if not left.relation or not right.relation:
            continue
        sql = (f"select (select {fn}({left.column}) from {left.relation} limit 1) as left_type, "
               f"(select {fn}({right.column}) from {right.relation} limit 1) as right_type")
        res, ev = ctx.run(sql, f"types of the join keys {left.sql()} and {right.sql()} in {node.name}")
        if res is None:
            continue
        row = res.one()
        lt, rt = str(row["left_type"] or ""), str(row["right_type"] or "")
        if lt and rt and _family(lt) != _family(rt):
            out.append(Hypothesis(
                pattern=PATTERN, model=node.name, confidence=0.5, columns=[left.name, right.name],
                summary=f"{node.name} joins {left.sql()} ({lt}) to {right.sql()} ({rt}): implicit casts can fail to match",
                evidence=[ev], proposed_fix=ProposedFix(description="Cast both keys to the same type explicitly in staging."),
            ))
    return out


def _lossy(t: str) -> bool:
    # timestamp -> date truncation is almost always intended; integer casts of decimals are not
    return t.upper().split("(")[0] in ("INT", "INTEGER", "BIGINT", "SMALLINT", "TINYINT")


def _family(t: str) -> str:
    t = t.upper()
    if t.startswith(("VARCHAR", "TEXT", "STRING", "CHAR")):
        return "text"
    if t.startswith(("INT", "BIGINT", "SMALLINT", "TINYINT", "HUGEINT", "DECIMAL", "NUMBER", "DOUBLE", "FLOAT")):
        return "number"
    return t
