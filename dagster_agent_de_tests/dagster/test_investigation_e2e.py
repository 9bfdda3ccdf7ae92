"""The seed's incidents end to end, in process, on the session's real dbt build and Dagster instance.

For each incident: the check fails, the failed-check sensor requests one investigation run,
the investigation names the right pattern and model top-1, and the proposed fix, applied,
makes the check pass.
"""

from __future__ import annotations

import json

import pytest
from dagster import AssetKey, DagsterInstance, build_sensor_context

from dagster_agent_de.dagster.definitions import build_definitions
from dagster_agent_de.dagster.investigate import FINDINGS_ASSET
from dagster_agent_de.demo.incidents import get_incident, inject, revert
from dagster_agent_de.engines.investigate.fixes import apply_diff
from dagster_agent_de.manifest import Manifest
from dagster_agent_de.project import DbtProjectInfo

QUIET = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}


def _sensor_tick(defs, instance, cursor):
    sensor = defs.resolve_sensor_def("failed_check_sensor")
    with build_sensor_context(instance=instance, cursor=cursor, repository_def=defs.get_repository_def(),
                              resources={"agent_warehouse": defs.resources["agent_warehouse"]}) as ctx:
        result = sensor(ctx)
    return result, (getattr(result, "cursor", None) or ctx.cursor)


def _run_check_job(defs, instance, job_name, selection=None):
    job = defs.resolve_job_def(job_name)
    return job.execute_in_process(instance=instance, raise_on_error=False, run_config=QUIET,
                                  asset_selection=selection)


@pytest.fixture
def env(demo_env):
    defs = build_definitions(demo_env.settings)
    with DagsterInstance.get() as instance:
        _, cursor = _sensor_tick(defs, instance, None)  # first tick: remember what already happened
        yield demo_env, defs, instance, cursor


def _investigate(defs, instance, cursor, expected_check):
    result, cursor = _sensor_tick(defs, instance, cursor)
    requests = [r for r in result.run_requests if r.tags["agent_de/check"] == expected_check]
    assert len(requests) == 1, [r.tags for r in result.run_requests]
    request = requests[0]
    again, _ = _sensor_tick(defs, instance, cursor)
    assert not [r for r in (getattr(again, "run_requests", None) or []) if r.tags["agent_de/check"] == expected_check]
    run = defs.resolve_job_def("investigate").execute_in_process(
        instance=instance, run_config={**request.run_config, **QUIET}, tags=request.tags)
    assert run.success
    return run, request, cursor


def _assert_finding(instance, run, failing: AssetKey, pattern: str, model: str):
    report = run.output_for_node("investigate_failure")
    top = report["findings"][0]
    assert (top["pattern"], top["model"]) == (pattern, model), json.dumps(report["findings"][:3], indent=1)[:3000]
    assert top["evidence"] and top["evidence"][0]["statement"]
    def finding_obs(key):
        recs = instance.fetch_observations(key, limit=20).records
        return [r.asset_observation for r in recs if r.run_id == run.run_id and "agent_de/pattern" in r.asset_observation.metadata]

    (obs,) = finding_obs(failing)
    assert obs.metadata["agent_de/pattern"].value == pattern
    assert obs.metadata["agent_de/investigation_run"].value == run.run_id
    culprit_obs = finding_obs(AssetKey([model]))
    assert culprit_obs and culprit_obs[0].metadata["agent_de/pattern"].value == pattern
    mat = instance.get_latest_materialization_event(FINDINGS_ASSET)
    assert mat is not None and mat.run_id == run.run_id
    tags = instance.get_run_by_id(run.run_id).tags
    assert tags["agent_de/root_cause"] == pattern and tags["agent_de/culprit"] == model
    return top


def test_wt02_join_drop_end_to_end(env) -> None:
    demo_env, defs, instance, cursor = env
    incident = get_incident("wt02_join_drop")
    inject(incident, demo_env.project_dir, demo_env.settings.duckdb_path)
    try:
        demo_env.dbt("run", "-s", "int_orders_enriched+", "-q")
        checked = _run_check_job(defs, instance, "reconcile")
        evals = {e.check_name: e for e in checked.get_asset_check_evaluations()}
        failed = evals["orders_vs_stripe"]
        assert not failed.passed
        md = failed.metadata
        assert 60 < md["missing_pct"].value < 80  # ~70% of orders dropped
        truth = md["rows_truth"].value
        assert md["missing_in_pipeline"].value == truth - md["matched"].value
        run, request, cursor = _investigate(defs, instance, cursor, "fct_orders:orders_vs_stripe")
        assert request.tags["agent_de/triggering_run"] == checked.run_id
        top = _assert_finding(instance, run, AssetKey(["fct_orders"]), "join_row_drop", "int_orders_enriched")
        assert "stg_hubspot_contacts" in top["summary"] and top["confidence"] > 0.8
        assert instance.get_run_by_id(checked.run_id).tags["agent_de/investigation_run"] == run.run_id
        # the proposed fix, applied, makes the check pass
        info = DbtProjectInfo.from_settings(demo_env.settings)
        from dagster_agent_de.core.models import ProposedFix

        apply_diff(Manifest.load(info.manifest_path, demo_env.project_dir), ProposedFix.model_validate(top["proposed_fix"]))
        demo_env.dbt("run", "-s", "int_orders_enriched+", "-q")
        rechecked = _run_check_job(defs, instance, "reconcile")
        assert {e.check_name: e.passed for e in rechecked.get_asset_check_evaluations()}["orders_vs_stripe"]
    finally:
        revert(incident, demo_env.project_dir, demo_env.settings.duckdb_path)
        text = (demo_env.project_dir / "models/intermediate/int_orders_enriched.sql").read_text()
        assert "hubspot" not in text
        demo_env.dbt("run", "-s", "int_orders_enriched+", "-q")


def _apply_top_fix(demo_env, top) -> None:
    from dagster_agent_de.core.models import ProposedFix

    info = DbtProjectInfo.from_settings(demo_env.settings)
    fix = ProposedFix.model_validate(top["proposed_fix"])
    assert fix.diff, f"no diff proposed: {fix.description}"
    apply_diff(Manifest.load(info.manifest_path, demo_env.project_dir), fix)


def test_wt01_null_semantics_end_to_end(env) -> None:
    demo_env, defs, instance, cursor = env
    incident = get_incident("wt01_null_semantics")
    inject(incident, demo_env.project_dir, demo_env.settings.duckdb_path)
    try:
        demo_env.dbt("run", "-s", "fct_orders+", "-q")
        checked = _run_check_job(defs, instance, "reconcile")
        failed = {e.check_name: e for e in checked.get_asset_check_evaluations()}["orders_vs_stripe"]
        assert not failed.passed and 5 < failed.metadata["missing_pct"].value < 15
        run, _, _ = _investigate(defs, instance, cursor, "fct_orders:orders_vs_stripe")
        top = _assert_finding(instance, run, AssetKey(["fct_orders"]), "null_semantics", "fct_orders")
        assert top["columns"] == ["status"] and top["needs_context"]
        _apply_top_fix(demo_env, top)
        demo_env.dbt("run", "-s", "fct_orders+", "-q")
        rechecked = _run_check_job(defs, instance, "reconcile")
        assert {e.check_name: e.passed for e in rechecked.get_asset_check_evaluations()}["orders_vs_stripe"]
    finally:
        revert(incident, demo_env.project_dir, demo_env.settings.duckdb_path)
        demo_env.dbt("run", "-s", "fct_orders+", "-q")


def test_wt01_currency_mixing_end_to_end(env) -> None:
    demo_env, defs, instance, cursor = env
    incident = get_incident("wt01_currency_mixing")
    inject(incident, demo_env.project_dir, demo_env.settings.duckdb_path)
    try:
        demo_env.dbt("run", "-s", "fct_revenue", "-q")
        checked = _run_check_job(defs, instance, "reconcile")
        failed = {e.check_name: e for e in checked.get_asset_check_evaluations()}["revenue_vs_finance_export"]
        assert not failed.passed and failed.metadata["mismatched_pct.revenue_usd"].value > 50
        assert failed.metadata["mismatched_pct.revenue"].value == 0
        run, _, _ = _investigate(defs, instance, cursor, "fct_revenue:revenue_vs_finance_export")
        top = _assert_finding(instance, run, AssetKey(["fct_revenue"]), "currency_mixing", "fct_revenue")
        assert "revenue_usd" in top["columns"]
        _apply_top_fix(demo_env, top)
        demo_env.dbt("run", "-s", "fct_revenue", "-q")
        rechecked = _run_check_job(defs, instance, "reconcile")
        assert {e.check_name: e.passed for e in rechecked.get_asset_check_evaluations()}["revenue_vs_finance_export"]
    finally:
        revert(incident, demo_env.project_dir, demo_env.settings.duckdb_path)
        demo_env.dbt("run", "-s", "fct_revenue", "-q")


def test_wt01_duplicate_payments_end_to_end(env) -> None:
    demo_env, defs, instance, cursor = env
    incident = get_incident("wt01_duplicate_payments")
    inject(incident, demo_env.project_dir, demo_env.settings.duckdb_path)
    try:
        build = _run_check_job(defs, instance, "dbt_build", [AssetKey(["stg_stripe_charges"])])
        evals = {e.check_name: e for e in build.get_asset_check_evaluations()}
        assert not evals["unique_stg_stripe_charges_charge_id"].passed
        run, _, _ = _investigate(defs, instance, cursor, "stg_stripe_charges:unique_stg_stripe_charges_charge_id")
        top = _assert_finding(instance, run, AssetKey(["stg_stripe_charges"]), "duplicate_key", "stg_stripe_charges")
        assert "stripe.charges" in top["summary"]  # traced to the source
        _apply_top_fix(demo_env, top)
        rebuilt = _run_check_job(defs, instance, "dbt_build", [AssetKey(["stg_stripe_charges"])])
        assert {e.check_name: e.passed for e in rebuilt.get_asset_check_evaluations()}["unique_stg_stripe_charges_charge_id"]
    finally:
        from dagster_agent_de.config import BUNDLED_PROJECT_DIR

        revert(incident, demo_env.project_dir, demo_env.settings.duckdb_path)
        rel = "models/staging/stg_stripe_charges.sql"
        (demo_env.project_dir / rel).write_text((BUNDLED_PROJECT_DIR / rel).read_text())
        demo_env.dbt("run", "-s", "stg_stripe_charges+", "-q")


def test_wt04_rename_end_to_end(env) -> None:
    demo_env, defs, instance, cursor = env
    incident = get_incident("wt04_rename")
    baseline = _run_check_job(defs, instance, "schema_drift_check")
    assert baseline.success
    inject(incident, demo_env.project_dir, demo_env.settings.duckdb_path)
    yml = demo_env.project_dir / "models/staging/_sources.yml"
    original_yml = yml.read_text()
    try:
        checked = _run_check_job(defs, instance, "schema_drift_check")
        evals = {(e.asset_key.to_user_string(), e.check_name): e for e in checked.get_asset_check_evaluations()}
        assert not evals[("stripe/charges", "schema_drift")].passed
        run, _, _ = _investigate(defs, instance, cursor, "stripe/charges:schema_drift")
        top = _assert_finding(instance, run, AssetKey(["stripe", "charges"]), "schema_drift", "stg_stripe_charges")
        assert "amount_cents" in top["proposed_fix"]["diff"]
        _apply_top_fix(demo_env, top)
        demo_env.dbt("run", "-s", "stg_stripe_charges+", "-q")
        rechecked = _run_check_job(defs, instance, "schema_drift_check")
        after = {(e.asset_key.to_user_string(), e.check_name): e for e in rechecked.get_asset_check_evaluations()}
        assert after[("stripe/charges", "schema_drift")].passed
    finally:
        from dagster_agent_de.config import BUNDLED_PROJECT_DIR

        yml.write_text(original_yml)
        rel = "models/staging/stg_stripe_charges.sql"
        (demo_env.project_dir / rel).write_text((BUNDLED_PROJECT_DIR / rel).read_text())
        revert(incident, demo_env.project_dir, demo_env.settings.duckdb_path)
        demo_env.dbt("run", "-s", "stg_stripe_charges+", "-q")
        _run_check_job(defs, instance, "schema_drift_check")
