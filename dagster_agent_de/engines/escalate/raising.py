"""Turn findings into escalations: only context gaps and authority gaps reach a human."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from dagster_agent_de.core.models import (
    Escalation,
    EscalationKind,
    EscalationOption,
    EscalationState,
    Finding,
    utcnow,
)
from dagster_agent_de.core.state import StateStore
from dagster_agent_de.engines.escalate.policy import ActionClass, Autonomy, Policy
from dagster_agent_de.errors import ProjectError
from dagster_agent_de.manifest import Manifest, Node

DEFAULT_OWNER = "data-team"
DUE = timedelta(days=3)
"""When a question about a failure falls due. Unanswered by then it stays the one open question about its
incident, shown as overdue (:meth:`~dagster_agent_de.core.models.Escalation.overdue`), and its owner is reminded
once (:func:`~dagster_agent_de.engines.notify.workflow.notify_overdue`); it is never asked again as a new one."""


def due_date(asked_at: datetime | None = None) -> datetime:
    """When a question about a failure, asked at ``asked_at`` (now), falls due: :data:`DUE` later.

    >>> from datetime import timezone
    >>> due_date(datetime(2024, 1, 1, tzinfo=timezone.utc)).isoformat()
    '2024-01-04T00:00:00+00:00'
    """
    return (asked_at or utcnow()) + DUE


def owner_of(manifest: Manifest, model: str | None, default: str = DEFAULT_OWNER) -> str:
    """dbt ``meta.owner``, else the model's group owner, else the default."""
    if not model:
        return default
    try:
        node = manifest.find(model)
    except Exception:
        return default
    if node.meta.get("owner"):
        return str(node.meta["owner"])
    group = node.raw.get("group")
    if group:
        g = (manifest.data.get("groups") or {}).get(f"group.{node.raw.get('package_name')}.{group}") or {}
        owner = (g.get("owner") or {})
        return owner.get("email") or owner.get("name") or group
    return default


def _finance_in(manifest: Manifest, names: list[str]) -> list[str]:
    out = []
    for name in names:
        try:
            node = manifest.find(name)
        except Exception:
            continue
        if node.agent_de_meta.get("finance") or "finance" in (node.raw.get("tags") or []):
            out.append(node.display_name)
    return out


def escalations_for(finding: Finding, manifest: Manifest, policy: Policy, *, check: str | None = None,
                    default_owner: str = DEFAULT_OWNER) -> list[Escalation]:
    """What a finding needs from humans (ids are assigned when stored)."""
    if finding.pattern == "unexplained" or finding.confidence < 0.5 or finding.cited_rules or finding.fix_decided_in:
        return []
    out: list[Escalation] = []
    owner = owner_of(manifest, finding.model, default_owner)
    base: dict[str, Any] = dict(asset=finding.model, finding_id=finding.id, finding_pattern=finding.pattern, check=check,
                owner=owner, due_at=due_date(),
                applies_to=[f"{finding.model}.{c}" for c in finding.columns] or [str(finding.model)])
    on = f"{finding.pattern} on {', '.join(base['applies_to'])}"
    if finding.needs_context:
        out.append(Escalation(
            id="", kind=EscalationKind.CONTEXT_GAP, decision=finding.needs_context,
            options=[
                EscalationOption(label="They count: fix the model", evidence=finding.summary,
                                 consequence="the rows come back into the model and its downstream tables",
                                 agent_action="apply_fix",
                                 rule=f"{on} is a defect: the rows count, and the fix of {finding.model} is decided",
                                 acknowledges=[finding.pattern]),
                EscalationOption(label="They are excluded on purpose", evidence=finding.summary,
                                 consequence="the check's numbers stay as they are; the agent stops flagging this",
                                 agent_action="record_rule",
                                 rule=f"{on} is intended business logic",
                                 suppresses=[finding.pattern]),
            ],
            recommendation=0,
            recommendation_reason="the source of truth has these rows, so reports that exclude them disagree with it",
            blocking=f"the fix of {finding.model}",
            continues="detection, reconciliation and investigation of other failures",
            fix_diff=finding.proposed_fix.diff if finding.proposed_fix else "",
            **base,
        ))
    finance = _finance_in(manifest, finding.blast_radius)
    needs_authority = finding.needs_authority
    if finding.proposed_fix and finding.proposed_fix.diff and finance and policy.level(ActionClass.FINANCE) == Autonomy.NEEDS_AUTHORITY:
        needs_authority = needs_authority or (
            f"Apply the fix to {finding.model}? It changes finance-reported tables ({', '.join(finance)})")
        approvals = policy.finance_approvers
    else:
        approvals = 1
    if needs_authority:
        out.append(Escalation(
            id="", kind=EscalationKind.AUTHORITY_GAP, decision=needs_authority,
            options=[
                EscalationOption(label="Approve the proposed fix", evidence=finding.summary,
                                 consequence=f"{finding.model} is changed as in the diff; downstream numbers change",
                                 agent_action="apply_fix",
                                 rule=f"{on}: decided 'approve the proposed fix' (asked: {needs_authority})",
                                 acknowledges=[finding.pattern]),
                EscalationOption(label="Reject: keep the model as it is", consequence="the check keeps failing",
                                 agent_action="none",
                                 rule=f"{on} is expected: decided 'keep {finding.model} as it is' "
                                      f"(asked: {needs_authority})",
                                 suppresses=[finding.pattern]),
            ],
            recommendation=0, recommendation_reason=f"the investigation is {finding.confidence:.0%} confident and the fix is minimal",
            blocking=f"applying the fix to {finding.model}",
            continues="everything read-only; the failing check keeps reporting",
            approvals_required=approvals, fix_diff=finding.proposed_fix.diff if finding.proposed_fix else "",
            **base,
        ))
    return out


def _already_open(esc: Escalation, items: list[Escalation]) -> bool:
    return any(e.state == EscalationState.OPEN and e.kind == esc.kind and e.asset == esc.asset
               and e.finding_pattern == esc.finding_pattern for e in items)


def raise_escalations(store: StateStore, new: list[Escalation]) -> list[Escalation]:
    """Store new escalations, skipping ones already open for the same finding pattern on the same asset."""
    return store.raise_escalations(new, _already_open)


def _uid(manifest: Manifest, name: str) -> str | None:
    try:
        return manifest.find(name).unique_id
    except ProjectError:
        return None


def _same_incident(asked: Escalation, model: str | None, columns: set[str], manifest: Manifest) -> bool:
    """Whether the check's question ``asked`` (about one source change) concerns the incident a finding on
    ``model`` about ``columns`` explains: it is on ``model`` or a node upstream of it, about one of the columns."""
    if not model or not columns or not asked.asset:
        return False
    if not columns & {a.rsplit(".", 1)[-1].lower() for a in asked.applies_to}:
        return False
    uid = _uid(manifest, model)
    return uid is not None and _uid(manifest, asked.asset) in {uid, *manifest.upstream(uid)}


def _standing(e: Escalation) -> bool:
    return e.state in (EscalationState.OPEN, EscalationState.ANSWERED)


def asked_about(finding: Finding, items: list[Escalation], manifest: Manifest) -> list[Escalation]:
    """The questions a check already asked (open or answered) about the incident ``finding`` explains.

    Such a question was raised for one change of the finding's pattern (``schema_drift:column_dropped:<col>``
    for ``schema_drift``), on the finding's model or a node upstream of it, about a column the finding names:
    the drift check's "which column replaces it?" for the dropped column its investigation traces.
    """
    columns = {c.lower() for c in finding.columns}
    return [e for e in items if _standing(e) and (e.finding_pattern or "").startswith(f"{finding.pattern}:")
            and _same_incident(e, finding.model, columns, manifest)]


def asked_by_findings(esc: Escalation, items: list[Escalation], manifest: Manifest) -> list[Escalation]:
    """The reverse of :func:`asked_about`: the questions findings already asked (open or answered) about the
    incident the check's question ``esc`` is about (e.g. an investigation that traced a failed dbt test to the
    dropped column before the drift check saw the drop).

    Such a question was raised for a finding of the base pattern (``schema_drift`` for
    ``schema_drift:column_dropped:<col>``) on ``esc``'s asset or a node downstream of it, about the column.
    """
    pattern, sep, _ = (esc.finding_pattern or "").partition(":")
    if not sep:
        return []

    def columns(e: Escalation) -> set[str]:  # a finding's question applies to ``<model>.<column>``
        prefix = f"{e.asset}.".lower()
        return {a[len(prefix):].lower() for a in e.applies_to if a.lower().startswith(prefix)}

    return [e for e in items if _standing(e) and e.finding_pattern == pattern and e.id != esc.id
            and _same_incident(esc, e.asset, columns(e), manifest)]


def raise_for_finding(store: StateStore, finding: Finding, manifest: Manifest, policy: Policy, *,
                      check: str | None = None) -> tuple[list[Escalation], list[Escalation]]:
    """Store what ``finding`` needs from humans: (raised now, questions already asked about it).

    When a check already asked about the same incident (:func:`asked_about`), that question stands for the
    finding's own: nothing new is raised, so one incident asks humans one question. The store decides it in
    the transaction that would raise, so a check asking at the same moment is not missed.
    """
    raised = store.raise_escalations(escalations_for(finding, manifest, policy, check=check),
                                     lambda e, items: _already_open(e, items) or bool(asked_about(finding, items, manifest)))
    return (raised, []) if raised else ([], asked_about(finding, store.escalations(), manifest))


def raise_superseding(store: StateStore, new: list[Escalation], manifest: Manifest) -> list[Escalation]:
    """Like :func:`raise_decisions`, for a check's questions about one source change (the drift check's "which
    column replaces it?"), when an investigation may have asked about the same incident first
    (:func:`asked_by_findings`).

    Its answered question stands for the incident (the answer is context): nothing is asked. Its open question
    is withdrawn for the check's, which is the sharper one (the options, to the source's owner): the store
    withdraws it in the transaction that raises the check's, naming the check's (``superseded_by``), so one
    question stays open. One somebody already approved in part is not withdrawn (no approval is lost): it
    stands and nothing new is asked.
    """
    def answered_or_approved(esc: Escalation, items: list[Escalation]) -> bool:
        return _answered_or_open(esc, items) or any(
            e.state == EscalationState.ANSWERED or e.approvals for e in asked_by_findings(esc, items, manifest))

    def replaced(esc: Escalation, items: list[Escalation]) -> list[Escalation]:
        return [e for e in asked_by_findings(esc, items, manifest) if e.state == EscalationState.OPEN]

    return store.raise_escalations(new, answered_or_approved, replaced)


def answered_choices(store: StateStore, asset: str | None = None) -> dict[tuple[str | None, str], int]:
    """(asset, finding pattern) -> the option a human chose, for every answered escalation (the latest wins)."""
    out: dict[tuple[str | None, str], int] = {}
    for e in sorted(store.escalations(), key=lambda e: e.created_at):
        if e.state == EscalationState.ANSWERED and e.answer is not None and e.finding_pattern:
            if asset is None or e.asset == asset:
                out[(e.asset, e.finding_pattern)] = e.answer.choice
    return out


def _answered_or_open(esc: Escalation, items: list[Escalation]) -> bool:
    return _already_open(esc, items) or any(
        e.state == EscalationState.ANSWERED and e.answer is not None and e.finding_pattern
        and e.asset == esc.asset and e.finding_pattern == (esc.finding_pattern or "") for e in items)


def raise_decisions(store: StateStore, new: list[Escalation]) -> list[Escalation]:
    """Like :func:`raise_escalations` for standing decisions (onboarding, PII, metrics, entities): a decision
    a human already answered for the same asset is not asked again (checked in the same transaction)."""
    return store.raise_escalations(new, _answered_or_open)


def check_node(manifest: Manifest, esc: Escalation) -> Node | None:
    """The node the failed check of ``esc`` is on (it may differ from the culprit the escalation concerns):
    the model declaring the reconciliation spec, else the node a dbt test named ``esc.check`` tests."""
    for node in manifest.nodes.values():
        for spec in (node.agent_de_meta.get("reconcile") or []):
            if isinstance(spec, dict) and spec.get("name") == esc.check:
                return node
    for test in manifest.raw_tests():
        if test.get("name") == esc.check:
            deps = (test.get("depends_on") or {}).get("nodes") or []
            if deps and deps[0] in manifest.nodes:
                return manifest.nodes[deps[0]]
    return None
