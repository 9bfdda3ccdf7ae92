"""The audit log: every query, API call and action the agent makes.

Events go to every sink as they happen (the Dagster run log is one) and to the durable,
append-only audit table of the state store. Secrets are redacted before any sink sees an
event.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from dagster_agent_de.core.models import AuditEvent
from dagster_agent_de.core.redact import redact
from dagster_agent_de.core.state import StateStore

AuditSink = Callable[[AuditEvent], None]


class AuditLog:
    """Records :class:`AuditEvent` s durably and to live sinks.

    Args:
        store: the state store that keeps events durably; ``None`` keeps them in memory only.
        actor: who acts, e.g. ``cli`` or ``op:investigate``.
        run_id: the Dagster run id, when inside a run.
        sinks: callables that receive each event as it happens (e.g. the run logger).
    """

    def __init__(
        self,
        store: StateStore | None,
        *,
        actor: str = "cli",
        run_id: str | None = None,
        sinks: Iterable[AuditSink] = (),
    ) -> None:
        self.store = store
        self.actor = actor
        self.run_id = run_id
        self.sinks = list(sinks)
        self.events: list[AuditEvent] = []

    def record(self, **fields: object) -> AuditEvent:
        """Build, redact, store and publish one event; returns it."""
        fields.setdefault("actor", self.actor)
        fields.setdefault("run_id", self.run_id)
        for key in ("statement", "rationale", "error"):
            if isinstance(fields.get(key), str):
                fields[key] = redact(str(fields[key]))
        event = AuditEvent.model_validate(fields)
        self.events.append(event)
        if self.store is not None:
            self.store.append_audit(event)
        for sink in self.sinks:
            sink(event)
        return event


def read_audit(store: StateStore, *, run_id: str | None = None, limit: int | None = 50) -> list[AuditEvent]:
    """Read the last ``limit`` events (optionally of one run) from the durable store, oldest first."""
    return store.tail_audit(run_id=run_id, limit=limit)
