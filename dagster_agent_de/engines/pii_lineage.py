"""PII by lineage: a column derived from a PII-tagged column is PII, through aliases, CTEs, joins
and models, using the project's column-level lineage (one call, :func:`column_sources`).
"""

from __future__ import annotations

import weakref
from typing import Any

from dagster_agent_de.core.masking import masker

STAR = "*"
Sources = dict[str, set[tuple[str, str]]]


def column_sources(sql: str, dialect: str) -> Sources | None:
    """Output column (lower-cased) -> upstream ``(relation, column)`` pairs of ``sql``; None if unknown.

    The one place this module calls the column-level lineage (``sql.lineage``); set operations are
    traced branch by branch and joined by position. ``*`` maps to the relations a star reads.
    """
    from sqlglot import exp
    from sqlglot.errors import SqlglotError

    from dagster_agent_de.sql.lineage import analyze_columns, parse

    try:
        tree = parse(sql, dialect)
    except (SqlglotError, RecursionError, ValueError):
        return None
    if isinstance(tree, exp.SetOperation):
        branches = []
        for side in (tree.left, tree.right):
            branch = side.copy()
            if tree.args.get("with") is not None and isinstance(branch, exp.Query):
                branch.set("with", tree.args["with"].copy())
            branches.append(column_sources(branch.sql(dialect), dialect))
        if any(b is None for b in branches):
            return None
        left, right = branches[0] or {}, branches[1] or {}
        out: Sources = {k: set(v) for k, v in left.items()}
        for (name, _), (_, srcs) in zip(list(left.items()), list(right.items()), strict=False):
            out[name] |= srcs
        return out
    cols = analyze_columns(_counts_as_literals(tree).sql(dialect), dialect)
    if cols.error:
        return None
    outputs = {k: set(v) for k, v in cols.outputs.items()}
    for proj in getattr(tree, "selects", []):
        if _carries_no_value(proj.unalias()):
            outputs[proj.alias_or_name.lower()] = set()
    return outputs


def _counts_as_literals(tree: Any) -> Any:
    """A copy of ``tree`` where every named projection that carries no value (a count, a window count, a
    difference of counts; in a CTE, a subquery or the outer query) reads as ``0``: what is derived from it
    (``max(n)`` over ``count(*) over (partition by email) as n``) is then a number, not PII."""
    from sqlglot import exp

    tree = tree.copy()
    for select in list(tree.find_all(exp.Select)):
        for proj in select.expressions:
            if isinstance(proj, exp.Alias) and _carries_no_value(proj.this):
                proj.set("this", exp.Literal.number(0))
    return tree


_ARITHMETIC = ("Add", "Sub", "Mul", "Div", "Mod", "IntDiv")


def _carries_no_value(node: Any) -> bool:
    """A count, sum, average or test of a column shows none of its values (MIN/MAX/ANY_VALUE do); nor
    does a ranking, a count over a window, or arithmetic over counts and constants."""
    from sqlglot import exp

    if isinstance(node, (exp.Paren, exp.Window)):
        return _carries_no_value(node.this)
    if isinstance(node, tuple(getattr(exp, n) for n in _ARITHMETIC if hasattr(exp, n))):
        return all(isinstance(side, exp.Literal) or _carries_no_value(side) for side in (node.left, node.right))
    if isinstance(node, (exp.Count, exp.Sum, exp.Avg, exp.ApproxDistinct, exp.Stddev, exp.StddevPop,
                         exp.StddevSamp, exp.Variance, exp.VariancePop, exp.Predicate, exp.Boolean, exp.Length)):
        return True
    if isinstance(node, exp.Cast):
        return _carries_no_value(node.this)
    return isinstance(node, exp.Func) and node.sql_name().lower() in _NO_VALUE_FUNCTIONS


_NO_VALUE_FUNCTIONS = frozenset({"typeof", "pg_typeof", "count_if", "countif", "count_star", "approx_count_distinct",
                                 "row_number", "rank", "dense_rank", "ntile", "percent_rank", "cume_dist"})


class PiiIndex:
    """PII columns of every relation of a manifest: the tagged ones and those derived from them."""

    def __init__(self, manifest: Any, dialect: str = "duckdb") -> None:
        from dagster_agent_de.sql.lineage import normalize_relation

        self.manifest = manifest
        self.dialect = dialect
        self._by_relation: dict[str, Any] = {}
        self.tagged: dict[str, set[str]] = {}
        for node in manifest.nodes.values():
            if node.relation_name:
                rel = normalize_relation(node.relation_name)
                self._by_relation[rel] = node
                tagged = node.pii_columns()
                if tagged:
                    self.tagged[rel] = tagged
        self._derived: dict[str, set[str]] = {}
        self._visiting: set[str] = set()

    @property
    def any(self) -> bool:
        return bool(self.tagged)

    def names(self) -> set[str]:
        """PII column names known so far: the tagged ones and those derived yet (the by-name fallback
        when a query's lineage is unknown; not a full pass over every model, which costs seconds on
        thousands of models)."""
        out: set[str] = set()
        for cols in (*self.tagged.values(), *self._derived.values()):
            out |= cols
        return out

    def relation_pii(self, relation: str) -> set[str]:
        """PII columns of ``relation`` (``db.schema.table`` lower-cased): tagged, or derived by lineage."""
        relation = relation.lower()
        if not self.tagged:
            return set()
        if relation not in self._by_relation:
            # an unqualified reference (``main.t`` or ``t`` for ``db.main.t``): every relation it may name
            matches = [r for r in self._by_relation if r.endswith("." + relation)]
            return set().union(*(self.relation_pii(r) for r in matches)) if matches else set()
        if relation in self._derived:
            return self._derived[relation]
        out = set(self.tagged.get(relation, set()))
        node = self._by_relation.get(relation)
        if node is not None and not node.is_source and relation not in self._visiting:
            self._visiting.add(relation)
            try:
                sql = self.manifest.compiled_sql(node.unique_id)
                if sql:
                    out |= self.pii_outputs(sql)
            finally:
                self._visiting.discard(relation)
        self._derived[relation] = out
        return out

    def node_pii(self, node: Any) -> set[str]:
        from dagster_agent_de.sql.lineage import normalize_relation

        if not node.relation_name:
            return node.pii_columns()
        return self.relation_pii(normalize_relation(node.relation_name)) | node.pii_columns()

    def pii_outputs(self, sql: str) -> set[str]:
        """Output columns of ``sql`` derived from a PII column (by name when lineage is unknown)."""
        if not self.tagged:
            return set()
        sources = column_sources(sql, self.dialect)
        if sources is None:
            return self.names()
        out: set[str] = set()
        for name, srcs in sources.items():
            for rel, col in srcs:
                pii = self.relation_pii(rel)
                if name == STAR:
                    out |= pii if col == STAR else ({col} if col in pii else set())
                elif col == STAR and pii or col in pii:
                    out.add(name)
        if STAR in sources:
            out |= {n for n in self.names() if n not in sources}  # a star over a derived table: by name
        return out

    def mask_rows(self, sql: str, columns: list[str], rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
        """``rows`` (of ``sql``, with ``columns``) with every PII column's values masked."""
        pii = self.pii_outputs(sql)
        idx = [i for i, c in enumerate(columns) if c.lower() in pii]
        if not idx:
            return rows
        m = masker()
        return [tuple(m.mask(v) if i in idx else v for i, v in enumerate(r)) for r in rows]


_INDEXES: weakref.WeakKeyDictionary[Any, dict[str, PiiIndex]] = weakref.WeakKeyDictionary()


def pii_index(manifest: Any, dialect: str = "duckdb") -> PiiIndex:
    """The :class:`PiiIndex` of ``manifest`` (built once per manifest object and dialect)."""
    per = _INDEXES.setdefault(manifest, {})
    if dialect not in per:
        per[dialect] = PiiIndex(manifest, dialect)
    return per[dialect]
