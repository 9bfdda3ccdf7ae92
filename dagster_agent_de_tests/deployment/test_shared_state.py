"""Containers share no disk: the sensor, the run workers and the CLI are separate processes, each in its own
empty working directory and state dir, with one PostgreSQL (the Dagster instance's, found through
``dagster.yaml``). A baseline the sensor records is the one a run compares against; an escalation answered
from the CLI is applied by the next investigation.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from dagster_agent_de_tests.deployment.postgres import started_postgres

pytestmark = pytest.mark.deployment


@pytest.fixture
def shared_pg(tmp_path: Path):
    pg = started_postgres()
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(pg.dagster_yaml() + "telemetry:\n  enabled: false\n")
    try:
        yield home
    finally:
        pg.stop()


def _role(demo_env, home: Path, tmp_path: Path, name: str, *args: str) -> dict:
    """One process, as in its own container: an empty cwd and state dir, the shared DAGSTER_HOME."""
    cwd = tmp_path / f"{name}-{len(list(tmp_path.iterdir()))}"
    cwd.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENT_DE_")}
    env.update(DAGSTER_HOME=str(home), AGENT_DE_STATE_DIR=str(cwd / ".agent_de"),
               AGENT_DE_PROJECT_DIR=str(demo_env.project_dir), AGENT_DE_DUCKDB_PATH=str(demo_env.settings.duckdb_path),
               PYTHONPATH=os.pathsep.join([str(Path(__file__).resolve().parents[2]), env.get("PYTHONPATH", "")]))
    if name == "cli":
        cmd = [str(Path(sys.executable).parent / "agent-de"), *args]
    else:
        cmd = [sys.executable, "-m", "dagster_agent_de_tests.deployment.state_roles", *args]
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"{name} {args}: {proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
    assert not (cwd / ".agent_de" / "state.db").exists()  # nothing kept on the container's disk
    return json.loads(proc.stdout.strip().splitlines()[-1]) if name != "cli" else {"out": proc.stdout}


def test_sensor_run_worker_and_cli_share_one_state(demo_env, shared_pg: Path, tmp_path: Path) -> None:
    roles = tmp_path / "roles"
    roles.mkdir()

    def role(name: str, *args: str) -> dict:
        return _role(demo_env, shared_pg, roles, name, *args)

    # the daemon's sensor tick records the first snapshot as the baseline
    assert role("sensor", "poll")["skip"] == "first snapshot recorded as the baseline"
    demo_env.write("alter table stripe.charges rename column amount to amount_cents")
    try:
        # a run worker, in another container, judges the rename against that baseline
        drift = role("worker", "job", "schema_drift_check")
        assert drift["checks"]["stripe/charges:schema_drift"] is False, drift
        assert all(passed for key, passed in drift["checks"].items() if key != "stripe/charges:schema_drift")
    finally:
        demo_env.write("alter table stripe.charges rename column amount_cents to amount")

    investigate = {"ops": {"investigate_failure": {"config": {"asset_key": ["fct_orders"],
                                                              "check_name": "orders_vs_stripe"}}}}
    with demo_env.incident("wt01_null_semantics", rebuild="fct_orders+"):
        demo_env.dbt("run", "-s", "fct_orders+", "-q")
        first = role("worker", "job", "investigate", json.dumps(investigate))
        assert first["top"]["pattern"] == "null_semantics", first
        listed = json.loads(role("cli", "escalations", "list", "--json")["out"])
        (gap,) = [e for e in listed if e["kind"] == "context_gap" and e["asset"] == "fct_orders"]
        answered = role("cli", "escalations", "answer", gap["id"], "--choice", "1", "--by", "ana@shop.example",
                        "--note", "orders without a status are drafts", "--no-rerun")
        assert f"context rule R-{gap['id']} recorded" in answered["out"]
        again = role("worker", "job", "investigate", json.dumps(investigate))
        assert again["top"]["pattern"] != "null_semantics", again  # the answer, given elsewhere, applies here
        audit = role("cli", "audit", "tail", "-n", "500", "--json")["out"]
        assert f"answer {gap['id']} choice 1" in audit and "op:investigate_failure" in audit
