"""Durable findings: an append-only JSON-lines file in the state dir."""

from __future__ import annotations

import json
import os
from pathlib import Path

from dagster_agent_de.core.models import Finding


class FindingsStore:
    def __init__(self, path: Path) -> None:
        self.path = path

    def append(self, findings: list[Finding], *, run_id: str | None = None, check: str | None = None) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        payload = "".join(
            json.dumps(f.model_dump(mode="json") | {"run_id": run_id, "check": check}) + "\n" for f in findings
        )
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, payload.encode())
        finally:
            os.close(fd)

    def recent(self, limit: int = 20) -> list[dict]:
        if not self.path.exists():
            return []
        rows = []
        for line in self.path.read_text().splitlines():
            try:
                rows.append(json.loads(line))
            except ValueError:
                continue
        return rows[-limit:][::-1]


