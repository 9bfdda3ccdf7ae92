"""Write a state dir in the file formats of dagster-agent-de before the state store (commit 50409ee).

Run with the OLD code on the path: ``PYTHONPATH=<checkout of 50409ee> python scripts/make_legacy_state_fixture.py OUT``.
It drives the old stores themselves (AuditLog, FindingsStore, SnapshotStore, EscalationStore,
answer_escalation, set_paused), so the files are exactly what that version wrote.
"""

from __future__ import annotations

import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

from dagster_agent_de.engines.escalate.store import EscalationStore  # the OLD code (see above)
from dagster_agent_de.engines.investigate.store import FindingsStore

from dagster_agent_de.adapters.audit import AuditLog
from dagster_agent_de.core.models import Escalation, EscalationKind, EscalationOption, Evidence, Finding
from dagster_agent_de.engines.drift.models import ColumnSchema, Snapshot, TableSchema
from dagster_agent_de.engines.drift.store import SnapshotStore
from dagster_agent_de.engines.escalate.answering import answer_escalation
from dagster_agent_de.engines.escalate.policy import Policy, set_paused
from dagster_agent_de.engines.escalate.raising import raise_escalations

T0 = datetime(2026, 11, 20, 9, 0, tzinfo=timezone.utc)


def main(out: Path) -> None:
    state, project = out / "state", out / "project"
    project.mkdir(parents=True)
    audit = AuditLog(state / "audit" / "audit.jsonl", actor="op:investigate", run_id="run-a")
    for i in range(5):
        audit.record(statement=f"select {i} from main.fct_orders", rationale=f"step {i}", rows=i, dialect="duckdb")
    audit.record(kind="action", statement="refused thing", rationale="policy", outcome="refused", error="no")
    AuditLog(state / "audit" / "audit.jsonl", actor="cli").record(statement="select 42", rationale="by hand")
    with (state / "audit" / "audit.jsonl").open("a") as f:
        f.write('{"ts": "2026-11-2')  # a process killed mid-write: the old reader skipped it

    findings = FindingsStore(state / "findings" / "findings.jsonl")
    findings.append([Finding(id="F-join", pattern="join_row_drop", model="int_orders_enriched", confidence=0.9,
                             summary="70% of orders dropped by an inner join", created_at=T0,
                             evidence=[Evidence(statement="select count(*)", result_summary="700 of 1000")])],
                    run_id="run-a", check="orders_vs_stripe")
    findings.append([Finding(id="F-null", pattern="null_semantics", model="fct_orders", columns=["status"],
                             confidence=0.8, summary="NULL statuses dropped", created_at=T0)], run_id="run-b", check=None)

    table = TableSchema(relation="warehouse.stripe.charges", signature="id:int,amount:int",
                        columns=[ColumnSchema(name="id", position=1, data_type="INTEGER"),
                                 ColumnSchema(name="amount", position=2, data_type="INTEGER")])
    drift = SnapshotStore(state / "drift")
    drift.save("baseline", Snapshot(taken_at=T0, tables={"warehouse.stripe.charges": table}))
    drift.save("last", Snapshot(taken_at=T0 + timedelta(hours=1), tables={"warehouse.stripe.charges": table},
                                missing=["warehouse.raw.later"]))

    store = EscalationStore(state / "escalations")
    options = [EscalationOption(label="They count: fix the model", agent_action="apply_fix"),
               EscalationOption(label="Excluded on purpose", agent_action="record_rule",
                                rule="NULL status orders are drafts", suppresses=["null_semantics"])]
    due = datetime(2099, 1, 1, tzinfo=timezone.utc)
    raise_escalations(store, [
        Escalation(id="", kind=EscalationKind.CONTEXT_GAP, decision="Do NULL-status orders count?", options=options,
                   asset="fct_orders", finding_id="F-null", finding_pattern="null_semantics", check="orders_vs_stripe",
                   applies_to=["fct_orders.status"], owner="analytics-team", due_at=due, created_at=T0),
        Escalation(id="", kind=EscalationKind.CONTEXT_GAP, decision="Is platinum enterprise?", options=options,
                   asset="dim_customers", finding_pattern="tier_mapping", applies_to=["dim_customers.tier"],
                   due_at=due, created_at=T0),
        Escalation(id="", kind=EscalationKind.AUTHORITY_GAP, decision="Apply the fix to fct_revenue?",
                   options=[EscalationOption(label="Approve", agent_action="apply_fix"),
                            EscalationOption(label="Reject", agent_action="none")],
                   asset="fct_revenue", finding_id="F-join", finding_pattern="join_row_drop", approvals_required=2,
                   fix_diff="--- a/x\n+++ b/x\n", due_at=due, created_at=T0),
    ])
    answer_escalation(store, "ESC-2", 1, by="ana@shop.example", note="platinum is the enterprise tier",
                      project_dir=project, policy=Policy())
    answer_escalation(store, "ESC-3", 0, by="cfo@shop.example", project_dir=project, policy=Policy())  # 1 of 2

    set_paused(state, True, "ops")
    proposal = state / "proposals" / "billing__invoices"
    proposal.mkdir(parents=True)
    (proposal / "proposal.json").write_text('{"relation": "billing.invoices", "model_name": "stg_billing__invoices"}')
    (state / "proposals" / "entities").mkdir()
    (state / "proposals" / "entities" / "dim_customers.csv").write_text("customer_id,entity_id\n1,1\n2,1\n")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
