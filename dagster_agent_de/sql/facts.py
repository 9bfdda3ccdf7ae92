"""Facts of a compiled model, from sqlglot: joins, filters, aggregations, casts, unions, distincts.

Each fact keeps the sqlglot node it came from, so detectors can build targeted queries
(e.g. the same join as a LEFT JOIN, counting the rows it would drop).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlglot import exp
from sqlglot.errors import SqlglotError

from dagster_agent_de.sql.lineage import parse, table_key

NULL_DROPPING_OPS = (exp.NEQ, exp.GT, exp.GTE, exp.LT, exp.LTE, exp.EQ, exp.Like, exp.ILike)


@dataclass
class ColumnRef:
    alias: str | None
    name: str
    relation: str | None  # base relation key when the alias is a table, else None

    def sql(self) -> str:
        return f"{self.alias}.{self.name}" if self.alias else self.name


@dataclass
class JoinFact:
    select: exp.Select
    index: int
    kind: str  # inner | left | right | full | cross
    right_alias: str
    right_relation: str | None
    on: exp.Expression | None
    pairs: list[tuple[ColumnRef, ColumnRef]]  # (left, right) equality keys
    turned_inner_by: str | None = None  # a WHERE predicate on the right side of a LEFT JOIN

    @property
    def effectively_inner(self) -> bool:
        return self.kind in ("inner", "") or self.turned_inner_by is not None


@dataclass
class FilterFact:
    select: exp.Select
    predicate: exp.Expression
    null_dropping: list[tuple[ColumnRef, str]]  # (column, operator) comparisons that are never true for NULL


@dataclass
class AggregateFact:
    select: exp.Select
    func: str
    output: str
    expression: exp.Expression
    columns: list[ColumnRef]
    group_by: list[str]


@dataclass
class CastFact:
    select: exp.Select
    expression: exp.Expression
    to_type: str
    column: ColumnRef | None
    safe: bool  # TRY_CAST


@dataclass
class ModelFacts:
    sql: str
    tree: exp.Expression | None = None
    relations: dict[str, str] = field(default_factory=dict)  # alias -> base relation key
    joins: list[JoinFact] = field(default_factory=list)
    filters: list[FilterFact] = field(default_factory=list)
    aggregates: list[AggregateFact] = field(default_factory=list)
    casts: list[CastFact] = field(default_factory=list)
    unions: int = 0
    distinct: bool = False
    error: str | None = None


def _aliases(select: exp.Select) -> dict[str, exp.Expression]:
    out: dict[str, exp.Expression] = {}
    sources = []
    if select.args.get("from_"):
        sources.append(select.args["from_"].this)
    elif select.args.get("from"):
        sources.append(select.args["from"].this)
    sources += [j.this for j in select.args.get("joins") or []]
    for s in sources:
        out[s.alias_or_name] = s
    return out


def _ref(col: exp.Column, aliases: dict[str, exp.Expression], cte_names: set[str]) -> ColumnRef:
    alias = col.table or None
    src = aliases.get(alias) if alias else (next(iter(aliases.values())) if len(aliases) == 1 else None)
    relation = None
    if isinstance(src, exp.Table) and src.name not in cte_names:
        relation = table_key(src)
    return ColumnRef(alias, col.name, relation)


def extract_facts(sql: str, dialect: str) -> ModelFacts:
    """Parse ``sql`` and collect facts from every SELECT in it (CTEs included)."""
    facts = ModelFacts(sql=sql)
    try:
        tree = parse(sql, dialect)
    except (SqlglotError, RecursionError, ValueError) as e:
        facts.error = f"sqlglot could not parse the model: {str(e).splitlines()[0][:200]}"
        return facts
    facts.tree = tree
    cte_names = {c.alias for c in tree.find_all(exp.CTE)}
    facts.unions = len(list(tree.find_all(exp.Union)))
    for select in tree.find_all(exp.Select):
        aliases = _aliases(select)
        for alias, src in aliases.items():
            if isinstance(src, exp.Table) and src.name not in cte_names:
                facts.relations[alias] = table_key(src)
        if select.args.get("distinct"):
            facts.distinct = True
        where = select.args.get("where")
        right_aliases_of_left_joins = {}
        for i, join in enumerate(select.args.get("joins") or []):
            side = (join.side or "").lower()
            kind = (join.kind or "").lower()
            jkind = side or ("cross" if kind == "cross" else "inner")
            right = join.this
            on = join.args.get("on")
            pairs = []
            if on is not None:
                for eq in on.find_all(exp.EQ):
                    if isinstance(eq.left, exp.Column) and isinstance(eq.right, exp.Column):
                        a, b = _ref(eq.left, aliases, cte_names), _ref(eq.right, aliases, cte_names)
                        if b.alias == right.alias_or_name:
                            pairs.append((a, b))
                        elif a.alias == right.alias_or_name:
                            pairs.append((b, a))
            fact = JoinFact(
                select=select, index=i, kind=jkind, right_alias=right.alias_or_name,
                right_relation=table_key(right) if isinstance(right, exp.Table) and right.name not in cte_names else None,
                on=on, pairs=pairs,
            )
            if jkind == "left":
                right_aliases_of_left_joins[right.alias_or_name] = fact
            facts.joins.append(fact)
        if where is not None:
            null_dropping = []
            for cmp in where.this.find_all(*NULL_DROPPING_OPS):
                for col in cmp.find_all(exp.Column):
                    null_dropping.append((_ref(col, aliases, cte_names), cmp.key.upper()))
            for notin in where.this.find_all(exp.Not):
                if isinstance(notin.this, exp.In):
                    for col in notin.this.this.find_all(exp.Column):
                        null_dropping.append((_ref(col, aliases, cte_names), "NOT IN"))
            facts.filters.append(FilterFact(select, where.this, null_dropping))
            for col, _op in null_dropping:
                lj = right_aliases_of_left_joins.get(col.alias or "")
                if lj is not None and not _is_null_check(where.this, col):
                    lj.turned_inner_by = where.this.sql()
        group = [g.sql() for g in (select.args.get("group").expressions if select.args.get("group") else [])]
        for proj in select.selects:
            for agg in proj.find_all(exp.AggFunc):
                cols = [_ref(c, aliases, cte_names) for c in agg.find_all(exp.Column)]
                facts.aggregates.append(AggregateFact(select, agg.key.lower(), proj.alias_or_name, agg, cols, group))
            for cast in proj.find_all(exp.Cast, exp.TryCast):
                col = cast.this if isinstance(cast.this, exp.Column) else None
                facts.casts.append(CastFact(
                    select, cast, cast.to.sql(dialect=dialect),
                    _ref(col, aliases, cte_names) if col is not None else None, isinstance(cast, exp.TryCast),
                ))
    return facts


def _is_null_check(where: exp.Expression, col: ColumnRef) -> bool:
    for isnull in where.find_all(exp.Is):
        c = isnull.this
        if isinstance(c, exp.Column) and c.name == col.name and (c.table or None) == col.alias:
            return True
    return False


def join_drop_query(fact: JoinFact, dialect: str) -> str | None:
    """Rows entering the join and how many find no match (the join as LEFT, right key IS NULL)."""
    if not fact.pairs:
        return None
    select = fact.select.copy()
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
    root = fact.select.root()
    with_ = root.args.get("with_") or root.args.get("with")
    if with_ is not None and fact.select is not root:
        select.set("with_" if "with_" in exp.Select.arg_types else "with", with_.copy())
    return select.sql(dialect=dialect)
