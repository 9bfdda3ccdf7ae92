"""Domain model: no Dagster import here (a test enforces it)."""

from __future__ import annotations

from dagster_agent_de.core.models import (
    Approval,
    AuditEvent,
    Escalation,
    EscalationKind,
    EscalationOption,
    EscalationState,
    Evidence,
    Finding,
    FindingsReport,
    ProposedFix,
    Severity,
)
from dagster_agent_de.core.redact import redact

__all__ = [
    "Approval",
    "AuditEvent",
    "Escalation",
    "EscalationKind",
    "EscalationOption",
    "EscalationState",
    "Evidence",
    "Finding",
    "FindingsReport",
    "ProposedFix",
    "Severity",
    "redact",
]
