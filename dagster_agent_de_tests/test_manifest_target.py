"""A manifest compiled for another target (`dbt build --target prod`, then the agent on `dev`) is re-parsed for
the agent's target: its models would otherwise name the other target's relations (a missing table, every source
"dropped"), and the other target's compiled SQL is no longer read."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from dagster_agent_de.config import resolve_settings
from dagster_agent_de.manifest import Manifest
from dagster_agent_de.project import PARSE_RECORD, DbtProjectInfo, dbt_executable
from dagster_agent_de_tests.conftest import TEAM_PROJECT


def _parse(project: Path, target: str) -> None:
    proc = subprocess.run([dbt_executable(), "parse", "--quiet", "--project-dir", str(project), "--profiles-dir",
                           str(project), "--target", target], cwd=project, capture_output=True, text=True,
                          env={**os.environ, "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"})
    assert proc.returncode == 0, proc.stdout + proc.stderr


def _databases(manifest: Manifest) -> set[str]:
    return {str(n.database) for n in manifest.models()}


def test_a_manifest_of_another_target_is_reparsed_for_this_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for k in ("AGENT_DE_DUCKDB_PATH", "AGENT_DE_TARGET", "DBT_TARGET", "DBT_PROFILES_DIR"):
        monkeypatch.delenv(k, raising=False)
    project = tmp_path / "acme"
    shutil.copytree(TEAM_PROJECT, project, ignore=shutil.ignore_patterns("target", "logs", "warehouse", "__pycache__"))
    _parse(project, "prod")  # the team's prod run (Snowflake database `analytics`) left its manifest in target/
    stale_sql = project / "target" / "compiled" / "acme_analytics" / "models" / "marts" / "orders.sql"
    stale_sql.parent.mkdir(parents=True, exist_ok=True)
    stale_sql.write_text("select * from analytics.marts.stg_orders  -- compiled for prod\n")

    dev = DbtProjectInfo.from_settings(resolve_settings(tmp_path / "state", project, "dev"))
    why = dev.other_target()
    assert why is not None and "was compiled for database analytics, not 'acme_dev' of target 'dev'" in why
    assert dev.staleness() == why
    with pytest.warns(UserWarning, match="re-parsed the manifest for target 'dev'"):
        path = dev.ensure_manifest()
    manifest = Manifest.load(path, project, dev.compiled_after)
    assert _databases(manifest) == {"acme_dev"}
    assert dev.other_target() is None and dev.staleness() is None  # the agent's own parse is known by its record
    # the prod build's compiled SQL is older than the re-parse: the model file is read instead
    orders = manifest.find("orders")
    assert "analytics.marts" not in (manifest.compiled_sql(orders.unique_id) or "")
    assert '"acme_dev"' in (manifest.compiled_sql(orders.unique_id) or "")
    assert Manifest.load(path, project).compiled_sql(orders.unique_id) == stale_sql.read_text()  # without the record

    # the other way round: the prod sidecar finds the agent's dev parse, by the record this time
    prod = DbtProjectInfo.from_settings(resolve_settings(tmp_path / "state", project, "prod"))
    assert prod.other_target() == f"{path} was parsed for target 'dev', not 'prod'"
    # a manifest of the right target that the agent did not parse (the team's `dbt parse`): no re-parse
    _parse(project, "dev")
    (project / "target" / PARSE_RECORD).unlink()
    assert dev.other_target() is None and dev.compiled_after is None
