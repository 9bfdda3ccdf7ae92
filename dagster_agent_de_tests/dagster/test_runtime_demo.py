"""``model_runtime`` on the session's real demo build: dagster-dbt's ``Execution Duration`` is read, and the
CLI investigates a runtime failure through the performance library."""

from __future__ import annotations

import json

from click.testing import CliRunner
from dagster import AssetCheckKey, AssetKey, DagsterInstance

from dagster_agent_de.cli import main


def test_the_demo_build_evaluated_model_runtime_from_dagster_dbt_metadata(demo_env) -> None:
    with DagsterInstance.get() as instance:
        history = instance.event_log_storage.get_asset_check_execution_history(
            AssetCheckKey(AssetKey("fct_orders"), "model_runtime"), limit=5)
        evaluations = [r.event.dagster_event.event_specific_data for r in history
                       if r.event is not None and r.event.dagster_event is not None and r.run_id == demo_env.run_id]
    assert evaluations, "the dbt_build run evaluated no model_runtime check on fct_orders"
    md = evaluations[0].metadata
    assert md["runtime_source"].value == "materialization" and md["seconds"].value > 0
    assert evaluations[0].passed  # the first runs only learn the baseline


def test_cli_investigates_a_runtime_failure_from_the_plan(demo_env) -> None:
    args = ["--state-dir", str(demo_env.settings.state_dir), "--project-dir", str(demo_env.project_dir)]
    r = CliRunner().invoke(main, [*args, "investigate", "--asset", "fct_orders", "--check", "model_runtime",
                                  "--json", "--no-llm"])
    assert r.exit_code == 0, r.output
    top = json.loads(r.output)["findings"][0]
    assert top["model"] == "fct_orders"
    assert top["evidence"][0]["statement"].startswith("EXPLAIN (ANALYZE, FORMAT JSON) ")
    assert "rows scanned" in top["evidence"][0]["result_summary"]
