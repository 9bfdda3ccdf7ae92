"""The agent's memory: one small typed interface every engine uses, whatever the backend.

Audit events, drift snapshots and baselines, findings, escalations and their approvals,
context rules, flags (the pause), and artifacts (onboarding proposals, entity maps) all live
in one :class:`StateStore`. The SQL implementation (``adapters/state``) serves SQLite and
PostgreSQL; engines depend on this protocol only.

The domain needs a few guarantees, and each method says which it gives:

- an answer and the rule it decides commit together (:meth:`StateStore.answer_escalation`);
- a four-eyes approval is one row per (escalation, approver);
- advancing a baseline is a compare-and-set on the previous snapshot id;
- audit events are append-only, with a monotonic id.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol, runtime_checkable

from dagster_agent_de.core.context import ContextRule
from dagster_agent_de.core.models import Approval, AuditEvent, Escalation, Finding
from dagster_agent_de.errors import AgentDERuntimeError, ConfigError


class EscalationError(ConfigError):
    """The answer cannot be taken (unknown id, already answered, bad choice, same approver twice)."""


class StateConflictError(AgentDERuntimeError):
    """Another process changed the state first (e.g. advanced the baseline): re-read and retry."""


class StateCorruptError(ConfigError):
    """Stored state cannot be read back; the message names the table/file and the entry."""


@dataclass(frozen=True)
class StoredSnapshot:
    """A drift snapshot as stored: its id (for compare-and-set) and its JSON body."""

    id: int
    body: str


@dataclass(frozen=True)
class AnswerDecision:
    """What one more approval means, decided by the escalation engine inside the answer's transaction."""

    close: bool
    waiting_for: int = 0
    approvers: list[str] = field(default_factory=list)
    rule: ContextRule | None = None


@dataclass(frozen=True)
class AnswerOutcome:
    """The escalation after the answer, the decision, and whether this was a retry of an answer already taken."""

    escalation: Escalation
    decision: AnswerDecision
    retried: bool = False


ANY: Literal["any"] = "any"
"""``if_current`` value for an unconditional snapshot save."""


@runtime_checkable
class StateStore(Protocol):
    """Everything the agent remembers. Implementations must be safe for many processes at once."""

    url: str
    """Where the state lives (password masked), for messages and the README's "where state lives"."""

    # -- audit ---------------------------------------------------------------------------------
    def append_audit(self, event: AuditEvent) -> int:
        """Append one event; returns its id (monotonic, unique)."""
        ...

    def tail_audit(self, *, run_id: str | None = None, limit: int | None = 50) -> list[AuditEvent]:
        """The last ``limit`` events (optionally of one run), oldest first."""
        ...

    def prune_audit(self, older_than: datetime) -> int:
        """Delete events older than ``older_than``, except those of runs an open escalation cites."""
        ...

    # -- drift ---------------------------------------------------------------------------------
    def load_snapshot(self, name: str) -> StoredSnapshot | None:
        """The current snapshot called ``name`` (``baseline`` or ``last``)."""
        ...

    def save_snapshot(self, name: str, body: str, *, if_current: int | None | Literal["any"] = ANY) -> int:
        """Make ``body`` the current ``name``; with ``if_current``, only if the current one is still that id
        (``None``: only if there is none). Raises :class:`StateConflictError` otherwise."""
        ...

    # -- findings ------------------------------------------------------------------------------
    def record_findings(self, findings: list[Finding], *, run_id: str | None = None,
                        check: str | None = None) -> list[int]:
        ...

    def recent_findings(self, limit: int = 20) -> list[dict[str, Any]]:
        """Newest first: each finding's JSON plus ``run_id`` and ``check``."""
        ...

    # -- escalations ---------------------------------------------------------------------------
    def escalations(self, now: datetime | None = None) -> list[Escalation]:
        """Every escalation (with approvals), in the order raised. One past its due date stays open (it is
        overdue, :meth:`~dagster_agent_de.core.models.Escalation.overdue`); ``now`` is accepted for callers
        that pass a clock."""
        ...

    def raise_escalations(self, new: list[Escalation], skip: Callable[[Escalation, list[Escalation]], bool],
                          supersede: Callable[[Escalation, list[Escalation]], list[Escalation]] | None = None,
                          ) -> list[Escalation]:
        """Store each of ``new`` not ``skip``-ped given the current ones; ids ``ESC-n`` assigned atomically.

        ``supersede`` names, for each one stored, the open escalations it replaces: in the same transaction they
        are withdrawn with ``superseded_by`` naming it, and it lists them in ``supersedes``.
        """
        ...

    def answer_escalation(self, esc_id: str, approval: Approval,
                          decide: Callable[[Escalation], AnswerDecision]) -> AnswerOutcome:
        """Record ``approval`` and, when ``decide`` closes the escalation, its answer and rule, in one transaction.

        A retry of the same approver's same choice returns the stored outcome (``retried=True``).
        """
        ...

    # -- context rules -------------------------------------------------------------------------
    def rules(self) -> list[ContextRule]:
        ...

    def put_rule(self, rule: ContextRule) -> None:
        """Insert or replace the rule with this id."""
        ...

    def forget(self, kinds: list[str]) -> None:
        """Delete every entry of these kinds (``drift``, ``escalations``, ``findings``): the demo's fresh start."""
        ...

    # -- flags and artifacts -------------------------------------------------------------------
    # -- notifications: deduplication keys, incident threads, lines held for the digest ----------------
    def claim_notification(self, key: str) -> bool:
        """Record ``key`` as sent; ``False`` if any process already did."""
        ...

    def release_notification(self, key: str) -> None:
        """Forget a claim whose send failed, so that a retry can send it."""
        ...

    def notification_thread(self, channel: str, incident: str) -> str | None: ...

    def set_notification_thread(self, channel: str, incident: str, ref: str) -> None: ...

    def defer_notification(self, channel: str, line: str) -> None: ...

    def take_deferred_notifications(self, channel: str) -> list[str]: ...

    def get_flag(self, name: str) -> str | None:
        ...

    def set_flag(self, name: str, value: str | None) -> None:
        """Set (or with ``None`` clear) a named flag, e.g. ``paused``."""
        ...

    def put_artifact(self, kind: str, name: str, body: str) -> None:
        """Store a document the agent produced (an onboarding proposal, an entity map)."""
        ...

    def get_artifact(self, kind: str, name: str) -> str | None:
        ...

    def artifact_names(self, kind: str) -> list[str]:
        ...
