"""Conflicting metric definitions: the same business number computed differently in two places."""

from __future__ import annotations

from dagster_agent_de.engines.metrics.conflicts import (
    MetricAudit,
    MetricConflict,
    MetricDefinition,
    audit_metrics,
    conflict_escalation,
    conflict_evidence,
    find_conflicts,
    metric_definitions,
)

__all__ = [
    "MetricAudit",
    "MetricConflict",
    "MetricDefinition",
    "audit_metrics",
    "conflict_escalation",
    "conflict_evidence",
    "find_conflicts",
    "metric_definitions",
]
