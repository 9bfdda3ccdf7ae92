"""The agent attached to a team's own dbt location (sidecar) and merged into it (library mode).

The team's project is not the demo's: CTE-style models, keys prefixed ``analytics`` by their own
translator, targets ``dev``/``prod``, the DuckDB file named only in their profile. Real dbt builds,
a real temporary Dagster instance; the team's job runs dbt, the agent never does.
"""

from __future__ import annotations

import os

import pytest
from dagster import (
    AssetCheckKey,
    AssetKey,
    Definitions,
    build_sensor_context,
    instance_for_test,
)

from dagster_agent_de import build_agent_de_definitions
from dagster_agent_de.config import resolve_settings
from dagster_agent_de.dagster.definitions import build_definitions
from dagster_agent_de.dagster.sidecar import AFTER_FAILED_RUN_SENSOR, AFTER_RUN_SENSOR, CHECKS_JOB

ORDERS = AssetKey(["analytics", "orders"])
RECONCILE = AssetCheckKey(ORDERS, "orders_vs_raw")


@pytest.fixture
def prefix_env(monkeypatch):
    monkeypatch.setenv("AGENT_DE_ASSET_KEY_PREFIX", "analytics")
    monkeypatch.delenv("AGENT_DE_MODE", raising=False)


def _sensor_requests(defs: Definitions, name: str, instance, cursor: str | None = None, ticks: int = 4):
    """Tick like the daemon does, until a tick asks for nothing more."""
    sensor = defs.get_sensor_def(name)
    requests = []
    for _ in range(ticks):
        with build_sensor_context(instance=instance, cursor=cursor, repository_def=defs.get_repository_def(),
                                  resources={"agent_warehouse": defs.resources["agent_warehouse"]}) as ctx:
            result = sensor.evaluate_tick(ctx)
        cursor = result.cursor
        requests += result.run_requests or []
        if not result.run_requests:
            break
    return requests, cursor


def test_sidecar_attaches_to_the_teams_keys_and_owns_no_dbt_asset(team_env, prefix_env) -> None:
    settings = resolve_settings(team_env.state_dir, team_env.project_dir)
    assert settings.resolved_target == "dev" and settings.warehouse_type == "duckdb"
    assert settings.duckdb_path == team_env.warehouse_path  # named only in the team's profile
    defs = build_definitions(settings)  # not the demo: sidecar by default
    graph = defs.resolve_asset_graph()
    assert "dbt_build" not in {j.name for j in defs.jobs}
    assert CHECKS_JOB in {j.name for j in defs.jobs}
    team_keys = {k for k in graph.get_all_asset_keys() if k.path[0] == "analytics"}
    assert ORDERS in team_keys and AssetKey(["analytics", "shop", "orders"]) in team_keys
    # the team's keys are only targets of the agent's checks here: nothing the agent could materialize
    assert not [k for k in team_keys if graph.get(k).is_materializable]
    checks = {k for k in graph.asset_check_keys}
    assert RECONCILE in checks
    assert AssetCheckKey(AssetKey(["analytics", "shop", "orders"]), "schema_drift") in checks
    assert not [k for k in checks if k.asset_key.path[0] != "analytics" and k.asset_key.path[0] != "agent_de"]


def test_a_join_bug_in_the_teams_run_is_checked_and_investigated_on_their_keys(team_env, prefix_env) -> None:
    team = team_env.location()
    settings = resolve_settings(team_env.state_dir, team_env.project_dir)
    agent = build_definitions(settings)
    with instance_for_test() as instance:
        # first tick: the run-status sensor starts watching from now
        _, cursor = _sensor_requests(agent, AFTER_RUN_SENSOR, instance)
        _, failed_cursor = _sensor_requests(agent, AFTER_FAILED_RUN_SENSOR, instance)
        assert team.defs.get_job_def("acme_nightly").execute_in_process(instance=instance).success
        requests, cursor = _sensor_requests(agent, AFTER_RUN_SENSOR, instance, cursor)
        assert len(requests) == 1 and RECONCILE in set(requests[0].asset_check_keys)
        checks_job = agent.get_job_def(CHECKS_JOB)
        result = checks_job.get_subset(asset_check_selection=set(requests[0].asset_check_keys)).execute_in_process(instance=instance)
        evals = {e.asset_check_key: e for e in result.get_asset_check_evaluations()}
        assert evals[RECONCILE].passed, evals[RECONCILE].metadata

        with team_env.patched("models/marts/orders.sql", "left join customers", "inner join customers"):
            team_run = team.defs.get_job_def("acme_nightly").execute_in_process(instance=instance, raise_on_error=False)
            team_evals = {e.asset_check_key.name: e.passed for e in team_run.get_asset_check_evaluations()}
            relationships = [n for n in team_evals if n.startswith("relationships_stg_payments_order_id")]
            assert relationships and not team_evals[relationships[0]]  # their own dbt test caught it too
            ok, cursor = _sensor_requests(agent, AFTER_RUN_SENSOR, instance, cursor)
            failed, failed_cursor = _sensor_requests(agent, AFTER_FAILED_RUN_SENSOR, instance, failed_cursor)
            requests = ok + failed
            assert len(requests) == 1, "a run of theirs whose dbt test failed is checked too"
            result = checks_job.get_subset(asset_check_selection=set(requests[0].asset_check_keys)).execute_in_process(instance=instance)
            evals = {e.asset_check_key: e for e in result.get_asset_check_evaluations()}
            assert not evals[RECONCILE].passed
            assert evals[RECONCILE].metadata["missing_in_pipeline"].value == 20

            # the failed-check sensor picks up the agent's check and the team's own dbt test
            requests, _ = _sensor_requests(agent, "failed_check_sensor", instance)
            wanted = {r.tags["agent_de/check"] for r in requests}
            assert "analytics/orders:orders_vs_raw" in wanted
            assert any(w.startswith("analytics/stg_payments:relationships_") for w in wanted)
            req = next(r for r in requests if r.tags["agent_de/check"] == "analytics/orders:orders_vs_raw")
            inv = agent.get_job_def("investigate").execute_in_process(run_config=req.run_config, instance=instance,
                                                                       tags=req.tags)
            assert inv.success
        finding = instance.get_latest_materialization_event(AssetKey(["agent_de", "findings"]))
        assert finding is not None
        observations = [e for e in inv.all_events if e.event_type_value == "ASSET_OBSERVATION"]
        observed = {e.asset_key for e in observations}
        assert ORDERS in observed  # the finding lands on the asset the team looks at
        assert not [k for k in observed if k.path[0] not in ("analytics", "agent_de")]
        top = inv.output_for_node("investigate_failure")["findings"][0]
        assert top["pattern"] == "join_row_drop" and top["model"] == "orders", top


def test_library_mode_merges_into_the_teams_definitions(team_env, monkeypatch) -> None:
    monkeypatch.delenv("AGENT_DE_ASSET_KEY_PREFIX", raising=False)
    team = team_env.location()
    agent = build_agent_de_definitions(dbt_project=team_env.project_dir, dbt_assets=[team.acme_dbt],
                                       state_dir=team_env.state_dir / "library")
    merged = Definitions.merge(team.defs, agent)
    graph = merged.resolve_asset_graph()
    assert RECONCILE in graph.asset_check_keys  # keyed by the translator found on their dbt assets
    jobs = {j.name for j in merged.resolve_all_job_defs()}
    assert {"acme_nightly", CHECKS_JOB, "investigate"} <= jobs
    with instance_for_test() as instance:
        assert merged.get_job_def("acme_nightly").execute_in_process(instance=instance).success
        result = merged.get_job_def(CHECKS_JOB).execute_in_process(instance=instance)
        evals = {e.asset_check_key: e.passed for e in result.get_asset_check_evaluations()}
        assert evals[RECONCILE] is True
        inv = merged.get_job_def("investigate").execute_in_process(instance=instance, run_config={
            "ops": {"investigate_failure": {"config": {"asset_key": ["analytics", "orders"], "check_name": "orders_vs_raw"}}}})
        assert inv.success
        assert ORDERS in {e.asset_key for e in inv.all_events if e.event_type_value == "ASSET_OBSERVATION"}


def test_the_teams_translator_by_import_path(team_env, monkeypatch) -> None:
    team_env.location()  # importable as team_location
    monkeypatch.setenv("AGENT_DE_DBT_TRANSLATOR", "team_location:AcmeTranslator")
    defs = build_definitions(resolve_settings(team_env.state_dir, team_env.project_dir), mode="sidecar")
    assert RECONCILE in defs.resolve_asset_graph().asset_check_keys
    assert os.environ["AGENT_DE_DBT_TRANSLATOR"] == "team_location:AcmeTranslator"
