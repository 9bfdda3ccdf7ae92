"""Column-level impact of schema changes over the dbt manifest, and severity from it."""

from __future__ import annotations

from collections import deque

from dagster_agent_de.engines.drift.models import DriftSeverity, ImpactedModel, SchemaChange, Snapshot
from dagster_agent_de.manifest import Manifest, Node
from dagster_agent_de.sql.lineage import ModelColumns, Schema, analyze_columns, normalize_relation


def schema_from_snapshot(snapshot: Snapshot, only: set[str] | None = None) -> Schema:
    """The nested {catalog: {schema: {table: {column: type}}}} sqlglot's qualify wants."""
    out: Schema = {}
    for key, table in snapshot.tables.items():
        if only is not None and key not in only:
            continue
        parts = table.relation.lower().split(".")
        if len(parts) != 3:
            continue
        cat, sch, tab = parts
        out.setdefault(cat, {}).setdefault(sch, {})[tab] = {c.name.lower(): c.data_type for c in table.columns}
    return out


class ImpactAnalyzer:
    """Caches each model's column analysis; walks only what is downstream of a change."""

    def __init__(self, manifest: Manifest, dialect: str, snapshot: Snapshot | None = None) -> None:
        self.manifest = manifest
        self.dialect = dialect
        self.snapshot = snapshot
        self._cache: dict[str, ModelColumns] = {}
        self._by_relation: dict[str, list[Node]] = {}
        for node in manifest.nodes.values():
            if node.relation_name:
                self._by_relation.setdefault(normalize_relation(node.relation_name), []).append(node)

    def columns(self, uid: str) -> ModelColumns:
        if uid not in self._cache:
            sql = self.manifest.compiled_sql(uid)
            if sql is None:
                self._cache[uid] = ModelColumns(error="no compiled SQL found (run dbt compile or build)")
            else:
                # qualify needs the schemas of the model's parents only, not of the whole warehouse
                parents = {normalize_relation(self.manifest.nodes[p].relation_name or "")
                           for p in self.manifest.parents(uid)}
                schema = schema_from_snapshot(self.snapshot, parents) if self.snapshot else {}
                self._cache[uid] = analyze_columns(sql, self.dialect, schema)
        return self._cache[uid]

    def sources_for(self, relation: str) -> list[Node]:
        return [n for n in self._by_relation.get(relation.lower(), []) if n.is_source]

    def impacted(self, relation: str, column: str | None) -> list[ImpactedModel]:
        """Models downstream of ``relation`` that read ``column`` (every model if ``column`` is None)."""
        starts = self._by_relation.get(relation.lower(), [])
        found: dict[str, ImpactedModel] = {}
        queue: deque[tuple[Node, str | None, int]] = deque((n, column, 1) for n in starts)
        seen: set[tuple[str, str | None]] = set()
        while queue:
            parent, col, hops = queue.popleft()
            parent_rel = normalize_relation(parent.relation_name or "")
            for child_uid in self.manifest.children(parent.unique_id):
                child = self.manifest.nodes[child_uid]
                if child.resource_type != "model" or (child_uid, col) in seen:
                    continue
                seen.add((child_uid, col))
                analysis = self.columns(child_uid)
                if analysis.error:
                    found.setdefault(child.name, ImpactedModel(model=child.name, hops=hops, unknown=analysis.error))
                    continue
                if col is None:
                    found.setdefault(child.name, ImpactedModel(model=child.name, hops=hops))
                    queue.append((child, None, hops + 1))
                    continue
                if not analysis.reads_column(parent_rel, col):
                    continue
                outs = analysis.outputs_from(parent_rel, col)
                prev = found.get(child.name)
                cols = sorted(set(prev.columns if prev else []) | {col})
                found[child.name] = ImpactedModel(model=child.name, columns=cols, hops=min(hops, prev.hops) if prev else hops)
                for out in outs:
                    if out != "*":
                        queue.append((child, out, hops + 1))
                    else:
                        queue.append((child, col, hops + 1))
        return sorted(found.values(), key=lambda i: (i.hops, i.model))


def assess(change: SchemaChange, analyzer: ImpactAnalyzer) -> SchemaChange:
    """Fill impacted models, exposures, the dbt source name and the severity of one change."""
    sources = analyzer.sources_for(change.relation)
    source = sources[0].display_name if sources else None
    column_kinds = ("column_dropped", "column_renamed", "type_changed", "nullability_changed")
    if change.kind in column_kinds:
        impacted = analyzer.impacted(change.relation, change.column)
    elif change.kind in ("table_dropped", "table_missing"):
        impacted = analyzer.impacted(change.relation, None)
    else:
        impacted = []
    reads = [i for i in impacted if not i.unknown]
    unknown = [i for i in impacted if i.unknown]
    severity = DriftSeverity.INFO
    if change.kind in ("column_dropped", "column_renamed"):
        severity = DriftSeverity.BREAKING if reads else (DriftSeverity.WARNING if unknown else DriftSeverity.INFO)
    elif change.kind == "type_changed":
        if reads or unknown:
            # values in other units (dollars to cents) break every reader, whatever the types allow
            severity = (DriftSeverity.WARNING if change.type_change == "widening" and not change.unit_scale
                        else DriftSeverity.BREAKING)
    elif change.kind == "nullability_changed":
        if (reads or unknown) and change.nullable_to:
            severity = DriftSeverity.WARNING
    elif change.kind in ("table_dropped", "table_missing"):
        severity = DriftSeverity.BREAKING if impacted else DriftSeverity.WARNING
    uids = [analyzer.manifest.find(i.model).unique_id for i in impacted]
    return change.model_copy(update={
        "impacted": impacted, "severity": severity, "source": source,
        "exposures": analyzer.manifest.exposures_of(uids),
    })
