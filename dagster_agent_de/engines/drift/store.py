"""Durable snapshots in the state dir: the accepted baseline and the last one seen."""

from __future__ import annotations

import os
from pathlib import Path

from dagster_agent_de.engines.drift.models import Snapshot
from dagster_agent_de.errors import ConfigError


class SnapshotStore:
    """``baseline.json`` (what changes are judged against) and ``last.json`` (what the sensor saw last)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def _path(self, name: str) -> Path:
        return self.directory / f"{name}.json"

    def load(self, name: str) -> Snapshot | None:
        path = self._path(name)
        if not path.exists():
            return None
        try:
            return Snapshot.model_validate_json(path.read_text())
        except ValueError as e:
            raise ConfigError(f"schema snapshot {path} is corrupt ({e}); delete it and run `agent-de drift --baseline`") from e

    def save(self, name: str, snapshot: Snapshot) -> Path:
        """Atomic: write a temp file then rename, so a reader never sees half a snapshot."""
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self._path(name)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(snapshot.model_dump_json())
        tmp.replace(path)
        return path

    def baseline(self) -> Snapshot | None:
        return self.load("baseline")
