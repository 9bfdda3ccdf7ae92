"""The code location over the real demo build and a real temporary Dagster instance."""

from __future__ import annotations

import json

from dagster import AssetKey, DagsterInstance

from dagster_agent_de.dagster.definitions import build_definitions
from dagster_agent_de.project import DbtProjectInfo, load_manifest


def test_every_dbt_model_is_an_asset_and_dbt_tests_are_checks(demo_env) -> None:
    defs = build_definitions(demo_env.settings)
    graph = defs.resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    manifest = load_manifest(DbtProjectInfo.from_settings(demo_env.settings).manifest_path)
    models = {n["name"] for n in manifest["nodes"].values() if n["resource_type"] == "model"}
    tests = {n["name"] for n in manifest["nodes"].values() if n["resource_type"] == "test"}
    sources = {f"{s['source_name']}/{s['name']}" for s in manifest["sources"].values()}
    assert models and models <= keys
    assert sources <= keys
    check_names = {c.name for c in graph.asset_check_keys}
    assert tests <= check_names
    assert {"orders_vs_stripe", "revenue_vs_finance_export", "schema_drift", "row_volume", "pii_tagging"} <= check_names
    assert {s.name for s in defs.schedules} == {"reconcile_daily", "pii_scan_daily", "metric_audit_weekly",
                                                "escalation_digest_daily"}
    assert {s.name for s in defs.sensors} == {"schema_poll_sensor", "failed_check_sensor"}
    assert {"dbt_build", "reconcile", "schema_drift_check", "investigate", "answer_escalation", "onboard_source",
            "pii_scan", "metric_audit", "resolve_entities"} <= {j.name for j in defs.resolve_all_job_defs()}
    # every model that loads data (the marts are tables) has a volume check; views do not (counting runs them)
    volume = {k.asset_key.to_user_string() for k in graph.asset_check_keys if k.name == "row_volume"}
    tables = {n["name"] for n in manifest["nodes"].values()
              if n["resource_type"] == "model" and n["config"]["materialized"] in ("table", "incremental")}
    assert volume == tables == {"fct_orders", "fct_revenue", "dim_customers"}
    pii = {k.asset_key.to_user_string() for k in graph.asset_check_keys if k.name == "pii_tagging"}
    assert pii == sources
    runtime = {k.asset_key.to_user_string() for k in graph.asset_check_keys if k.name == "model_runtime"}
    # every table and incremental model, against its own baseline; a view's runtime is only its CREATE VIEW
    assert runtime == tables


def test_demo_left_materializations_and_check_results_in_the_instance(demo_env) -> None:
    with DagsterInstance.get() as instance:
        assert instance.root_directory == str(demo_env.dagster_home)
        mat = instance.get_latest_materialization_event(AssetKey("fct_orders"))
        assert mat is not None and mat.run_id == demo_env.run_id
        run = instance.get_run_by_id(demo_env.run_id)
        assert run is not None and run.is_success


def test_workspace_yaml_points_at_the_defs(demo_env) -> None:
    import yaml

    from dagster_agent_de.config import BUNDLED_PROJECT_DIR

    ws = yaml.safe_load((BUNDLED_PROJECT_DIR.parent / "workspace.yaml").read_text())
    entry = ws["load_from"][0]["python_module"]
    assert entry["module_name"] == "dagster_agent_de.dagster.definitions" and entry["attribute"] == "defs"


def test_definitions_validate_command_passes(demo_env) -> None:
    import os
    import subprocess
    import sys
    from pathlib import Path

    from dagster_agent_de.config import BUNDLED_PROJECT_DIR

    dagster = Path(sys.executable).parent / "dagster"
    env = {**os.environ, "AGENT_DE_STATE_DIR": str(demo_env.settings.state_dir),
           "AGENT_DE_PROJECT_DIR": str(demo_env.project_dir)}
    proc = subprocess.run(
        [str(dagster), "definitions", "validate", "-w", "workspace.yaml"],
        cwd=BUNDLED_PROJECT_DIR.parent, env=env, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_manifest_schema_is_the_dbt_one(demo_env) -> None:
    info = DbtProjectInfo.from_settings(demo_env.settings)
    data = json.loads(info.manifest_path.read_text())
    assert data["metadata"]["dbt_schema_version"].startswith("https://schemas.getdbt.com/dbt/manifest/")


def test_the_digest_job_reminds_an_overdue_question_once(demo_env, tmp_path, monkeypatch) -> None:
    """The question stays open past its due date; the daily digest job reminds its owner once, however many times
    it runs (the key is in the state store)."""
    from dataclasses import replace
    from datetime import timedelta

    from dagster_agent_de.adapters.state import open_state_store
    from dagster_agent_de.config import resolve_settings
    from dagster_agent_de.core.models import Escalation, EscalationKind, EscalationOption, utcnow
    from dagster_agent_de.engines.escalate.raising import raise_escalations
    from dagster_agent_de_tests.notify.servers import http_recorder

    settings = replace(resolve_settings(tmp_path / "state", demo_env.project_dir, "duckdb"),
                       duckdb_override=demo_env.settings.duckdb_path)
    (late,) = raise_escalations(open_state_store(settings), [Escalation(
        id="", kind=EscalationKind.CONTEXT_GAP, decision="Which column replaces lifecycle_stage?", owner="data-team",
        asset="hubspot.contacts", finding_pattern="schema_drift:column_dropped:lifecycle_stage",
        due_at=utcnow() - timedelta(hours=1), options=[EscalationOption(label="none")])])
    with http_recorder() as srv, DagsterInstance.ephemeral() as instance:
        cfg = tmp_path / "notifications.yml"
        cfg.write_text("notifications:\n  channels:\n    team: {kind: webhook, url_env: HOOK_URL}\n"
                       "  default: [team]\n  digest: [team]\n")
        monkeypatch.setenv("AGENT_DE_NOTIFICATIONS", str(cfg))
        monkeypatch.setenv("HOOK_URL", srv.url + "/hook")
        job = build_definitions(settings).resolve_job_def("escalation_digest")
        first = job.execute_in_process(instance=instance).output_for_node("send_digest")
        second = job.execute_in_process(instance=instance).output_for_node("send_digest")
    assert (first["reminders"], second["reminders"]) == (1, 0)
    events = [(h["event"], h["title"]) for h in srv.posted("/hook")]
    assert [e for e, _ in events].count("overdue") == 1
    assert any(e == "overdue" and t.startswith(f"Reminder: {late.id} is overdue") for e, t in events)
    assert open_state_store(settings).escalations()[0].status() == "overdue"
