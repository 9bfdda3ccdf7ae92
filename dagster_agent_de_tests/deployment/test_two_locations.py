"""The agent as a sidecar beside a team's own dbt location, in one running `dagster dev`.

The team's location (its own ``@dbt_assets``, keys prefixed ``analytics`` by its translator, a ``dev``
target) runs dbt; the agent's location attaches checks to those keys, runs them after each of the
team's runs, and investigates failures (its own checks and the team's dbt tests). Through GraphQL,
on SQLite and PostgreSQL storage.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from dagster_agent_de.project import dbt_executable
from dagster_agent_de_tests.conftest import TEAM_PROJECT
from dagster_agent_de_tests.deployment.harness import DagsterDev, free_port
from dagster_agent_de_tests.deployment.test_dagster_dev import CHECK_EXECUTIONS, OBSERVATIONS, _entries

pytestmark = pytest.mark.deployment

TEAM = "analytics"
LINKS = """query($k: AssetKeyInput!, $c: String!) { assetCheckExecutions(assetKey: $k, checkName: $c, limit: 1) {
  evaluation { metadataEntries { label ... on UrlMetadataEntry { url } } } } }"""
RUN_LINKS = """query($k: AssetKeyInput!) { assetOrError(assetKey: $k) { ... on Asset { assetObservations(limit: 10) {
  runId metadataEntries { label ... on PipelineRunMetadataEntry { runId } } } } } }"""
CHECKS_ON_NODE = """query($k: AssetKeyInput!) { assetNodeOrError(assetKey: $k) { ... on AssetNode {
  assetChecksOrError { ... on AssetChecks { checks { name } } } } } }"""


class TwoLocations(DagsterDev):
    """The team's location and the agent's sidecar; no demo project, no demo data."""

    def __init__(self, root: Path, dagster_yaml: str = "") -> None:  # noqa: D107 - mirrors DagsterDev
        self.root = root
        self.home = root / "dagster_home"
        self.state = root / "agent_state"
        self.project = root / "acme"
        self.port = free_port()
        self.log = root / "dagster_dev.log"
        self.proc = None
        self.home.mkdir(parents=True, exist_ok=True)
        (self.home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n" + dagster_yaml)
        shutil.copytree(TEAM_PROJECT, self.project, ignore=shutil.ignore_patterns("target", "warehouse", "__pycache__"))
        sys.path.insert(0, str(self.project))
        from seed_data import load_raw

        load_raw(self.project / "warehouse" / "acme_dev.duckdb")
        venv_bin = str(Path(sys.executable).parent)
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("AGENT_DE_", "DBT_TARGET", "DBT_PROFILES_DIR"))},
            "PATH": venv_bin + os.pathsep + os.environ.get("PATH", ""),
            "PYTHONPATH": str(self.project), "DAGSTER_HOME": str(self.home), "ACME_PROJECT_DIR": str(self.project),
            # the agent is told only where the project is and how the team keys it: no target, no path
            "AGENT_DE_PROJECT_DIR": str(self.project), "AGENT_DE_STATE_DIR": str(self.state),
            "AGENT_DE_DBT_TRANSLATOR": "team_location:AcmeTranslator",
            "AGENT_DE_FAILED_CHECK_SECONDS": "5", "AGENT_DE_AFTER_RUN_SECONDS": "5", "AGENT_DE_SCHEMA_POLL": "off",
            "DAGSTER_DISABLE_TELEMETRY": "1", "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        }
        parsed = subprocess.run([dbt_executable(), "parse", "--quiet", "--project-dir", str(self.project),
                                 "--profiles-dir", str(self.project)], cwd=self.project, env=self.env,
                                capture_output=True, text=True)
        assert parsed.returncode == 0, parsed.stdout + parsed.stderr
        self.workspace = root / "workspace.yaml"
        self.workspace.write_text(
            "load_from:\n"
            f"  - python_file: {{relative_path: {self.project / 'team_location.py'}, location_name: {TEAM},"
            f" working_directory: {self.project}}}\n"
            "  - python_module: {module_name: dagster_agent_de.dagster.definitions, attribute: defs,"
            " location_name: agent_de}\n")
        self.locations = (TEAM, "agent_de")


@pytest.fixture(params=["sqlite", "postgres"])
def two_locations(request, tmp_path: Path):
    pg = None
    dagster_yaml = ""
    if request.param == "postgres":
        from dagster_agent_de_tests.deployment.postgres import started_postgres

        pg = started_postgres()
        dagster_yaml = pg.dagster_yaml()
    dev = TwoLocations(tmp_path / "deploy", dagster_yaml)
    try:
        dev.start()
        yield dev
    finally:
        dev.stop()
        if pg is not None:
            pg.stop()


def test_sidecar_beside_the_teams_location(two_locations: TwoLocations) -> None:
    dev = two_locations
    orders = {"path": ["analytics", "orders"]}
    keys = [{"path": p} for p in (["analytics", "orders"], ["analytics", "stg_orders"], ["analytics", "stg_payments"],
                                  ["analytics", "shop", "orders"])]
    collisions = dev.graphql("query($k: [AssetKeyInput!]!) { assetNodeDefinitionCollisions(assetKeys: $k) { assetKey { path } } }",
                             {"k": keys})["assetNodeDefinitionCollisions"]
    assert collisions == []
    checks = dev.graphql(CHECKS_ON_NODE, {"k": orders})["assetNodeOrError"]["assetChecksOrError"]["checks"]
    names = {c["name"] for c in checks}
    assert {"orders_vs_raw", "row_volume", "unique_orders_order_id"} <= names  # the agent's and the team's, on their node

    first = dev.launch("acme_nightly", location=TEAM)
    assert dev.wait_run(first, 300) == "SUCCESS", dev.tail()

    def checks_after(run_id: str):
        return [r for r in dev.runs_tagged("agent_de/triggering_run", run_id)
                if r["jobName"] == "agent_de_checks" and r["status"] in ("SUCCESS", "FAILURE")]
    (checked,) = dev.wait_for("the agent's checks after the team's run", lambda: checks_after(first), timeout=240)
    assert checked["status"] == "SUCCESS", dev.tail()
    execs = dev.graphql(CHECK_EXECUTIONS, {"k": orders, "c": "orders_vs_raw"})["assetCheckExecutions"]
    assert execs[0]["runId"] == checked["runId"] and execs[0]["evaluation"]["success"] is True

    model = dev.project / "models" / "marts" / "orders.sql"
    model.write_text(model.read_text().replace("left join customers", "inner join customers"))
    second = dev.launch("acme_nightly", location=TEAM)
    status = dev.wait_run(second, 300)
    materialized, why = dev.run_outcome(second)
    # the broken join passes dbt (it only loses rows): the run materializes the models, whatever its tests say;
    # a run that materialized nothing never reached dbt, and the agent has nothing to check after it
    assert "analytics/orders" in materialized, f"the team's run {second} ended {status} without building orders:\n{why}"
    (rechecked,) = dev.wait_for("the agent's checks after the broken run", lambda: checks_after(second), timeout=240)
    # that run's execution, not the newest: a later one (the investigation's) may be in flight, with no evaluation yet
    execs = dev.graphql(CHECK_EXECUTIONS, {"k": orders, "c": "orders_vs_raw"})["assetCheckExecutions"]
    (ex,) = [e for e in execs if e["runId"] == rechecked["runId"]]
    assert ex["evaluation"], f"the checks run {rechecked['runId']} ended {rechecked['status']} with no evaluation:\n" \
        + dev.run_outcome(rechecked["runId"])[1]
    md = _entries(ex["evaluation"]["metadataEntries"])
    assert ex["evaluation"]["success"] is False and md["missing_in_pipeline"] == 20

    def investigated(check: str):
        runs = dev.runs_tagged("agent_de/check", check)
        return [r for r in runs if r["jobName"] == "investigate" and r["status"] in ("SUCCESS", "FAILURE")]
    (inv,) = dev.wait_for("the investigation of the agent's check",
                          lambda: investigated("analytics/orders:orders_vs_raw"), timeout=300)
    assert inv["status"] == "SUCCESS", dev.tail()
    tags = {t["key"]: t["value"] for t in inv["tags"]}
    assert tags["agent_de/root_cause"] == "join_row_drop" and tags["agent_de/culprit"] == "orders"
    # the team's own dbt test failed too, in their location: investigated as well
    relationships = "analytics/stg_payments:relationships_stg_payments_order_id__order_id__ref_orders_"
    dev.wait_for("the investigation of the team's dbt test", lambda: investigated(relationships), timeout=300)

    # the failed check links to its investigation: the URL's tag filter finds the run the sensor launched
    from urllib.parse import parse_qs, unquote, urlparse

    link = next(e["url"] for e in dev.graphql(LINKS, {"k": orders, "c": "orders_vs_raw"})["assetCheckExecutions"][0]
                ["evaluation"]["metadataEntries"] if e["label"] == "agent_de/investigation_runs")
    tag_key, _, tag_value = unquote(parse_qs(urlparse(link).query)["q[0]"][0]).removeprefix("tag:").partition("=")
    assert inv["runId"] in [r["runId"] for r in dev.runs_tagged(tag_key, tag_value)]
    # and the finding links back to the failing run
    back = [e for o in dev.graphql(RUN_LINKS, {"k": orders})["assetOrError"]["assetObservations"] if o["runId"] == inv["runId"]
            for e in o["metadataEntries"] if e["label"] == "agent_de/failing_run"]
    assert back and back[0]["runId"] == tags["agent_de/triggering_run"]

    obs = dev.graphql(OBSERVATIONS, {"k": orders})["assetOrError"]["assetObservations"]
    finding = [_entries(o["metadataEntries"]) for o in obs if o["runId"] == inv["runId"]]
    assert any(f.get("agent_de/pattern") == "join_row_drop" for f in finding)  # on the team's asset key

    # the sidecar never built dbt: every run that materialized the team's assets is the team's
    runs = dev.graphql('{ runsOrError { ... on Runs { results { jobName } } } }')["runsOrError"]["results"]
    assert {r["jobName"] for r in runs} <= {"acme_nightly", "agent_de_checks", "investigate"}
    assert [r["jobName"] for r in runs].count("acme_nightly") == 2
