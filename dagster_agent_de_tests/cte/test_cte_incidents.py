"""The demo's incidents replayed on a project in dbt's CTE style: right pattern and model top-1; for the
code-caused ones the proposed diff, applied, makes the failing check pass; loader problems escalate."""

from __future__ import annotations

import pytest

from dagster_agent_de.engines.escalate.policy import Policy
from dagster_agent_de.engines.escalate.raising import escalations_for
from dagster_agent_de_tests.cte.replay import INCIDENTS, CteEnv, CteIncident


def test_the_clean_project_passes_its_checks(cte_env: CteEnv) -> None:
    for incident in INCIDENTS:
        if not incident.kind:
            assert cte_env.check_passes(incident), incident.check


@pytest.mark.parametrize("incident", INCIDENTS, ids=lambda i: i.name)
def test_incident_is_root_caused_top_1(cte_env: CteEnv, incident: CteIncident) -> None:
    with cte_env.incident(incident):
        if not incident.kind:
            assert not cte_env.check_passes(incident), f"{incident.check} should fail after injecting {incident.name}"
        report = cte_env.investigate(cte_env.failure(incident))
        top = report.findings[0]
        assert (top.pattern, top.model) == (incident.expected_pattern, incident.expected_model), report.model_dump_json(indent=1)[:4000]
        assert not any("query of the agent failed" in n for n in report.notes), report.notes
        if incident.code_caused:
            assert top.proposed_fix is not None and top.proposed_fix.diff
            changed = cte_env.apply(report)
            assert changed and all(c.startswith("models/") for c in changed)
            cte_env.dbt("run", "-q", "-s", incident.rebuild)
            assert cte_env.check_passes(incident), f"{incident.check} still fails after the fix:\n{top.proposed_fix.diff}"
        elif incident.expected_pattern == "unmatched_left_join":  # a decision: load the rows, or accept NULL
            assert top.proposed_fix is not None and not top.proposed_fix.diff
            assert "Do not make the join INNER" in top.proposed_fix.description
            assert "missing from stg_customers" in top.summary and "`left join c` (in the CTE orders_enriched)" in top.summary, top.summary
            assert any(e.kind.value == "context_gap" for e in escalations_for(top, cte_env.manifest(), Policy()))
        else:
            loader = "loader of"
            assert loader in top.summary or loader in (top.proposed_fix.description if top.proposed_fix else "")
            escalations = escalations_for(top, cte_env.manifest(), Policy())
            assert any(e.kind.value == "authority_gap" and loader in e.decision for e in escalations), escalations


def test_metrics_and_derived_intents_see_through_the_ctes(cte_env: CteEnv) -> None:
    from dagster_agent_de.engines.intents import derive_intents
    from dagster_agent_de.engines.metrics import metric_definitions

    manifest = cte_env.manifest()
    defs, notes = metric_definitions(manifest, "duckdb")
    assert not notes
    by = {(d.model, d.column): d for d in defs}
    usd = by[("revenue", "revenue_usd")]
    assert usd.aggregate == "SUM" and usd.sources == frozenset({"app.orders.amount_cents", "fx.rates.rate_to_usd"})
    assert "status <> 'cancelled' (orders)" in usd.filters
    assert by[("int_order_payments", "paid_amount")].sources == frozenset({"stripe.charges.amount", "stripe.charges.status"})
    derived = {(i.model, i.column) for i in derive_intents(manifest, "duckdb")}
    assert {("orders", "amount"), ("stg_fx_rates", "rate_to_usd"), ("stg_payments", "amount")} <= derived
