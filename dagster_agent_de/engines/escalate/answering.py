"""Answer an escalation: validate, record approvals (four eyes), act, and make the answer durable."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dagster_agent_de.adapters.audit import AuditLog
from dagster_agent_de.core.context import ContextRule
from dagster_agent_de.core.models import Approval, Escalation, ProposedFix
from dagster_agent_de.core.state import AnswerDecision, EscalationError, StateStore
from dagster_agent_de.engines.escalate.context_store import CONFLICT_PATTERN, CONTEXT_FILE
from dagster_agent_de.engines.escalate.policy import ActionClass, Policy, authorize

if TYPE_CHECKING:
    from dagster_agent_de.engines.notify.dispatch import Notifier

__all__ = ["AnswerResult", "EscalationError", "answer_escalation", "decide_answer", "identity"]



@dataclass
class AnswerResult:
    escalation: Escalation
    closed: bool
    rule: ContextRule | None = None
    applied_files: list[str] | None = None
    waiting_for: int = 0
    retried: bool = False

    def describe(self) -> str:
        e = self.escalation
        if not self.closed:
            return f"{e.id}: approval recorded; waiting for {self.waiting_for} more distinct approver(s)"
        text = f"{e.id} answered: {e.options[e.answer.choice].label}" if e.answer else f"{e.id} closed"
        if self.retried:
            text += " (this answer was already recorded)"
        if self.rule:
            text += f"; context rule {self.rule.id} recorded in the state store (`agent-de context export` writes it out)"
        if self.applied_files:
            text += f"; fix applied to {', '.join(self.applied_files)}"
        return text


def identity(by: str) -> str:
    """Who answers, normalized so one person is one approver (``Alice@X.com`` == ``alice@x.com``)."""
    return " ".join(by.split()).lower()


def rule_for(esc: Escalation, answer: Approval) -> ContextRule | None:
    """The context rule an answer decides, if its option records one.

    The rule is the option's (what was decided); the answerer's ``note`` (why) is kept beside it. An answer to an
    investigation's question whose option names no rule (one raised before options carried theirs: approve or
    reject) records the decision itself, so the next investigation cites it instead of asking again.
    """
    option = esc.options[answer.choice]
    note = " ".join(answer.note.split()) or None
    if esc.finding_pattern and esc.finding_pattern.startswith(CONFLICT_PATTERN):  # the committed rule holds
        if option.agent_action != "record_rule":
            return None
        return ContextRule(id=esc.finding_pattern[len(CONFLICT_PATTERN):].rsplit("@", 1)[0],
                           rule=option.rule or option.label, applies_to=esc.applies_to,
                           suppresses=option.suppresses or None, source=f"{CONTEXT_FILE} (confirmed in {esc.id})",
                           decided_by=answer.by, at=answer.at, note=note)
    text, suppresses = option.rule, option.suppresses
    if text is None and option.agent_action == "record_rule":
        text = option.label
    elif text is None and esc.finding_id and esc.finding_pattern:
        text = f"{esc.decision.rstrip()} Decided in {esc.id}: {option.label}."
        suppresses = [esc.finding_pattern]
    if text is None:
        return None
    return ContextRule(id=f"R-{esc.id}", rule=text, applies_to=esc.applies_to, suppresses=suppresses or None,
                       acknowledges=option.acknowledges or None, source=esc.id, decided_by=answer.by, at=answer.at,
                       note=note)


def decide_answer(esc: Escalation, by: str, choice: int) -> AnswerDecision:
    """Whether ``by``'s answer (already in ``esc.approvals``) closes ``esc``, and the rule it records."""
    if not 0 <= choice < len(esc.options):
        raise EscalationError(f"choice {choice} is out of range for {esc.id}: choose 0..{len(esc.options) - 1}")
    agreeing = sorted({a.by for a in esc.approvals if a.choice == choice})
    needed = esc.approvals_required if esc.options[choice].agent_action == "apply_fix" else 1
    if len(agreeing) < needed:
        return AnswerDecision(close=False, waiting_for=needed - len(agreeing), approvers=agreeing)
    mine = next(a for a in esc.approvals if a.by == by)
    return AnswerDecision(close=True, approvers=agreeing, rule=rule_for(esc, mine))


def answer_escalation(
    store: StateStore, esc_id: str, choice: int, *, by: str, note: str = "",
    policy: Policy, audit: AuditLog | None = None, manifest: Any = None, notifier: Notifier | None = None,
) -> AnswerResult:
    """Record ``by``'s answer. The escalation closes once enough distinct approvers agree.

    The approval, the closing answer and the rule it decides commit in one transaction; the same
    answer sent again (a retry after a crash) returns what is stored instead of failing. The closing answer
    replies, through ``notifier``, in the thread of the incident that raised the escalation (once, whichever
    caller answered; ``None``: nothing is sent).
    """
    who = identity(by or "")
    if not who:
        raise EscalationError("say who answers (--by / answered_by): answers are signed")
    outcome = store.answer_escalation(esc_id, Approval(by=who, choice=choice, note=note),
                                      lambda esc: decide_answer(esc, who, choice))
    esc, decision = outcome.escalation, outcome.decision
    out = AnswerResult(esc, decision.close, rule=decision.rule, waiting_for=decision.waiting_for,
                       retried=outcome.retried)
    if audit is not None:
        audit.record(kind="action", statement=f"answer {esc_id} choice {choice}",
                     rationale=f"answered by {who}: {note}" + (" (retry; already recorded)" if outcome.retried else ""))
    if not out.closed:
        return out
    option = esc.options[choice]
    if option.agent_action == "apply_fix" and esc.fix_diff and manifest is not None:
        from dagster_agent_de.engines.investigate.fixes import apply_diff

        finance = esc.approvals_required > 1
        authorize(policy, ActionClass.APPLY_CODE_FIX, human_present=True, approvers=decision.approvers,
                  finance=finance, audit=audit, what=f"apply the fix of {esc.id} to {esc.asset}")
        out.applied_files = apply_diff(manifest, ProposedFix(description=esc.decision, diff=esc.fix_diff))
    from dagster_agent_de.engines.notify.workflow import notify_answer, notify_safely

    notify_safely(notifier, lambda n: notify_answer(n, esc))
    return out


def option_by_name(esc: Escalation, name: str) -> int:
    """The index of the option of ``esc`` called ``name`` (case and spacing ignored).

    >>> from dagster_agent_de.core.models import EscalationKind, EscalationOption
    >>> esc = Escalation(id="ESC-1", kind=EscalationKind.CONTEXT_GAP, decision="?",
    ...                  options=[EscalationOption(label="Apply the fix"), EscalationOption(label="Leave it")])
    >>> option_by_name(esc, "leave  it")
    1
    """
    wanted = " ".join(name.lower().split())
    for i, opt in enumerate(esc.options):
        if " ".join(opt.label.lower().split()) == wanted:
            return i
    raise EscalationError(f"{esc.id} has no option {name!r}; its options are: "
                          + "; ".join(repr(o.label) for o in esc.options))
