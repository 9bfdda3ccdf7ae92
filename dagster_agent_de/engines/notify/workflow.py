"""The notification workflow: what an investigation, an answer and the daily digest tell people.

Thin callers (the investigate op, the answer op, the digest job, the CLI) build a :class:`Notifier` and
call these; a channel failure is logged by the notifier and never raised here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

from dagster_agent_de.core.models import Escalation, EscalationState, Finding, Severity, utcnow
from dagster_agent_de.engines.notify.dispatch import Delivery, Notifier
from dagster_agent_de.engines.notify.messages import (
    Links,
    answered_message,
    attached_message,
    digest_message,
    escalation_message,
    failed_check_message,
    finding_message,
    incident_id,
    overdue_message,
    withdrawn_message,
)

_ESCALATION_INCIDENT = "_escalation"  # ledger pseudo-channel: escalation id -> incident id
_ESCALATION_CHANNELS = "_escalation_channels"  # ledger pseudo-channel: escalation id -> the channels told about it


def _remember(notifier: Notifier, esc: Escalation, incident: str, channels: Sequence[str]) -> None:
    """Which incident's thread ``esc`` lives in and who was told about it (the first record stays)."""
    notifier.ledger.set_notification_thread(_ESCALATION_INCIDENT, esc.id, incident)
    if channels:
        notifier.ledger.set_notification_thread(_ESCALATION_CHANNELS, esc.id, ",".join(dict.fromkeys(channels)))


def _thread_of(notifier: Notifier, esc: Escalation) -> str:
    return notifier.ledger.notification_thread(_ESCALATION_INCIDENT, esc.id) or incident_id(esc.asset or "", esc.id)


def told_about(notifier: Notifier, esc: Escalation) -> list[str]:
    """The channels that were told about ``esc`` (empty: nobody was)."""
    recorded = notifier.ledger.notification_thread(_ESCALATION_CHANNELS, esc.id)
    if recorded is not None:
        return [c for c in recorded.split(",") if c in notifier.settings.channels]
    if notifier.ledger.notification_thread(_ESCALATION_INCIDENT, esc.id) is not None:  # told before channels were kept
        return notifier.settings.channels_for(esc.owner)
    return []


def notify_safely(notifier: Notifier | None, send: Callable[[Notifier], list[Delivery]]) -> list[Delivery]:
    """``send(notifier)``, for a workflow whose work is done: no notifier, nothing sent; a failure is logged by
    the notifier and never raised (channels that are down are already retried and logged by the notifier)."""
    if notifier is None:
        return []
    try:
        return send(notifier)
    except Exception as e:  # a notification problem is reported, never the failure of the work it reports
        notifier.log(f"notifications were not sent: {type(e).__name__}: {e}")
        return []


def notify_investigation(
    notifier: Notifier, *, asset: str, check: str, evaluation_id: int | str | None, failing_run: str | None,
    check_description: str, numbers: Sequence[tuple[str, str]], finding: Finding, investigation_run: str,
    escalations: Sequence[Escalation], owner: str | None, mask: Callable[[str], str] = str,
    severity: Severity | None = None, attached: Sequence[Escalation] = (),
) -> list[Delivery]:
    """The failed check opens the incident's thread; the finding and each escalation reply in it. An
    escalation whose owner is someone else (finance signs off a fix to its tables) also goes to that
    owner's channels, carrying the incident id. A question asked earlier that the finding is ``attached`` to
    (nothing new is asked) is named in the thread, and those told about that question hear of the finding."""
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
        deciders = [c for c in notifier.settings.channels_for(esc.owner) if c not in incident_channels]
        _remember(notifier, esc, inc, [*incident_channels, *deciders])
        msg = escalation_message(esc=esc, incident=inc, links=links, mask=mask).model_copy(
            update={"severity": severity, "owner": esc.owner or owner})
        out += notifier.notify(msg, channels=incident_channels)
        if deciders:
            out += notifier.notify(msg, channels=deciders)
    for esc in attached:
        if esc.state != EscalationState.OPEN:
            continue  # an answered question needs nobody; the finding's note names it
        told = [c for c in told_about(notifier, esc) if c not in incident_channels]
        msg = attached_message(esc=esc, finding=finding, asset=asset, check=check, incident=inc, links=links,
                               mask=mask).model_copy(update={"severity": severity})  # as loud as the incident
        out += notifier.notify(msg, channels=incident_channels)
        if told:  # in the question's own thread
            out += notifier.notify(msg.model_copy(update={"incident_id": _thread_of(notifier, esc)}), channels=told)
        _remember(notifier, esc, inc, [*incident_channels, *told])
    return out


def notify_withdrawn(notifier: Notifier, withdrawn: Sequence[Escalation], replacements: Sequence[Escalation],
                     mask: Callable[[str], str] = str) -> list[Delivery]:
    """Each withdrawn question: one message, in its thread, to the channels told about it, naming the question
    that replaces it (and how to answer that). The replacement continues in the same thread."""
    links = Links(notifier.settings.base_url)
    by_id = {e.id: e for e in replacements}
    out: list[Delivery] = []
    for esc in withdrawn:
        told = told_about(notifier, esc)
        if not told:
            continue  # nobody heard of it: nothing to take back
        inc = _thread_of(notifier, esc)
        replacement = by_id.get(esc.superseded_by or "")
        out += notifier.notify(withdrawn_message(esc=esc, replacement=replacement, incident=inc, links=links,
                                                 mask=mask), channels=told)
        if replacement is not None:
            _remember(notifier, replacement, inc, told)
    return out


def notify_overdue(notifier: Notifier, escalations: Sequence[Escalation], now: datetime | None = None,
                   mask: Callable[[str], str] = str) -> list[Delivery]:
    """One reminder per open question past its due date, to the channels told about it (else its owner's), in its
    thread. The store's deduplication keys make it one: a later digest or another process sends nothing."""
    links = Links(notifier.settings.base_url)
    now = now or utcnow()
    out: list[Delivery] = []
    for esc in escalations:
        if esc.overdue(now):
            channels = told_about(notifier, esc) or notifier.settings.channels_for(esc.owner)
            out += notifier.notify(overdue_message(esc=esc, incident=_thread_of(notifier, esc), links=links,
                                                   mask=mask), channels=channels)
    return out


def notify_answer(notifier: Notifier, esc: Escalation, mask: Callable[[str], str] = str) -> list[Delivery]:
    """An answer replies in the thread of the incident that raised the escalation."""
    return notifier.notify(answered_message(esc=esc, incident=_thread_of(notifier, esc),
                                            links=Links(notifier.settings.base_url), mask=mask))


def notify_digest(notifier: Notifier, escalations: Sequence[Escalation], now: datetime | None = None,
                  mask: Callable[[str], str] = str) -> list[Delivery]:
    """The daily digest of open escalations, past-due first and marked, plus what was held back."""
    return notifier.digest(digest_message(escalations, links=Links(notifier.settings.base_url), now=now, mask=mask))
