"""The domain model: findings, evidence, escalations and audit events.

Frozen pydantic models with no Dagster import. The JSON form of a
:class:`FindingsReport` is the documented, stable output of ``--json`` commands::

    {"schema_version": 1, "generated_at": "...", "findings": [
        {"pattern": "join_row_drop", "model": "int_orders_enriched", "columns": [...],
         "severity": "error", "confidence": 0.9, "summary": "...",
         "evidence": [{"statement": "...", "result_summary": "...", ...}],
         "proposed_fix": {"description": "...", "diff": "--- a/...", ...}, ...}]}
"""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from enum import Enum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, TypeAdapter

SCHEMA_VERSION = 1


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class Frozen(BaseModel):
    """The base of every domain model: immutable (change one with ``model_copy(update=...)``), no unknown fields."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class Severity(str, Enum):
    """How bad something is, on the agent's one scale. Ordered: ``info < warning < error < critical``.

    The other words the agent accepts map onto it (:meth:`parse`): a check's ``warn``/``error`` (reconcile
    specs, intents, volume; see :data:`CheckSeverity`), and schema drift's ``info``/``warning``/``breaking``
    (``DriftSeverity.severity``: breaking is ``error``). Dagster's ``AssetCheckSeverity`` is derived in
    one place, the translator: ``error`` and ``critical`` are ERROR, the rest WARN.

    >>> Severity.parse("warn"), Severity.parse("breaking"), Severity.parse(Severity.INFO)
    (<Severity.WARNING: 'warning'>, <Severity.ERROR: 'error'>, <Severity.INFO: 'info'>)
    """

    INFO = "info"
    WARNING = "warning"
    ERROR = "error"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        return list(Severity).index(self)

    @classmethod
    def parse(cls, value: str | Severity) -> Severity:
        """Any of the agent's severity words as a :class:`Severity` (a clear error for anything else)."""
        if isinstance(value, Severity):
            return value
        word = _SEVERITY_WORDS.get(value.strip().lower(), value.strip().lower())
        try:
            return cls(word)
        except ValueError:
            raise ValueError(f"unknown severity {value!r}; use one of info, warn, warning, error, critical, breaking") from None


_SEVERITY_WORDS = {"warn": "warning", "breaking": "error"}

CheckSeverity = Literal["warn", "error"]
"""How loud a check fails, as a spec declares it (``severity: warn``): ``warn`` is :attr:`Severity.WARNING`,
``error`` is :attr:`Severity.ERROR`."""


class Evidence(Frozen):
    """One query the agent ran and what it returned (bounded)."""

    statement: str
    rationale: str = ""
    result_summary: str = ""
    row_count: int | None = None
    rows_sample: list[dict[str, Any]] = Field(default_factory=list)
    duration_ms: float | None = None


class ProposedFix(Frozen):
    """A change the agent proposes; never applied without the autonomy policy allowing it."""

    description: str
    diff: str = ""
    files: list[str] = Field(default_factory=list)


class _FindingBase(Frozen):
    """What every finding carries: a conclusion, how sure, why (the evidence), and what to do."""

    id: str = Field(default_factory=lambda: f"F-{uuid.uuid4().hex[:10]}")
    source: Literal["library", "llm"] = "library"
    """Who reached it: the deterministic pattern library, or the optional LLM second opinion."""
    pattern: str
    model: str | None = None
    asset_key: list[str] | None = None
    columns: list[str] = Field(default_factory=list)
    severity: Severity = Severity.ERROR
    confidence: float = Field(ge=0.0, le=1.0)
    summary: str
    evidence: list[Evidence] = Field(default_factory=list)
    proposed_fix: ProposedFix | None = None
    blast_radius: list[str] = Field(default_factory=list)
    verified: bool = True
    cited_rules: list[str] = Field(default_factory=list)
    """Context rules that explain the finding away (it is no longer the cause)."""
    fix_decided_in: list[str] = Field(default_factory=list)
    """Context rules that decided the finding's fix, not yet in effect: still the cause, nothing asked again."""
    needs_context: str | None = None
    needs_authority: str | None = None
    created_at: datetime = Field(default_factory=utcnow)


class InvestigationFinding(_FindingBase):
    """A root cause of a failed check, from the pattern library (``source: library``) or the LLM (``llm``)."""

    kind: Literal["investigation"] = "investigation"


class ReconciliationFinding(_FindingBase):
    """A reconciliation against a source of truth that breached its tolerance (``agent-de reconcile``)."""

    kind: Literal["reconciliation"] = "reconciliation"


class PerformanceFinding(_FindingBase):
    """Why a model got slower (a failed ``model_runtime`` check), with a verified rewrite when one exists."""

    kind: Literal["performance"] = "performance"


Finding = Annotated[InvestigationFinding | ReconciliationFinding | PerformanceFinding, Field(discriminator="kind")]
"""A finding of one of the kinds the agent produces, told apart by ``kind`` (frozen, like every model here).
Drift, volume, PII, intent and metric checks report through their checks and escalations; when one fails,
its investigation produces an ``investigation`` finding."""

FindingKind = Literal["investigation", "reconciliation", "performance"]


def _default_kind(data: Any) -> Any:
    """Findings stored before the union carry ``kind`` (always ``investigation`` then) or nothing."""
    if isinstance(data, dict) and "kind" not in data:
        return {**data, "kind": "investigation"}
    return data


_FINDING: TypeAdapter[InvestigationFinding | ReconciliationFinding | PerformanceFinding] = TypeAdapter(
    Annotated[Finding, BeforeValidator(_default_kind)])


def parse_finding(data: Any) -> InvestigationFinding | ReconciliationFinding | PerformanceFinding:
    """A stored or printed finding (a dict) as its kind's model.

    >>> parse_finding({"kind": "performance", "pattern": "order_by", "confidence": 0.5, "summary": "s"}).kind
    'performance'
    >>> parse_finding({"pattern": "p", "confidence": 0.5, "summary": "s"}).kind  # stored before kinds
    'investigation'
    """
    return _FINDING.validate_python(data)


class FindingsReport(Frozen):
    """The stable top-level JSON object printed by ``--json``: findings best first."""

    schema_version: int = SCHEMA_VERSION
    generated_at: datetime = Field(default_factory=utcnow)
    findings: list[Annotated[Finding, BeforeValidator(_default_kind)]] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)


class EscalationKind(str, Enum):
    CONTEXT_GAP = "context_gap"
    AUTHORITY_GAP = "authority_gap"


class EscalationState(str, Enum):
    OPEN = "open"  # past its due date it stays open, and is shown as overdue (:meth:`Escalation.status`)
    ANSWERED = "answered"
    EXPIRED = "expired"  # only in stores written before questions became overdue instead of expiring
    WITHDRAWN = "withdrawn"


class EscalationOption(Frozen):
    """One choice a human can make, with its evidence and what the agent does if chosen."""

    label: str
    evidence: str = ""
    consequence: str = ""
    agent_action: Literal["record_rule", "apply_fix", "none", "withdraw"] = "none"
    rule: str | None = None  # the context rule recorded when chosen (record_rule)
    suppresses: list[str] = Field(default_factory=list)
    acknowledges: list[str] = Field(default_factory=list)
    """Patterns whose fix this choice decides: the next investigation still names them, citing the rule
    (asking nothing again), until the fix is in effect (``suppresses`` explains them away instead)."""


class Approval(Frozen):
    by: str
    choice: int
    note: str = ""
    at: datetime = Field(default_factory=utcnow)


class Escalation(Frozen):
    """A decision handed to a human: a context gap (business knowledge) or an authority gap (sign-off)."""

    id: str
    kind: EscalationKind
    decision: str
    options: list[EscalationOption] = Field(default_factory=list)
    recommendation: int | None = None  # index into options, or None = no recommendation
    recommendation_reason: str = ""
    blocking: str = ""
    continues: str = ""
    owner: str | None = None
    asset: str | None = None  # the asset it concerns (model name or source.table)
    applies_to: list[str] = Field(default_factory=list)  # model.column the decision is about
    finding_id: str | None = None
    finding_pattern: str | None = None
    check: str | None = None
    approvals_required: int = 1
    approvals: list[Approval] = Field(default_factory=list)
    state: EscalationState = EscalationState.OPEN
    created_at: datetime = Field(default_factory=utcnow)
    due_at: datetime | None = None
    answer: Approval | None = None
    fix_diff: str = ""
    supersedes: list[str] = Field(default_factory=list)  # questions about the same incident this one withdrew
    superseded_by: str | None = None  # withdrawn: the question that asks about its incident now

    def age_hours(self, now: datetime | None = None) -> float:
        return ((now or utcnow()) - self.created_at).total_seconds() / 3600

    def overdue(self, now: datetime | None = None) -> bool:
        """Open past its due date: still the one open question about its incident, never asked again."""
        return self.state == EscalationState.OPEN and self.due_at is not None and self.due_at < (now or utcnow())

    def status(self, now: datetime | None = None) -> str:
        """The state as listings show it: ``overdue`` for an open question past its due date.

        >>> from datetime import timedelta
        >>> Escalation(id="ESC-1", kind=EscalationKind.CONTEXT_GAP, decision="?",
        ...            due_at=utcnow() - timedelta(hours=1)).status()
        'overdue'
        """
        return "overdue" if self.overdue(now) else self.state.value


AuditOutcome = Literal["ok", "refused", "error"]
AuditKind = Literal["query", "api_call", "action", "session_setup"]


class AuditEvent(Frozen):
    """One thing the agent did: a query, an API call or an action."""

    ts: datetime = Field(default_factory=utcnow)
    kind: AuditKind = "query"
    event_id: str | None = None
    """Set before a statement runs and sent with it (a trailing comment on Snowflake), so the warehouse's
    own query history matches the audit log."""
    actor: str
    run_id: str | None = None
    rationale: str
    statement: str
    dialect: str | None = None
    target: str | None = None
    rows: int | None = None
    duration_ms: float = 0.0
    outcome: AuditOutcome = "ok"
    error: str | None = None

    def one_line(self) -> str:
        rows = "-" if self.rows is None else str(self.rows)
        stmt = " ".join(self.statement.split())
        if len(stmt) > 160:
            stmt = stmt[:157] + "..."
        extra = f" error={self.error}" if self.error else ""
        return (
            f"[agent-de audit] {self.kind} {self.outcome} rows={rows} {self.duration_ms:.0f}ms "
            f"why={self.rationale!r} sql={stmt}{extra}"
        )


def validation_problems(error: Any) -> str:
    """A pydantic ``ValidationError`` as one line: ``field: problem; field: problem``."""
    return "; ".join(f"{'.'.join(str(p) for p in err['loc']) or '(spec)'}: {err['msg']}" for err in error.errors())
