"""Facts of a compiled model, from sqlglot: joins, filters, aggregations, casts, unions, distincts.

Facts are collected in every scope (CTEs, derived tables, subqueries, union branches) and each
column is resolved to the base relation and column it comes from (see :mod:`.scope`), so a
filter in a logical CTE on a column of an import CTE reads as a filter on the ref()'s column.
Each fact keeps the sqlglot node it came from, so detectors can build targeted queries (e.g. the
same join as a LEFT JOIN, counting the rows it would drop) that run with the model's CTEs.

>>> f = extract_facts("with o as (select * from db.s.orders) select id from o where status <> 'x'", "duckdb")
>>> describe(f)
["filter in main: <> db.s.orders.status (status <> 'x')"]
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlglot import exp
from sqlglot.optimizer.scope import Scope

from dagster_agent_de.sql.scope import STAR, ColumnsOf, ModelAnalysis, Schema, table_key

NULL_DROPPING_OPS = (exp.NEQ, exp.GT, exp.GTE, exp.LT, exp.LTE, exp.EQ, exp.Like, exp.ILike)
_OP_SQL = {"NEQ": "<>", "GT": ">", "GTE": ">=", "LT": "<", "LTE": "<=", "EQ": "=", "LIKE": "like", "ILIKE": "ilike",
           "NOT IN": "not in"}


@dataclass
class ColumnRef:
    """A column as written (``alias.name``) and, when it resolves to exactly one, its base ``relation.column``."""

    alias: str | None
    name: str
    relation: str | None  # base relation key, None when not resolved to exactly one
    column: str | None = None  # the column's name in ``relation`` (renames through CTEs followed)
    bases: frozenset[tuple[str, str]] = frozenset()  # every base column it comes from (a union: several)

    def sql(self) -> str:
        return f"{self.alias}.{self.name}" if self.alias else self.name

    @property
    def base(self) -> str:
        if self.relation:
            return f"{self.relation}.{self.column}"
        if self.bases:
            return " | ".join(sorted(f"{r}.{c}" for r, c in self.bases))
        return f"(computed {self.sql()})"


@dataclass
class JoinFact:
    select: exp.Select
    index: int
    kind: str  # inner | left | right | full | cross
    right_alias: str
    right_relation: str | None  # the one base relation behind the right side (a table or an import CTE)
    on: exp.Expr | None
    pairs: list[tuple[ColumnRef, ColumnRef]]  # (left, right) equality keys
    turned_inner_by: str | None = None  # a WHERE predicate on the right side of a LEFT JOIN
    right_name: str = ""  # the right side as written: a table or CTE name ("" for a derived table)
    scope: str = "main"  # the CTE the join is in ("main" for the final select)
    dialect: str = ""

    @property
    def effectively_inner(self) -> bool:
        return self.kind in ("inner", "") or self.turned_inner_by is not None

    @property
    def right_from(self) -> str:
        """SQL usable after FROM that yields the right side's rows (with the model's CTEs); built when asked."""
        joins = self.select.args.get("joins") or []
        if self.index >= len(joins):
            return ""
        root = self.select.root()
        with_ = root.args.get("with_") or root.args.get("with")
        return _from_sql(joins[self.index].this, with_ if isinstance(with_, exp.With) else None, self.dialect)


@dataclass
class FilterFact:
    select: exp.Select
    predicate: exp.Expr
    null_dropping: list[tuple[ColumnRef, str]]  # (column, operator) comparisons that are never true for NULL
    scope: str = "main"
    # conjuncts reading the model's own table: an incremental model's cut-off (its ``is_incremental()`` block,
    # ``ordered_at > (select max(ordered_at) from {{ this }})``), not a business filter
    cutoff: list[exp.Expr] = field(default_factory=list)

    def conjuncts(self) -> list[exp.Expr]:
        p = self.predicate
        return list(p.flatten()) if isinstance(p, exp.And) else [p]

    @property
    def business(self) -> exp.Expr | None:
        """The predicate without the incremental cut-off (``None`` when the cut-off is all of it)."""
        rest = [c for c in self.conjuncts() if not any(c is k for k in self.cutoff)]
        return exp.and_(*(c.copy() for c in rest)) if rest else None


@dataclass
class AggregateFact:
    select: exp.Select
    func: str
    output: str
    expression: exp.Expr
    columns: list[ColumnRef]
    group_by: list[str]
    scope: str = "main"
    model_output: str | None = None  # the model's output column this aggregate reaches, if any


@dataclass
class CastFact:
    select: exp.Select
    expression: exp.Expr
    to_type: str
    column: ColumnRef | None
    safe: bool  # TRY_CAST
    scope: str = "main"


@dataclass
class ModelFacts:
    sql: str
    tree: exp.Expr | None = None
    relations: dict[str, str] = field(default_factory=dict)  # alias -> base relation key
    joins: list[JoinFact] = field(default_factory=list)
    filters: list[FilterFact] = field(default_factory=list)
    aggregates: list[AggregateFact] = field(default_factory=list)
    casts: list[CastFact] = field(default_factory=list)
    unions: int = 0
    distinct: bool = False
    error: str | None = None
    analysis: ModelAnalysis | None = None


def scope_name(scope: Scope) -> str:
    """The CTE a scope belongs to (``main`` for the final select, ``<alias>`` for a derived table)."""
    node: exp.Expr | None = scope.expression
    while node is not None:
        if isinstance(node, exp.CTE):
            return node.alias.lower()
        if isinstance(node, exp.Subquery) and node.alias and isinstance(node.parent, (exp.From, exp.Join)):
            return f"({node.alias.lower()})"
        if scope.is_subquery and node is not scope.expression and isinstance(node, exp.Select):
            return f"(subquery in {scope_name_of_select(node)})"
        node = node.parent
    return "main"


def scope_name_of_select(select: exp.Expr) -> str:
    node: exp.Expr | None = select
    while node is not None:
        if isinstance(node, exp.CTE):
            return node.alias.lower()
        node = node.parent
    return "main"


def _ref(analysis: ModelAnalysis, scope: Scope, col: exp.Column) -> ColumnRef:
    bases = {b for b in analysis.resolve(scope, col) if b[1] != STAR} or set(analysis.resolve(scope, col))
    relation, column = next(iter(bases)) if len(bases) == 1 else (None, None)
    if column == STAR:
        column = col.name.lower()
    return ColumnRef(col.table or None, col.name.lower(), relation, column, frozenset(bases))


def _own(node: exp.Expr, select: exp.Expr) -> bool:
    """Whether ``node`` belongs to ``select`` itself, not to a subquery nested in it."""
    p = node.parent
    while p is not None and p is not select:
        if isinstance(p, exp.Query):
            return False
        p = p.parent
    return True


def extract_facts(sql: str, dialect: str, schema: Schema | None = None, columns_of: ColumnsOf | None = None,
                  analysis: ModelAnalysis | None = None, this: str | None = None) -> ModelFacts:
    """Analyze ``sql`` (or reuse ``analysis``) and collect facts from every SELECT in it (CTEs included).

    ``this``: the model's own relation key; a WHERE conjunct reading it is the incremental cut-off.

    >>> f = extract_facts("select * from db.s.o where d > (select max(d) from db.s.m) and x = 1", "duckdb",
    ...                   this="db.s.m")
    >>> [c.sql() for c in f.filters[0].cutoff], f.filters[0].business.sql()
    (['d > (SELECT MAX(m.d) AS _col_0 FROM db.s.m AS m)'], 'x = 1')
    """
    analysis = analysis or ModelAnalysis(sql, dialect, schema, columns_of, this=this)
    facts = ModelFacts(sql=sql, analysis=analysis)
    if analysis.error or analysis.tree is None:
        facts.error = analysis.error or "no SELECT found in the model"
        return facts
    tree = analysis.tree
    facts.tree = tree
    facts.unions = len(list(tree.find_all(exp.Union)))
    outputs_by_scope = _outputs_reached(analysis)
    for scope in analysis.select_scopes():
        select = scope.expression
        if not isinstance(select, exp.Select):  # select_scopes() holds SELECTs only; this narrows the type
            continue
        name = scope_name(scope)
        sources = analysis.sources(scope)
        for alias, src in sources.items():
            if isinstance(src, exp.Table):
                facts.relations[alias] = table_key(src)
        if select.args.get("distinct"):
            facts.distinct = True
        right_of_left_joins: dict[str, JoinFact] = {}
        for i, join in enumerate(select.args.get("joins") or []):
            side = (join.side or "").lower()
            kind = (join.kind or "").lower()
            on = join.args.get("on")
            jkind = side or ("cross" if kind == "cross" or (on is None and not join.args.get("using")) else "inner")
            right = join.this
            ralias = right.alias_or_name
            pairs = []
            if on is not None:
                for eq in on.find_all(exp.EQ):
                    if isinstance(eq.left, exp.Column) and isinstance(eq.right, exp.Column):
                        a, b = _ref(analysis, scope, eq.left), _ref(analysis, scope, eq.right)
                        if b.alias == ralias:
                            pairs.append((a, b))
                        elif a.alias == ralias:
                            pairs.append((b, a))
            fact = JoinFact(
                select=select, index=i, kind=jkind, right_alias=ralias,
                right_relation=analysis.source_relation(scope, ralias), on=on, pairs=pairs,
                right_name=right.name.lower() if isinstance(right, exp.Table) else "", scope=name, dialect=dialect,
            )
            if jkind == "left":
                right_of_left_joins[ralias] = fact
            facts.joins.append(fact)
        where = select.args.get("where")
        if where is not None:
            null_dropping = []
            for cmp in where.this.find_all(*NULL_DROPPING_OPS):
                if not _own(cmp, select):
                    continue
                for col in cmp.find_all(exp.Column):
                    if _own(col, select) and drops_null(cmp, col, where.this):  # not a subquery's column
                        null_dropping.append((_ref(analysis, scope, col), cmp.key.upper()))
            for notin in where.this.find_all(exp.Not):
                if isinstance(notin.this, exp.In) and _own(notin, select):
                    for col in notin.this.this.find_all(exp.Column):
                        if drops_null(notin, col, where.this):
                            null_dropping.append((_ref(analysis, scope, col), "NOT IN"))
            flt = FilterFact(select, where.this, null_dropping, name)
            if analysis.this:
                flt.cutoff = [c for c in flt.conjuncts()
                              if any(table_key(t) == analysis.this for t in c.find_all(exp.Table))]
            facts.filters.append(flt)
            for col, _op in null_dropping:
                lj = right_of_left_joins.get(col.alias or "")
                if lj is not None and not _is_null_check(where.this, col):
                    lj.turned_inner_by = where.this.sql(dialect=dialect)
        group_expr = select.args.get("group")
        group = [g.sql(dialect=dialect) for g in (group_expr.expressions if group_expr else [])]
        reached = outputs_by_scope.get(id(scope), {})
        for proj in select.selects:
            for agg in proj.find_all(exp.AggFunc):
                if isinstance(agg.parent, exp.Window) or _inside_window(agg) or not _own(agg, select):
                    continue  # sum(x) over (...) keeps the grain: not an aggregation
                cols = [_ref(analysis, scope, c) for c in agg.find_all(exp.Column)]
                out = proj.alias_or_name.lower()
                facts.aggregates.append(AggregateFact(select, agg.key.lower(), out, agg, cols, group, name,
                                                      reached.get(out)))
            for cast in proj.find_all(exp.Cast, exp.TryCast):
                if not _own(cast, select):
                    continue
                col = cast.this if isinstance(cast.this, exp.Column) else None
                facts.casts.append(CastFact(
                    select, cast, cast.to.sql(dialect=dialect),
                    _ref(analysis, scope, col) if col is not None else None, isinstance(cast, exp.TryCast), name,
                ))
    return facts


def _inside_window(node: exp.Expr) -> bool:
    p = node.parent
    while p is not None and not isinstance(p, exp.Select):
        if isinstance(p, exp.Window):
            return True
        p = p.parent
    return False


def _outputs_reached(analysis: ModelAnalysis) -> dict[int, dict[str, str]]:
    """For each scope, which of its projections reach which model output column (by name, through stars)."""
    out: dict[int, dict[str, str]] = {}
    for name in analysis.output_names():
        if name == STAR:
            continue
        found = analysis.definition(name)
        if found is not None:
            scope, expr = found
            proj = expr.parent if isinstance(expr.parent, exp.Alias) else expr
            out.setdefault(id(scope), {})[proj.alias_or_name.lower()] = name
    return out


def _from_sql(right: exp.Expr, with_: exp.With | None, dialect: str) -> str:
    """The right side of a join as something to put after FROM: a table, or a subquery with the CTEs."""
    alias = right.alias_or_name
    if isinstance(right, exp.Table):
        ctes = {c.alias: c for c in with_.expressions} if with_ is not None else {}
        if right.name in ctes and not right.db:
            q = exp.select("*").from_(exp.to_identifier(right.name))
            q.set("with_" if "with_" in exp.Select.arg_types else "with", with_.copy() if with_ is not None else None)
            return exp.Subquery(this=q, alias=exp.TableAlias(this=exp.to_identifier(alias))).sql(dialect=dialect)
        table = right.copy()
        table.set("alias", exp.TableAlias(this=exp.to_identifier(alias)))
        return table.sql(dialect=dialect)
    if isinstance(right, exp.Subquery):
        q = right.this.copy()
        if with_ is not None and isinstance(q, exp.Select):
            q.set("with_" if "with_" in exp.Select.arg_types else "with", with_.copy())
        return exp.Subquery(this=q, alias=exp.TableAlias(this=exp.to_identifier(alias))).sql(dialect=dialect)
    return right.sql(dialect=dialect)


def drops_null(cmp: exp.Expr, col: exp.Column, where: exp.Expr) -> bool:
    """Whether the WHERE ``where`` drops a row whose ``col`` is NULL because of the comparison ``cmp``.

    The comparison is NULL for such a row; the tree from ``cmp`` up to the WHERE decides what becomes
    of that NULL: wrapped so NULL becomes true (``coalesce(p, true)``, ``(p) is not false``,
    ``(p) is distinct from false``, ``p or col is null``) the row is kept. So is it when the column is
    made a value before it is compared (``coalesce(col, '') <> 'x'``), or when a ``coalesce`` with a
    fallback that is not a boolean literal decides (not a claim this analysis can make). Anything else
    above the comparison (a CASE, a function) is read as before: the row is dropped.

    >>> import sqlglot
    >>> def drops(sql):
    ...     w = sqlglot.parse_one(sql, read="duckdb")
    ...     cmp = [*w.find_all(exp.NEQ), *(n for n in w.find_all(exp.Not) if isinstance(n.this, exp.In))][0]
    ...     return drops_null(cmp, next(cmp.find_all(exp.Column)), w)
    >>> [drops(s) for s in ["s <> 'x'", "coalesce(s not in ('x'), true)", "(s <> 'x') is not false",
    ...                     "s <> 'x' or s is null", "coalesce(s, '') <> 'x'", "s <> 'x' and t = 1",
    ...                     "coalesce(s not in ('x'), false)", "(s <> 'x') is distinct from false"]]
    [True, False, False, False, False, True, True, False]
    """
    node: exp.Expr = col
    while node is not cmp and node.parent is not None:  # the column made a value before it is compared
        parent = node.parent
        if isinstance(parent, exp.Coalesce) and parent.this is node and any(
                isinstance(e, (exp.Literal, exp.Boolean)) for e in parent.expressions):
            return False
        node = parent
    value: bool | None = None  # what the tree has made of the comparison's NULL so far
    node = cmp
    while node is not where and node.parent is not None:
        parent = node.parent
        if isinstance(parent, exp.Paren):
            pass
        elif isinstance(parent, exp.Not):
            value = None if value is None else not value
        elif isinstance(parent, exp.Coalesce) and parent.this is node:
            fallback = parent.expressions[0] if parent.expressions else None
            if value is None:
                if not isinstance(fallback, exp.Boolean):
                    return False
                value = bool(fallback.this)
        elif isinstance(parent, (exp.Is, exp.NullSafeEQ, exp.NullSafeNEQ)) and parent.this is node:
            rhs = parent.expression
            if isinstance(rhs, exp.Null):
                same = value is None
            elif isinstance(rhs, exp.Boolean):
                same = value is bool(rhs.this)
            else:
                break
            value = not same if isinstance(parent, exp.NullSafeNEQ) else same
        elif isinstance(parent, exp.Or):
            other = parent.expression if parent.this is node else parent.this
            if value is not True and _tests_null(other, col):
                value = True
        elif isinstance(parent, exp.And):
            if value is True:
                return False  # this comparison keeps the row; the other side decides
        else:
            break
        node = parent
    return value is not True


def _tests_null(expr: exp.Expr, col: exp.Column) -> bool:
    """Whether ``expr`` is (a disjunction holding) ``col is null``."""
    expr = expr.unnest()
    if isinstance(expr, exp.Or):
        return _tests_null(expr.this, col) or _tests_null(expr.expression, col)
    if isinstance(expr, exp.Is) and isinstance(expr.expression, exp.Null) and isinstance(expr.this, exp.Column):
        c = expr.this
        return c.name.lower() == col.name.lower() and (not c.table or not col.table or c.table.lower() == col.table.lower())
    return False


def _is_null_check(where: exp.Expr, col: ColumnRef) -> bool:
    for isnull in where.find_all(exp.Is):
        c = isnull.this
        if isinstance(c, exp.Column) and c.name.lower() == col.name and (c.table or None) == col.alias:
            return True
    return False


def with_ctes(select: exp.Select) -> exp.Select:
    """A copy of a SELECT of the model that runs on its own: the model's CTEs attached when it needs them."""
    out = select.copy()
    root = select.root()
    with_ = root.args.get("with_") or root.args.get("with")
    if with_ is not None and select is not root:
        out.set("with_" if "with_" in exp.Select.arg_types else "with", with_.copy())
    return out


def join_drop_query(fact: JoinFact, dialect: str) -> str | None:
    """Rows entering the join and how many find no match (the join as LEFT, right key IS NULL)."""
    if not fact.pairs:
        return None
    select = with_ctes(fact.select)
    joins = select.args.get("joins") or []
    kept = joins[: fact.index + 1]
    target = kept[-1]
    target.set("side", "LEFT")
    target.set("kind", None)
    right_key = fact.pairs[0][1]
    probe = exp.column(right_key.name, table=fact.right_alias)
    for arg in ("where", "group", "having", "order", "limit", "qualify", "distinct"):
        select.set(arg, None)
    select.set("joins", kept)
    select.set("expressions", [
        exp.alias_(exp.Count(this=exp.Star()), "rows_in"),
        exp.alias_(exp.Sum(this=exp.If(this=exp.Is(this=probe, expression=exp.Null()), true=exp.Literal.number(1),
                                        false=exp.Literal.number(0))), "rows_without_match"),
    ])
    return select.sql(dialect=dialect)


def describe(facts: ModelFacts) -> list[str]:
    """One line per fact, with base relations and columns: what the golden files hold."""
    if facts.error:
        return [f"error: {facts.error}"]
    out = []
    for j in facts.joins:
        keys = " and ".join(f"{a.base} = {b.base}" for a, b in j.pairs) or "no equality key"
        extra = f" (turned inner by {j.turned_inner_by})" if j.turned_inner_by else ""
        out.append(f"join in {j.scope}: {j.kind} {j.right_name or '(derived)'} -> {j.right_relation or '?'} on {keys}{extra}")
    for f in facts.filters:
        cols = ", ".join(f"{_OP_SQL.get(op, op)} {c.base}" for c, op in f.null_dropping) or "no null-dropping comparison"
        cut = f" [incremental cut-off: {' and '.join(c.sql() for c in f.cutoff)}]" if f.cutoff else ""
        out.append(f"filter in {f.scope}: {cols} ({f.predicate.sql()}){cut}")
    for a in facts.aggregates:
        inputs = ", ".join(c.base for c in a.columns) or "*"
        by = f" by {', '.join(a.group_by)}" if a.group_by else ""
        reach = f" -> output {a.model_output}" if a.model_output else ""
        out.append(f"aggregate in {a.scope}: {a.func}({inputs}) as {a.output}{by}{reach}")
    for c in facts.casts:
        col = c.column.base if c.column else "(expression)"
        out.append(f"cast in {c.scope}: {col} as {c.to_type}{' (try)' if c.safe else ''}")
    if facts.unions:
        out.append(f"unions: {facts.unions}")
    if facts.distinct:
        out.append("distinct")
    return out
