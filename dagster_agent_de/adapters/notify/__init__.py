"""Notification channels: Slack (a ``slack_sdk`` client, from dagster-slack's ``SlackResource``),
Microsoft Teams and generic webhooks (JSON over HTTPS), e-mail (SMTP). Each renders the one
:class:`~dagster_agent_de.engines.notify.messages.Message` model and returns a thread reference where the
channel can thread (Slack's ``ts``, an e-mail ``Message-ID``)."""

from __future__ import annotations

from dagster_agent_de.adapters.notify.channels import (
    EmailSender,
    Sender,
    SenderError,
    SlackSender,
    TeamsSender,
    WebhookSender,
    senders_from_settings,
)

__all__ = ["EmailSender", "Sender", "SenderError", "SlackSender", "TeamsSender", "WebhookSender", "senders_from_settings"]
