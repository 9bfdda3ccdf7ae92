"""Escalations, the context store and the autonomy policy (engine level)."""

from __future__ import annotations

import threading
from datetime import timedelta
from pathlib import Path

import pytest

from dagster_agent_de.adapters.audit import AuditLog, read_audit
from dagster_agent_de.adapters.state import SqlStateStore
from dagster_agent_de.core.models import (
    Escalation,
    EscalationKind,
    EscalationOption,
    EscalationState,
    InvestigationFinding,
    ProposedFix,
    utcnow,
)
from dagster_agent_de.engines.escalate.answering import EscalationError, answer_escalation
from dagster_agent_de.engines.escalate.context_store import export_rules, load_rules
from dagster_agent_de.engines.escalate.policy import (
    ActionClass,
    Policy,
    PolicyRefusedError,
    authorize,
    is_paused,
    set_paused,
)
from dagster_agent_de.engines.escalate.raising import (
    escalations_for,
    raise_escalations,
    raise_for_finding,
    raise_superseding,
)
from dagster_agent_de.manifest import Manifest
from dagster_agent_de_tests.helpers import make_manifest


def esc(**kw) -> Escalation:
    base = dict(id="", kind=EscalationKind.CONTEXT_GAP, decision="Does platinum mean enterprise tier?",
                asset="dim_customers", applies_to=["dim_customers.tier"], options=[
                    EscalationOption(label="yes", agent_action="record_rule", rule="'platinum' tier maps to enterprise"),
                    EscalationOption(label="no", agent_action="none")])
    base.update(kw)
    return Escalation(**base)


@pytest.fixture
def store(state_store: SqlStateStore) -> SqlStateStore:
    return state_store


def test_answer_records_rule_and_closes(store: SqlStateStore, tmp_path: Path) -> None:
    (created,) = raise_escalations(store, [esc()])
    assert created.id == "ESC-1"
    result = answer_escalation(store, "ESC-1", 0, by="ana@shop.example", note="", policy=Policy())
    assert result.closed and result.escalation.state == EscalationState.ANSWERED
    rules = load_rules(tmp_path, store)
    (rule,) = rules.rules
    assert (rule.id, rule.source, rule.decided_by, rule.applies_to) == ("R-ESC-1", "ESC-1", "ana@shop.example", ["dim_customers.tier"])
    assert "platinum" in rule.rule
    assert not (tmp_path / "agent_de_context.yml").exists()  # the store holds it; export writes it for review
    path, count = export_rules(tmp_path, store)
    assert count == 1 and "ESC-1" in path.read_text()
    assert [r.id for r in load_rules(tmp_path, store).rules] == ["R-ESC-1"]  # exported and stored agree: no conflict
    assert store.escalations()[0].state == EscalationState.ANSWERED and len(store.escalations()) == 1


def test_the_same_answer_again_is_a_retry_not_an_error(store: SqlStateStore) -> None:
    raise_escalations(store, [esc()])
    first = answer_escalation(store, "ESC-1", 0, by="ana@shop.example", note="why", policy=Policy())
    again = answer_escalation(store, "ESC-1", 0, by="Ana@Shop.example ", note="why", policy=Policy())
    assert again.retried and again.closed and again.rule == first.rule and "already recorded" in again.describe()
    assert [r.id for r in store.rules()] == ["R-ESC-1"] and len(store.escalations()[0].approvals) == 1


@pytest.mark.parametrize("esc_id, choice, match", [
    ("ESC-9", 0, "unknown escalation ESC-9"),
    ("ESC-1", 5, "choice 5 is out of range for ESC-1: choose 0..1"),
])
def test_bad_answers(store: SqlStateStore, tmp_path: Path, esc_id: str, choice: int, match: str) -> None:
    raise_escalations(store, [esc()])
    with pytest.raises(EscalationError, match=match):
        answer_escalation(store, esc_id, choice, by="a", policy=Policy())


def test_already_answered(store: SqlStateStore, tmp_path: Path) -> None:
    raise_escalations(store, [esc()])
    answer_escalation(store, "ESC-1", 1, by="a", policy=Policy())
    with pytest.raises(EscalationError, match=r"ESC-1 is already answered by a \(choice 1\)"):
        answer_escalation(store, "ESC-1", 1, by="b", policy=Policy())


def test_four_eyes_needs_two_distinct_approvers(store: SqlStateStore, tmp_path: Path) -> None:
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
    audit = AuditLog(store)
    first = answer_escalation(store, "ESC-1", 0, by="cfo", policy=Policy(), audit=audit, manifest=manifest)
    assert not first.closed and first.waiting_for == 1 and "amount * rate" not in model.read_text()
    same_person = answer_escalation(store, "ESC-1", 0, by=" CFO", policy=Policy(), manifest=manifest)
    assert same_person.retried and not same_person.closed and same_person.waiting_for == 1
    with pytest.raises(EscalationError, match="cfo has already answered ESC-1 .choice 0.; a second approval must come"):
        answer_escalation(store, "ESC-1", 1, by="cfo", policy=Policy(), manifest=manifest)
    second = answer_escalation(store, "ESC-1", 0, by="controller", policy=Policy(), audit=audit,
                               manifest=manifest)
    assert second.closed and second.applied_files == ["models/fct_revenue.sql"]
    assert "amount * rate" in model.read_text()
    assert [a.by for a in store.escalations()[0].approvals] == ["cfo", "controller"]


def test_policy_refusal_is_audited_with_the_policy_line(store: SqlStateStore) -> None:
    audit = AuditLog(store)
    with pytest.raises(PolicyRefusedError, match=r"needs sign-off by 2 distinct approver\(s\), has 1.*actions.finance = needs_authority"):
        authorize(Policy(), ActionClass.APPLY_CODE_FIX, approvers=["a"], finance=True, audit=audit, what="apply fix")
    with pytest.raises(PolicyRefusedError, match="needs a human present"):
        authorize(Policy(), ActionClass.APPLY_CODE_FIX, audit=audit, what="apply fix unattended")
    authorize(Policy(), ActionClass.READ_ONLY_QUERY, audit=audit)
    outcomes = [(e.kind, e.outcome) for e in read_audit(store)]
    assert outcomes == [("action", "refused"), ("action", "refused"), ("action", "ok")]
    assert "actions.finance" in (read_audit(store)[0].error or "")


def test_a_question_past_its_due_date_stays_open_overdue_and_can_be_answered(store: SqlStateStore) -> None:
    raise_escalations(store, [esc(due_at=utcnow() - timedelta(hours=1))])
    (overdue,) = store.escalations()
    assert overdue.state == EscalationState.OPEN and overdue.overdue() and overdue.status() == "overdue"
    assert raise_escalations(store, [esc(due_at=utcnow() + timedelta(days=3))]) == []  # the same question: not asked again
    assert answer_escalation(store, "ESC-1", 0, by="a", policy=Policy()).closed
    assert store.escalations()[0].status() == "answered"


def _contacts() -> Manifest:
    data = make_manifest({"stg_contacts": "stg"}, sources={("hubspot", "contacts"): "hubspot.contacts"}).data
    data["nodes"]["model.t.stg_contacts"]["depends_on"] = {"nodes": ["source.t.hubspot.contacts"]}
    return Manifest(data)


def test_past_their_due_date_the_drift_and_the_investigation_questions_are_not_asked_again(store: SqlStateStore) -> None:
    """Three days on, the drift check (or an investigation) still seeing the same incident finds its question open,
    overdue: one question, never a duplicate."""
    manifest = _contacts()
    drift = esc(decision="hubspot.contacts.lifecycle_stage disappeared. Which column replaces it?", asset="hubspot.contacts",
                applies_to=["hubspot.contacts.lifecycle_stage"], check="schema_drift",
                finding_pattern="schema_drift:column_dropped:lifecycle_stage", due_at=utcnow() + timedelta(days=3))
    (asked,) = raise_superseding(store, [drift], manifest)
    failure = InvestigationFinding(pattern="null_semantics", model="stg_contacts", columns=["email"], confidence=0.9,
                                   summary="s", needs_context="Rows with email NULL: do they count?")
    (question,) = raise_for_finding(store, failure, manifest, Policy(), check="not_null_email")[0]
    later = utcnow() + timedelta(days=4)
    listed = store.escalations(later)
    assert [(e.id, e.state, e.overdue(later), e.status(later)) for e in listed] == [
        (asked.id, EscalationState.OPEN, True, "overdue"), (question.id, EscalationState.OPEN, True, "overdue")]
    assert raise_superseding(store, [drift.model_copy(update={"due_at": later + timedelta(days=3)})], manifest) == []
    assert raise_for_finding(store, failure, manifest, Policy(), check="not_null_email")[0] == []
    assert [e.id for e in store.escalations()] == [asked.id, question.id]


def test_the_note_is_kept_beside_the_rule_the_option_records(store: SqlStateStore, tmp_path: Path) -> None:
    raise_escalations(store, [esc()])
    result = answer_escalation(store, "ESC-1", 0, by="ana@shop.example", note="  sales confirmed  in the QBR ",
                               policy=Policy())
    assert result.rule is not None
    assert (result.rule.rule, result.rule.note) == ("'platinum' tier maps to enterprise", "sales confirmed in the QBR")
    (stored,) = load_rules(tmp_path, store).rules
    assert stored == result.rule
    path, _ = export_rules(tmp_path, store)
    assert "note: sales confirmed in the QBR" in path.read_text() and load_rules(tmp_path, store).conflicts == []


@pytest.mark.parametrize("choice, decided", [(0, "approve the proposed fix"), (1, "keep stg as it is")])
def test_an_approve_or_reject_answer_is_context_the_next_investigation_reads(
        store: SqlStateStore, tmp_path: Path, choice: int, decided: str) -> None:
    """An investigation asks whether to fix a duplicated key at its loader (an authority gap). Approved or rejected,
    the answer is a rule: the next investigation of the same failure cites it and asks nothing again."""
    from dagster_agent_de.adapters.warehouse import DuckDBWarehouse
    from dagster_agent_de.engines.investigate import Failure, investigate
    from dagster_agent_de_tests.engines.test_detectors import project

    dup = "create table raw.charges as select (range % 8) as id, 1.0 as amount, now() as _loaded_at from range(10)"
    manifest, db = project(tmp_path, {"stg": "select id as charge_id, amount from {{ source('raw', 'charges') }}"}, [dup],
                           sources={"charges": {"loaded_at_field": "_loaded_at"}}, tests={"stg": ["charge_id"]})
    failure = Failure(asset="stg", check="unique_stg_charge_id")

    def investigate_and_ask() -> tuple[list[Escalation], list[Escalation]]:
        report = investigate(failure, manifest, DuckDBWarehouse(db, AuditLog(None)), rules=store.rules())
        return raise_for_finding(store, report.findings[0], manifest, Policy(), check=failure.check)

    (asked,) = investigate_and_ask()[0]
    assert asked.kind == EscalationKind.AUTHORITY_GAP and asked.finding_pattern == "duplicate_key"
    result = answer_escalation(store, asked.id, choice, by="ops@shop.example", note="the loader is being replaced",
                               policy=Policy())
    assert result.closed and result.rule is not None
    # approving decides the fix (the cause stays named until it is in effect); rejecting explains the failure away
    assert (result.rule.id, result.rule.source, result.rule.note) == (f"R-{asked.id}", asked.id, "the loader is being replaced")
    assert (result.rule.acknowledges, result.rule.suppresses) == ((["duplicate_key"], None) if choice == 0 else
                                                                  (None, ["duplicate_key"]))
    assert decided in result.rule.rule and result.rule.applies_to == asked.applies_to
    assert investigate_and_ask() == ([], [])  # the rule is cited now: nothing is asked again
    assert [e.id for e in store.escalations()] == [asked.id]


def test_an_approved_fix_not_yet_in_effect_still_names_the_cause(store: SqlStateStore, tmp_path: Path) -> None:
    """Approve the proposed fix (the loader's owner is asked to stop the duplicates): the unique test fails again
    the next day, the duplicates are still there; the investigation must still name them, asking nothing new."""
    from dagster_agent_de.adapters.warehouse import DuckDBWarehouse
    from dagster_agent_de.engines.investigate import Failure, investigate
    from dagster_agent_de_tests.engines.test_detectors import project

    dup = "create table raw.charges as select (range % 8) as id, 1.0 as amount, now() as _loaded_at from range(10)"
    manifest, db = project(tmp_path, {"stg": "select id as charge_id, amount from {{ source('raw', 'charges') }}"}, [dup],
                           sources={"charges": {"loaded_at_field": "_loaded_at"}}, tests={"stg": ["charge_id"]})
    failure = Failure(asset="stg", check="unique_stg_charge_id")
    report = investigate(failure, manifest, DuckDBWarehouse(db, AuditLog(None)), rules=store.rules())
    (asked,), _ = raise_for_finding(store, report.findings[0], manifest, Policy(), check=failure.check)
    assert answer_escalation(store, asked.id, 0, by="ops@shop.example", policy=Policy()).closed
    again = investigate(failure, manifest, DuckDBWarehouse(db, AuditLog(None)), rules=store.rules())
    assert again.findings[0].pattern == "duplicate_key", again.findings[0].summary
    assert again.findings[0].fix_decided_in == [f"R-{asked.id}"] and "its fix is decided" in again.findings[0].summary
    assert raise_for_finding(store, again.findings[0], manifest, Policy(), check=failure.check)[0] == []  # asks nothing


def test_an_answer_to_a_question_stored_before_options_named_their_rule_records_the_decision(
        store: SqlStateStore) -> None:
    """Questions raised by an older version carry no rule on approve/reject: the decision itself is recorded."""
    raise_escalations(store, [esc(kind=EscalationKind.AUTHORITY_GAP, finding_id="f-1", finding_pattern="join_row_drop",
                                  decision="Apply the fix to dim_customers?", options=[
                                      EscalationOption(label="Approve the proposed fix", agent_action="apply_fix"),
                                      EscalationOption(label="Reject: keep the model as it is")])])
    rule = answer_escalation(store, "ESC-1", 1, by="a", policy=Policy()).rule
    assert rule is not None and rule.suppresses == ["join_row_drop"]
    assert rule.rule == "Apply the fix to dim_customers? Decided in ESC-1: Reject: keep the model as it is."
    # a standing decision that is not about a finding (onboarding, PII, ...) still records only what its option says
    raise_escalations(store, [esc(asset="other", options=[EscalationOption(label="keep"), EscalationOption(label="drop")])])
    assert answer_escalation(store, "ESC-2", 0, by="a", policy=Policy()).rule is None


GOOD = """rules:
  - id: R-1
    rule: refunds are negative charges
    applies_to: [stg_stripe_charges.amount]
  - id: R-2
    rule: test orders are excluded
"""


def test_malformed_context_file_never_means_no_rules(tmp_path: Path, store: SqlStateStore) -> None:
    path = tmp_path / "agent_de_context.yml"
    path.write_text(GOOD)
    raise_escalations(store, [esc()])
    answer_escalation(store, "ESC-1", 0, by="ana", policy=Policy())
    good = load_rules(tmp_path, store)
    assert [r.id for r in good.rules] == ["R-1", "R-2", "R-ESC-1"] and good.error is None and good.notes() == []
    # one bad rule: the others still apply, and the file and line are named
    path.write_text(GOOD.replace("    rule: test orders are excluded\n", "    rule: [not, text]\n"))
    one_bad = load_rules(tmp_path, store)
    assert [r.id for r in one_bad.rules] == ["R-1", "R-ESC-1"]
    assert f"{path}: line 5 rule #2: rule:" in (one_bad.error or "")
    # unreadable YAML, read by a fresh process (a new store object on the same database): the last good
    # committed rules and every stored answer still apply
    path.write_text(GOOD + "  - id: R-3\n    rule: [unclosed\n")
    fresh = SqlStateStore(store.url)
    bad = load_rules(tmp_path, fresh)
    assert [r.id for r in bad.rules] == ["R-1", "R-2", "R-ESC-1"]
    assert f"{path}: line 9 is not valid YAML" in (bad.error or "") and "line 9" in bad.notes()[0]
    for content in ("5", "- a list\n", "rules: 5\n"):
        path.write_text(content)
        odd = load_rules(tmp_path, fresh)
        assert "expected a mapping with a `rules:` list" in (odd.error or "")
        assert [r.id for r in odd.rules] == ["R-1", "R-2", "R-ESC-1"]
    path.write_text("")
    assert [r.id for r in load_rules(tmp_path, fresh).rules] == ["R-ESC-1"]  # an empty file: no committed rules


def test_concurrent_answers_do_not_lose_each_other(tmp_path: Path, store: SqlStateStore) -> None:
    raise_escalations(store, [esc(), esc(decision="second?", asset="fct_orders", applies_to=["fct_orders.x"])])
    errors = []

    def answer(i: int) -> None:
        try:
            answer_escalation(store, f"ESC-{i}", 0, by=f"user{i}", policy=Policy())
        except Exception as e:  # pragma: no cover - the assertion below reports it
            errors.append(e)

    threads = [threading.Thread(target=answer, args=(i,)) for i in (1, 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sorted(r.id for r in load_rules(tmp_path, store).rules) == ["R-ESC-1", "R-ESC-2"]  # neither lost


def test_a_committed_rule_and_a_stored_answer_that_disagree_become_an_escalation(tmp_path: Path,
                                                                               store: SqlStateStore) -> None:
    raise_escalations(store, [esc(options=[
        EscalationOption(label="yes", agent_action="record_rule", rule="platinum is enterprise"),
        EscalationOption(label="no")])])
    answer_escalation(store, "ESC-1", 0, by="ana", note="sales said so", policy=Policy())
    export_rules(tmp_path, store)
    path = tmp_path / "agent_de_context.yml"
    path.write_text(path.read_text().replace("platinum is enterprise", "platinum is a legacy tier"))  # edited in review
    rules = load_rules(tmp_path, store)
    assert rules.conflicts == ["R-ESC-1"] and rules.escalations == ["ESC-2"]
    assert [r.rule for r in rules.rules] == ["platinum is enterprise"]  # the stored answer applies meanwhile
    assert "disagree for R-ESC-1" in rules.notes()[0]
    assert load_rules(tmp_path, store).escalations == ["ESC-2"] and len(store.escalations()) == 2  # asked once
    conflict = store.escalations()[1]
    assert "platinum is a legacy tier" in conflict.decision and "platinum is enterprise" in conflict.decision
    answer_escalation(store, "ESC-2", 0, by="cfo", policy=Policy())  # the committed rule holds
    after = load_rules(tmp_path, store)
    assert after.conflicts == [] and [r.rule for r in after.rules] == ["platinum is a legacy tier"]


def test_findings_raise_context_and_finance_authority_gaps() -> None:
    manifest = make_manifest({"fct_orders": "x", "fct_revenue": "y"},
                             meta={"fct_orders": {"owner": "analytics-team"}, "fct_revenue": {"agent_de": {"finance": True}}})
    finding = InvestigationFinding(pattern="null_semantics", model="fct_orders", columns=["status"], confidence=0.9,
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
    nobody = InvestigationFinding(pattern="null_semantics", model="ghost", confidence=0.9, summary="s", needs_context="q?")
    assert escalations_for(nobody, manifest, Policy())[0].owner == "data-team"
    # duplicates of an open escalation are not raised twice



def test_a_question_a_check_asked_about_the_incident_stands_for_the_findings_own(store: SqlStateStore) -> None:
    """The drift check asked which column replaces ``lifecycle_stage``: a finding tracing a failure to that dropped
    column asks nothing new; a finding about another column, pattern or lineage still asks its own."""
    data = make_manifest({"stg_contacts": "stg", "other": "o"}, sources={("hubspot", "contacts"): "hubspot.contacts"}).data
    data["nodes"]["model.t.stg_contacts"]["depends_on"] = {"nodes": ["source.t.hubspot.contacts"]}
    manifest = Manifest(data)
    (drift,) = raise_escalations(store, [esc(
        decision="hubspot.contacts.lifecycle_stage disappeared; stg_contacts read it. Which column replaces it?",
        asset="hubspot.contacts", applies_to=["hubspot.contacts.lifecycle_stage"], check="schema_drift",
        finding_pattern="schema_drift:column_dropped:lifecycle_stage")])

    def finding(**kw) -> InvestigationFinding:
        base = dict(pattern="schema_drift", model="stg_contacts", columns=["lifecycle_stage"], confidence=0.9,
                    summary="lifecycle_stage was dropped", needs_authority="Is the change intended and permanent?")
        return InvestigationFinding(**{**base, **kw})

    assert raise_for_finding(store, finding(), manifest, Policy(), check="schema_drift") == ([], [drift])
    assert raise_for_finding(store, finding(columns=["LIFECYCLE_STAGE"]), manifest, Policy()) == ([], [drift])
    for other in (finding(columns=["email"]), finding(model="other"), finding(pattern="null_semantics")):
        raised, attached = raise_for_finding(store, other, manifest, Policy())
        assert [e.kind for e in raised] == [EscalationKind.AUTHORITY_GAP] and attached == [], other
    answer_escalation(store, drift.id, 1, by="ana@shop.example", policy=Policy())  # answered: still not asked again
    (answered,) = raise_for_finding(store, finding(), manifest, Policy())[1]
    assert answered.id == drift.id and answered.state == EscalationState.ANSWERED


def test_the_drift_checks_question_replaces_the_one_an_investigation_asked_first(store: SqlStateStore) -> None:
    """The investigation traced a failure of ``stg_contacts`` to the dropped ``lifecycle_stage`` and asked first: the
    drift check's question withdraws it (both name each other); one about another column stays; one somebody
    approved in part stands (no approval is lost) and the check asks nothing."""
    data = make_manifest({"stg_contacts": "stg", "other": "o"}, sources={("hubspot", "contacts"): "hubspot.contacts"}).data
    data["nodes"]["model.t.stg_contacts"]["depends_on"] = {"nodes": ["source.t.hubspot.contacts"]}
    manifest = Manifest(data)

    def finding(column: str, **kw) -> InvestigationFinding:
        return InvestigationFinding(**{**dict(pattern="schema_drift", model="stg_contacts", columns=[column], confidence=0.9,
                                              summary=f"{column} was dropped", needs_authority="Intended and permanent?"), **kw})

    def drift(column: str) -> Escalation:
        return esc(decision=f"hubspot.contacts.{column} disappeared. Which column replaces it?", asset="hubspot.contacts",
                   applies_to=[f"hubspot.contacts.{column}"], check="schema_drift",
                   finding_pattern=f"schema_drift:column_dropped:{column}")

    (stage,) = raise_for_finding(store, finding("lifecycle_stage"), manifest, Policy())[0]
    (unrelated,) = raise_for_finding(store, finding("lifecycle_stage", model="other"), manifest, Policy())[0]
    (email,) = raise_superseding(store, [drift("email")], manifest)  # another column: replaces nothing
    (asked,) = raise_superseding(store, [drift("lifecycle_stage")], manifest)
    assert email.supersedes == [] and asked.supersedes == [stage.id]
    by_id = {e.id: e for e in store.escalations()}
    assert (by_id[stage.id].state, by_id[stage.id].superseded_by) == (EscalationState.WITHDRAWN, asked.id)
    assert by_id[email.id].state == by_id[unrelated.id].state == by_id[asked.id].state == EscalationState.OPEN
    assert raise_superseding(store, [drift("lifecycle_stage")], manifest) == []  # asked once
    with pytest.raises(EscalationError, match=f"{asked.id} asks about its incident now"):
        answer_escalation(store, stage.id, 1, by="ana@shop.example", policy=Policy())
    # a four-eyes question half approved stands for the incident: nothing withdrawn, nothing asked
    (phone,) = raise_escalations(store, [esc(kind=EscalationKind.AUTHORITY_GAP, asset="stg_contacts",
                                             applies_to=["stg_contacts.phone"], finding_pattern="schema_drift",
                                             approvals_required=2, options=[
                                                 EscalationOption(label="approve", agent_action="apply_fix"),
                                                 EscalationOption(label="reject")])])
    answer_escalation(store, phone.id, 0, by="ana@shop.example", policy=Policy())
    assert raise_superseding(store, [drift("phone")], manifest) == []
    assert {e.id: e.state for e in store.escalations()}[phone.id] == EscalationState.OPEN


def test_pause_flag(store: SqlStateStore) -> None:
    assert not is_paused(store)
    set_paused(store, True, "ops")
    assert is_paused(store) and is_paused(SqlStateStore(store.url))  # every process sees it
    assert (store.get_flag("paused") or "").startswith("paused by ops")
    set_paused(store, False)
    assert not is_paused(store)
