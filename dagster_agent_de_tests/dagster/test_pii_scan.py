"""The pii_scan job on the demo: untagged PII found by its values, escalated once, never remediated."""

from __future__ import annotations

from dagster import AssetCheckSeverity, DagsterInstance

from dagster_agent_de.adapters.state import open_state_store
from dagster_agent_de.dagster.definitions import build_definitions
from dagster_agent_de_tests.helpers import drop_escalations

QUIET = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}


def test_pii_scan_finds_untagged_emails_and_escalates_once(demo_env) -> None:
    """The payments connector starts landing a receipt e-mail nobody declared: found by its values."""
    defs = build_definitions(demo_env.settings)
    store = open_state_store(demo_env.settings)
    before = {e.id for e in store.escalations()}
    demo_env.write("alter table stripe.charges add column receipt_email varchar; "
                   "update stripe.charges set receipt_email = 'buyer' || id || '@mail.test'")
    try:
        with DagsterInstance.get() as instance:
            runs = [defs.resolve_job_def("pii_scan").execute_in_process(instance=instance, raise_on_error=False, run_config=QUIET)
                    for _ in range(2)]
        evals = {e.asset_key.to_user_string(): e for e in runs[0].get_asset_check_evaluations()}
        charges = evals["stripe/charges"]
        assert (charges.passed, charges.severity) == (False, AssetCheckSeverity.WARN)
        assert charges.metadata["columns"].value == "receipt_email"
        assert "look like emails" in charges.metadata["evidence"].value
        assert evals["app/customers"].passed and evals["hubspot/contacts"].passed  # their emails are tagged
        assert all(e.passed for k, e in evals.items() if k != "stripe/charges")
        new = [e for e in store.escalations() if e.id not in before]  # two scans, one escalation
        assert [(e.kind.value, e.asset, e.finding_pattern) for e in new] == [("authority_gap", "stripe.charges", "pii_untagged")]
        assert "@mail.test" not in str(new[0].model_dump())  # evidence is counts, never values
        # detection only: nothing was changed
        with demo_env.warehouse() as wh:
            assert wh.query("select count(*) from stripe.charges where receipt_email like '%@mail.test'",
                            rationale="still there").scalar() > 0
    finally:
        demo_env.write("alter table stripe.charges drop column receipt_email")
        drop_escalations(store, lambda e: e.id in before)
