"""Many processes on one state store, on SQLite and PostgreSQL: nothing lost, nothing half-written."""

from __future__ import annotations

import multiprocessing as mp
import os
import random
import signal
import time
from typing import Any

import pytest

from dagster_agent_de.adapters.state import schema as t
from dagster_agent_de.core.models import (
    AuditEvent,
    Escalation,
    EscalationKind,
    EscalationOption,
    EscalationState,
    InvestigationFinding,
)
from dagster_agent_de.core.state import EscalationError
from dagster_agent_de.engines.escalate.answering import answer_escalation
from dagster_agent_de.engines.escalate.policy import Policy
from dagster_agent_de_tests.state.conftest import Backend

CTX = mp.get_context("fork")
WRITERS, EACH = 8, 25


def _writer(backend: Backend, n: int, start: Any) -> None:
    store = backend.open()
    start.wait()
    for i in range(EACH):
        store.append_audit(AuditEvent(actor=f"w{n}", run_id=f"run-{n}", rationale=str(i), statement=f"select {i}"))
        store.record_findings([InvestigationFinding(pattern="p", confidence=0.5, summary=f"{n}:{i}")], run_id=f"run-{n}")


def _run_all(procs: list[Any]) -> None:
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0, f"{p.name} exited {p.exitcode}"


def test_eight_processes_append_and_nothing_is_lost(backend: Backend) -> None:
    backend.open().close()  # migrated once; the writers start on a ready schema
    start = CTX.Barrier(WRITERS)
    _run_all([CTX.Process(target=_writer, args=(backend, n, start)) for n in range(WRITERS)])
    store = backend.open()
    events = store.tail_audit(limit=None)
    assert len(events) == WRITERS * EACH
    ids = store.audit_ids()
    assert len(set(ids)) == len(ids) == WRITERS * EACH and ids == sorted(ids)
    for n in range(WRITERS):  # each writer's events in its own order
        assert [e.rationale for e in store.tail_audit(run_id=f"run-{n}", limit=None)] == [str(i) for i in range(EACH)]
    assert sorted(f["summary"] for f in store.recent_findings(10_000)) == sorted(
        f"{n}:{i}" for n in range(WRITERS) for i in range(EACH))


def test_first_use_by_many_processes_at_once_migrates_once(backend: Backend) -> None:
    start = CTX.Barrier(4)

    def opener() -> None:
        start.wait()
        backend.open().append_audit(AuditEvent(actor="x", rationale="r", statement="select 1"))

    _run_all([CTX.Process(target=opener) for _ in range(4)])
    assert backend.open().version() == t.MIGRATIONS[-1][0] and len(backend.open().tail_audit(limit=None)) == 4


def single(**kw: Any) -> Escalation:
    base: dict = dict(id="", kind=EscalationKind.CONTEXT_GAP, decision="count them?", asset="fct_orders",
                      applies_to=["fct_orders.status"],
                      options=[EscalationOption(label="fix", agent_action="apply_fix"),
                               EscalationOption(label="excluded", agent_action="record_rule", rule="drafts")])
    return Escalation(**(base | kw))


def _answer(backend: Backend, esc_id: str, choice: int, by: str, start: Any, results: Any) -> None:
    store = backend.open()
    start.wait()
    try:
        r = answer_escalation(store, esc_id, choice, by=by, policy=Policy())
        results.put((by, "closed" if r.closed else f"waiting {r.waiting_for}"))
    except EscalationError as e:
        results.put((by, f"error: {e}"))


def _race(backend: Backend, esc_id: str, answers: list[tuple[int, str]]) -> dict[str, str]:
    start, results = CTX.Barrier(len(answers)), CTX.Queue()
    _run_all([CTX.Process(target=_answer, args=(backend, esc_id, c, by, start, results)) for c, by in answers])
    return dict(results.get(timeout=10) for _ in answers)


def test_two_processes_answer_the_same_escalation_exactly_one_wins(backend: Backend) -> None:
    store = backend.open()
    store.raise_escalations([single()], lambda e, items: False)
    out = _race(backend, "ESC-1", [(1, "ana"), (1, "bo")])
    winners = [by for by, r in out.items() if r == "closed"]
    (loser,) = [r for r in out.values() if r != "closed"]
    assert len(winners) == 1
    assert loser == f"error: ESC-1 is already answered by {winners[0]} (choice 1); nothing to answer"
    (e,) = store.escalations()
    assert [a.by for a in e.approvals] == winners and [r.id for r in store.rules()] == ["R-ESC-1"]


def test_two_four_eyes_approvers_at_once_are_both_recorded_once(backend: Backend) -> None:
    store = backend.open()
    store.raise_escalations([single(kind=EscalationKind.AUTHORITY_GAP, approvals_required=2)], lambda e, items: False)
    out = _race(backend, "ESC-1", [(0, "cfo"), (0, "controller")])
    assert sorted(out.values()) == ["closed", "waiting 1"]
    (e,) = store.escalations()
    assert sorted(a.by for a in e.approvals) == ["cfo", "controller"] and e.state == EscalationState.ANSWERED


KILLS = 50


def _answer_after_ready(backend: Backend, esc_id: str, ready: Any) -> None:
    store = backend.open()
    ready.set()
    answer_escalation(store, esc_id, 1, by="ana", note="drafts are excluded", policy=Policy())


def test_killed_at_random_points_while_answering_every_answer_is_whole_or_absent(backend: Backend) -> None:
    store = backend.open()
    store.raise_escalations([single(asset=f"m{i}") for i in range(KILLS + 1)], lambda e, items: False)
    # how long one answer takes here, so the kills land before, inside and after its transaction
    t0 = time.perf_counter()
    answer_escalation(store, f"ESC-{KILLS + 1}", 1, by="ana", policy=Policy())
    window = max(time.perf_counter() - t0, 0.002) * 1.5
    rng = random.Random(14)
    whole = absent = 0
    for i in range(1, KILLS + 1):
        ready = CTX.Event()
        p = CTX.Process(target=_answer_after_ready, args=(backend, f"ESC-{i}", ready))
        p.start()
        assert ready.wait(30)
        time.sleep(rng.uniform(0, window))
        os.kill(p.pid, signal.SIGKILL)
        p.join(30)
        (e,) = [x for x in store.escalations() if x.id == f"ESC-{i}"]
        rules = {r.id for r in store.rules()}
        if e.state == EscalationState.ANSWERED:
            assert [a.by for a in e.approvals] == ["ana"] and e.answer is not None and f"R-ESC-{i}" in rules
            whole += 1
        else:
            assert e.state == EscalationState.OPEN and e.approvals == [] and e.answer is None
            assert f"R-ESC-{i}" not in rules
            absent += 1
        retry = answer_escalation(store, f"ESC-{i}", 1, by="ana", note="drafts are excluded", policy=Policy())
        assert retry.closed and retry.rule is not None and retry.rule.id == f"R-ESC-{i}"
        assert retry.retried == (e.state == EscalationState.ANSWERED)
    assert whole + absent == KILLS
    print(f"{backend.name}: {whole} answers whole, {absent} absent after SIGKILL; every retry succeeded")


@pytest.mark.parametrize("n", [3])
def test_raised_ids_stay_unique_under_concurrent_raisers(backend: Backend, n: int) -> None:
    backend.open().close()
    start = CTX.Barrier(n)

    def raiser(k: int) -> None:
        store = backend.open()
        start.wait()
        for j in range(5):
            store.raise_escalations([single(asset=f"a{k}-{j}")], lambda e, items: False)

    _run_all([CTX.Process(target=raiser, args=(k,)) for k in range(n)])
    ids = [e.id for e in backend.open().escalations()]
    assert sorted(ids, key=lambda x: int(x.split("-")[1])) == [f"ESC-{i}" for i in range(1, 5 * n + 1)]
