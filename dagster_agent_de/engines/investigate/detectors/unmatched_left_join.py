"""unmatched_left_join: a column is NULL because a LEFT JOIN found no row on its right side.

Runs when the failure names a column that must not be NULL (a dbt ``not_null`` test, an intent
``not_null``). The column is followed as it passes through the model's CTEs (and through upstream
models it passes through unchanged) to the SELECT that reads it from the right side of a LEFT JOIN;
there the rows whose column is NULL are split into those the join found no match for and those whose
matched row holds a NULL (not the join's doing: not blamed on it). The recommendation is a decision,
never a code change: load the missing rows, or accept a NULL for them. Making the join INNER would
drop those rows, so it is never proposed.
"""

from __future__ import annotations

from typing import Any

from sqlglot import exp

from dagster_agent_de.core.models import Evidence, ProposedFix
from dagster_agent_de.engines.investigate.context import InvestigationContext
from dagster_agent_de.engines.investigate.models import Hypothesis
from dagster_agent_de.errors import ProjectError
from dagster_agent_de.manifest import Node
from dagster_agent_de.sql.facts import JoinFact, with_ctes

PATTERN = "unmatched_left_join"
SAMPLE_KEYS = 5
_INTENT_PREFIX = "intent_not_null_"


def detect(ctx: InvestigationContext, node: Node) -> list[Hypothesis]:
    if node.is_source:
        return []
    col = _column_here(ctx, node)
    if col is None:
        return []
    facts = ctx.facts(node)
    if facts.analysis is None:
        return []
    for scope, alias, name in facts.analysis.passthrough(col):
        join = next((j for j in facts.joins if j.select is scope.expression and j.right_alias == alias), None)
        if join is None:
            continue
        if join.kind != "left" or join.turned_inner_by or not join.pairs:
            return []  # an inner join keeps no unmatched row; a right/full join is not this pattern
        return _measure(ctx, node, join, name)
    return []


def failing_column(ctx: InvestigationContext) -> str | None:
    """The column the failed check says must not be NULL (``None``: not a not-NULL check)."""
    md = ctx.failure.metadata
    if md.get("test") == "not_null" and md.get("column"):
        return str(md["column"]).lower()
    check = (ctx.failure.check or "").lower()
    if check.startswith(_INTENT_PREFIX):
        return check[len(_INTENT_PREFIX):] or None
    for test in ctx.manifest.data.get("nodes", {}).values():
        if test.get("resource_type") == "test" and str(test.get("name") or "").lower() == check and check:
            if (test.get("test_metadata") or {}).get("name") == "not_null" and test.get("column_name"):
                return str(test["column_name"]).lower()
    return None


def _column_here(ctx: InvestigationContext, node: Node) -> str | None:
    """The failing column as ``node`` names it: followed from the failing model down through models
    that pass it through unchanged (``None`` when it does not reach ``node``)."""
    col = failing_column(ctx)
    if col is None:
        return None
    try:
        current = ctx.manifest.find(ctx.failure.asset)
    except ProjectError:
        return None
    seen: set[str] = set()
    while current.unique_id != node.unique_id:
        if current.is_source or current.unique_id in seen:
            return None
        seen.add(current.unique_id)
        hops = ctx.facts(current).analysis
        path = hops.passthrough(col) if hops is not None else []
        if not path:
            return None
        scope, alias, col = path[-1]
        table = hops.sources(scope).get(alias) if hops is not None else None
        if not isinstance(table, exp.Table):
            return None  # computed in a CTE, or read from a set operation: it does not pass through
        upstream = ctx.relation_node(".".join(p for p in (table.catalog, table.db, table.name) if p).lower())
        if upstream is None:
            return None
        current = upstream
    return col


def _is_null(e: exp.Expr) -> exp.Expr:
    return exp.Is(this=e, expression=exp.Null())


def _count_if(cond: exp.Expr, name: str) -> exp.Expr:
    return exp.alias_(exp.Sum(this=exp.If(this=cond, true=exp.Literal.number(1), false=exp.Literal.number(0))), name)


def _rows_query(join: JoinFact) -> exp.Select:
    """The rows of the join's SELECT (its joins and WHERE kept; no grouping), with the model's CTEs."""
    q = with_ctes(join.select)
    for arg in ("group", "having", "order", "limit", "qualify", "distinct"):
        q.set(arg, None)
    return q


def _measure(ctx: InvestigationContext, node: Node, join: JoinFact, col: str) -> list[Hypothesis]:
    d = ctx.dialect
    value = exp.column(col, table=join.right_alias)
    unmatched = exp.and_(*[_is_null(exp.column(b.name, table=join.right_alias)) for _, b in join.pairs])
    lkeys = [exp.column(a.name, table=a.alias) for a, _ in join.pairs]
    key_null = exp.or_(*[_is_null(k.copy()) for k in lkeys])
    where = f" (in the CTE {join.scope})" if join.scope != "main" else ""
    on = " and ".join(f"{a.sql()} = {b.sql()}" for a, b in join.pairs)
    q = _rows_query(join)
    q.set("expressions", [exp.alias_(exp.Count(this=exp.Star()), "rows_in"),
                          _count_if(_is_null(value.copy()), "null_rows"),
                          _count_if(exp.and_(_is_null(value.copy()), unmatched.copy()), "unmatched_rows"),
                          _count_if(exp.and_(unmatched.copy(), key_null.copy()), "null_key_rows")])
    res, ev = ctx.run(q.sql(dialect=d), f"rows of {node.name}{where} whose {col} is NULL, and how many of them the "
                                         f"left join to {join.right_alias} on {on} found no row for")
    if res is None:
        return []
    row = res.folded().one()
    nulls, unmatched_rows = int(row["null_rows"] or 0), int(row["unmatched_rows"] or 0)
    null_keys = int(row["null_key_rows"] or 0)
    if unmatched_rows == 0:
        return []  # the NULLs (if any) come from matched rows: the right side holds NULL, not the join
    evidence = [ev]
    keys_q = _rows_query(join)
    keys_q.where(exp.and_(unmatched.copy(), exp.Not(this=exp.paren(key_null.copy()))), copy=False)
    keys_q.set("expressions", [*[exp.alias_(k.copy(), f"key_{i}") for i, k in enumerate(lkeys)],
                               exp.alias_(exp.Count(this=exp.Star()), "rows_"),
                               exp.alias_(exp.Window(this=exp.Count(this=exp.Star())), "unmatched_keys")])
    keys_q.group_by(*[k.copy() for k in lkeys], copy=False)
    keys_q.order_by(exp.Ordered(this=exp.column("rows_"), desc=True), *[k.copy() for k in lkeys], copy=False)
    keys_q.limit(SAMPLE_KEYS, copy=False)
    kres, kev = ctx.run(keys_q.sql(dialect=d), f"which {', '.join(a.sql() for a, _ in join.pairs)} values of "
                                               f"{node.name}{where} find no row in {join.right_alias}")
    evidence.append(kev)
    rows = kres.folded().dicts(SAMPLE_KEYS) if kres is not None else []
    samples = [tuple(r[f"key_{i}"] for i in range(len(lkeys))) for r in rows]
    n_keys = int(rows[0]["unmatched_keys"] or 0) if rows else 0
    right_node = ctx.relation_node(join.right_relation)
    lacking = right_node.display_name if right_node is not None else join.right_alias
    absent = _absent_upstream(ctx, join, right_node, samples, evidence)
    key_names = ", ".join(a.name for a, _ in join.pairs)
    shown = ", ".join(_show(s) for s in samples) + (", …" if n_keys > len(samples) else "")
    if absent is None or absent == len(samples):
        missing = f"missing from {lacking}"
    else:
        missing = (f"not in {join.right_alias}: {len(samples) - absent} of the {len(samples)} sampled are in {lacking} "
                   f"but the CTE {join.right_alias} leaves them out")
    left = join.pairs[0][0].alias or node.name
    summary = (f"{col} is NULL for {unmatched_rows:,} rows of {node.name} because `left join {join.right_alias}`"
               f"{where} on {on} found no row for them: {unmatched_rows - null_keys:,} {left} rows reference "
               f"{n_keys:,} {key_names} value(s) ({shown}) {missing}.")
    if null_keys:
        summary += f" {null_keys:,} more have {key_names} NULL, which matches nothing."
    if nulls > unmatched_rows:
        summary += (f" The other {nulls - unmatched_rows:,} NULL {col} come from {join.right_alias} rows that exist "
                    f"but hold {col} NULL: not the join.")
    share = unmatched_rows / nulls if nulls else 1.0
    fix = ProposedFix(description=(
        f"A decision, not a code change: load the {n_keys:,} missing {key_names} value(s) into {lacking} (is its source "
        f"late or incomplete?), or accept {col} NULL for these rows (an explicit 'unknown', or the check's severity). "
        f"Do not make the join INNER: it would drop these {unmatched_rows:,} rows from {node.name}."))
    return [Hypothesis(
        pattern=PATTERN, model=node.name, confidence=round(0.5 + 0.45 * share, 3), columns=[col],
        summary=summary, evidence=evidence, proposed_fix=fix,
        needs_business_context=(f"{n_keys:,} {key_names} value(s) of {node.name} ({shown}) have no row in {lacking}, "
                                f"so their {col} is NULL: are those rows late (load them), never coming (accept an "
                                f"unknown {col}), or wrong keys upstream?"),
    )]


def _absent_upstream(ctx: InvestigationContext, join: JoinFact, right_node: Node | None,
                     samples: list[tuple[Any, ...]], evidence: list[Evidence]) -> int | None:
    """How many sampled keys the right side's relation itself lacks, when the join reads it through a CTE
    (which may filter it); ``None`` when not measured (the join reads the relation directly, or a composite key)."""
    base = join.pairs[0][1]
    right = (join.select.args.get("joins") or [])[join.index].this
    if (right_node is None or not right_node.relation_name or len(join.pairs) != 1 or not samples
            or base.relation != join.right_relation or not base.column or not isinstance(right, exp.Table)
            or right.name.lower() not in {c.alias.lower() for c in join.select.root().find_all(exp.CTE)}):
        return None
    q = (exp.select(exp.alias_(exp.Count(this=exp.Distinct(expressions=[exp.column(base.column)])), "found"))
         .from_(exp.to_table(right_node.relation_name, dialect=ctx.dialect))
         .where(exp.column(base.column).isin(*[exp.convert(s[0]) for s in samples])))
    res, ev = ctx.run(q.sql(dialect=ctx.dialect), f"are the sampled keys in {right_node.display_name} itself?")
    if res is None:
        return None
    evidence.append(ev)
    return len(samples) - min(int(res.folded().one()["found"] or 0), len(samples))


def _show(key: tuple[Any, ...]) -> str:
    return str(key[0]) if len(key) == 1 else "(" + ", ".join(str(k) for k in key) + ")"
