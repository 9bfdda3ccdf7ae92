"""Intent-based checks: what the data is for, encoded as a check that stays true when the data changes."""

from __future__ import annotations

from dagster_agent_de.engines.intents.intents import (
    INVALID_CHECK,
    Intent,
    IntentResult,
    derive_intents,
    evaluate_intent,
    intents_from_manifest,
    read_intents,
    sum_inputs,
)

__all__ = ["INVALID_CHECK", "Intent", "IntentResult", "derive_intents", "evaluate_intent", "intents_from_manifest",
           "read_intents", "sum_inputs"]
