"""The ``notifications:`` block: channels, routing by owner, severity filters, quiet hours, digest.

Declared once, in ``dbt_project.yml`` under ``vars: {agent_de: {notifications: ...}}`` (the project's own
settings, reviewed like code) or in a YAML file named by ``AGENT_DE_NOTIFICATIONS``::

    vars:
      agent_de:
        notifications:
          ui_url: https://dagster.acme.io            # links in every message
          channels:
            data-alerts: {kind: slack, channel: "#data-alerts", token_env: SLACK_BOT_TOKEN}
            finance:     {kind: email, to: [finance-data@acme.io], smtp_host: smtp.acme.io}
            pager:       {kind: webhook, url_env: PAGERDUTY_WEBHOOK_URL}
            teams:       {kind: teams, url_env: TEAMS_WEBHOOK_URL}
          default: [data-alerts]
          owners: {finance: [finance, data-alerts]}   # dbt meta.owner / group owner -> channels
          page: [error, critical]                      # sent at once; others wait for the digest
          quiet_hours: {start: "22:00", end: "07:00"}  # UTC; paging severities still go out
          digest: [data-alerts, finance]

Secrets are never in YAML: ``*_env`` fields name environment variables.
"""

from __future__ import annotations

import os
from datetime import time
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from dagster_agent_de.core.models import Severity, validation_problems
from dagster_agent_de.errors import SpecError


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SlackChannel(_Strict):
    kind: Literal["slack"]
    channel: str = Field(description="Channel name or id, e.g. #data-alerts.")
    token_env: str = Field(default="SLACK_BOT_TOKEN", description="Environment variable holding the bot token.")
    base_url_env: str | None = Field(default=None, description="Environment variable with the Slack API base URL.")


class TeamsChannel(_Strict):
    kind: Literal["teams"]
    url_env: str = Field(description="Environment variable holding the incoming-webhook URL.")


class EmailChannel(_Strict):
    kind: Literal["email"]
    to: list[str] = Field(min_length=1)
    sender: str = "dagster-agent-de@localhost"
    smtp_host: str = "localhost"
    smtp_port: int = 25
    starttls: bool = False
    user_env: str | None = None
    password_env: str | None = None


class WebhookChannel(_Strict):
    kind: Literal["webhook"]
    url_env: str = Field(description="Environment variable holding the URL (PagerDuty, Opsgenie, in-house).")
    headers_env: str | None = Field(default=None, description="Environment variable with extra headers as JSON.")


Channel = Annotated[SlackChannel | TeamsChannel | EmailChannel | WebhookChannel, Field(discriminator="kind")]


class QuietHours(_Strict):
    start: time
    end: time

    def contains(self, t: time) -> bool:
        """Whether ``t`` (UTC) is quiet; the window may wrap midnight.

        >>> QuietHours(start=time(22), end=time(7)).contains(time(23, 30)), QuietHours(start=time(22), end=time(7)).contains(time(12))
        (True, False)
        """
        if self.start <= self.end:
            return self.start <= t < self.end
        return t >= self.start or t < self.end


class NotificationSettings(_Strict):
    ui_url: str = Field(default="", description="Base URL of the Dagster UI (default: DAGSTER_UI_URL).")
    channels: dict[str, Channel] = Field(default_factory=dict)
    default: list[str] = Field(default_factory=list)
    owners: dict[str, list[str]] = Field(default_factory=dict)
    page: list[Severity] = Field(default_factory=lambda: [Severity.ERROR, Severity.CRITICAL])
    quiet_hours: QuietHours | None = None
    digest: list[str] = Field(default_factory=list)
    rate_per_minute: int = Field(default=20, ge=1, description="Messages per channel per minute at most.")

    def model_post_init(self, _: Any) -> None:
        named = [*self.default, *self.digest, *[c for cs in self.owners.values() for c in cs]]
        unknown = sorted({c for c in named if c not in self.channels})
        if unknown:
            raise ValueError(f"channels {', '.join(unknown)} are routed to but not declared under channels:")

    @property
    def base_url(self) -> str:
        return (self.ui_url or os.environ.get("DAGSTER_UI_URL", "") or "http://localhost:3000").rstrip("/")

    def channels_for(self, owner: str | None) -> list[str]:
        """The owner's channels, else the default ones (an owner may be ``team:x`` or an e-mail)."""
        if owner:
            for key in (owner, owner.removeprefix("team:"), owner.split("@")[0]):
                if key in self.owners:
                    return list(self.owners[key])
        return list(self.default)


def load_notification_settings(project_yaml: dict[str, Any], env: dict[str, str] | None = None) -> NotificationSettings:
    """The settings from ``AGENT_DE_NOTIFICATIONS`` (a YAML file) or ``vars.agent_de.notifications``;
    empty (nothing is sent) when neither is set. A bad block is a :class:`SpecError` naming the field."""
    env = dict(os.environ) if env is None else env
    raw: Any = None
    where = "dbt_project.yml vars.agent_de.notifications"
    if env.get("AGENT_DE_NOTIFICATIONS"):
        path = Path(env["AGENT_DE_NOTIFICATIONS"])
        where = str(path)
        try:
            raw = (yaml.safe_load(path.read_text()) or {})
        except (OSError, yaml.YAMLError) as e:
            raise SpecError(f"AGENT_DE_NOTIFICATIONS={path} cannot be read: {e}") from e
        raw = raw.get("notifications", raw) if isinstance(raw, dict) else raw
    else:
        raw = (((project_yaml.get("vars") or {}).get("agent_de") or {}).get("notifications"))
    if raw is None:
        return NotificationSettings()
    if not isinstance(raw, dict):
        raise SpecError(f"{where} must be a mapping (channels:, default:, owners:, ...)")
    try:
        return NotificationSettings.model_validate(raw)
    except (ValidationError, ValueError) as e:
        problems = validation_problems(e) if isinstance(e, ValidationError) else str(e)
        raise SpecError(f"{where}: {problems}") from e
