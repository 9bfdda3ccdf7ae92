"""type_coercion: casts that fail or truncate silently, and join keys of different types."""

from __future__ import annotations

import re

from sqlglot import exp

from dagster_agent_de.core.models import ProposedFix
from dagster_agent_de.engines.investigate.context import InvestigationContext
from dagster_agent_de.engines.investigate.fixes import file_diff
from dagster_agent_de.engines.investigate.models import Hypothesis, agreement
from dagster_agent_de.manifest import Node

PATTERN = "type_coercion"
_TYPEOF = {"duckdb": "typeof({})", "snowflake": "system$typeof({})", "postgres": "cast(pg_typeof({}) as text)"}


def detect(ctx: InvestigationContext, node: Node) -> list[Hypothesis]:
    if node.is_source:
        return []
    facts = ctx.facts(node)
    out = []
    for cast in facts.casts:
        col = cast.column
        if not cast.expression.this.find(exp.Column):
            continue
        if ctx.dialect != "duckdb":  # the check counts with try_cast, which not every engine has
            name = col.name if col is not None else cast.expression.this.sql(dialect=ctx.dialect)
            ctx.notes.append(f"type_coercion: cast({name} as {cast.to_type}) in {node.name} was not checked "
                             f"(the check needs try_cast: not on {ctx.dialect})")
            continue
        c = cast.expression.this.sql(dialect=ctx.dialect)  # in the cast's own scope (a CTE reads its CTEs)
        name = col.name if col is not None else c
        sql = ctx.scope_sql(cast.select, [
            "count(*) as rows_in",
            f"sum(case when {c} is not null and try_cast({c} as {cast.to_type}) is null then 1 else 0 end) as failed",
            # changed only matters for integer targets (_lossy): compared as numbers, so 10.0 -> 10 keeps its value
            f"sum(case when try_cast({c} as {cast.to_type}) is not null "
            f"and try_cast(try_cast({c} as {cast.to_type}) as double) <> try_cast({c} as double) then 1 else 0 end) as changed"])
        res, ev = ctx.run(sql, f"does cast({name} as {cast.to_type}) in {node.name} fail or change values?")
        if res is None:
            continue
        row = res.one()
        failed, changed = int(row["failed"] or 0), int(row["changed"] or 0)
        if failed == 0 and (changed == 0 or not _lossy(cast.to_type)):
            continue
        what = f"{failed:,} values cannot be cast" if failed else f"{changed:,} values lose precision"
        where = f" (in the CTE {cast.scope})" if cast.scope != "main" else ""
        fix: ProposedFix | None
        if failed:
            fix = ProposedFix(description=f"Clean {name} before casting, or cast to a type that holds it; no diff is "
                                          "proposed because what the bad values mean is for the data's owner to say.")
        else:
            desc = f"Cast {name} to a type that keeps its decimals ({_KEEP}) instead of {cast.to_type}"
            fix = file_diff(ctx.manifest, node, lambda t, ty=cast.to_type: _widen(t, ty), desc)
        output = col.name if col is not None else cast.expression.parent.alias_or_name if cast.expression.parent else name
        conf = 0.55 if failed else 0.45
        rows_in = int(row["rows_in"] or 0)
        if (not failed and rows_in and ctx.failure.kind == "reconciliation"
                and output.lower() in {m.lower() for m in ctx.failure.mismatched_columns()}):
            # the column the reconciliation found mismatched comes out of this cast: as sure as the shares agree
            mismatched = ctx.failure.metadata.get("mismatched_pct")
            measured = changed * 100.0 / rows_in
            conf = max(conf, round(0.45 + 0.5 * agreement(measured, float(mismatched) if mismatched is not None else None), 3))
        out.append(Hypothesis(
            pattern=PATTERN, model=node.name, confidence=conf,
            columns=[output],
            summary=f"cast({name} as {cast.to_type}){where} in {node.name}: {what}"
                    + (" (TRY_CAST turns them into NULL silently)" if cast.safe else ""),
            evidence=[ev], proposed_fix=fix,
        ))
    fn = _TYPEOF.get(ctx.dialect)
    for join in facts.joins:
        if fn is None or not join.pairs:
            continue
        left, right = join.pairs[0]
        if not left.relation or not right.relation:
            continue
        sql = (f"select (select {fn.format(left.column)} from {left.relation} limit 1) as left_type, "
               f"(select {fn.format(right.column)} from {right.relation} limit 1) as right_type")
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


_KEEP = "decimal(38, 6)"


def _widen(text: str, to_type: str) -> str:
    """The first lossy ``cast(... as <integer type>)`` / ``::<integer type>`` of the file, to a decimal."""
    names = {"INT": "int(?:eger)?", "INTEGER": "int(?:eger)?", "BIGINT": "bigint", "SMALLINT": "smallint", "TINYINT": "tinyint"}
    ty = names.get(to_type.upper().split("(")[0], re.escape(to_type))
    out = re.sub(rf"(?is)(\bcast\s*\((?:[^()]|\([^()]*\))*?\s+as\s+){ty}\s*\)", rf"\1{_KEEP})", text, count=1)
    if out == text:
        out = re.sub(rf"(?i)::\s*{ty}\b", f"::{_KEEP}", text, count=1)
    return out


def _lossy(t: str) -> bool:
    # timestamp -> date truncation is almost always intended; integer casts of decimals are not
    return t.upper().split("(")[0] in ("INT", "INTEGER", "BIGINT", "SMALLINT", "TINYINT")


def _family(t: str) -> str:
    t = t.upper()
    if t.startswith(("VARCHAR", "TEXT", "STRING", "CHAR")):
        return "text"
    if t.startswith(("INT", "BIGINT", "SMALLINT", "TINYINT", "HUGEINT", "DECIMAL", "NUMBER", "NUMERIC", "DOUBLE", "FLOAT",
                     "REAL")):
        return "number"
    return t
