"""End to end in a running Dagster deployment (`dagster dev`: webserver + daemon), SQLite and PostgreSQL.

Materializes the demo through GraphQL, injects WT-02, and waits until the failed-check sensor has
launched the investigation and the daemon has run it; then asserts what a user sees in the UI.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from dagster_agent_de.demo.incidents import get_incident, inject
from dagster_agent_de_tests.deployment.harness import DagsterDev

pytestmark = pytest.mark.deployment

CHECK_EXECUTIONS = """query($k: AssetKeyInput!, $c: String!) { assetCheckExecutions(assetKey: $k, checkName: $c, limit: 3) {
  runId status evaluation { success description metadataEntries { label
    ... on FloatMetadataEntry { floatValue } ... on IntMetadataEntry { intValue } } } } }"""
OBSERVATIONS = """query($k: AssetKeyInput!) { assetOrError(assetKey: $k) { ... on Asset { assetObservations(limit: 10) {
  runId metadataEntries { label ... on TextMetadataEntry { text } ... on FloatMetadataEntry { floatValue } } } } } }"""
MATERIALIZATIONS = """query($k: AssetKeyInput!) { assetOrError(assetKey: $k) { ... on Asset { assetMaterializations(limit: 1) {
  runId metadataEntries { label ... on IntMetadataEntry { intValue } ... on TableMetadataEntry { table { records } } } } } } }"""


def _entries(items: list[dict]) -> dict:
    out = {}
    for e in items:
        out[e["label"]] = next((e[k] for k in ("floatValue", "intValue", "text", "table") if k in e), None)
    return out


@pytest.fixture(params=["sqlite", "postgres"])
def deployment(request, tmp_path: Path):
    pg = None
    dagster_yaml = ""
    if request.param == "postgres":
        from dagster_agent_de_tests.deployment.postgres import started_postgres

        pg = started_postgres()
        dagster_yaml = pg.dagster_yaml()
    from dagster_agent_de_tests.notify.servers import http_recorder

    with http_recorder() as slack:  # Slack's Web API on loopback: the code server posts to it
        cfg = tmp_path / "notifications.yml"
        cfg.write_text("notifications:\n  ui_url: http://127.0.0.1:3000\n  channels:\n"
                       "    analytics: {kind: slack, channel: '#analytics', base_url_env: SLACK_API}\n"
                       "    general: {kind: slack, channel: '#data', base_url_env: SLACK_API}\n"
                       "  default: [general]\n  owners: {analytics-team: [analytics]}\n")
        dev = DagsterDev(tmp_path / "deploy", dagster_yaml, extra_env={
            "AGENT_DE_NOTIFICATIONS": str(cfg), "SLACK_BOT_TOKEN": "xoxb-test", "SLACK_API": slack.url + "/api/",
            # a run the daemon cannot launch (the reload below races its dequeue) is retried within seconds
            "AGENT_DE_RETRY_BACKOFF_SECONDS": "2"})
        try:
            dev.start()
            dev.storage = request.param
            dev.slack = slack
            yield dev
        finally:
            dev.stop()
            if pg is not None:
                pg.stop()


def test_wt02_caught_investigated_and_escalated_in_a_running_deployment(deployment: DagsterDev) -> None:
    dev = deployment
    first = dev.launch("dbt_build")
    assert dev.wait_run(first, 300) == "SUCCESS", dev.tail()
    inject(get_incident("wt02_join_drop"), dev.project, dev.state / "warehouse.duckdb")
    if dev.storage == "sqlite":
        # the daemon is down when the check fails: the failure must still be investigated, once
        dev.stop()
        dev.run_job_offline("dbt_build")
        dev.start()
        runs = dev.graphql('{ runsOrError(filter: {pipelineName: "dbt_build"}) { ... on Runs { results { runId } } } }')
        second = runs["runsOrError"]["results"][0]["runId"]
    else:
        second = dev.launch("dbt_build")
        dev.wait_run(second, 300)  # non-blocking reconciliation failures do not fail the run
    assert dev.reload_location() == "WorkspaceLocationEntry"  # a code location reload mid-flight

    # the failed check, with its numbers, on fct_orders
    execs = dev.graphql(CHECK_EXECUTIONS, {"k": {"path": ["fct_orders"]}, "c": "orders_vs_stripe"})["assetCheckExecutions"]
    latest = next(e for e in execs if e["runId"] == second)
    assert latest["evaluation"]["success"] is False
    md = _entries(latest["evaluation"]["metadataEntries"])
    assert 50 < md["missing_pct"] < 90 and md["missing_in_pipeline"] > 0

    # the daemon's failed-check sensor launched the investigation, tagged with the check and the triggering run
    # A reload while the daemon dequeues a run can fail that launch (Dagster: "Tried to start a run on a
    # server after telling it to shut down"); the sensor then requests the next attempt of the same failure.
    def investigations():
        return [r for r in dev.runs_tagged("agent_de/check", "fct_orders:orders_vs_stripe") if r["jobName"] == "investigate"]

    def investigated():
        return [r for r in investigations() if r["status"] == "SUCCESS"]
    (inv,) = dev.wait_for("the investigation run", investigated, timeout=300)
    tags = {t["key"]: t["value"] for t in inv["tags"]}
    assert tags["agent_de/triggering_run"] == second and tags["agent_de/root_cause"] == "join_row_drop"

    # the finding, as an observation on the culprit model
    obs = dev.graphql(OBSERVATIONS, {"k": {"path": ["int_orders_enriched"]}})["assetOrError"]["assetObservations"]
    finding = [_entries(o["metadataEntries"]) for o in obs if o["runId"] == inv["runId"]]
    assert any(f.get("agent_de/pattern") == "join_row_drop" and f.get("agent_de/confidence", 0) > 0.8 for f in finding)

    # the open escalation in the escalations asset
    mats = dev.graphql(MATERIALIZATIONS, {"k": {"path": ["agent_de", "escalations"]}})["assetOrError"]["assetMaterializations"]
    assert mats and mats[0]["runId"] == inv["runId"]
    queue = _entries(mats[0]["metadataEntries"])
    assert queue["open"] >= 1
    assert "authority_gap" in str(queue["queue"]["records"])

    # exactly one investigation for the failure, even after more sensor ticks
    import time

    time.sleep(12)
    runs = investigations()
    assert [r["runId"] for r in runs if r["status"] == "SUCCESS"] == [inv["runId"]]
    retried = [r for r in runs if r["runId"] != inv["runId"]]  # only attempts that failed before the one that succeeded
    assert all(r["status"] == "FAILURE" for r in retried), dev.tail()
    assert int(tags.get("agent_de/attempt", "1")) == len(retried) + 1

    # exactly one thread in the owner's Slack channel: the failed check, then the finding and the escalation as replies
    every, ts_all = dev.slack.posted("chat.postMessage"), dev.slack.answered("chat.postMessage")
    thread = [(p, t) for p, t in zip(every, ts_all, strict=True) if p["channel"] == "#analytics"]
    first_ts = thread[0][1]
    assert not thread[0][0].get("thread_ts") and all(p["thread_ts"] == first_ts for p, _ in thread[1:])
    texts = [p["text"] for p, _ in thread]
    assert "orders_vs_stripe failed on fct_orders" in texts[0]
    assert any("join_row_drop in int_orders_enriched" in t for t in texts[1:])
    assert any("Decision needed (authority gap)" in t for t in texts[1:])
    assert all("http://127.0.0.1:3000/" in t for t in texts)  # every message links to the Dagster UI
