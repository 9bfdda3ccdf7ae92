"""Entity resolution: the same customer (or account, or company) under several keys."""

from __future__ import annotations

from dagster_agent_de.engines.entities.resolve import (
    EntityPair,
    EntityResolution,
    EntitySpec,
    pair_escalation,
    resolve_and_record,
    resolve_entities,
    specs_from_manifest,
)

__all__ = ["EntityPair", "EntityResolution", "EntitySpec", "pair_escalation", "resolve_and_record", "resolve_entities", "specs_from_manifest"]
