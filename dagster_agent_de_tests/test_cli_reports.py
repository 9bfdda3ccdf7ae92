"""The reporting commands on the session's demo: exit codes and the documented JSON."""

from __future__ import annotations

import json

from click.testing import CliRunner

from dagster_agent_de.cli import main


def _args(demo_env) -> list[str]:
    return ["--state-dir", str(demo_env.settings.state_dir), "--project-dir", str(demo_env.project_dir)]


def test_reconcile_passes_on_the_clean_demo_and_fails_on_wt02(demo_env) -> None:
    ok = CliRunner().invoke(main, [*_args(demo_env), "reconcile", "--json"])
    assert ok.exit_code == 0, ok.output
    out = json.loads(ok.output)
    assert {r["spec_name"] for r in out["reports"]} == {"orders_vs_stripe", "revenue_vs_finance_export"}
    assert all(r["passed"] for r in out["reports"]) and out["findings"] == []
    with demo_env.incident("wt02_join_drop", rebuild="int_orders_enriched+",
                           restore=("models/intermediate/int_orders_enriched.sql",)):
        demo_env.dbt("run", "-s", "int_orders_enriched+", "-q")
        bad = CliRunner().invoke(main, [*_args(demo_env), "reconcile", "--model", "fct_orders"])
        assert bad.exit_code == 1 and "FAIL fct_orders.orders_vs_stripe" in bad.output and "missing in pipeline" in bad.output
        inv = CliRunner().invoke(main, [*_args(demo_env), "investigate", "--asset", "fct_orders", "--check",
                                        "orders_vs_stripe", "--json"])
        assert inv.exit_code == 0, inv.output
        report = json.loads(inv.output)
        top = report["findings"][0]
        assert {"pattern", "model", "columns", "severity", "confidence", "summary", "evidence", "proposed_fix"} <= set(top)
        assert (top["pattern"], top["model"]) == ("join_row_drop", "int_orders_enriched")
        assert [f["confidence"] for f in report["findings"]] == sorted((f["confidence"] for f in report["findings"]), reverse=True)


def test_investigating_a_reconciliation_that_passes_now_says_so_first(demo_env) -> None:
    """Measured again and passing: the report says there is no failure, before any finding."""
    r = CliRunner().invoke(main, [*_args(demo_env), "investigate", "--asset", "fct_orders", "--check", "orders_vs_stripe"])
    assert r.exit_code == 0, r.output
    assert r.output.startswith("note: orders_vs_stripe passes now"), r.output
    assert r.output.count("passes now") == 1, r.output  # not again among the notes
    assert "there is no failure to explain" in r.output
    out = json.loads(CliRunner().invoke(main, [*_args(demo_env), "investigate", "--asset", "fct_orders", "--check",
                                               "orders_vs_stripe", "--json"]).output)
    assert out["notes"][0].startswith("orders_vs_stripe passes now")


def test_the_passes_now_note_is_printed_once(tmp_path, state_store, capsys) -> None:
    """It was printed first and again among the notes (a small project, not the demo: no dbt build)."""
    from dagster_agent_de.adapters.audit import AuditLog
    from dagster_agent_de.adapters.warehouse import DuckDBWarehouse
    from dagster_agent_de.cli import _echo_investigation
    from dagster_agent_de.engines.investigate.workflow import investigate_failure
    from dagster_agent_de_tests.engines.test_detectors import RECORDED_RECONCILIATION, reconciled_project

    m, db = reconciled_project(tmp_path)
    with DuckDBWarehouse(db, AuditLog(None)) as wh:
        done = investigate_failure(m, wh, state_store, asset="m", check="m_vs_ledger", project_dir=tmp_path,
                                   state_dir=tmp_path / "state", metadata=RECORDED_RECONCILIATION)
    _echo_investigation(done)
    out = capsys.readouterr().out
    assert out.startswith("note: m_vs_ledger passes now"), out
    assert out.count("passes now") == 1, out
    assert "ROOT CAUSE" not in out and "note: checked " in out  # the other notes are still printed


def test_unknown_model_and_spec_errors(demo_env) -> None:
    r = CliRunner().invoke(main, [*_args(demo_env), "reconcile", "--model", "fct_nope"])
    assert r.exit_code == 2 and "no model or source named 'fct_nope'" in r.output


def test_demo_incident_runner_shows_the_catch(demo_env) -> None:
    """`agent-de demo --incident` runs the production path and prints the catch (WT-04: no dbt needed)."""
    from dagster import DagsterInstance

    from dagster_agent_de.dagster.definitions import build_definitions
    from dagster_agent_de.demo.incidents import get_incident, revert
    from dagster_agent_de.demo.runner import run_incident

    defs = build_definitions(demo_env.settings)
    with DagsterInstance.get() as instance:
        defs.resolve_job_def("schema_drift_check").execute_in_process(instance=instance)
        try:
            lines = run_incident(demo_env.settings, defs, instance, "wt04_rename")
        finally:
            revert(get_incident("wt04_rename"), demo_env.project_dir, demo_env.settings.duckdb_path)
            defs.resolve_job_def("schema_drift_check").execute_in_process(instance=instance, raise_on_error=False)
    text = "\n".join(lines)
    assert "FAILED check stripe/charges:schema_drift" in text
    assert "root cause: schema_drift in stg_stripe_charges" in text and "amount_cents" in text


def test_unknown_named_connection_exits_2(demo_env) -> None:
    """A spec naming a connection defined nowhere: a configuration error naming it, exit 2."""
    marts = "models/marts/_marts.yml"
    old = "              against: \"source('stripe', 'charges')\"\n"
    try:
        with demo_env.patched(marts, old, old + "              connection: stripe_replica\n"):
            demo_env.dbt("parse", "-q")
            r = CliRunner().invoke(main, [*_args(demo_env), "reconcile", "--name", "orders_vs_stripe"])
    finally:
        demo_env.dbt("parse", "-q")
    assert r.exit_code == 2, r.output
    assert "connection 'stripe_replica' is not defined" in r.output and "orders_vs_stripe" in r.output
