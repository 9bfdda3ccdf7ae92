"""A message about an incident, as every notification channel renders it (no Dagster, no channel)."""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from dagster_agent_de.core.models import Severity, utcnow

Event = Literal["failed", "investigated", "escalated", "answered", "withdrawn", "attached", "overdue", "fixed", "digest"]


class Link(BaseModel):
    model_config = ConfigDict(frozen=True)
    label: str
    url: str


class Message(BaseModel):
    """One message about one incident (or the digest). ``title`` says what happened, ``action`` what to do."""

    model_config = ConfigDict(frozen=True)

    incident_id: str
    event: Event
    severity: Severity
    title: str
    action: str = ""
    facts: list[tuple[str, str]] = Field(default_factory=list)
    body: str = ""
    diff: str = ""
    diff_truncated: bool = False
    links: list[Link] = Field(default_factory=list)
    owner: str | None = None
    asset: str = ""
    created_at: datetime = Field(default_factory=utcnow)

    @property
    def dedup_key(self) -> str:
        """The same event of the same incident is sent once, whatever the retries and sensor ticks."""
        return f"{self.incident_id}:{self.event}:{hashlib.sha256(self.title.encode()).hexdigest()[:8]}"

    def text(self) -> str:
        """Plain text (e-mail, fallbacks, webhooks): every line a person needs, incident id first."""
        lines = [f"[{self.incident_id}] {self.title}"]
        if self.action:
            lines.append(self.action)
        lines += [f"  {k}: {v}" for k, v in self.facts]
        if self.body:
            lines += ["", self.body]
        if self.diff:
            lines += ["", "Proposed fix:", self.diff + ("\n  ... (truncated: full diff in Dagster)" if self.diff_truncated else "")]
        if self.links:
            lines += [""] + [f"{link.label}: {link.url}" for link in self.links]
        return "\n".join(lines)
