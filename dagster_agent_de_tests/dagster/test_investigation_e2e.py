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
from dagster_agent_de.engines.investigate.fixes import apply_diff
from dagster_agent_de.manifest import Manifest
from dagster_agent_de.project import DbtProjectInfo
from dagster_agent_de_tests.notify.servers import http_recorder

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


def test_wt02_join_drop_end_to_end(env, tmp_path, monkeypatch) -> None:
    demo_env, defs, instance, cursor = env
    enriched = "models/intermediate/int_orders_enriched.sql"
    with http_recorder() as slack, demo_env.incident("wt02_join_drop", rebuild="int_orders_enriched+", restore=(enriched,)):
        # the owner's Slack channel, through dagster-slack's SlackResource pointed at a local Web API
        cfg = tmp_path / "notifications.yml"
        cfg.write_text("notifications:\n  ui_url: https://dagster.acme.io\n  channels:\n"
                       "    analytics: {kind: slack, channel: '#analytics', base_url_env: SLACK_API}\n"
                       "    general: {kind: slack, channel: '#data', base_url_env: SLACK_API}\n"
                       "  default: [general]\n  owners: {analytics-team: [analytics]}\n")
        monkeypatch.setenv("AGENT_DE_NOTIFICATIONS", str(cfg))
        monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-test")
        monkeypatch.setenv("SLACK_API", slack.url + "/api/")
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
        # exactly one thread, in the owner's channel: the failed check, then the finding and the escalation as replies
        every, ts_all = slack.posted("chat.postMessage"), slack.answered("chat.postMessage")
        posts = [p for p in every if p["channel"] == "#analytics"]
        ts = [t for p, t in zip(every, ts_all, strict=True) if p["channel"] == "#analytics"]
        assert len(posts) >= 3 and not posts[0].get("thread_ts") and all(p["thread_ts"] == ts[0] for p in posts[1:])
        # the escalation's own owner (finance signs off) is told too, in the default channel, with the incident id
        others = [p for p in every if p["channel"] != "#analytics"]
        assert {p["channel"] for p in others} <= {"#data"}
        assert all("Decision needed" in p["text"] and p["text"].startswith(posts[0]["text"][:13]) for p in others)
        assert "orders_vs_stripe failed on fct_orders" in posts[0]["text"] and "missing_pct" in posts[0]["text"]
        assert "join_row_drop in int_orders_enriched" in posts[1]["text"] and "https://dagster.acme.io/runs/" in posts[1]["text"]
        assert any("Decision needed (authority gap)" in p["text"] for p in posts[2:])
        _apply_top_fix(demo_env, top)  # the proposed fix, applied, makes the check pass
        demo_env.dbt("run", "-s", "int_orders_enriched+", "-q")
        assert _passed(_run_check_job(defs, instance, "reconcile"), "orders_vs_stripe")
    assert "hubspot" not in (demo_env.project_dir / enriched).read_text()


def _apply_top_fix(demo_env, top) -> None:
    from dagster_agent_de.core.models import ProposedFix

    info = DbtProjectInfo.from_settings(demo_env.settings)
    fix = ProposedFix.model_validate(top["proposed_fix"])
    assert fix.diff, f"no diff proposed: {fix.description}"
    apply_diff(Manifest.load(info.manifest_path, demo_env.project_dir), fix)


def _passed(run, check: str) -> bool:
    return {e.check_name: e.passed for e in run.get_asset_check_evaluations()}[check]


def test_wt01_null_semantics_end_to_end(env) -> None:
    demo_env, defs, instance, cursor = env
    with demo_env.incident("wt01_null_semantics", rebuild="fct_orders+", restore=("models/marts/fct_orders.sql",)):
        demo_env.dbt("run", "-s", "fct_orders+", "-q")
        checked = _run_check_job(defs, instance, "reconcile")
        failed = {e.check_name: e for e in checked.get_asset_check_evaluations()}["orders_vs_stripe"]
        assert not failed.passed and 5 < failed.metadata["missing_pct"].value < 15
        run, _, _ = _investigate(defs, instance, cursor, "fct_orders:orders_vs_stripe")
        top = _assert_finding(instance, run, AssetKey(["fct_orders"]), "null_semantics", "fct_orders")
        assert top["columns"] == ["status"] and top["needs_context"]
        _apply_top_fix(demo_env, top)
        demo_env.dbt("run", "-s", "fct_orders+", "-q")
        assert _passed(_run_check_job(defs, instance, "reconcile"), "orders_vs_stripe")


def test_wt01_currency_mixing_end_to_end(env) -> None:
    demo_env, defs, instance, cursor = env
    with demo_env.incident("wt01_currency_mixing", rebuild="fct_revenue"):
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
        assert _passed(_run_check_job(defs, instance, "reconcile"), "revenue_vs_finance_export")


def test_wt01_duplicate_payments_end_to_end(env) -> None:
    demo_env, defs, instance, cursor = env
    stg = "models/staging/stg_stripe_charges.sql"
    with demo_env.incident("wt01_duplicate_payments", rebuild="stg_stripe_charges+", restore=(stg,)):
        build = _run_check_job(defs, instance, "dbt_build", [AssetKey(["stg_stripe_charges"])])
        assert not _passed(build, "unique_stg_stripe_charges_charge_id")
        run, _, _ = _investigate(defs, instance, cursor, "stg_stripe_charges:unique_stg_stripe_charges_charge_id")
        top = _assert_finding(instance, run, AssetKey(["stg_stripe_charges"]), "duplicate_key", "stg_stripe_charges")
        assert "stripe.charges" in top["summary"]  # traced to the source
        _apply_top_fix(demo_env, top)
        rebuilt = _run_check_job(defs, instance, "dbt_build", [AssetKey(["stg_stripe_charges"])])
        assert _passed(rebuilt, "unique_stg_stripe_charges_charge_id")


def test_wt04_rename_end_to_end(env) -> None:
    demo_env, defs, instance, cursor = env
    assert _run_check_job(defs, instance, "schema_drift_check").success  # the baseline
    stg, yml = "models/staging/stg_stripe_charges.sql", "models/staging/_sources.yml"
    try:
        with demo_env.incident("wt04_rename", rebuild="stg_stripe_charges+", restore=(stg, yml)):
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
        _run_check_job(defs, instance, "schema_drift_check")


def test_llm_second_opinion_through_the_investigate_job(env, monkeypatch) -> None:
    """With ANTHROPIC_API_KEY on the code location, the job adds the LLM's finding as an observation.

    The Anthropic SDK talks HTTP to a local server replaying a recorded conversation
    (ANTHROPIC_BASE_URL, as a gateway would be configured); its SQL runs on the demo warehouse.
    """
    from dagster_agent_de.adapters.audit import read_audit
    from dagster_agent_de.adapters.state import open_state_store
    from dagster_agent_de_tests.llm_replay import Replay

    demo_env, defs, instance, _ = env
    replay = Replay("demo_manual_review.json")
    with replay.serve() as url:
        monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test-dagster")
        monkeypatch.setenv("ANTHROPIC_BASE_URL", url)
        run = defs.resolve_job_def("investigate").execute_in_process(
            instance=instance, run_config={"ops": {"investigate_failure": {"config": {
                "asset_key": ["fct_orders"], "check_name": "orders_vs_stripe"}}}, **QUIET})
    assert run.success
    report = run.output_for_node("investigate_failure")
    llm = [f for f in report["findings"] if f["source"] == "llm"]
    assert len(llm) == 1 and llm[0]["needs_context"].startswith("Was a backfill")
    with demo_env.warehouse() as wh:
        truth = wh.query("select (select count(*) from main.fct_orders) as orders, "
                         "(select count(*) from main.stg_stripe_charges) as charges", rationale="test").one()
    (result,) = replay.tool_results(1)
    assert json.loads(result["content"])["rows"] == [truth]
    assert llm[0]["evidence"][0]["row_count"] == 1
    obs = [r.asset_observation for r in instance.fetch_observations(AssetKey(["fct_orders"]), limit=20).records
           if r.run_id == run.run_id and r.asset_observation.metadata.get("agent_de/source")]
    assert {o.metadata["agent_de/source"].value for o in obs} >= {"llm"}
    calls = [e for e in read_audit(open_state_store(demo_env.settings)) if e.kind == "api_call" and e.run_id == run.run_id]
    assert len(calls) == 2 and all(e.outcome == "ok" and url in e.statement for e in calls)
