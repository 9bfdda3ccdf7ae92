"""The optional LLM second opinion, tested at the HTTP boundary with recorded Anthropic responses."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dagster_agent_de.adapters.audit import AuditLog, read_audit
from dagster_agent_de.adapters.llm import AnthropicLLM, llm_from_env
from dagster_agent_de.adapters.warehouse import DuckDBWarehouse
from dagster_agent_de.engines.investigate import Failure, investigate
from dagster_agent_de_tests.engines.test_detectors import project
from dagster_agent_de_tests.helpers import stored_audit_text
from dagster_agent_de_tests.llm_replay import Replay, httpx_module

KEY = "sk-ant-test-0123456789abcdef"
PII = {"columns": {"email": {"name": "email", "meta": {"agent_de": {"pii": True}}}}}


@pytest.fixture
def join_drop(tmp_path: Path):
    """10 orders; only 3 customers are in the CRM; orders_enriched inner-joins the CRM on email."""
    return project(
        tmp_path,
        {"orders_enriched": (
            "select o.order_id, o.amount, h.lifecycle_stage from {{ source('raw', 'orders') }} o "
            "join {{ source('raw', 'customers') }} c on o.customer_id = c.customer_id "
            "inner join {{ source('raw', 'crm_contacts') }} h on c.email = h.email")},
        ["create table raw.orders as select range as order_id, range as customer_id, 10.0 as amount from range(10)",
         "create table raw.customers as select range as customer_id, 'user' || range || '@shop.test' as email from range(10)",
         "create table raw.crm_contacts as select 'user' || range || '@shop.test' as email, 'lead' as lifecycle_stage from range(3)"],
        sources={"orders": {}, "customers": PII, "crm_contacts": {}},
    )


def _investigate(join_drop, replay: Replay, audit: AuditLog, **llm_kw):
    manifest, db = join_drop
    llm = AnthropicLLM(audit, api_key=KEY, http_client=replay.http_client(), max_retries=0, **llm_kw)
    failure = Failure(asset="orders_enriched", check="reconcile_orders", kind="reconciliation",
                      metadata={"missing_pct": 70.0, "missing_in_pipeline": 7})
    with DuckDBWarehouse(db, audit) as wh:
        return investigate(failure, manifest, wh, llm=llm)


def test_second_opinion_runs_its_queries_for_real_and_cites_them(join_drop, tmp_path: Path, state_store) -> None:
    replay = Replay("join_drop_review.json")
    audit = AuditLog(state_store)
    report = _investigate(join_drop, replay, audit)

    # the library's finding stays first; the LLM's is added, advisory, capped, backed by the query it ran
    assert report.findings[0].source == "library" and report.findings[0].pattern == "join_row_drop"
    (llm,) = [f for f in report.findings if f.source == "llm"]
    assert (llm.pattern, llm.model, llm.severity.value, llm.verified) == ("join_row_drop", "orders_enriched", "warning", True)
    assert llm.confidence == 0.7  # claimed 0.93
    assert llm.evidence[0].result_summary == "orders=10, with_crm_contact=3"
    assert "LEFT JOIN" in llm.proposed_fix.description

    # what went over the wire: the brief (failure, lineage, SQL, library hypotheses), then real results
    assert len(replay.requests) == 3
    first = replay.requests[0]
    assert first["model"] == "claude-sonnet-5" and [t["name"] for t in first["tools"]] == ["run_sql", "get_compiled_sql", "report_finding"]
    brief = first["messages"][0]["content"]
    assert "missing_pct" in brief and "inner join" in brief.lower() and "join_row_drop" in brief
    (q1,) = replay.tool_results(1)
    assert q1["tool_use_id"] == "toolu_01A1"
    assert json.loads(q1["content"])["rows"] == [{"orders": 10, "with_crm_contact": 3}]
    (compiled,) = replay.tool_results(2)
    assert '"wh"."raw"."crm_contacts"' in json.loads(compiled["content"])["compiled_sql"]
    assert f"Bearer {KEY}" == replay.headers[0].get("authorization") or replay.headers[0].get("x-api-key") == KEY

    # audited: three API calls and the model's query, no key in the log
    events = read_audit(state_store)
    calls = [e for e in events if e.kind == "api_call"]
    assert [(e.outcome, e.target) for e in calls] == [("ok", "claude-sonnet-5")] * 3
    assert "tokens in=1912 out=164" in calls[0].statement
    assert any(e.kind == "query" and e.rationale.startswith("LLM: share of orders") for e in events)
    assert KEY not in stored_audit_text(state_store)
    assert any("LLM second opinion: join_row_drop" in n for n in report.notes)


def test_writes_are_refused_pii_is_masked_and_unbacked_claims_are_not_evidence(join_drop, tmp_path: Path, state_store) -> None:
    replay = Replay("overreach_review.json")
    audit = AuditLog(state_store)
    report = _investigate(join_drop, replay, audit)

    delete, select = replay.tool_results(1)
    assert delete["is_error"] is True and "refused" in delete["content"].lower()
    rows = json.loads(select["content"])["rows"]
    assert all(r["email"].startswith("pii:") and "@" not in r["email"] for r in rows)
    assert len({r["email"] for r in rows}) == 3 and [r["customer_id"] for r in rows] == [0, 1, 2]
    (llm,) = [f for f in report.findings if f.source == "llm"]
    assert llm.verified is False and llm.confidence == 0.3 and llm.evidence == []  # q1 was refused, q7 never ran
    assert any("cited q1, q7 which did not run or failed" in n for n in report.notes)
    assert any(e.outcome == "refused" and e.statement.startswith("delete") for e in read_audit(state_store))
    _, db = join_drop
    with DuckDBWarehouse(db, AuditLog(None)) as wh:
        assert wh.query("select count(*) from raw.orders", rationale="still there").scalar() == 10


@pytest.mark.parametrize(("fixture", "status", "says"), [
    ("overloaded.json", 529, "the API answered 529"),
    ("unauthorized.json", 401, "check ANTHROPIC_API_KEY"),
])
def test_api_errors_leave_the_library_report_intact(join_drop, tmp_path: Path, fixture: str, status: int, says: str, state_store) -> None:
    audit = AuditLog(state_store)
    report = _investigate(join_drop, Replay(fixture, status=status), audit)
    assert [f.source for f in report.findings] == ["library"] * len(report.findings)
    assert report.findings[0].pattern == "join_row_drop"
    assert any(n.startswith("LLM second opinion skipped") and says in n for n in report.notes)
    (call,) = [e for e in read_audit(state_store) if e.kind == "api_call"]
    assert call.outcome == "error"


def test_unreachable_endpoint_is_a_note_not_a_crash(join_drop, tmp_path: Path) -> None:
    httpx = httpx_module()

    def refuse(request):
        raise httpx.ConnectError("connection refused", request=request)

    manifest, db = join_drop
    llm = AnthropicLLM(AuditLog(None), api_key=KEY, max_retries=0, http_client=httpx.Client(transport=httpx.MockTransport(refuse)))
    with DuckDBWarehouse(db, AuditLog(None)) as wh:
        report = investigate(Failure(asset="orders_enriched", kind="reconciliation", metadata={"missing_pct": 70.0}),
                             manifest, wh, llm=llm)
    assert report.findings[0].pattern == "join_row_drop"
    assert any(f"cannot reach {llm.endpoint}" in n for n in report.notes)


def test_without_a_key_there_is_no_llm_and_the_report_is_the_library_s(join_drop) -> None:
    assert llm_from_env(AuditLog(None), {}) is None
    assert llm_from_env(AuditLog(None), {"ANTHROPIC_API_KEY": KEY, "AGENT_DE_LLM": "off"}) is None
    on = llm_from_env(AuditLog(None), {"ANTHROPIC_API_KEY": KEY, "AGENT_DE_LLM_MODEL": "claude-opus-5",
                                       "ANTHROPIC_BASE_URL": "http://llm-gateway.internal"})
    assert (on.model, on.endpoint) == ("claude-opus-5", "http://llm-gateway.internal/v1/messages")
    manifest, db = join_drop
    with DuckDBWarehouse(db, AuditLog(None)) as wh:
        report = investigate(Failure(asset="orders_enriched", kind="reconciliation", metadata={"missing_pct": 70.0}), manifest, wh)
    assert report.findings[0].pattern == "join_row_drop" and not any("LLM" in n for n in report.notes)
