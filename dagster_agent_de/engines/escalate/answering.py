"""Answer an escalation: validate, record approvals (four eyes), act, and make the answer durable."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from dagster_agent_de.adapters.audit import AuditLog
from dagster_agent_de.core.models import Approval, Escalation, EscalationState, ProposedFix
from dagster_agent_de.engines.escalate.context_store import ContextRule, add_rule
from dagster_agent_de.engines.escalate.policy import ActionClass, Policy, authorize
from dagster_agent_de.engines.escalate.store import EscalationStore
from dagster_agent_de.errors import ConfigError


class EscalationError(ConfigError):
    """The answer cannot be taken (unknown id, already answered, bad choice, same approver twice)."""


@dataclass
class AnswerResult:
    escalation: Escalation
    closed: bool
    rule: ContextRule | None = None
    applied_files: list[str] | None = None
    waiting_for: int = 0

    def describe(self) -> str:
        e = self.escalation
        if not self.closed:
            return f"{e.id}: approval recorded; waiting for {self.waiting_for} more distinct approver(s)"
        text = f"{e.id} answered: {e.options[e.answer.choice].label}" if e.answer else f"{e.id} closed"
        if self.rule:
            text += f"; context rule {self.rule.id} recorded in agent_de_context.yml"
        if self.applied_files:
            text += f"; fix applied to {', '.join(self.applied_files)}"
        return text


def answer_escalation(
    store: EscalationStore, esc_id: str, choice: int, *, by: str, note: str = "", project_dir: Path,
    policy: Policy, audit: AuditLog | None = None, manifest=None,
) -> AnswerResult:
    """Record ``by``'s answer. The escalation closes once enough distinct approvers agree."""
    if not by or not by.strip():
        raise EscalationError("say who answers (--by / answered_by): answers are signed")
    result: dict = {}

    def apply(items: list[Escalation]) -> list[Escalation]:
        match = [e for e in items if e.id == esc_id]
        if not match:
            known = ", ".join(e.id for e in items if e.state == EscalationState.OPEN) or "none open"
            raise EscalationError(f"unknown escalation {esc_id} (open: {known})")
        esc = match[0]
        if esc.state != EscalationState.OPEN:
            raise EscalationError(f"{esc_id} is already {esc.state.value}; nothing to answer")
        if not 0 <= choice < len(esc.options):
            raise EscalationError(f"choice {choice} is out of range for {esc_id}: choose 0..{len(esc.options) - 1}")
        if any(a.by == by for a in esc.approvals):
            raise EscalationError(f"{by} has already answered {esc_id}; a second approval must come from someone else")
        approvals = [*esc.approvals, Approval(by=by, choice=choice, note=note)]
        agreeing = sorted({a.by for a in approvals if a.choice == choice})
        needed = esc.approvals_required if esc.options[choice].agent_action == "apply_fix" else 1
        if len(agreeing) < needed:
            updated = esc.model_copy(update={"approvals": approvals})
            result.update(esc=updated, closed=False, waiting=needed - len(agreeing), approvers=agreeing)
        else:
            updated = esc.model_copy(update={"approvals": approvals, "state": EscalationState.ANSWERED,
                                             "answer": approvals[-1]})
            result.update(esc=updated, closed=True, waiting=0, approvers=agreeing)
        return [updated if e.id == esc_id else e for e in items]

    store.update(apply)
    esc: Escalation = result["esc"]
    out = AnswerResult(esc, result["closed"], waiting_for=result["waiting"])
    if audit is not None:
        audit.record(kind="action", statement=f"answer {esc_id} choice {choice}", rationale=f"answered by {by}: {note}")
    if not out.closed:
        return out
    option = esc.options[choice]
    if option.agent_action == "record_rule":
        rule = ContextRule(id=f"R-{esc.id}", rule=note or option.rule or option.label, applies_to=esc.applies_to,
                           suppresses=option.suppresses or None, source=esc.id, decided_by=by,
                           at=esc.answer.at if esc.answer else None)
        add_rule(project_dir, rule)
        out.rule = rule
    elif option.agent_action == "apply_fix" and esc.fix_diff and manifest is not None:
        from dagster_agent_de.engines.investigate.fixes import apply_diff

        finance = esc.approvals_required > 1
        authorize(policy, ActionClass.APPLY_CODE_FIX, human_present=True, approvers=result["approvers"],
                  finance=finance, audit=audit, what=f"apply the fix of {esc.id} to {esc.asset}")
        out.applied_files = apply_diff(manifest, ProposedFix(description=esc.decision, diff=esc.fix_diff))
    return out
