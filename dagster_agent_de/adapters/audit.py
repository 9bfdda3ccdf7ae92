"""The audit log: every query, API call and action the agent makes.

Events go to every sink as they happen (the Dagster run log is one) and to a durable
append-only JSON-lines file in the state directory. Secrets are redacted before any
sink sees an event.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from pathlib import Path

from dagster_agent_de.core.models import AuditEvent
from dagster_agent_de.core.redact import redact
from dagster_agent_de.errors import ConfigError

AuditSink = Callable[[AuditEvent], None]


class AuditLog:
    """Records :class:`AuditEvent` s durably and to live sinks.

    Args:
        path: the JSON-lines file (created on first write); ``None`` keeps events in memory only.
        actor: who acts, e.g. ``cli`` or ``op:investigate``.
        run_id: the Dagster run id, when inside a run.
        sinks: callables that receive each event as it happens (e.g. the run logger).
    """

    def __init__(
        self,
        path: Path | None,
        *,
        actor: str = "cli",
        run_id: str | None = None,
        sinks: Iterable[AuditSink] = (),
    ) -> None:
        self.path = path
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
        event = AuditEvent(**fields)  # type: ignore[arg-type]
        self.events.append(event)
        if self.path is not None:
            self._append(event)
        for sink in self.sinks:
            sink(event)
        return event

    def _append(self, event: AuditEvent) -> None:
        assert self.path is not None
        line = (event.model_dump_json() + "\n").encode()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        except OSError as e:
            raise ConfigError(
                f"cannot write the audit log {self.path} ({e.strerror}); make the state directory "
                "writable or point AGENT_DE_STATE_DIR elsewhere"
            ) from e
        try:
            os.write(fd, line)  # one write of a whole line on an O_APPEND fd: no interleaving
        finally:
            os.close(fd)


def read_audit(path: Path, *, run_id: str | None = None, limit: int | None = 50) -> list[AuditEvent]:
    """Read the last ``limit`` events (optionally of one run) from the durable store."""
    if not path.exists():
        return []
    events: list[AuditEvent] = []
    with path.open() as f:
        for _lineno, line in enumerate(f, start=1):
            line = line.strip()
            if not line:
                continue
            try:
                event = AuditEvent.model_validate(json.loads(line))
            except ValueError:
                # A torn last line (process killed mid-write) must not hide the rest.
                continue
            if run_id is None or event.run_id == run_id:
                events.append(event)
    return events[-limit:] if limit else events
