"""Column-level reads and lineage of a compiled model, with sqlglot.

``analyze_columns`` says which columns of each upstream relation a model reads (anywhere:
select, join, where, group by; ``SELECT *`` reads all) and, for each output column, which
upstream columns feed it. Relations are keyed ``database.schema.table`` lower-cased.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError
from sqlglot.optimizer.qualify import qualify
from sqlglot.optimizer.scope import Scope, traverse_scope

STAR = "*"
Schema = dict[str, dict[str, dict[str, dict[str, str]]]]


def table_key(table: exp.Table) -> str:
    return ".".join(p for p in (table.catalog, table.db, table.name) if p).lower()


def normalize_relation(relation_name: str) -> str:
    """``"warehouse"."main"."fct_orders"`` -> ``warehouse.main.fct_orders``."""
    return ".".join(p.strip('"`[]') for p in relation_name.split(".")).lower()


@dataclass
class ModelColumns:
    reads: dict[str, set[str]] = field(default_factory=dict)
    outputs: dict[str, set[tuple[str, str]]] = field(default_factory=dict)
    error: str | None = None

    def reads_column(self, relation: str, column: str) -> bool:
        cols = self.reads.get(relation, set())
        return column.lower() in cols or STAR in cols

    def outputs_from(self, relation: str, column: str) -> list[str]:
        col = column.lower()
        return sorted(o for o, srcs in self.outputs.items() if (relation, col) in srcs or (relation, STAR) in srcs)


_log = logging.getLogger("sqlglot")


def parse(sql: str, dialect: str) -> exp.Expression:
    level = _log.level
    _log.setLevel(logging.ERROR)
    try:
        return sqlglot.parse_one(sql, read=dialect)
    finally:
        _log.setLevel(level)


def analyze_columns(sql: str, dialect: str, schema: Schema | None = None) -> ModelColumns:
    """Reads and output lineage of one model's compiled SQL (``error`` set when unparseable)."""
    try:
        tree = parse(sql, dialect)
        try:
            tree = qualify(tree, schema=schema or {}, dialect=dialect, validate_qualify_columns=False,
                           quote_identifiers=False, identify=False)
        except SqlglotError:
            pass  # best effort: unqualified columns are attributed below
        scopes = list(traverse_scope(tree))
    except (SqlglotError, RecursionError, ValueError) as e:
        return ModelColumns(error=f"sqlglot could not parse the model: {str(e).splitlines()[0][:200]}")
    if not scopes:
        return ModelColumns(error="no SELECT found in the model")
    out = ModelColumns()
    for scope in scopes:
        tables = {alias: src for alias, src in scope.sources.items() if isinstance(src, exp.Table)}
        for col in scope.columns:
            for key, name in _resolve_column(scope, col, tables):
                out.reads.setdefault(key, set()).add(name)
        for proj in getattr(scope.expression, "selects", []):
            if isinstance(proj, exp.Star):
                qual = None
            elif isinstance(proj, exp.Column) and isinstance(proj.this, exp.Star):
                qual = proj.table
            else:
                continue  # COUNT(*) and friends read no column
            for alias, tab in tables.items():
                if not qual or qual == alias:
                    out.reads.setdefault(table_key(tab), set()).add(STAR)
    root = scopes[-1]
    for proj in root.expression.selects:
        name = proj.alias_or_name.lower()
        if isinstance(proj, exp.Star) or (isinstance(proj, exp.Column) and isinstance(proj.this, exp.Star)):
            for src in root.sources.values():
                srcs = _sources_of_star(src)
                out.outputs.setdefault(STAR, set()).update(srcs)
            continue
        out.outputs[name] = _lineage(root, proj, depth=0)
    return out


def _resolve_column(scope: Scope, col: exp.Column, tables: dict[str, exp.Table]) -> list[tuple[str, str]]:
    name = col.name.lower()
    if not name or isinstance(col.this, exp.Star):
        return []
    if col.table:
        src = scope.sources.get(col.table)
        if isinstance(src, exp.Table):
            return [(table_key(src), name)]
        return []  # a CTE/subquery column: its own scope records the base reads
    # Unqualified (schema unknown): attribute to every base table in scope (conservative).
    return [(table_key(t), name) for t in tables.values()]


def _sources_of_star(src: Any) -> set[tuple[str, str]]:
    if isinstance(src, exp.Table):
        return {(table_key(src), STAR)}
    if isinstance(src, Scope):
        out: set[tuple[str, str]] = set()
        for proj in src.expression.selects:
            out |= _lineage(src, proj, 1)
        return out
    return set()


def _lineage(scope: Scope, node: exp.Expression, depth: int) -> set[tuple[str, str]]:
    if depth > 20:
        return set()
    out: set[tuple[str, str]] = set()
    tables = {a: s for a, s in scope.sources.items() if isinstance(s, exp.Table)}
    for col in node.find_all(exp.Column):
        name = col.name.lower()
        if isinstance(col.this, exp.Star):
            for src in scope.sources.values():
                out |= _sources_of_star(src)
            continue
        src = scope.sources.get(col.table) if col.table else None
        if isinstance(src, Scope):
            inner = src.expression
            for proj in getattr(inner, "selects", []):
                if proj.alias_or_name.lower() == name or isinstance(proj, exp.Star):
                    out |= _lineage(src, proj, depth + 1)
        elif isinstance(src, exp.Table):
            out.add((table_key(src), name))
        elif not col.table:
            out |= {(table_key(t), name) for t in tables.values()}
    if isinstance(node, exp.Star):
        for src in scope.sources.values():
            out |= _sources_of_star(src)
    return out
