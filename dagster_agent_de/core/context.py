"""A business rule the engines consult: decided by a human (an escalation answer) or hand-written."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field


class ContextRule(BaseModel):
    """One rule, as it appears under ``rules:`` in ``agent_de_context.yml`` and in the state store.

    Example:
        >>> ContextRule(id="R-refunds", rule="Refunds are negative charges", applies_to=["stg_charges.amount"]).source
        'hand-written'
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    rule: str
    applies_to: list[str] = Field(default_factory=list)
    suppresses: list[str] | None = None
    acknowledges: list[str] | None = None
    """Patterns whose fix is decided (not explained): still named by an investigation, citing this rule."""
    source: str = "hand-written"
    decided_by: str | None = None
    at: datetime | None = None
    note: str | None = None
    """Why, in the answerer's words (``--note``): kept beside the rule, never in place of it."""

    def same_meaning(self, other: ContextRule) -> bool:
        """Two versions of a rule say the same thing (who decided it and when may differ)."""
        return (self.rule.strip(), sorted(self.applies_to), sorted(self.suppresses or []), sorted(self.acknowledges or [])) == (
            other.rule.strip(), sorted(other.applies_to), sorted(other.suppresses or []), sorted(other.acknowledges or []))
