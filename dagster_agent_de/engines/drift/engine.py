"""Detect schema drift: snapshot, diff against the baseline, impact, severity, proposed fixes."""

from __future__ import annotations

from typing import Literal

from dagster_agent_de.adapters.warehouse import Warehouse
from dagster_agent_de.engines.drift.diff import diff_snapshots
from dagster_agent_de.engines.drift.fix import propose_fix, replacement_escalation, unit_change_escalation
from dagster_agent_de.engines.drift.models import DriftReport, DriftSeverity, Snapshot
from dagster_agent_de.engines.drift.snapshot import snapshot_schema
from dagster_agent_de.manifest import Manifest


def watched_relations(manifest: Manifest, include_models: bool = True) -> list[tuple[str | None, str, str]]:
    """(database, schema, table) of every dbt source (and model, for column lineage)."""
    out = []
    for node in manifest.nodes.values():
        if node.schema is None or node.identifier is None:
            continue
        if node.is_source or (include_models and node.resource_type in ("model", "snapshot", "seed")):
            out.append((node.database, node.schema, node.identifier))
    return sorted(set(out), key=lambda r: tuple(p or "" for p in r))


def take_snapshot(
    manifest: Manifest, warehouse: Warehouse, previous: Snapshot | None = None, *,
    fingerprints: Literal["auto", "full", "off"] = "auto", max_rows: int | None = None,
) -> Snapshot:
    """Snapshot the schemas, then fingerprint source and seed columns (see ``fingerprint.py``).

    ``auto``: with no ``previous`` every column of every source table (the baseline pass),
    otherwise only the columns that appeared since ``previous``; ``full``: always every column.
    """
    current = snapshot_schema(warehouse, watched_relations(manifest), previous)
    if fingerprints == "off":
        return current
    from dagster_agent_de.engines.drift.fingerprint import attach_fingerprints

    return attach_fingerprints(warehouse, manifest, current, previous, full=fingerprints == "full", max_rows=max_rows)


def source_relations(manifest: Manifest) -> set[str]:
    return {".".join(p for p in (n.database, n.schema, n.identifier) if p).lower() for n in manifest.sources()}


def compare(baseline: Snapshot, current: Snapshot, manifest: Manifest, *, sources_only: bool = True) -> DriftReport:
    """Typed, assessed changes from ``baseline`` to ``current`` (sources only by default)."""
    watched = source_relations(manifest)
    changes = diff_snapshots(baseline, current)
    notes = []
    if sources_only:
        changes = [c for c in changes if c.relation.lower() in watched]
        # a source absent from both snapshots has not been created yet: say so, no alert
        never = sorted(set(current.missing) & set(baseline.missing) & watched)
        if never:
            notes.append("source tables that do not exist yet: " + ", ".join(never))
    from dagster_agent_de.engines.drift.impact import ImpactAnalyzer, assess  # sqlglot: loaded on first drift

    analyzer = ImpactAnalyzer(manifest, current.dialect, baseline)
    assessed = []
    for change in changes:
        change = assess(change, analyzer)
        fix = propose_fix(change, manifest)
        if fix:
            change = change.model_copy(update={"proposed_fix": fix})
        assessed.append(change)
    assessed = [c.model_copy(update={"escalation": replacement_escalation(c, assessed, manifest)})
                if c.kind == "column_dropped" and c.severity == DriftSeverity.BREAKING
                else c.model_copy(update={"escalation": unit_change_escalation(c, manifest)})
                if c.kind == "type_changed" and c.unit_scale and c.severity == DriftSeverity.BREAKING else c
                for c in assessed]
    unknown = sorted({i.model for c in assessed for i in c.impacted if i.unknown})
    if unknown:
        notes.append("column-level impact unknown for: " + ", ".join(unknown) + " (SQL not parseable; treated as reading the column)")
    assessed.sort(key=lambda c: (-c.severity.rank, c.relation, c.column or ""))
    return DriftReport(baseline_at=baseline.taken_at, snapshot_at=current.taken_at, changes=assessed, notes=notes)
