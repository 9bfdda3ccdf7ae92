"""Intent-based checks: what the data is for, encoded as a check that stays true when the data changes."""

from __future__ import annotations

from dagster_agent_de.engines.intents.intents import (
    Intent,
    IntentResult,
    derive_intents,
    evaluate_intent,
    intents_from_manifest,
)

__all__ = ["Intent", "IntentResult", "derive_intents", "evaluate_intent", "intents_from_manifest"]
