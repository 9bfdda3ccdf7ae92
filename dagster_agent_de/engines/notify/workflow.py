"""The notification workflow: what an investigation, an answer and the daily digest tell people.

Thin callers (the investigate op, the answer op, the digest job, the CLI) build a :class:`Notifier` and
call these; a channel failure is logged by the notifier and never raised here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

from dagster_agent_de.core.models import Escalation, Finding, Severity
from dagster_agent_de.engines.notify.dispatch import Delivery, Notifier
from dagster_agent_de.engines.notify.messages import (
    Links,
    answered_message,
    digest_message,
    escalation_message,
    failed_check_message,
    finding_message,
    incident_id,
)

_ESCALATION_INCIDENT = "_escalation"  # ledger pseudo-channel: escalation id -> incident id


def notify_investigation(
    notifier: Notifier, *, asset: str, check: str, evaluation_id: int | str | None, failing_run: str | None,
    check_description: str, numbers: Sequence[tuple[str, str]], finding: Finding, investigation_run: str,
    escalations: Sequence[Escalation], owner: str | None, mask: Callable[[str], str] = str,
    severity: Severity | None = None,
) -> list[Delivery]:
    """The failed check opens the incident's thread; the finding and each escalation reply in it. An
    escalation whose owner is someone else (finance signs off a fix to its tables) also goes to that
    owner's channels, carrying the incident id."""
    links = Links(notifier.settings.base_url)
    # the check's own severity when known (an ERROR check pages), else the finding's
    severity = severity or (Severity.ERROR if finding.severity.rank >= Severity.ERROR.rank else finding.severity)
    inc = incident_id(asset, check, evaluation_id)
    out = notifier.notify(failed_check_message(
        asset=asset, check=check, description=check_description, numbers=numbers, severity=severity, links=links,
        evaluation_id=evaluation_id, run_id=failing_run, owner=owner, mask=mask))
    out += notifier.notify(finding_message(finding=finding, asset=asset, check=check, evaluation_id=evaluation_id,
                                           investigation_run=investigation_run, links=links, owner=owner, mask=mask))
    incident_channels = notifier.settings.channels_for(owner)
    for esc in escalations:
        notifier.ledger.set_notification_thread(_ESCALATION_INCIDENT, esc.id, inc)
        msg = escalation_message(esc=esc, incident=inc, links=links, mask=mask).model_copy(
            update={"severity": severity, "owner": esc.owner or owner})
        out += notifier.notify(msg, channels=incident_channels)
        deciders = [c for c in notifier.settings.channels_for(esc.owner) if c not in incident_channels]
        if deciders:
            out += notifier.notify(msg, channels=deciders)
    return out


def notify_answer(notifier: Notifier, esc: Escalation, mask: Callable[[str], str] = str) -> list[Delivery]:
    """An answer replies in the thread of the incident that raised the escalation."""
    inc = notifier.ledger.notification_thread(_ESCALATION_INCIDENT, esc.id) or incident_id(esc.asset or "", esc.id)
    return notifier.notify(answered_message(esc=esc, incident=inc, links=Links(notifier.settings.base_url), mask=mask))


def notify_digest(notifier: Notifier, escalations: Sequence[Escalation], now: datetime | None = None,
                  mask: Callable[[str], str] = str) -> list[Delivery]:
    """The daily digest of open escalations, past-due first and marked, plus what was held back."""
    return notifier.digest(digest_message(escalations, links=Links(notifier.settings.base_url), now=now, mask=mask))
