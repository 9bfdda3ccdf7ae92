"""Escalations, the context store and the autonomy policy (engine level)."""

from __future__ import annotations

import threading
from datetime import timedelta
from pathlib import Path

import pytest

from dagster_agent_de.adapters.audit import AuditLog, read_audit
from dagster_agent_de.core.models import (
    Escalation,
    EscalationKind,
    EscalationOption,
    EscalationState,
    Finding,
    ProposedFix,
    utcnow,
)
from dagster_agent_de.engines.escalate.answering import EscalationError, answer_escalation
from dagster_agent_de.engines.escalate.context_store import (
    ContextConflictError,
    ContextRule,
    add_rule,
    load_rules,
)
from dagster_agent_de.engines.escalate.policy import (
    ActionClass,
    Policy,
    PolicyRefusedError,
    authorize,
    is_paused,
    set_paused,
)
from dagster_agent_de.engines.escalate.raising import escalations_for, raise_escalations
from dagster_agent_de.engines.escalate.store import EscalationStore
from dagster_agent_de_tests.helpers import make_manifest


def esc(**kw) -> Escalation:
    base = dict(id="", kind=EscalationKind.CONTEXT_GAP, decision="Does platinum mean enterprise tier?",
                asset="dim_customers", applies_to=["dim_customers.tier"], options=[
                    EscalationOption(label="yes", agent_action="record_rule", rule="'platinum' tier maps to enterprise"),
                    EscalationOption(label="no", agent_action="none")])
    base.update(kw)
    return Escalation(**base)


@pytest.fixture
def store(tmp_path: Path) -> EscalationStore:
    return EscalationStore(tmp_path / "esc")


def test_answer_records_rule_and_closes(store: EscalationStore, tmp_path: Path) -> None:
    (created,) = raise_escalations(store, [esc()])
    assert created.id == "ESC-1"
    result = answer_escalation(store, "ESC-1", 0, by="ana@shop.example", note="", project_dir=tmp_path, policy=Policy())
    assert result.closed and result.escalation.state == EscalationState.ANSWERED
    rules = load_rules(tmp_path)
    (rule,) = rules.rules
    assert (rule.id, rule.source, rule.decided_by, rule.applies_to) == ("R-ESC-1", "ESC-1", "ana@shop.example", ["dim_customers.tier"])
    assert "platinum" in rule.rule
    assert "ESC-1" in (tmp_path / "agent_de_context.yml").read_text()


@pytest.mark.parametrize("esc_id, choice, match", [
    ("ESC-9", 0, "unknown escalation ESC-9"),
    ("ESC-1", 5, "choice 5 is out of range for ESC-1: choose 0..1"),
])
def test_bad_answers(store: EscalationStore, tmp_path: Path, esc_id: str, choice: int, match: str) -> None:
    raise_escalations(store, [esc()])
    with pytest.raises(EscalationError, match=match):
        answer_escalation(store, esc_id, choice, by="a", project_dir=tmp_path, policy=Policy())


def test_already_answered(store: EscalationStore, tmp_path: Path) -> None:
    raise_escalations(store, [esc()])
    answer_escalation(store, "ESC-1", 1, by="a", project_dir=tmp_path, policy=Policy())
    with pytest.raises(EscalationError, match="already answered"):
        answer_escalation(store, "ESC-1", 1, by="b", project_dir=tmp_path, policy=Policy())


def test_four_eyes_needs_two_distinct_approvers(store: EscalationStore, tmp_path: Path) -> None:
    model = tmp_path / "models" / "fct_revenue.sql"
    model.parent.mkdir(parents=True)
    model.write_text("select sum(amount) as revenue_usd\n")
    diff = ("--- a/models/fct_revenue.sql\n+++ b/models/fct_revenue.sql\n@@ -1 +1 @@\n"
            "-select sum(amount) as revenue_usd\n+select sum(amount * rate) as revenue_usd\n")
    manifest = make_manifest({"fct_revenue": "x"})
    manifest.project_dir = tmp_path
    raise_escalations(store, [esc(kind=EscalationKind.AUTHORITY_GAP, approvals_required=2, fix_diff=diff,
                                  options=[EscalationOption(label="approve", agent_action="apply_fix"),
                                           EscalationOption(label="reject")])])
    audit = AuditLog(tmp_path / "audit.jsonl")
    first = answer_escalation(store, "ESC-1", 0, by="cfo", project_dir=tmp_path, policy=Policy(), audit=audit, manifest=manifest)
    assert not first.closed and first.waiting_for == 1 and "amount * rate" not in model.read_text()
    with pytest.raises(EscalationError, match="cfo has already answered"):
        answer_escalation(store, "ESC-1", 0, by="cfo", project_dir=tmp_path, policy=Policy(), manifest=manifest)
    second = answer_escalation(store, "ESC-1", 0, by="controller", project_dir=tmp_path, policy=Policy(), audit=audit,
                               manifest=manifest)
    assert second.closed and second.applied_files == ["models/fct_revenue.sql"]
    assert "amount * rate" in model.read_text()


def test_policy_refusal_is_audited_with_the_policy_line(tmp_path: Path) -> None:
    audit = AuditLog(tmp_path / "audit.jsonl")
    with pytest.raises(PolicyRefusedError, match=r"needs sign-off by 2 distinct approver\(s\), has 1.*actions.finance = needs_authority"):
        authorize(Policy(), ActionClass.APPLY_CODE_FIX, approvers=["a"], finance=True, audit=audit, what="apply fix")
    with pytest.raises(PolicyRefusedError, match="needs a human present"):
        authorize(Policy(), ActionClass.APPLY_CODE_FIX, audit=audit, what="apply fix unattended")
    authorize(Policy(), ActionClass.READ_ONLY_QUERY, audit=audit)
    outcomes = [(e.kind, e.outcome) for e in read_audit(tmp_path / "audit.jsonl")]
    assert outcomes == [("action", "refused"), ("action", "refused"), ("action", "ok")]
    assert "actions.finance" in (read_audit(tmp_path / "audit.jsonl")[0].error or "")


def test_expiry(store: EscalationStore) -> None:
    raise_escalations(store, [esc(due_at=utcnow() - timedelta(hours=1))])
    assert store.open() == [] and store.all()[0].state == EscalationState.EXPIRED


def test_malformed_context_file_keeps_last_good_rules(tmp_path: Path) -> None:
    add_rule(tmp_path, ContextRule(id="R-1", rule="refunds are negative charges", applies_to=["stg_stripe_charges.amount"]))
    good = load_rules(tmp_path)
    assert [r.id for r in good.rules] == ["R-1"] and good.error is None
    path = tmp_path / "agent_de_context.yml"
    path.write_text(path.read_text() + "  - id: R-2\n    rule: [unclosed\n")
    bad = load_rules(tmp_path)
    assert bad.error and "line" in bad.error and [r.id for r in bad.rules] == ["R-1"]


def test_concurrent_answers_do_not_lose_each_other(tmp_path: Path) -> None:
    store = EscalationStore(tmp_path / "esc")
    raise_escalations(store, [esc(), esc(decision="second?", asset="fct_orders", applies_to=["fct_orders.x"])])
    errors = []

    def answer(i: int) -> None:
        try:
            answer_escalation(store, f"ESC-{i}", 0, by=f"user{i}", project_dir=tmp_path, policy=Policy())
        except Exception as e:  # pragma: no cover - the assertion below reports it
            errors.append(e)

    threads = [threading.Thread(target=answer, args=(i,)) for i in (1, 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sorted(r.id for r in load_rules(tmp_path).rules) == ["R-ESC-1", "R-ESC-2"]  # neither lost


def test_conflict_detection_on_stale_read(tmp_path: Path) -> None:
    add_rule(tmp_path, ContextRule(id="R-1", rule="a"))
    digest = load_rules(tmp_path).digest
    add_rule(tmp_path, ContextRule(id="R-2", rule="b"))  # someone else wrote meanwhile
    with pytest.raises(ContextConflictError, match="changed since it was read"):
        add_rule(tmp_path, ContextRule(id="R-3", rule="c"), expected_digest=digest)


def test_findings_raise_context_and_finance_authority_gaps() -> None:
    manifest = make_manifest({"fct_orders": "x", "fct_revenue": "y"},
                             meta={"fct_orders": {"owner": "analytics-team"}, "fct_revenue": {"agent_de": {"finance": True}}})
    finding = Finding(pattern="null_semantics", model="fct_orders", columns=["status"], confidence=0.9,
                      summary="NULL statuses dropped", needs_context="Orders with NULL status: count them?",
                      blast_radius=["fct_orders", "fct_revenue"],
                      proposed_fix=ProposedFix(description="is distinct from", diff="--- a/x\n+++ b/x\n"))
    escs = escalations_for(finding, manifest, Policy())
    kinds = {e.kind: e for e in escs}
    assert set(kinds) == {EscalationKind.CONTEXT_GAP, EscalationKind.AUTHORITY_GAP}
    ctx = kinds[EscalationKind.CONTEXT_GAP]
    assert ctx.owner == "analytics-team" and ctx.recommendation == 0 and len(ctx.options) == 2
    assert ctx.options[1].agent_action == "record_rule" and ctx.blocking and ctx.continues
    assert kinds[EscalationKind.AUTHORITY_GAP].approvals_required == 2
    # an owner that does not exist anywhere falls back to the default
    nobody = Finding(pattern="null_semantics", model="ghost", confidence=0.9, summary="s", needs_context="q?")
    assert escalations_for(nobody, manifest, Policy())[0].owner == "data-team"
    # duplicates of an open escalation are not raised twice


def test_pause_flag(tmp_path: Path) -> None:
    assert not is_paused(tmp_path)
    set_paused(tmp_path, True)
    assert is_paused(tmp_path)
    set_paused(tmp_path, False)
    assert not is_paused(tmp_path)
