"""Scope-aware resolution of a compiled model: every column to the base relation and column it comes from.

A model written in dbt's style guide reads its inputs in import CTEs (``with payments as (select *
from ...)``), works in logical CTEs and ends in ``select * from final``. :class:`ModelAnalysis` parses
and qualifies the SQL once (sqlglot's ``qualify``: ``using`` joins become ``on``, positional ``group
by 1`` and ``order by 1`` are expanded, stars over CTEs are expanded), walks its scopes (CTEs,
derived tables, subqueries, set operations) and resolves any column of any scope down to the
``(relation, column)`` pairs of the base tables it is computed from. Relations are keyed
``database.schema.table`` lower-cased; a column ``*`` stands for every column of the relation.

>>> a = ModelAnalysis("with p as (select * from db.s.payments) select order_id, sum(amount) as total "
...                   "from p group by 1", "duckdb")
>>> sorted(a.output_sources("total"))
[('db.s.payments', 'amount')]
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any, TypeGuard

import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError
from sqlglot.optimizer.qualify import qualify
from sqlglot.optimizer.scope import Scope, traverse_scope

STAR = "*"
BaseColumn = tuple[str, str]  # (relation key, column name); column "*" = all of them
Schema = dict[str, dict[str, dict[str, dict[str, str]]]]  # sqlglot mapping: db -> schema -> table -> column -> type
ColumnsOf = Callable[[str], "set[str] | None"]  # relation key -> its known column names (None: unknown)

_log = logging.getLogger("sqlglot")
_MAX_DEPTH = 64


def table_key(table: exp.Table) -> str:
    """``"warehouse"."main"."orders"`` as a table node -> ``warehouse.main.orders``."""
    return ".".join(p for p in (table.catalog, table.db, table.name) if p).lower()


def normalize_relation(relation_name: str) -> str:
    """``"warehouse"."main"."fct_orders"`` -> ``warehouse.main.fct_orders``."""
    return ".".join(p.strip('"`[]') for p in relation_name.split(".")).lower()


def parse(sql: str, dialect: str) -> exp.Expr:
    """Parse one statement, without sqlglot's warnings on the log."""
    level = _log.level
    _log.setLevel(logging.ERROR)
    try:
        return sqlglot.parse_one(sql, read=dialect)
    finally:
        _log.setLevel(level)


def parse_error(e: BaseException) -> str:
    return f"sqlglot could not parse the model: {str(e).splitlines()[0][:200] if str(e) else type(e).__name__}"


class ModelAnalysis:
    """The qualified tree of one compiled model, its scopes and a resolver from columns to base columns.

    Args:
        sql: the compiled SQL of the model.
        dialect: a sqlglot dialect name (``duckdb``, ``snowflake``).
        schema: complete column lists of upstream relations, as sqlglot's nested mapping. Only give
            relations whose columns are all known: ``select *`` over them is expanded from it.
        columns_of: known (possibly partial) column names of a relation, used only to tell which
            source an unqualified column of a multi-source ``select`` comes from.
        this: the model's own relation key (``{{ this }}``): an incremental model reads it in its cut-off,
            ``where ordered_at > (select max(ordered_at) from {{ this }})``.
    """

    def __init__(self, sql: str, dialect: str, schema: Schema | None = None, columns_of: ColumnsOf | None = None,
                 this: str | None = None) -> None:
        self.sql = sql
        self.dialect = dialect
        self.this = this
        self.error: str | None = None
        self.tree: exp.Expr | None = None
        self.scopes: list[Scope] = []
        self._columns_of = columns_of or (lambda _rel: None)
        self._memo: dict[tuple[int, str | None, str], frozenset[BaseColumn]] = {}
        self._scope_of: dict[int, Scope] = {}
        try:
            tree = _own_table_columns(parse(sql, dialect), this)
            try:
                # sqlglot types ``schema`` as an invariant ``dict[str, object]``; a nested mapping is what it reads
                tree = qualify(tree, schema=schema or {}, dialect=dialect, validate_qualify_columns=False,  # type: ignore[arg-type]
                               quote_identifiers=False, identify=False)
            except (SqlglotError, KeyError, ValueError, AttributeError):
                tree = _own_table_columns(parse(sql, dialect), this)  # best effort: unqualified columns are attributed by the resolver
            self.scopes = list(traverse_scope(tree))
        except (SqlglotError, RecursionError, ValueError) as e:
            self.error = parse_error(e)
            return
        except Exception as e:  # noqa: BLE001 - a sqlglot bug on one model must not stop an investigation
            self.error = f"sqlglot could not analyze the model: {type(e).__name__}: {str(e)[:200]}"
            return
        if not self.scopes:
            self.error = "no SELECT found in the model"
            return
        self.tree = tree
        for scope in self.scopes:
            self._scope_of[id(scope.expression)] = scope

    # -- scopes --------------------------------------------------------------------------------

    @property
    def root(self) -> Scope:
        return self.scopes[-1]

    def select_scopes(self) -> list[Scope]:
        """Every scope whose expression is a plain SELECT (CTE bodies, derived tables, subqueries, union branches)."""
        return [s for s in self.scopes if isinstance(s.expression, exp.Select)]

    def scope_of(self, select: exp.Expr) -> Scope | None:
        return self._scope_of.get(id(select))

    def with_clause(self) -> exp.With | None:
        """The root WITH (its CTEs are visible to every scope of the model)."""
        if self.tree is None:
            return None
        w = self.tree.args.get("with_") or self.tree.args.get("with")
        return w if isinstance(w, exp.With) else None

    def cte_names(self) -> set[str]:
        return {c.alias for c in self.tree.find_all(exp.CTE)} if self.tree is not None else set()

    @staticmethod
    def sources(scope: Scope) -> dict[str, Any]:
        """alias -> exp.Table (a base relation) or Scope (a CTE, derived table), for what the SELECT reads."""
        out: dict[str, Any] = {}
        for alias, (_node, source) in scope.selected_sources.items():
            out[alias] = source
        return out

    # -- resolution ----------------------------------------------------------------------------

    def resolve(self, scope: Scope, column: exp.Column) -> frozenset[BaseColumn]:
        """The base columns a column of ``scope`` comes from (``*`` for a ``t.*``)."""
        name = STAR if isinstance(column.this, exp.Star) else column.name.lower()
        return self._resolve(scope, column.table or None, name, 0)

    def expression_sources(self, scope: Scope, node: exp.Expr) -> frozenset[BaseColumn]:
        """Base columns read by an expression of ``scope`` (a projection, a predicate, an aggregate)."""
        out: set[BaseColumn] = set()
        if isinstance(node, exp.Star):
            for alias in self.sources(scope):
                out |= self._resolve(scope, alias, STAR, 0)
            return frozenset(out)
        for col in _own_columns(node):
            out |= self.resolve(scope, col)
        for sub in node.find_all(exp.Select):  # a scalar subquery: its projection feeds this expression
            inner = self.scope_of(sub)
            if inner is not None and inner is not scope:
                for proj in sub.selects:
                    out |= self.expression_sources(inner, proj)
        return frozenset(out)

    def source_relation(self, scope: Scope, alias: str) -> str | None:
        """The one base relation behind a source of ``scope``: a table, or a CTE that reads only it."""
        src = self.sources(scope).get(alias) or scope.sources.get(alias)
        if isinstance(src, exp.Table):
            return table_key(src)
        if isinstance(src, Scope):
            rels = {r for r, _c in self._resolve(scope, alias, STAR, 0)}
            return next(iter(rels)) if len(rels) == 1 else None
        return None

    def _resolve(self, scope: Scope, alias: str | None, name: str, depth: int) -> frozenset[BaseColumn]:
        key = (id(scope), alias, name)
        if key in self._memo:
            return self._memo[key]
        self._memo[key] = frozenset()  # a cycle resolves to nothing
        out = frozenset(self._resolve_uncached(scope, alias, name, depth)) if depth < _MAX_DEPTH else frozenset()
        self._memo[key] = out
        return out

    def _resolve_uncached(self, scope: Scope, alias: str | None, name: str, depth: int) -> set[BaseColumn]:
        sources = self.sources(scope)
        if alias is None:
            candidates = list(sources) if len(sources) <= 1 else [a for a in sources if self._has_column(sources[a], name)]
            if not candidates:
                candidates = list(sources)  # unknown: every source may hold it (conservative)
            out: set[BaseColumn] = set()
            for a in candidates:
                out |= self._resolve(scope, a, name, depth + 1)
            return out
        src = sources.get(alias)
        if src is None:
            src = scope.sources.get(alias)
        if src is None and scope.parent is not None:  # a correlated column of an outer scope
            return set(self._resolve(scope.parent, alias, name, depth + 1))
        if isinstance(src, exp.Table):
            return {(table_key(src), name)}
        if isinstance(src, Scope):
            return self._through(src, name, depth + 1)
        return set()

    def _through(self, scope: Scope, name: str, depth: int) -> set[BaseColumn]:
        """A column read from a CTE / derived table / set operation: resolve its projection inside it."""
        expr = scope.expression
        if isinstance(expr, exp.SetOperation):
            branches = scope.set_operation_scopes or []
            names = [p.alias_or_name.lower() for p in expr.selects]
            out: set[BaseColumn] = set()
            if name == STAR or name not in names:
                for b in branches:
                    out |= self._through(b, name, depth + 1)
                return out
            i = names.index(name)
            for b in branches:
                bexpr = b.expression
                if isinstance(bexpr, exp.SetOperation):
                    out |= self._through(b, name, depth + 1)
                elif isinstance(bexpr, exp.Select) and i < len(bexpr.selects) and not any(isinstance(p, exp.Star) or _is_table_star(p) for p in bexpr.selects):
                    out |= self.expression_sources(b, bexpr.selects[i])
                else:
                    out |= self._through(b, name, depth + 1)
            return out
        if not isinstance(expr, exp.Select):
            return set()
        if name == STAR:  # every column of the scope
            out = set()
            for proj in expr.selects:
                out |= self.expression_sources(scope, proj)
            return out
        named = _projection_named(expr, name)
        if named is not None:
            return set(self.expression_sources(scope, named.this if isinstance(named, exp.Alias) else named))
        out = set()
        for proj in expr.selects:
            if isinstance(proj, exp.Star):
                out |= self._resolve_uncached(scope, None, name, depth + 1)
            elif _is_table_star(proj):
                out |= self._resolve(scope, proj.table, name, depth + 1)
        return out

    def _has_column(self, src: Any, name: str) -> bool:
        if isinstance(src, exp.Table):
            cols = self._columns_of(table_key(src))
            return cols is None or name in cols
        if isinstance(src, Scope):
            expr = src.expression
            selects = expr.selects if isinstance(expr, (exp.Select, exp.SetOperation)) else []
            if any(isinstance(p, exp.Star) or _is_table_star(p) for p in selects):
                if isinstance(expr, exp.Select):
                    srcs = self.sources(src)
                    return any(self._has_column(s, name) for s in srcs.values())
                return True
            return any(p.alias_or_name.lower() == name for p in selects)
        return True

    # -- outputs -------------------------------------------------------------------------------

    def output_names(self) -> list[str]:
        """Output column names of the model (``*`` when a star could not be expanded)."""
        if self.error or self.tree is None:
            return []
        expr = self.root.expression
        out = []
        for proj in expr.selects if isinstance(expr, (exp.Select, exp.SetOperation)) else []:
            out.append(STAR if isinstance(proj, exp.Star) or _is_table_star(proj) else proj.alias_or_name.lower())
        return out

    def output_sources(self, name: str) -> frozenset[BaseColumn]:
        """Base columns an output column is computed from (through every CTE and star)."""
        if self.error:
            return frozenset()
        return frozenset(self._through(self.root, name.lower(), 0))

    def outputs(self) -> dict[str, set[BaseColumn]]:
        """Output column -> base columns; a star that could not be expanded is the key ``*``."""
        out: dict[str, set[BaseColumn]] = {}
        for name in self.output_names():
            out.setdefault(name, set()).update(self._through(self.root, name, 0))
        return out

    def passthrough(self, name: str, null_strict: bool = False) -> list[tuple[Scope, str, str]]:
        """Where an output column is read as it is (no function over it): one ``(scope, source alias,
        column)`` hop per SELECT, from the final one down through CTEs and derived tables.

        It stops at a base table, a computed value or a set operation (several origins). With
        ``null_strict`` it also follows a column through functions that are NULL exactly when it is
        (``upper(c.region)``, ``cast(c.region as varchar)``, ``trim(...)``: see :func:`null_strict_column`),
        never through one that replaces a NULL (``coalesce``, ``case ... else``).

        >>> a = ModelAnalysis("with c as (select * from db.s.customers), f as (select o.id, c.region from "
        ...                   "db.s.orders o left join c on o.cid = c.id) select * from f", "duckdb")
        >>> [(alias, col) for _scope, alias, col in a.passthrough("region")]
        [('f', 'region'), ('c', 'region'), ('customers', 'region')]
        """
        out: list[tuple[Scope, str, str]] = []
        if self.error or self.tree is None:
            return out
        scope, col = self.root, name.lower()
        for _ in range(_MAX_DEPTH):
            expr = scope.expression
            if not isinstance(expr, exp.Select):
                break
            sources = self.sources(scope)
            alias: str | None = None
            proj = _projection_named(expr, col)
            if proj is not None:
                inner = proj.this if isinstance(proj, exp.Alias) else proj
                if null_strict:
                    inner = null_strict_column(inner) or inner
                if not isinstance(inner, exp.Column) or isinstance(inner.this, exp.Star):
                    break  # computed here: not a pass-through
                col = inner.name.lower()
                alias = inner.table or self._only_source_with(sources, col)
            else:
                for p in expr.selects:
                    if isinstance(p, exp.Star):
                        alias = self._only_source_with(sources, col)
                    elif _is_table_star(p) and self._has_column(sources.get(p.table), col):
                        alias = p.table
            if not alias:
                break
            out.append((scope, alias, col))
            src = sources.get(alias) or scope.sources.get(alias)
            if not isinstance(src, Scope):
                break
            scope = src
        return out

    def _only_source_with(self, sources: dict[str, Any], name: str) -> str | None:
        if len(sources) == 1:
            return next(iter(sources))
        having = [a for a, s in sources.items() if self._has_column(s, name)]
        return having[0] if len(having) == 1 else None

    def definition(self, name: str) -> tuple[Scope, exp.Expr] | None:
        """Where an output column is computed: the first projection on its path that is not a plain column.

        ``select * from final`` with ``final as (select sum(amount) as revenue ...)`` gives the
        ``sum(amount)`` of ``final``. None when the column only passes a base column through.
        """
        if self.error:
            return None
        return self._definition(self.root, name.lower(), 0)

    def _definition(self, scope: Scope, name: str, depth: int) -> tuple[Scope, exp.Expr] | None:
        expr = scope.expression
        if depth > _MAX_DEPTH:
            return None
        if isinstance(expr, exp.SetOperation):
            for b in scope.set_operation_scopes or []:
                found = self._definition(b, name, depth + 1)
                if found is not None:
                    return found
            return None
        if not isinstance(expr, exp.Select):
            return None
        proj = _projection_named(expr, name)
        if proj is not None:
            inner = proj.this if isinstance(proj, exp.Alias) else proj
            if not isinstance(inner, exp.Column):
                return scope, inner
            src = self.sources(scope).get(inner.table) if inner.table else _single(self.sources(scope))
            return self._definition(src, inner.name.lower(), depth + 1) if isinstance(src, Scope) else None
        for p in expr.selects:
            if isinstance(p, exp.Star) or _is_table_star(p):
                srcs = self.sources(scope)
                targets = [srcs.get(p.table)] if _is_table_star(p) else list(srcs.values())
                for src in targets:
                    if isinstance(src, Scope):
                        found = self._definition(src, name, depth + 1)
                        if found is not None:
                            return found
        return None

    def reads(self) -> dict[str, set[str]]:
        """Relation -> the columns of it the model reads anywhere (``*`` when a star reads all of it)."""
        out: dict[str, set[str]] = {}
        for scope in self.scopes:
            for col in scope.columns:
                if isinstance(col.this, exp.Star):
                    continue
                for rel, name in self.resolve(scope, col):
                    out.setdefault(rel, set()).add(name)
            expr = scope.expression
            for proj in expr.selects if isinstance(expr, exp.Select) else []:
                if isinstance(proj, exp.Star) or _is_table_star(proj):
                    for rel, name in self.expression_sources(scope, proj):
                        out.setdefault(rel, set()).add(name)
        return out

    def where_predicates(self) -> Iterable[exp.Expr]:
        """Each conjunct of every WHERE of the model."""
        if self.tree is None:
            return []
        out: list[exp.Expr] = []
        for where in self.tree.find_all(exp.Where):
            out.extend(where.this.flatten() if isinstance(where.this, exp.And) else [where.this])
        return out


# functions NULL exactly when their first argument is (the other arguments constant): NULL goes through them
# unchanged and they make no NULL of a value. Not coalesce/ifnull/nvl, case, nullif, concat (which skip or
# make NULLs), nor try_cast or division (NULL for a value that does not convert, for x / 0 in DuckDB).
_NULL_STRICT: tuple[type[exp.Expr], ...] = (
    exp.Cast, exp.Upper, exp.Lower, exp.Trim, exp.Initcap, exp.Paren, exp.Neg, exp.Abs, exp.Round, exp.Floor,
    exp.Ceil, exp.Substring, exp.Left, exp.Right, exp.Length, exp.Replace, exp.Pad, exp.TimestampTrunc, exp.DateTrunc,
)
_NULL_STRICT_ARITHMETIC: tuple[type[exp.Expr], ...] = (exp.Add, exp.Sub, exp.Mul)


def null_strict_column(node: exp.Expr) -> exp.Column | None:
    """The one column ``node`` is a NULL-propagating wrapper of (``upper(trim(c.region))`` -> ``c.region``;
    ``c.amount * 100`` -> ``c.amount``), or ``None`` (another shape, or a function that may replace a NULL).

    >>> null_strict_column(parse("select cast(upper(c.region) as varchar)", "duckdb").selects[0]).sql()
    'c.region'
    >>> null_strict_column(parse("select coalesce(c.region, 'n/a')", "duckdb").selects[0]) is None
    True
    """
    for _ in range(_MAX_DEPTH):
        if isinstance(node, exp.Column):
            return node
        if isinstance(node, _NULL_STRICT_ARITHMETIC):
            left, right = node.args.get("this"), node.args.get("expression")
            if isinstance(right, exp.Literal) and isinstance(left, exp.Expr):
                node = left
            elif isinstance(left, exp.Literal) and isinstance(right, exp.Expr):
                node = right
            else:
                return None
            continue
        if not isinstance(node, _NULL_STRICT) or isinstance(node, exp.TryCast):
            return None
        inner = node.args.get("this")
        if not isinstance(inner, exp.Expr):
            return None
        for key, value in node.args.items():  # the other arguments: constants only (no column, no subquery)
            if key == "this" or value is None:
                continue
            for v in value if isinstance(value, list) else [value]:
                if isinstance(v, exp.Expr) and (isinstance(v, (exp.Column, exp.Query)) or v.find(exp.Column, exp.Query)):
                    return None
        node = inner
    return None


def _own_table_columns(tree: exp.Expr, this: str | None) -> exp.Expr:
    """Qualify the bare columns of a SELECT that reads only the model's own table (``this``) with that table.

    SQL resolves a bare name in the innermost scope first, and the model's table has the model's columns;
    sqlglot, not knowing them (the model is not its own upstream), would resolve ``ordered_at`` in
    ``(select max(ordered_at) from {{ this }})`` to the outer query's column: an aggregate of the outer row.

    >>> sql = "select * from s where t > (select max(t) from db.main.m)"
    >>> _own_table_columns(parse(sql, "duckdb"), "db.main.m").sql()
    'SELECT * FROM s WHERE t > (SELECT MAX(m.t) FROM db.main.m)'
    """
    if not this:
        return tree
    for select in tree.find_all(exp.Select):
        from_ = select.args.get("from_") or select.args.get("from")
        table = from_.this if isinstance(from_, exp.From) else None
        if not isinstance(table, exp.Table) or select.args.get("joins") or table_key(table) != this:
            continue
        name = table.alias_or_name
        for part in [*select.expressions, *(select.args.get(a) for a in ("where", "group", "having", "order"))]:
            if isinstance(part, exp.Expr):
                for col in _own_columns(part):
                    if not col.table and not isinstance(col.this, exp.Star):
                        col.set("table", exp.to_identifier(name))
    return tree


def _single(sources: dict[str, Any]) -> Any:
    return next(iter(sources.values())) if len(sources) == 1 else None


def _is_table_star(node: exp.Expr) -> TypeGuard[exp.Column]:
    return isinstance(node, exp.Column) and isinstance(node.this, exp.Star)


def _projection_named(select: exp.Select, name: str) -> exp.Expr | None:
    for proj in select.selects:
        if not isinstance(proj, exp.Star) and not _is_table_star(proj) and proj.alias_or_name.lower() == name:
            return proj
    return None


def _own_columns(node: exp.Expr) -> list[exp.Column]:
    """Columns of ``node`` that belong to its own scope (not to a nested subquery)."""
    out = []
    for col in node.find_all(exp.Column):
        if col is node:
            out.append(col)
            continue
        parent = col.parent
        nested = False
        while parent is not None and parent is not node:
            if isinstance(parent, exp.Query):
                nested = True
                break
            parent = parent.parent
        if not nested:
            out.append(col)
    return out
