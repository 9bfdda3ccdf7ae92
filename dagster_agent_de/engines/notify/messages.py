"""Messages a data engineer can act on: what happened, the numbers, the cause, the fix, the links,
and the exact way to answer. One model, rendered per channel by the adapters.

Every text passes through the masking function before it is built (the same one the check metadata
uses), so no channel sees a value the Dagster UI would not show.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from datetime import datetime
from urllib.parse import quote

from dagster_agent_de.core.models import Escalation, EscalationState, Finding, Severity, utcnow
from dagster_agent_de.core.notifications import Link, Message

DIFF_LINES = 30


def incident_id(asset: str, check: str, evaluation_id: int | str | None = None) -> str:
    """A short stable id for one failure of one check (the thread, the subject line, the dedup key).

    >>> incident_id("analytics/orders", "orders_vs_raw", 42)
    'INC-5bd55322'
    """
    raw = f"{asset}:{check}:{evaluation_id or ''}"
    return "INC-" + hashlib.sha256(raw.encode()).hexdigest()[:8]


class Links:
    """Dagster UI URLs, from ``DAGSTER_UI_URL`` or the settings' ``ui_url``."""

    def __init__(self, base_url: str) -> None:
        self.base = base_url.rstrip("/")

    def asset(self, asset_path: str) -> Link:
        return Link(label="Asset", url=f"{self.base}/assets/{quote(asset_path)}")

    def check(self, asset_path: str, check: str) -> Link:
        return Link(label="Check", url=f"{self.base}/assets/{quote(asset_path)}?view=checks&checkDetail={quote(check)}")

    def run(self, run_id: str, label: str = "Run") -> Link:
        return Link(label=label, url=f"{self.base}/runs/{run_id}")

    def runs_tagged(self, key: str, value: str, label: str = "Investigation runs") -> Link:
        return Link(label=label, url=f"{self.base}/runs?q%5B0%5D={quote(f'tag:{key}={value}')}")


def _diff(diff: str) -> tuple[str, bool]:
    lines = diff.rstrip().splitlines()
    return "\n".join(lines[:DIFF_LINES]), len(lines) > DIFF_LINES


def failed_check_message(*, asset: str, check: str, description: str, numbers: Sequence[tuple[str, str]],
                         severity: Severity, links: Links, evaluation_id: int | str | None, run_id: str | None,
                         owner: str | None, mask: Callable[[str], str]) -> Message:
    inc = incident_id(asset, check, evaluation_id)
    out = [links.check(asset, check), links.asset(asset),
           links.runs_tagged("agent_de/check", f"{asset}:{check}")]
    if run_id:
        out.append(links.run(run_id, "Failing run"))
    return Message(incident_id=inc, event="failed", severity=severity, owner=owner, asset=asset,
                   title=mask(f"Check {check} failed on {asset}"),
                   action="The agent is investigating; its finding follows in this thread.",
                   facts=[(k, mask(v)) for k, v in numbers], body=mask(description), links=out)


def finding_message(*, finding: Finding, asset: str, check: str, evaluation_id: int | str | None,
                    investigation_run: str, links: Links, owner: str | None,
                    mask: Callable[[str], str]) -> Message:
    diff, truncated = _diff(finding.proposed_fix.diff if finding.proposed_fix else "")
    explained = finding.pattern != "unexplained"
    title = (f"Root cause of {check} on {asset}: {finding.pattern} in {finding.model} "
             f"(confidence {finding.confidence:.0%})" if explained else
             f"{check} on {asset}: no known pattern explains it (confidence {finding.confidence:.0%})")
    action = (f"Review the proposed fix to {finding.model}." if diff else
              "A human needs to look: the evidence is in the investigation run." if not explained else
              "No safe diff exists; see the finding for why.")
    return Message(incident_id=incident_id(asset, check, evaluation_id), event="investigated",
                   severity=finding.severity, owner=owner, asset=asset, title=mask(title), action=action,
                   facts=[("Pattern", finding.pattern), ("Culprit", finding.model or "-"),
                          ("Confidence", f"{finding.confidence:.0%}")],
                   body=mask(finding.summary), diff=mask(diff), diff_truncated=truncated,
                   links=[links.run(investigation_run, "Investigation run"), links.asset(asset), links.check(asset, check)])


def answer_instructions(esc: Escalation) -> str:
    """The exact CLI command and Launchpad config to answer, one per option."""
    lines = [f"agent-de escalations answer {esc.id} --option {opt.label!r} --by <you>" for opt in esc.options]
    lines.append("or the answer_escalation job in the Launchpad: ops: {answer: {config: {escalation_id: "
                 f"\"{esc.id}\", option: \"<option name>\", answered_by: \"<you>\"}}}}")
    return "\n".join(lines)


def escalation_message(*, esc: Escalation, incident: str, links: Links, mask: Callable[[str], str]) -> Message:
    due = f", due {esc.due_at:%Y-%m-%d %H:%M} UTC" if esc.due_at else ""
    options = "\n".join(f"- {o.label}" + (f": {o.consequence}" if o.consequence else "") for o in esc.options)
    return Message(incident_id=incident, event="escalated", severity=Severity.WARNING, owner=esc.owner,
                   asset=esc.asset or "", title=mask(f"Decision needed ({esc.kind.value.replace('_', ' ')}) {esc.id}: {esc.decision}"),
                   action=f"{esc.owner or 'The owner'} decides{due}. Answer with one of the commands below.",
                   facts=[("Escalation", esc.id), ("Kind", esc.kind.value), ("Owner", esc.owner or "-")],
                   body=mask(options + "\n\n" + answer_instructions(esc)),
                   diff=mask(_diff(esc.fix_diff)[0]), diff_truncated=_diff(esc.fix_diff)[1],
                   links=[links.asset("agent_de/escalations")])


def answered_message(*, esc: Escalation, incident: str, links: Links, mask: Callable[[str], str]) -> Message:
    who = esc.answer.by if esc.answer else "?"
    choice = (esc.options[esc.answer.choice].label if esc.answer and 0 <= esc.answer.choice < len(esc.options)
              else "?")
    return Message(incident_id=incident, event="answered", severity=Severity.INFO, owner=esc.owner, asset=esc.asset or "",
                   title=mask(f"{esc.id} answered by {who}: {choice}"),
                   action="The answer is now context: the blocked work re-runs with it.",
                   links=[links.asset("agent_de/escalations")])


def withdrawn_message(*, esc: Escalation, replacement: Escalation | None, incident: str, links: Links,
                      mask: Callable[[str], str]) -> Message:
    """``esc`` was withdrawn: the question that asks about its incident now, and how to answer that one."""
    now_asks = replacement.id if replacement else (esc.superseded_by or "another question")
    body = (f"{now_asks} ({replacement.owner or '-'}): {replacement.decision}\n\n{answer_instructions(replacement)}"
            if replacement else "")
    return Message(incident_id=incident, event="withdrawn", severity=Severity.INFO, owner=esc.owner,
                   asset=esc.asset or "", title=mask(f"{esc.id} withdrawn: {now_asks} asks about this incident now"),
                   action=f"Nothing to answer on {esc.id}; answer {now_asks} instead.",
                   facts=[("Withdrawn", esc.id), ("Replaced by", now_asks)], body=mask(body),
                   links=[links.asset("agent_de/escalations")])


def attached_message(*, esc: Escalation, finding: Finding, asset: str, check: str, incident: str, links: Links,
                     mask: Callable[[str], str]) -> Message:
    """An investigation traced a failure to the incident ``esc`` already asks about: its finding joins that question."""
    return Message(incident_id=incident, event="attached", severity=Severity.INFO, owner=esc.owner, asset=asset,
                   title=mask(f"No new question: {esc.id} already asks about this ({finding.pattern} in "
                              f"{finding.model or '-'}, the cause of {check} failing on {asset})"),
                   action=f"Answering {esc.id} settles this failure too.",
                   facts=[("Escalation", esc.id), ("State", esc.status()), ("Owner", esc.owner or "-")],
                   body=mask(f"{esc.decision}\n\n{answer_instructions(esc)}"),
                   links=[links.asset("agent_de/escalations")])


def overdue_message(*, esc: Escalation, incident: str, links: Links, mask: Callable[[str], str]) -> Message:
    """The one reminder for an open question past its due date (it stays the open question, never re-asked)."""
    due = f"{esc.due_at:%Y-%m-%d %H:%M} UTC" if esc.due_at else "-"
    return Message(incident_id=incident, event="overdue", severity=Severity.WARNING, owner=esc.owner,
                   asset=esc.asset or "", title=mask(f"Reminder: {esc.id} is overdue (due {due}): {esc.decision}"),
                   action=f"{esc.owner or 'The owner'} decides; what it blocks stays blocked: {esc.blocking or '-'}.",
                   facts=[("Escalation", esc.id), ("Due", due), ("Owner", esc.owner or "-")],
                   body=mask(answer_instructions(esc)), links=[links.asset("agent_de/escalations")])


def digest_message(escalations: Sequence[Escalation], *, links: Links, now: datetime | None = None,
                   mask: Callable[[str], str]) -> Message:
    """All open escalations, past-due first and marked."""
    now = now or utcnow()
    open_ = [e for e in escalations if e.state == EscalationState.OPEN]
    overdue = [e for e in open_ if e.due_at is not None and e.due_at < now]
    rest = [e for e in open_ if e not in overdue]
    rest.sort(key=lambda e: (e.due_at or datetime.max.replace(tzinfo=now.tzinfo), e.created_at))
    lines = [f"PAST DUE {e.id} ({e.owner or '-'}, due {e.due_at:%Y-%m-%d}): {e.decision}" for e in
             sorted(overdue, key=lambda e: e.due_at or now)]
    lines += [f"{e.id} ({e.owner or '-'}" + (f", due {e.due_at:%Y-%m-%d}" if e.due_at else "") + f"): {e.decision}"
              for e in rest]
    return Message(incident_id=f"DIGEST-{now:%Y-%m-%d}", event="digest", severity=Severity.INFO,
                   title=f"{len(open_)} open decisions ({len(overdue)} past due)",
                   action="Each line names the escalation; answer with `agent-de escalations answer <id>`.",
                   body=mask("\n".join(lines) or "Nothing open."), links=[links.asset("agent_de/escalations")])
