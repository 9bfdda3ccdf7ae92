"""The onboard_source job in process on the demo: a proposal, escalations, and the onboarding materialization."""

from __future__ import annotations

from dagster import DagsterInstance

from dagster_agent_de.dagster.definitions import build_definitions
from dagster_agent_de.dagster.investigate import ESCALATIONS_ASSET
from dagster_agent_de.dagster.onboard import ONBOARDING_ASSET

QUIET = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}


def test_onboard_job_writes_a_proposal_and_raises_decisions(demo_env) -> None:
    demo_env.write("create schema if not exists billing; create or replace table billing.invoices as "
                   "select range as invoice_id, range % 40 as customer_id, (range * 7) % 900 as total, "
                   "'billing' || range || '@shop.test' as billing_email from range(120)")
    defs = build_definitions(demo_env.settings)
    try:
        with DagsterInstance.get() as instance:
            run = defs.resolve_job_def("onboard_source").execute_in_process(
                instance=instance, run_config={"ops": {"onboard": {"config": {"table": "billing.invoices"}}}, **QUIET})
            assert run.success
            out = run.output_for_node("onboard")
            mat = instance.get_latest_materialization_event(ONBOARDING_ASSET)
            assert mat is not None and mat.run_id == run.run_id
            md = mat.asset_materialization.metadata
            assert md["model"].value == "stg_billing__invoices" and md["pii_columns"].value == 1
            assert "Decisions that need a human" in md["onboarding"].value
            assert instance.get_latest_materialization_event(ESCALATIONS_ASSET).run_id == run.run_id
        proposal = demo_env.settings.state_dir / "proposals" / "billing__invoices"
        assert (proposal / "models/staging/billing/stg_billing__invoices.sql").exists()
        # the job proposes; it never edits the project (that needs a human present)
        assert not (demo_env.project_dir / "models/staging/billing").exists()
        from dagster_agent_de.adapters.state import open_state_store

        raised = {e.id: e for e in open_state_store(demo_env.settings).escalations()}
        assert open_state_store(demo_env.settings).get_artifact("onboarding", "billing__invoices")
        # invoice_id is unique (the grain is done); billing_email is PII (sign-off); `total` is an integer amount
        assert {(raised[i].kind.value, raised[i].finding_pattern) for i in out["escalations"]} == {
            ("authority_gap", "onboard:pii_handling"), ("context_gap", "onboard:units:total")}
    finally:
        from dagster_agent_de.adapters.state import open_state_store
        from dagster_agent_de_tests.helpers import drop_escalations

        demo_env.write("drop schema billing cascade")
        # leave the shared demo's escalation queue as it was
        drop_escalations(open_state_store(demo_env.settings), lambda e: not (e.finding_pattern or "").startswith("onboard:"))
