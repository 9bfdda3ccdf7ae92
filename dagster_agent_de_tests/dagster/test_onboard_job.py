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


def test_an_onboarding_question_is_answered_by_the_job(demo_env, tmp_path, monkeypatch) -> None:
    """The question is on a source the proposal creates (not in the manifest yet): the answer job records it, as
    `agent-de escalations answer` does, re-runs nothing (no check failed) and tells the owner's channel once."""
    from dataclasses import replace

    from dagster_agent_de.adapters.state import open_state_store
    from dagster_agent_de.config import resolve_settings
    from dagster_agent_de_tests.notify.servers import http_recorder

    settings = replace(resolve_settings(tmp_path / "state", demo_env.project_dir, "duckdb"),
                       duckdb_override=demo_env.settings.duckdb_path)  # a private queue
    demo_env.write("create schema if not exists billing; create or replace table billing.invoices as "
                   "select range as invoice_id, range % 40 as customer_id, (range * 7) % 900 as total "
                   "from range(120)")
    cfg = tmp_path / "notifications.yml"
    cfg.write_text("notifications:\n  channels:\n    team: {kind: webhook, url_env: HOOK_URL}\n  default: [team]\n")
    defs = build_definitions(settings)
    try:
        with http_recorder() as srv, DagsterInstance.ephemeral() as instance:
            monkeypatch.setenv("AGENT_DE_NOTIFICATIONS", str(cfg))
            monkeypatch.setenv("HOOK_URL", srv.url + "/hook")
            assert defs.resolve_job_def("onboard_source").execute_in_process(
                instance=instance, run_config={"ops": {"onboard": {"config": {"table": "billing.invoices"}}}, **QUIET},
            ).success
            (units,) = [e for e in open_state_store(settings).escalations() if e.finding_pattern == "onboard:units:total"]
            assert units.asset == "billing.invoices" and units.check is None

            def answer():
                return defs.resolve_job_def("answer_escalation").execute_in_process(
                    instance=instance, raise_on_error=False, run_config={**QUIET, "ops": {"answer": {"config": {
                        "escalation_id": units.id, "choice": 0, "answered_by": "ops@shop.test"}}}})

            run = answer()
            assert run.success, [e.message for e in run.all_events if e.is_failure]
            out = run.output_for_node("answer")
            assert out["closed"] and out["rerun_top"] is None
            assert out["escalation"]["answer"]["by"] == "ops@shop.test"
            assert answer().success  # the same answer again (a retried run): what is stored, told nobody twice
            hooks = srv.posted("/hook")
        assert [h["event"] for h in hooks] == ["answered"]
        assert hooks[0]["title"].startswith(f"{units.id} answered by ops@shop.test")
    finally:
        demo_env.write("drop schema billing cascade")
