"""One analysis per model of a dbt project, shared by facts, lineage, metrics and intents.

:class:`LineageTracer` analyzes each model's compiled SQL once (lazily, upstream first), giving
sqlglot the complete output columns of upstream models as schema, so ``select *`` over a ref()
expands and unqualified columns of a join resolve. It answers: the facts of a model, its column
reads and output lineage, and the source columns and filters a model column is computed from,
across models.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from sqlglot import exp

from dagster_agent_de.manifest import Manifest, Node
from dagster_agent_de.sql.facts import ModelFacts, extract_facts
from dagster_agent_de.sql.lineage import ModelColumns, columns_of_analysis
from dagster_agent_de.sql.scope import STAR, ModelAnalysis, Schema, normalize_relation

__all__ = ["LineageTracer", "strip_qualifiers"]


class LineageTracer:
    """Source columns and filters of a model column, through upstream models (every model analyzed once)."""

    def __init__(self, manifest: Manifest, dialect: str) -> None:
        self.manifest = manifest
        self.dialect = dialect
        self.by_relation = {normalize_relation(n.relation_name): n for n in manifest.nodes.values() if n.relation_name}
        self._analysis: dict[str, ModelAnalysis] = {}
        self._facts: dict[str, ModelFacts] = {}
        self._cols: dict[str, ModelColumns] = {}
        self._filters: dict[str, list[str]] = {}

    # -- one analysis per model ------------------------------------------------------------------

    def analysis(self, node: Node) -> ModelAnalysis:
        """The model's analysis; its upstream models are analyzed first (iteratively: long chains are fine)."""
        if node.unique_id in self._analysis:
            return self._analysis[node.unique_id]
        order: list[str] = []
        seen: set[str] = set()
        stack: list[tuple[str, bool]] = [(node.unique_id, False)]
        while stack:
            uid, done = stack.pop()
            if done:
                order.append(uid)
                continue
            if uid in seen or uid in self._analysis:
                continue
            seen.add(uid)
            stack.append((uid, True))
            for parent in self.manifest.parents(uid):
                p = self.manifest.nodes.get(parent)
                if p is not None and not p.is_source and parent not in self._analysis:
                    stack.append((parent, False))
        for uid in order:
            n = self.manifest.nodes[uid]
            sql = self.manifest.compiled_sql(uid)
            if sql is None:
                a = ModelAnalysis("", self.dialect)
                a.error = "no compiled SQL found"
            else:
                this = normalize_relation(n.relation_name) if n.relation_name else None
                a = ModelAnalysis(sql, self.dialect, self._schema_for(n), self._columns_of, this=this)
            self._analysis[uid] = a
        return self._analysis[node.unique_id]

    def facts(self, node: Node) -> ModelFacts:
        if node.unique_id not in self._facts:
            a = self.analysis(node)
            try:
                self._facts[node.unique_id] = extract_facts(a.sql, self.dialect, analysis=a)
            except Exception as e:  # noqa: BLE001 - a shape we do not handle: said, never a crash
                self._facts[node.unique_id] = ModelFacts(sql=a.sql, error=f"facts not extracted: {type(e).__name__}: {e}")
        return self._facts[node.unique_id]

    def columns(self, node: Node) -> ModelColumns:
        if node.unique_id not in self._cols:
            self._cols[node.unique_id] = columns_of_analysis(self.analysis(node))
        return self._cols[node.unique_id]

    def output_columns(self, node: Node) -> list[str] | None:
        """All output columns of a node when known completely (a model without an unexpanded star)."""
        if node.is_source:
            return None
        a = self._analysis.get(node.unique_id)
        if a is None or a.error:
            return None
        names = a.output_names()
        return None if STAR in names or not names else names

    def _schema_for(self, node: Node) -> Schema:
        """Complete column lists of the model's parent models, as sqlglot's schema mapping."""
        schema: Schema = {}
        for parent in self.manifest.parents(node.unique_id):
            p = self.manifest.nodes.get(parent)
            if p is None or not p.relation_name:
                continue
            cols = self.output_columns(p)
            if not cols:
                continue
            parts = normalize_relation(p.relation_name).split(".")
            if len(parts) != 3:
                continue
            types = {c: (p.columns.get(c) or {}).get("data_type") or "unknown" for c in cols}
            schema.setdefault(parts[0], {}).setdefault(parts[1], {})[parts[2]] = {c: _type(t) for c, t in types.items()}
        return schema

    def _columns_of(self, relation: str) -> set[str] | None:
        """Known columns of a relation: a model's complete outputs (yml docs may be partial: not used to exclude)."""
        node = self.by_relation.get(relation)
        cols = self.output_columns(node) if node is not None else None
        return set(cols) if cols else None

    # -- tracing across models ---------------------------------------------------------------------

    def trace(self, node: Node, column: str, depth: int = 0) -> tuple[set[str], set[str]]:
        if node.is_source or depth > 20:
            return {f"{node.display_name}.{column}"}, set()
        cols = self.columns(node)
        filters = set(self._where(node))
        sources: set[str] = set()
        outputs = cols.outputs
        feeds = outputs.get(column) or {(rel, column) for rel, c in outputs.get(STAR, set()) if c == STAR}  # select *
        for rel, col in feeds:
            upstream = self.by_relation.get(rel)
            if upstream is None:
                sources.add(f"{rel}.{col}")
                continue
            s, f = self.trace(upstream, col, depth + 1)
            sources |= s
            filters |= f
        return sources, filters

    def _where(self, node: Node) -> list[str]:
        if node.unique_id not in self._filters:
            a = self.analysis(node)
            self._filters[node.unique_id] = [f"{strip_qualifiers(p).sql(dialect=self.dialect)} ({node.name})"
                                             for p in a.where_predicates()]
        return self._filters[node.unique_id]


@lru_cache(maxsize=512)
def _type(t: str) -> str:
    try:
        exp.DataType.build(t)
        return t
    except Exception:  # a type sqlglot does not know (dialect-specific): the column still counts
        return "unknown"


def strip_qualifiers(e: Any) -> exp.Expression:
    """A copy of an expression without table qualifiers on its columns."""
    e = e.copy()
    for col in e.find_all(exp.Column):
        col.set("table", None)
    return e
