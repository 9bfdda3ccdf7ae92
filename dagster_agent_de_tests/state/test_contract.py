"""The state store's contract, on SQLite and on PostgreSQL: what every engine relies on."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import insert, select

from dagster_agent_de.adapters.state import SqlStateStore
from dagster_agent_de.adapters.state import schema as t
from dagster_agent_de.core.context import ContextRule
from dagster_agent_de.core.models import (
    Approval,
    AuditEvent,
    Escalation,
    EscalationKind,
    EscalationOption,
    EscalationState,
    InvestigationFinding,
)
from dagster_agent_de.core.state import (
    AnswerDecision,
    EscalationError,
    StateConflictError,
    StateCorruptError,
    StateStore,
)
from dagster_agent_de_tests.state.conftest import Backend

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


def event(i: int, run_id: str | None = "run-1", ts: datetime | None = None) -> AuditEvent:
    return AuditEvent(actor="test", run_id=run_id, rationale=f"r{i}", statement=f"select {i}", ts=ts or datetime.now(timezone.utc))


def esc(asset: str = "fct_orders", pattern: str = "null_semantics", **kw: object) -> Escalation:
    base: dict = dict(id="", kind=EscalationKind.CONTEXT_GAP, decision="count them?", asset=asset,
                      finding_pattern=pattern, applies_to=[f"{asset}.status"],
                      options=[EscalationOption(label="yes", agent_action="record_rule", rule="drafts"),
                               EscalationOption(label="no")])
    return Escalation(**(base | kw))


def close_with_rule(e: Escalation) -> AnswerDecision:
    last = e.approvals[-1]
    return AnswerDecision(close=True, approvers=[last.by],
                          rule=ContextRule(id=f"R-{e.id}", rule="drafts", source=e.id, decided_by=last.by))


def test_it_is_a_state_store_and_migrations_are_versioned(store: SqlStateStore, backend: Backend) -> None:
    assert isinstance(store, StateStore)
    assert store.version() == t.MIGRATIONS[-1][0]
    again = backend.open()  # a second process starting: nothing to apply, nothing applied twice
    assert again.migrate() == store.version()
    with store.engine.connect() as conn:
        assert conn.execute(select(t.schema_version.c.version)).scalars().all() == [m[0] for m in t.MIGRATIONS]


def test_audit_is_append_only_with_monotonic_ids(store: SqlStateStore) -> None:
    ids = [store.append_audit(event(i, run_id="a" if i % 2 else "b")) for i in range(6)]
    assert ids == sorted(ids) and len(set(ids)) == 6
    assert [e.rationale for e in store.tail_audit(limit=3)] == ["r3", "r4", "r5"]  # the latest, oldest first
    assert [e.rationale for e in store.tail_audit(run_id="a", limit=None)] == ["r1", "r3", "r5"]
    assert store.tail_audit(run_id="nope") == []


def test_retention_never_deletes_what_an_open_escalation_cites(store: SqlStateStore) -> None:
    old = T0
    store.append_audit(event(1, run_id="cited", ts=old))
    store.append_audit(event(2, run_id="uncited", ts=old))
    store.append_audit(event(3, run_id=None, ts=old))
    store.append_audit(event(4, run_id="uncited"))  # recent
    store.record_findings([InvestigationFinding(id="F-1", pattern="p", confidence=0.9, summary="s")], run_id="cited")
    store.raise_escalations([esc(finding_id="F-1")], lambda e, items: False)
    removed = store.prune_audit(datetime.now(timezone.utc) - timedelta(days=180))
    assert removed == 2
    assert sorted(e.rationale for e in store.tail_audit(limit=None)) == ["r1", "r4"]


def test_baseline_advance_is_a_compare_and_set(store: SqlStateStore) -> None:
    assert store.load_snapshot("baseline") is None
    first = store.save_snapshot("baseline", '{"tables": {}}', if_current=None)
    with pytest.raises(StateConflictError, match="baseline snapshot was replaced by another process"):
        store.save_snapshot("baseline", '{"tables": {"x": 1}}', if_current=None)  # someone else recorded one first
    second = store.save_snapshot("baseline", '{"tables": {"a": 1}}', if_current=first)
    with pytest.raises(StateConflictError):
        store.save_snapshot("baseline", '{"tables": {"b": 1}}', if_current=first)  # a stale reader loses
    loaded = store.load_snapshot("baseline")
    assert loaded is not None and (loaded.id, loaded.body) == (second, '{"tables": {"a": 1}}')
    for i in range(15):
        store.save_snapshot("last", f'{{"tables": {{}}, "n": {i}}}')
    with store.engine.connect() as conn:
        kept = conn.execute(select(t.drift_snapshots.c.id).where(t.drift_snapshots.c.name == "last")).scalars().all()
    assert len(kept) == 10 and store.load_snapshot("last").body.endswith('"n": 14}')  # type: ignore[union-attr]


def test_findings_history(store: SqlStateStore) -> None:
    store.record_findings([InvestigationFinding(pattern="a", confidence=0.5, summary="first")], run_id="r1", check="c1")
    store.record_findings([InvestigationFinding(pattern="b", confidence=0.6, summary="second")], run_id="r2")
    recent = store.recent_findings(10)
    assert [(f["pattern"], f["run_id"], f["check"]) for f in recent] == [("b", "r2", None), ("a", "r1", "c1")]
    assert store.recent_findings(1)[0]["summary"] == "second"


def test_escalations_answers_and_rules_commit_together(store: SqlStateStore) -> None:
    created = store.raise_escalations([esc(), esc(), esc(asset="dim_customers")],
                                      lambda e, items: any(i.asset == e.asset for i in items))
    assert [e.id for e in created] == ["ESC-1", "ESC-2"]  # the duplicate was skipped in the same transaction
    out = store.answer_escalation("ESC-1", Approval(by="ana", choice=0), close_with_rule)
    assert out.escalation.state == EscalationState.ANSWERED and out.decision.rule is not None and not out.retried
    (stored,) = [e for e in store.escalations() if e.id == "ESC-1"]
    assert stored.answer is not None and stored.answer.by == "ana" and [a.by for a in stored.approvals] == ["ana"]
    assert [r.id for r in store.rules()] == ["R-ESC-1"]
    retry = store.answer_escalation("ESC-1", Approval(by="ana", choice=0), close_with_rule)
    assert retry.retried and retry.decision.rule == out.decision.rule
    with pytest.raises(EscalationError, match=r"ESC-1 is already answered by ana \(choice 0\)"):
        store.answer_escalation("ESC-1", Approval(by="bo", choice=0), close_with_rule)
    with pytest.raises(EscalationError, match=r"unknown escalation ESC-9 \(open: ESC-2\)"):
        store.answer_escalation("ESC-9", Approval(by="bo", choice=0), close_with_rule)


def test_a_failing_decision_leaves_nothing_behind(store: SqlStateStore) -> None:
    store.raise_escalations([esc()], lambda e, items: False)

    def boom(e: Escalation) -> AnswerDecision:
        raise EscalationError("choice 7 is out of range")

    with pytest.raises(EscalationError, match="out of range"):
        store.answer_escalation("ESC-1", Approval(by="ana", choice=7), boom)
    (e,) = store.escalations()
    assert e.state == EscalationState.OPEN and e.approvals == [] and store.rules() == []


def test_four_eyes_is_one_row_per_approver(store: SqlStateStore) -> None:
    store.raise_escalations([esc(approvals_required=2)], lambda e, items: False)

    def two(e: Escalation) -> AnswerDecision:
        agree = sorted({a.by for a in e.approvals})
        return AnswerDecision(close=len(agree) >= 2, waiting_for=max(0, 2 - len(agree)), approvers=agree)

    assert store.answer_escalation("ESC-1", Approval(by="cfo", choice=0), two).decision.waiting_for == 1
    assert store.answer_escalation("ESC-1", Approval(by="cfo", choice=0), two).retried
    with store.engine.begin() as conn, pytest.raises(Exception, match="(?i)unique"):
        conn.execute(insert(t.approvals).values(escalation_id="ESC-1", approver="cfo", choice=0, at=0.0, body="{}"))
    done = store.answer_escalation("ESC-1", Approval(by="controller", choice=0), two)
    assert done.decision.close and [a.by for a in store.escalations()[0].approvals] == ["cfo", "controller"]


def test_past_due_stays_open_and_rules_flags_artifacts(store: SqlStateStore) -> None:
    store.raise_escalations([esc(due_at=datetime.now(timezone.utc) - timedelta(minutes=1))], lambda e, items: False)
    (overdue,) = store.escalations(datetime.now(timezone.utc) + timedelta(days=30))
    assert overdue.state == EscalationState.OPEN and overdue.status() == "overdue"
    store.put_rule(ContextRule(id="R-1", rule="a"))
    store.put_rule(ContextRule(id="R-1", rule="b"))
    assert [r.rule for r in store.rules()] == ["b"]
    assert store.get_flag("paused") is None
    store.set_flag("paused", "by ops")
    store.set_flag("paused", "by ops again")
    assert store.get_flag("paused") == "by ops again"
    store.set_flag("paused", None)
    assert store.get_flag("paused") is None
    store.put_artifact("entity_map", "dim_customers", "a,b\n")
    assert store.get_artifact("entity_map", "dim_customers") == "a,b\n" and store.artifact_names("entity_map") == ["dim_customers"]
    store.forget(["escalations"])
    assert store.escalations() == []


@pytest.mark.parametrize("body", ["null", "5", "not json", '{"id": 1}'])
def test_corrupt_rows_are_clear_errors_naming_the_row(store: SqlStateStore, body: str) -> None:
    with store.engine.begin() as conn:
        conn.execute(insert(t.escalations).values(id="ESC-7", seq=7, state="open", kind="context_gap", created_at=0.0,
                                                  body=body))
        conn.execute(insert(t.audit_events).values(ts=0.0, actor="x", kind="query", outcome="ok", body=body))
    with pytest.raises(StateCorruptError, match="escalations entry ESC-7"):
        store.escalations()
    with pytest.raises(StateCorruptError, match="audit_events entry"):
        store.tail_audit()


def test_unsupported_and_unreachable_urls_name_the_fix(tmp_path) -> None:
    from dagster_agent_de.errors import ConfigError

    with pytest.raises(ConfigError, match="unsupported state store mysql://"):
        SqlStateStore("mysql://x@localhost/db")
    with pytest.raises(ConfigError, match="not a database URL"):
        SqlStateStore("::nope::")
    with pytest.raises(ConfigError, match="unreachable"):
        SqlStateStore("postgresql://nobody@127.0.0.1:9/none?connect_timeout=2")


def test_rows_an_older_version_wrote_still_read(store: SqlStateStore) -> None:
    """An escalation the old store expired stays expired (nothing re-opens or re-asks it); a rule stored without a
    note reads back, and one with a note keeps it."""
    body = esc().model_copy(update={"id": "ESC-1", "state": EscalationState.EXPIRED}).model_dump_json(exclude={"approvals"})
    rule = ContextRule(id="R-old", rule="drafts", source="ESC-1").model_dump_json(exclude={"note"})
    with store.engine.begin() as conn:
        conn.execute(insert(t.escalations).values(id="ESC-1", seq=1, state="expired", kind="context_gap", asset="fct_orders",
                                                  finding_pattern="null_semantics", created_at=0.0, due_at=1.0, body=body))
        conn.execute(insert(t.context_rules).values(id="R-old", source="ESC-1", updated_at=0.0, body=rule))
    (old,) = store.escalations()
    assert old.state == EscalationState.EXPIRED and old.status() == "expired" and not old.overdue()
    store.put_rule(ContextRule(id="R-new", rule="drafts", note="why"))
    assert [(r.id, r.note) for r in store.rules()] == [("R-old", None), ("R-new", "why")]
