"""Durable escalations: one JSON file, updated under a file lock with atomic replace."""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

from dagster_agent_de.core.models import Escalation, EscalationState, utcnow
from dagster_agent_de.errors import ConfigError


class EscalationStore:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.path = directory / "escalations.json"

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.directory.mkdir(parents=True, exist_ok=True)
        with open(self.directory / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _read(self) -> list[Escalation]:
        if not self.path.exists():
            return []
        try:
            return [Escalation.model_validate(e) for e in json.loads(self.path.read_text())]
        except ValueError as e:
            raise ConfigError(f"{self.path} is corrupt ({e}); restore it from the audit trail or delete it") from e

    def _write(self, items: list[Escalation]) -> None:
        tmp = self.path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps([e.model_dump(mode="json") for e in items], indent=1))
        tmp.replace(self.path)

    def all(self, now: datetime | None = None) -> list[Escalation]:
        """Every escalation, with overdue open ones marked expired."""
        return self.update(lambda items: items, now=now)

    def update(self, fn: Callable[[list[Escalation]], list[Escalation]], now: datetime | None = None) -> list[Escalation]:
        with self._locked():
            items = self._expire(self._read(), now or utcnow())
            out = fn(items)
            self._write(out)
            return out

    @staticmethod
    def _expire(items: list[Escalation], now: datetime) -> list[Escalation]:
        return [e.model_copy(update={"state": EscalationState.EXPIRED})
                if e.state == EscalationState.OPEN and e.due_at is not None and e.due_at < now else e for e in items]

    def open(self) -> list[Escalation]:
        return [e for e in self.all() if e.state == EscalationState.OPEN]

    def next_id(self, items: list[Escalation]) -> str:
        nums = [int(e.id.split("-")[1]) for e in items if e.id.startswith("ESC-") and e.id.split("-")[1].isdigit()]
        return f"ESC-{max(nums, default=0) + 1}"
