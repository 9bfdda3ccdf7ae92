"""Onboarding end to end on a copy of the demo: the CLI proposes and applies, dbt builds it, its tests pass."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import yaml
from click.testing import CliRunner

from dagster_agent_de.adapters.audit import AuditLog
from dagster_agent_de.adapters.state import open_state_store
from dagster_agent_de.adapters.warehouse import DuckDBWarehouse
from dagster_agent_de.cli import main
from dagster_agent_de.demo.data import execute_sql
from dagster_agent_de.project import DbtProjectInfo
from dagster_agent_de_tests.helpers import drop_escalations


def test_onboard_a_new_table_into_the_demo_project_and_build_it(demo_env, tmp_path: Path, monkeypatch) -> None:
    project = tmp_path / "project"
    shutil.copytree(demo_env.project_dir, project, ignore=shutil.ignore_patterns("logs"))
    state = tmp_path / "state"
    state.mkdir()
    wh = state / "warehouse.duckdb"
    shutil.copy(demo_env.settings.duckdb_path, wh)
    execute_sql(wh, "create schema raw_zendesk", """create table raw_zendesk.tickets as select
        o.order_id * 10 as ticket_id, o.customer_id, o.order_id,
        ['open', 'solved'][1 + o.order_id % 2] as status,
        c.email as requester, current_timestamp - interval 2 hour as _loaded_at
        from app.orders o join app.customers c using (customer_id) where o.order_id % 5 = 0""")
    settings = replace(demo_env.settings, project_dir=project, state_dir=state, duckdb_override=wh)
    monkeypatch.setenv("AGENT_DE_DUCKDB_PATH", str(wh))

    result = CliRunner().invoke(main, ["--project-dir", str(project), "--state-dir", str(state), "onboard",
                                       "--table", "raw_zendesk.tickets", "--owner", "support-data", "--apply", "--json"],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert len(out["applied"]) == 3 and out["model_name"] == "stg_zendesk__tickets"  # the schema without raw_
    assert out["source_name_from"] == "the schema raw_zendesk without its raw_ prefix"
    # no database pinned: the source resolves in whichever target dbt runs (the warehouse's database here)
    source = yaml.safe_load((project / "models/staging/zendesk/_zendesk__sources.yml").read_text())["sources"][0]
    assert "database" not in source and source["schema"] == "raw_zendesk"
    assert {p["column"]: p["kind"] for p in out["pii"]} == {"requester": "email"}
    # the escalations are in the store, context gaps and authority gaps apart
    open_ = open_state_store(settings).escalations()
    assert {(e.kind.value, e.finding_pattern) for e in open_} == {
        ("authority_gap", "onboard:pii_handling"), ("context_gap", "onboard:freshness_sla")}
    # relationships found from the demo's own unique tests (stg_orders.order_id, stg_customers.customer_id)
    models_yml = (project / "models/staging/zendesk/_zendesk__models.yml").read_text()
    assert "ref('stg_customers')" in models_yml and "ref('stg_orders')" in models_yml

    proc = DbtProjectInfo.from_settings(settings).run_dbt(["build", "-s", "source:zendesk+", "stg_zendesk__tickets"],
                                                          env=settings.dbt_env())
    log = proc.stdout
    assert "Completed successfully" in log, log[-3000:]
    assert "PASS=" in log and "ERROR=0" in log and "WARN=0" in log
    assert "PASS=10 WARN=0 ERROR=0" in log, log[-3000:]  # the view; source unique, not_null; model unique, not_null x3, accepted_values, relationships x2
    assert "Arguments to generic tests should" not in log  # written the way the installed dbt reads them

    # the data protection officer answers "hash them"; the next onboarding applies it, and dbt builds it
    from dagster_agent_de.engines.escalate.answering import answer_escalation
    from dagster_agent_de.engines.escalate.policy import Policy

    store = open_state_store(settings)
    (pii,) = [e for e in store.escalations() if e.finding_pattern == "onboard:pii_handling"]
    answer_escalation(store, pii.id, 0, by="dpo@shop.test", policy=Policy())
    for f in out["applied"]:
        if not f.endswith("__sources.yml"):  # the source stays defined: the proposal leaves existing definitions alone
            Path(f).unlink()
    again = CliRunner().invoke(main, ["--project-dir", str(project), "--state-dir", str(state), "onboard",
                                      "--table", "raw_zendesk.tickets", "--apply", "--json"], catch_exceptions=False)
    assert again.exit_code == 0, again.output
    assert json.loads(again.output)["escalations"] == []  # nothing new to ask
    assert "{{ dbt.hash('requester') }} as requester" in (project / "models/staging/zendesk/stg_zendesk__tickets.sql").read_text()
    proc = DbtProjectInfo.from_settings(settings).run_dbt(["build", "-s", "stg_zendesk__tickets"], env=settings.dbt_env())
    assert "ERROR=0" in proc.stdout, proc.stdout[-3000:]
    with DuckDBWarehouse(wh, AuditLog(None)) as conn:
        hashed = conn.query("select requester from main.stg_zendesk__tickets limit 1", rationale="test").scalar()
    assert hashed and "@" not in hashed

    # the same table under another source name: the freshness question still open stands, nothing is asked twice;
    # the output says which name it used and how to pick another
    (sla,) = [e for e in store.escalations() if e.finding_pattern == "onboard:freshness_sla"]
    renamed = CliRunner().invoke(main, ["--project-dir", str(project), "--state-dir", str(state), "onboard",
                                        "--table", "raw_zendesk.tickets", "--source", "helpdesk"], catch_exceptions=False)
    assert renamed.exit_code == 0, renamed.output
    assert "  escalation ESC-" not in renamed.output and "source name:" not in renamed.output
    assert f"  already asked, still open: {sla.id} (context_gap, on zendesk.tickets)" in renamed.output, renamed.output
    default = CliRunner().invoke(main, ["--project-dir", str(project), "--state-dir", str(state), "onboard",
                                        "--table", "raw_zendesk.tickets"], catch_exceptions=False)
    assert ("  source name: zendesk (the existing source zendesk reads the schema raw_zendesk); "
            "to name it otherwise, re-run with --source NAME") in default.output, default.output


def test_the_demo_ships_a_table_to_onboard(demo_env) -> None:
    """`agent-de onboard --table support.tickets` on the demo, as the demo's closing line suggests."""
    store = open_state_store(demo_env.settings)
    before = {e.id for e in store.escalations()}
    try:
        result = CliRunner().invoke(main, ["--project-dir", str(demo_env.project_dir), "--state-dir",
                                           str(demo_env.settings.state_dir), "onboard", "--table", "support.tickets", "--json"],
                                    catch_exceptions=False)
        assert result.exit_code == 0, result.output
        out = json.loads(result.output)
        assert out["model_name"] == "stg_support__tickets" and out["applied"] == []  # a proposal until --apply
        assert {p["column"]: p["kind"] for p in out["pii"]} == {"requester_email": "email"}
        sql = out["files"]["models/staging/support/stg_support__tickets.sql"]
        assert '"TicketId" as ticket_id' in sql
        assert any(d.startswith("grain: TicketId is unique") for d in out["done"])
        assert any("relationships to ref('stg_orders').order_id" in d for d in out["done"])
        assert not (demo_env.project_dir / "models/staging/support").exists()
    finally:
        drop_escalations(store, lambda e: e.id in before)
