"""Schema drift: one information_schema read, rename-aware diff, column-level impact, fixes."""

from __future__ import annotations

from dagster_agent_de.engines.drift.diff import classify_type_change, diff_snapshots
from dagster_agent_de.engines.drift.engine import compare, take_snapshot, watched_relations
from dagster_agent_de.engines.drift.models import DriftReport, DriftSeverity, SchemaChange, Snapshot
from dagster_agent_de.engines.drift.snapshot import snapshot_schema
from dagster_agent_de.engines.drift.store import SnapshotStore
from dagster_agent_de.engines.drift.workflow import (
    DriftRun,
    detect_drift,
    run_drift,
    schema_fingerprint,
    verdict_of,
)

__all__ = [
    "DriftReport", "DriftRun", "DriftSeverity", "SchemaChange", "Snapshot", "SnapshotStore", "classify_type_change",
    "compare", "detect_drift", "diff_snapshots", "snapshot_schema", "run_drift", "schema_fingerprint", "take_snapshot",
    "verdict_of", "watched_relations",
]
