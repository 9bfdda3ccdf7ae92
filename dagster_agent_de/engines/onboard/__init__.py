"""Source onboarding: profile a table (or read an API schema), propose the dbt source, staging
model, tests and docs, and hand the decisions that need a human to escalations."""

from __future__ import annotations

from dagster_agent_de.engines.onboard.api_schema import profile_from_json_schema
from dagster_agent_de.engines.onboard.generate import OnboardingProposal, propose
from dagster_agent_de.engines.onboard.pii import PIIHit, detect_pii
from dagster_agent_de.engines.onboard.profile import ColumnProfile, TableProfile, profile_table
from dagster_agent_de.engines.onboard.workflow import Onboarding, onboard_source
from dagster_agent_de.engines.onboard.write import (
    apply_proposal,
    project_wants_arguments_property,
    write_proposal,
)

__all__ = [
    "ColumnProfile",
    "Onboarding",
    "OnboardingProposal",
    "PIIHit",
    "TableProfile",
    "apply_proposal",
    "detect_pii",
    "onboard_source",
    "profile_from_json_schema",
    "profile_table",
    "project_wants_arguments_property",
    "propose",
    "write_proposal",
]
