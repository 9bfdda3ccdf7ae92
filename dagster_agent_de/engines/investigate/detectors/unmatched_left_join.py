"""unmatched_left_join: a column is NULL because an outer join found no row on its NULL-producing side.

Runs when the failure names a column that must not be NULL (a dbt ``not_null`` test, an intent
``not_null``). The column is followed as it passes through the model's CTEs (and through upstream
models it passes through unchanged), also through functions NULL exactly when their argument is
(``upper``, ``cast``, ``trim``; never ``coalesce`` or ``case ... else``, which replace a NULL), to the
SELECT that reads it from the NULL-producing side of an outer join: the right side of a LEFT JOIN,
the left side (everything joined before it) of a RIGHT JOIN, either side of a FULL JOIN. There the
rows whose column is NULL are split into those the join found no match for and those whose matched
row holds a NULL (not the join's doing: not blamed on it). Sampled keys are masked when either side's
key column is PII (tagged, or derived from a tagged column by lineage). The recommendation is a
decision, never a code change: load the missing rows, or accept a NULL for them. Making the join
INNER would drop those rows, so it is never proposed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlglot import exp
from sqlglot.optimizer.scope import Scope

from dagster_agent_de.core.models import Evidence, ProposedFix
from dagster_agent_de.engines.investigate.context import InvestigationContext
from dagster_agent_de.engines.investigate.failure import find_dbt_test
from dagster_agent_de.engines.investigate.models import Hypothesis
from dagster_agent_de.engines.pii_lineage import pii_index
from dagster_agent_de.errors import ProjectError
from dagster_agent_de.manifest import Node
from dagster_agent_de.sql.facts import ColumnRef, JoinFact, with_ctes
from dagster_agent_de.sql.scope import STAR, ModelAnalysis

PATTERN = "unmatched_left_join"
SAMPLE_KEYS = 5
_INTENT_PREFIX = "intent_not_null_"


@dataclass(frozen=True)
class _NullSide:
    """One outer join read from the side that is NULL when it finds no row: ``null_alias``'s columns."""

    join: JoinFact
    null_alias: str  # the source whose columns are NULL for the unmatched rows
    kept: list[ColumnRef]  # keys of the side whose rows are kept (sampled: they find no row)
    missing: list[ColumnRef]  # keys of the side that has no row (all NULL for an unmatched row)
    lacking_alias: str  # the source that has no row for the kept keys
    lacking_relation: str | None  # its one base relation


def detect(ctx: InvestigationContext, node: Node) -> list[Hypothesis]:
    if node.is_source:
        return []
    col = _column_here(ctx, node)
    if col is None:
        return []
    facts = ctx.facts(node)
    analysis = facts.analysis
    if analysis is None:
        return []
    for scope, alias, name in analysis.passthrough(col, null_strict=True):
        joins = [j for j in facts.joins if j.select is scope.expression]
        for side in _null_sides(analysis, scope, joins, alias):
            found = _measure(ctx, node, side, name)
            if found:
                return found
        # not NULL by a join here (or every row matched): the NULL may come from further down the chain
    return []


def _null_sides(analysis: ModelAnalysis, scope: Scope, joins: list[JoinFact], alias: str) -> list[_NullSide]:
    """The outer joins of one SELECT that can make ``alias``'s columns NULL: the LEFT or FULL join that
    joins ``alias``, and every later RIGHT or FULL join (its left side is all that was joined before it)."""
    written = list(_written(scope.expression))
    if alias not in written:
        return []
    at = written.index(alias)  # 0: the FROM source; i + 1: the i-th join
    out = []
    for j in joins:
        if not j.pairs:
            continue
        if j.index + 1 == at and j.kind in ("left", "full") and not j.turned_inner_by:
            out.append(_NullSide(j, alias, kept=[a for a, _ in j.pairs], missing=[b for _, b in j.pairs],
                                 lacking_alias=j.right_alias, lacking_relation=j.right_relation))
        elif j.index + 1 > at and j.kind in ("right", "full"):
            lacking = j.pairs[0][0].alias or alias
            out.append(_NullSide(j, alias, kept=[b for _, b in j.pairs], missing=[a for a, _ in j.pairs],
                                 lacking_alias=lacking, lacking_relation=analysis.source_relation(scope, lacking)))
    return out


def failing_column(ctx: InvestigationContext) -> str | None:
    """The column the failed check says must not be NULL (``None``: not a not-NULL check)."""
    md = ctx.failure.metadata
    if md.get("test") == "not_null" and md.get("column"):
        return str(md["column"]).lower()
    check = (ctx.failure.check or "").lower()
    if check.startswith(_INTENT_PREFIX):
        return check[len(_INTENT_PREFIX):] or None
    try:
        failing: Node | None = ctx.manifest.find(ctx.failure.asset)
    except ProjectError:
        failing = None
    test = find_dbt_test(ctx.manifest, ctx.failure.check, failing) if check else None  # the one on the failing asset
    if test and (test.get("test_metadata") or {}).get("name") == "not_null" and test.get("column_name"):
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
        path = hops.passthrough(col, null_strict=True) if hops is not None else []
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


def _measure(ctx: InvestigationContext, node: Node, side: _NullSide, col: str) -> list[Hypothesis]:
    d, join = ctx.dialect, side.join
    value = exp.column(col, table=side.null_alias)
    unmatched = exp.and_(*[_is_null(exp.column(m.name, table=m.alias)) for m in side.missing])
    keys = [exp.column(k.name, table=k.alias) for k in side.kept]
    key_null = exp.or_(*[_is_null(k.copy()) for k in keys])
    where = f" (in the CTE {join.scope})" if join.scope != "main" else ""
    on = " and ".join(f"{a.sql()} = {b.sql()}" for a, b in join.pairs)
    written = f"{join.kind} join {join.right_alias}"
    q = _rows_query(join)
    q.set("expressions", [exp.alias_(exp.Count(this=exp.Star()), "rows_in"),
                          _count_if(_is_null(value.copy()), "null_rows"),
                          _count_if(exp.and_(_is_null(value.copy()), unmatched.copy()), "unmatched_rows"),
                          _count_if(exp.and_(unmatched.copy(), key_null.copy()), "null_key_rows")])
    res, ev = ctx.run(q.sql(dialect=d), f"rows of {node.name}{where} whose {col} is NULL, and how many of them the "
                                         f"{written} on {on} found no {side.lacking_alias} row for")
    if res is None:
        return []
    row = res.folded().one()
    nulls, unmatched_rows = int(row["null_rows"] or 0), int(row["unmatched_rows"] or 0)
    null_keys = int(row["null_key_rows"] or 0)
    if unmatched_rows == 0:
        return []  # the NULLs (if any) come from matched rows: the other side holds NULL, not the join
    evidence = [ev]
    pii = _keys_are_pii(ctx, [*side.kept, *side.missing])
    keys_q = _rows_query(join)
    keys_q.where(exp.and_(unmatched.copy(), exp.Not(this=exp.paren(key_null.copy()))), copy=False)
    keys_q.set("expressions", [*[exp.alias_(k.copy(), f"key_{i}") for i, k in enumerate(keys)],
                               exp.alias_(exp.Count(this=exp.Star()), "rows_"),
                               exp.alias_(exp.Window(this=exp.Count(this=exp.Star())), "unmatched_keys")])
    keys_q.group_by(*[k.copy() for k in keys], copy=False)
    keys_q.order_by(exp.Ordered(this=exp.column("rows_"), desc=True), *[k.copy() for k in keys], copy=False)
    keys_q.limit(SAMPLE_KEYS, copy=False)
    kres, kev = ctx.run(keys_q.sql(dialect=d), f"which {', '.join(k.sql() for k in side.kept)} values of "
                                               f"{node.name}{where} find no row in {side.lacking_alias}",
                        mask=[f"key_{i}" for i in range(len(keys))] if pii else ())
    evidence.append(kev)
    rows = kres.folded().dicts(SAMPLE_KEYS) if kres is not None else []
    samples = [tuple(r[f"key_{i}"] for i in range(len(keys))) for r in rows]
    n_keys = int(rows[0]["unmatched_keys"] or 0) if rows else 0
    lacking_node = ctx.relation_node(side.lacking_relation)
    lacking = lacking_node.display_name if lacking_node is not None else side.lacking_alias
    absent = _absent_upstream(ctx, side, lacking_node, keys_q, len(samples), evidence)
    key_names = ", ".join(k.name for k in side.kept)
    shown = ", ".join(_show(s) for s in samples) + (", …" if n_keys > len(samples) else "")
    if absent is None or absent == len(samples):
        missing = f"missing from {lacking}"
    else:
        missing = (f"not in {side.lacking_alias}: {len(samples) - absent} of the {len(samples)} sampled are in "
                   f"{lacking} but the CTE {side.lacking_alias} leaves them out")
    kept = side.kept[0].alias or node.name
    summary = (f"{col} is NULL for {unmatched_rows:,} rows of {node.name} because `{written}`{where} on {on} found "
               f"no {side.lacking_alias} row for them: {unmatched_rows - null_keys:,} {kept} rows reference "
               f"{n_keys:,} {key_names} value(s) ({shown}) {missing}.")
    if null_keys:
        summary += f" {null_keys:,} more have {key_names} NULL, which matches nothing."
    if nulls > unmatched_rows:
        summary += (f" The other {nulls - unmatched_rows:,} NULL {col} come from {side.null_alias} rows that exist "
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


def _keys_are_pii(ctx: InvestigationContext, refs: list[ColumnRef]) -> bool:
    """Whether a join key is PII on either side (tagged, or derived from a tagged column by lineage): the
    unmatched values of a key are masked when the column they are compared with is PII."""
    index = pii_index(ctx.manifest, ctx.dialect)
    if not index.any:
        return False
    for ref in refs:
        bases = set(ref.bases) or ({(ref.relation, ref.column or ref.name)} if ref.relation else set())
        for rel, column in bases:
            pii = index.relation_pii(rel)
            if column in pii or (column == STAR and pii):
                return True
    return False


def _absent_upstream(ctx: InvestigationContext, side: _NullSide, lacking_node: Node | None, keys_q: exp.Select,
                     sampled: int, evidence: list[Evidence]) -> int | None:
    """How many sampled keys the lacking side's relation itself lacks, when the join reads it through a CTE
    (which may filter it); ``None`` when not measured (the join reads the relation directly, or a composite
    key). Measured in SQL over the sampling query, so no sampled value (maybe masked) is written back into one."""
    base = side.missing[0]
    select = side.join.select
    read = _written(select).get(side.lacking_alias)
    if (lacking_node is None or not lacking_node.relation_name or len(side.missing) != 1 or not sampled
            or base.relation != side.lacking_relation or not base.column
            or not isinstance(read, exp.Table)
            or read.name.lower() not in {c.alias.lower() for c in select.root().find_all(exp.CTE)}):
        return None
    inside = (exp.select(exp.column(base.column))
              .from_(exp.to_table(lacking_node.relation_name, dialect=ctx.dialect)))
    q = (exp.select(exp.alias_(exp.Count(this=exp.Star()), "found"))
         .from_(exp.Subquery(this=keys_q.copy(), alias=exp.TableAlias(this=exp.to_identifier("sampled"))))
         .where(exp.In(this=exp.column("key_0", table="sampled"), query=exp.Subquery(this=inside))))
    res, ev = ctx.run(q.sql(dialect=ctx.dialect), f"are the sampled keys in {lacking_node.display_name} itself?")
    if res is None:
        return None
    evidence.append(ev)
    return sampled - min(int(res.folded().one()["found"] or 0), sampled)


def _written(select: exp.Expr) -> dict[str, exp.Expr]:
    """alias -> what ``select`` reads, as written and in order: its FROM, then its joins."""
    from_ = select.args.get("from_") or select.args.get("from")
    nodes = ([from_.this] if isinstance(from_, exp.From) else []) + [j.this for j in select.args.get("joins") or []]
    return {n.alias_or_name: n for n in nodes}


def _show(key: tuple[Any, ...]) -> str:
    return str(key[0]) if len(key) == 1 else "(" + ", ".join(str(k) for k in key) + ")"
