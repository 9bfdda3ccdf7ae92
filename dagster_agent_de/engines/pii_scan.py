"""PII scan of what the project already has: sources' text columns sampled, PII not tagged in the
manifest reported. Detection only; tagging and handling are for a human (authority gap)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from dagster_agent_de.adapters.warehouse import Warehouse
from dagster_agent_de.core.models import Escalation, EscalationKind, EscalationOption
from dagster_agent_de.engines.onboard.pii import PIIHit, detect_pii
from dagster_agent_de.engines.onboard.profile import ColumnProfile, category
from dagster_agent_de.errors import AgentDEError
from dagster_agent_de.manifest import Manifest, Node

SAMPLE_ROWS = 500


@dataclass(frozen=True)
class UntaggedPII:
    node: str  # source.table as dbt names it
    hits: tuple[PIIHit, ...]
    error: str | None = None  # the table could not be sampled


def source_columns(manifest: Manifest, warehouse: Warehouse) -> dict[str, list[tuple[str, str]]]:
    """Source display name -> [(column, data type)], from one drift snapshot (one information_schema read)."""
    from dagster_agent_de.engines.drift.engine import watched_relations
    from dagster_agent_de.engines.drift.snapshot import relation_key, snapshot_schema

    snap = snapshot_schema(warehouse, watched_relations(manifest, include_models=False))
    out = {}
    for n in manifest.sources():
        table = snap.tables.get(relation_key(n.database, n.schema, n.identifier or n.name))
        out[n.display_name] = [(c.name, c.data_type) for c in table.columns] if table else []
    return out


def scan_sources(manifest: Manifest, warehouse: Warehouse, columns: dict[str, list[tuple[str, str]]] | None = None,
                 rules: list[Any] | None = None) -> list[UntaggedPII]:
    """``columns``: source display name -> [(column, data type)] (default: :func:`source_columns`). One sample
    query per source table. A context rule that ``suppresses`` ``pii_untagged`` for ``source.table.column``
    (a human said "not PII") silences that column."""
    if columns is None:
        columns = source_columns(manifest, warehouse)
    cleared = {a.lower() for r in rules or [] if "pii_untagged" in (getattr(r, "suppresses", None) or [])
               for a in getattr(r, "applies_to", [])}
    out = []
    for node in manifest.sources():
        cols = [ColumnProfile(name, dtype, i) for i, (name, dtype) in enumerate(columns.get(node.display_name, []), start=1)]
        tagged = node.pii_columns()
        text = [c for c in cols if category(c.data_type) == "text" and c.name.lower() not in tagged]
        if not text or not node.relation_name:
            out.append(UntaggedPII(node.display_name, ()))
            continue
        sql = f"select {', '.join(warehouse.quote(c.name) for c in text)} from {node.relation_name} limit {SAMPLE_ROWS}"
        try:
            res = warehouse.query(sql, rationale=f"sample {node.display_name} for untagged PII (values scanned in memory, never stored)",
                                  max_rows=SAMPLE_ROWS)
        except AgentDEError as e:
            out.append(UntaggedPII(node.display_name, (), error=str(e)))
            continue
        for j, c in enumerate(text):
            c.sample = [str(r[j]) for r in res.rows if r[j] is not None]
        by_name = [c for c in cols if c.name.lower() not in tagged and c not in text]
        hits = [h for h in detect_pii(text + by_name) if h.column.lower() not in tagged
                and f"{node.display_name}.{h.column}".lower() not in cleared]
        out.append(UntaggedPII(node.display_name, tuple(hits)))
    return out


def pii_escalation(item: UntaggedPII, node: Node, owner: str | None) -> Escalation:
    cols = ", ".join(f"{h.column} ({h.kind})" for h in item.hits)
    evidence = "; ".join(h.evidence for h in item.hits)
    path = node.raw.get("original_file_path") or "its sources YAML"
    return Escalation(
        id="new", kind=EscalationKind.AUTHORITY_GAP, asset=item.node, owner=owner, finding_pattern="pii_untagged",
        decision=f"{item.node} holds PII that is not tagged: {cols}. Tag it and decide its handling?",
        options=[
            EscalationOption(label="tag as PII (config.meta.agent_de.pii) and keep", evidence=evidence,
                             consequence=f"edit {path}; the agent masks the columns in everything it outputs"),
            EscalationOption(label="tag as PII and hash or drop in staging", evidence=evidence,
                             consequence="a staging change; downstream readers must be checked"),
            EscalationOption(label="not PII (explain in the note)", agent_action="record_rule",
                             rule=f"{cols} in {item.node} are not personal data", suppresses=["pii_untagged"],
                             consequence="recorded as context; not raised again"),
        ],
        recommendation=0, recommendation_reason="tagging is reversible and stops the values leaving in agent output",
        blocking="nothing", continues="the values stay as they are; the agent reports them on every scan",
        applies_to=[f"{item.node}.{h.column}" for h in item.hits],
    )

