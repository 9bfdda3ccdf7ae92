"""Notifications in Dagster: the notifier for ops, Slack through dagster-slack, the daily digest job.

A channel failure is retried by the notifier, logged in the run, and never fails the run that notifies.
"""

# No `from __future__ import annotations` here: Dagster reads these decorated functions' annotations when they
# are defined (a string `context` annotation or `Config` class is refused; verified on Dagster 1.13).

from typing import Any

from dagster import OpExecutionContext, ScheduleDefinition, job, op
from pydantic import Field

from dagster_agent_de.dagster.resources import AgentWarehouseResource
from dagster_agent_de.engines.notify.dispatch import (
    Notifier,
    build_notifier,
    delivery_lines,
    notifier_or_none,
)

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
    return build_notifier(agent_warehouse.settings().project_dir, agent_warehouse.state(), log=context.log.warning,
                          slack_client=slack_client)


def optional_notifier(agent_warehouse: AgentWarehouseResource, context: Any) -> "Notifier | None":
    """:func:`notifier_for` for a workflow that notifies as it works: ``None`` with a warning in the log when it
    cannot be built (a bad ``notifications:`` block, a missing extra), never the caller's failure."""
    return notifier_or_none(agent_warehouse.settings().project_dir, agent_warehouse.state(), log=context.log.warning,
                            slack_client=slack_client)


def log_deliveries(context: Any, notifier: "Notifier | None") -> None:
    """What ``notifier`` did on each channel, in the run's (or the tick's) log."""
    for line in delivery_lines(notifier):
        context.log.info(line)


@op(name="send_digest", description="Send the digest of open escalations (past-due first) to the digest channels.")
def digest_op(context: OpExecutionContext, agent_warehouse: AgentWarehouseResource) -> dict:
    from dagster_agent_de.engines.notify.workflow import notify_digest, notify_overdue

    notifier = notifier_for(agent_warehouse, context)
    if notifier is None:
        context.log.info("no notifications: block declared; nothing to send")
        return {"sent": 0, "reminders": 0}
    escalations = agent_warehouse.state().escalations()
    reminders = notify_overdue(notifier, escalations)  # once per overdue question, whatever the number of digests
    for d in reminders:
        context.log.info(f"overdue reminder to {d.channel}: {d.outcome} {d.detail}")
    deliveries = notify_digest(notifier, escalations)
    for d in deliveries:
        context.log.info(f"digest to {d.channel}: {d.outcome} {d.detail}")
    return {"sent": sum(d.outcome == "sent" for d in deliveries),
            "reminders": sum(d.outcome == "sent" for d in reminders)}


@job(name=DIGEST_JOB, description="Daily digest of open escalations to the notification channels.",
     tags={"agent_de/kind": "digest"})
def digest_job():
    digest_op()


def build_digest_schedule(cron: str) -> ScheduleDefinition:
    return ScheduleDefinition(name="escalation_digest_daily", job=digest_job, cron_schedule=cron,
                              description="The open escalations, past-due first, to the digest channels.")
