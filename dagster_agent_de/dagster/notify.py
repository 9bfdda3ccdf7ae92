"""Notifications in Dagster: the notifier for ops, Slack through dagster-slack, the daily digest job.

A channel failure is retried by the notifier, logged in the run, and never fails the run that notifies.
"""

# No `from __future__ import annotations` here: Dagster reads these decorated functions' annotations when they
# are defined (a string `context` annotation or `Config` class is refused; verified on Dagster 1.13).

import os
from typing import Any

from dagster import OpExecutionContext, ScheduleDefinition, job, op
from pydantic import Field

from dagster_agent_de.dagster.resources import AgentWarehouseResource
from dagster_agent_de.engines.notify.dispatch import Notifier
from dagster_agent_de.engines.notify.settings import load_notification_settings
from dagster_agent_de.profile import load_project_yaml

DIGEST_JOB = "escalation_digest"


def slack_client(token: str, base_url: str | None) -> Any:
    """dagster-slack's ``SlackResource`` client, pointed at ``base_url`` when one is set (a proxy, a test server).

    ``SlackResource`` has only a ``token`` field; the subclass adds ``base_url`` (verified against
    dagster-slack 0.29: ``get_client()`` returns ``slack_sdk.WebClient(self.token)``).
    """
    try:
        from dagster_slack import SlackResource
    except ImportError as e:
        from dagster_agent_de.errors import ConfigError

        raise ConfigError("Slack notifications need dagster-slack: pip install 'dagster-agent-de[slack]'") from e

    class AgentSlackResource(SlackResource):
        base_url: str | None = Field(default=None, description="Slack Web API base URL (default: Slack's).")

        def get_client(self) -> Any:
            from slack_sdk import WebClient

            return WebClient(token=self.token, base_url=self.base_url) if self.base_url else WebClient(token=self.token)

    return AgentSlackResource(token=token, base_url=base_url).get_client()


def notifier_for(agent_warehouse: AgentWarehouseResource, context: Any) -> "Notifier | None":
    """The notifier of this deployment, or ``None`` when no ``notifications:`` block is declared."""
    from dagster_agent_de.adapters.notify import senders_from_settings

    settings = agent_warehouse.settings()
    notify = load_notification_settings(load_project_yaml(settings.project_dir))
    if not notify.channels:
        return None
    senders = senders_from_settings(dict(notify.channels), dict(os.environ), slack_client=slack_client)
    missing = sorted(set(notify.channels) - set(senders))
    if missing:
        context.log.warning(f"notification channels without their secret in the environment: {', '.join(missing)}")
    return Notifier(notify, senders, agent_warehouse.state(), log=context.log.warning)


@op(name="send_digest", description="Send the digest of open escalations (past-due first) to the digest channels.")
def digest_op(context: OpExecutionContext, agent_warehouse: AgentWarehouseResource) -> dict:
    from dagster_agent_de.engines.notify.workflow import notify_digest

    notifier = notifier_for(agent_warehouse, context)
    if notifier is None:
        context.log.info("no notifications: block declared; nothing to send")
        return {"sent": 0}
    deliveries = notify_digest(notifier, agent_warehouse.state().escalations())
    for d in deliveries:
        context.log.info(f"digest to {d.channel}: {d.outcome} {d.detail}")
    return {"sent": sum(d.outcome == "sent" for d in deliveries)}


@job(name=DIGEST_JOB, description="Daily digest of open escalations to the notification channels.",
     tags={"agent_de/kind": "digest"})
def digest_job():
    digest_op()


def build_digest_schedule(cron: str) -> ScheduleDefinition:
    return ScheduleDefinition(name="escalation_digest_daily", job=digest_job, cron_schedule=cron,
                              description="The open escalations, past-due first, to the digest channels.")
