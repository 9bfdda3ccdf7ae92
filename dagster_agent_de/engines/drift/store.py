"""Durable snapshots in the state store: the accepted baseline and the last one seen."""

from __future__ import annotations

from dagster_agent_de.core.state import ANY, StateStore, StoredSnapshot
from dagster_agent_de.engines.drift.models import Snapshot
from dagster_agent_de.errors import ConfigError


class SnapshotStore:
    """``baseline`` (what changes are judged against) and ``last`` (what the sensor saw last).

    Saving the baseline is a compare-and-set: once this object has read a baseline, saving a new
    one fails with :class:`~dagster_agent_de.core.state.StateConflictError` if another process
    advanced it in between, so no accepted change is silently undone.
    """

    def __init__(self, state: StateStore) -> None:
        self.state = state
        self._seen: dict[str, int | None] = {}

    def load(self, name: str) -> Snapshot | None:
        stored: StoredSnapshot | None = self.state.load_snapshot(name)
        self._seen[name] = stored.id if stored else None
        if stored is None:
            return None
        try:
            return Snapshot.model_validate_json(stored.body)
        except ValueError as e:
            raise ConfigError(f"the stored {name} schema snapshot #{stored.id} in {self.state.url} is corrupt ({e}); "
                              "run `agent-de drift --baseline` to record a new one") from e

    def save(self, name: str, snapshot: Snapshot) -> int:
        """Store ``snapshot`` as ``name``: compare-and-set against the one this object read, if it read one."""
        expected = self._seen.get(name, ANY) if name == "baseline" else ANY
        new_id = self.state.save_snapshot(name, snapshot.model_dump_json(), if_current=expected)
        self._seen[name] = new_id
        return new_id

    def baseline(self) -> Snapshot | None:
        return self.load("baseline")
