"""A manifest compiled for another target (`dbt build --target prod`, then the agent on `dev`): the agent parses
the project for its own target into its state dir and reads that, so its models name this target's relations
(not a missing table, not every source "dropped"); the team's `target/` keeps their manifest, and the other
target's compiled SQL is not read."""

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


def test_a_manifest_of_another_target_is_not_read_and_not_overwritten(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for k in ("AGENT_DE_DUCKDB_PATH", "AGENT_DE_TARGET", "DBT_TARGET", "DBT_PROFILES_DIR"):
        monkeypatch.delenv(k, raising=False)
    project, state = tmp_path / "acme", tmp_path / "state"
    shutil.copytree(TEAM_PROJECT, project, ignore=shutil.ignore_patterns("target", "logs", "warehouse", "__pycache__"))
    _parse(project, "prod")  # the team's prod run (Snowflake database `analytics`) left its manifest in target/
    teams = (project / "target" / "manifest.json").read_bytes()
    stale_sql = project / "target" / "compiled" / "acme_analytics" / "models" / "marts" / "orders.sql"
    stale_sql.parent.mkdir(parents=True, exist_ok=True)
    stale_sql.write_text("select * from analytics.marts.stg_orders  -- compiled for prod\n")

    dev = DbtProjectInfo.from_settings(resolve_settings(state, project, "dev"))
    why = dev.other_target()
    assert why is not None and "was compiled for database analytics, not 'acme_dev' of target 'dev'" in why
    with pytest.warns(UserWarning, match=r"reading the agent's own parse of the project for target 'dev' in .*state/dbt_target/dev"):
        path = dev.ensure_manifest()
    assert path == state / "dbt_target" / "dev" / "manifest.json" and dev.compiled_after == float("inf")
    assert (project / "target" / "manifest.json").read_bytes() == teams  # the team's manifest is theirs
    manifest = Manifest.load(path, project, dev.compiled_after)
    assert _databases(manifest) == {"acme_dev"}
    orders = manifest.find("orders")
    sql = manifest.compiled_sql(orders.unique_id) or ""
    assert "analytics.marts" not in sql and '"acme_dev"' in sql  # the model file, not prod's compiled SQL
    assert Manifest.load(path, project).compiled_sql(orders.unique_id) == stale_sql.read_text()  # as it read before

    # the next call (a sensor's tick) goes straight to the agent's own parse: no dbt run, no note
    again = DbtProjectInfo.from_settings(resolve_settings(state, project, "dev"))
    mtime = path.stat().st_mtime_ns
    with pytest.warns(UserWarning, match="reading the agent's own parse"):
        assert again.ensure_manifest() == path
    assert path.stat().st_mtime_ns == mtime
    # the prod sidecar reads the team's prod manifest as it is
    prod = DbtProjectInfo.from_settings(resolve_settings(state, project, "prod"))
    assert prod.other_target() is None and prod.ensure_manifest() == project / "target" / "manifest.json"
    # once the team's target/ holds a dev manifest again, the agent reads it (its record says so, or the databases)
    _parse(project, "dev")
    (project / "target" / PARSE_RECORD).unlink(missing_ok=True)
    back = DbtProjectInfo.from_settings(resolve_settings(state, project, "dev"))
    assert back.ensure_manifest() == project / "target" / "manifest.json" and back.compiled_after is None


def test_a_manifest_of_a_target_in_the_same_database_but_another_schema_is_another_targets(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """CI (or a teammate) ran `dbt build --target ci` into the same database, schema ci_42: its manifest names
    "acme_dev"."ci_42".* and its compiled SQL reads ci_42's tables. Only the databases were compared, so the agent
    on dev read it as its own (every model in the wrong schema)."""
    for k in ("AGENT_DE_DUCKDB_PATH", "AGENT_DE_TARGET", "DBT_TARGET", "DBT_PROFILES_DIR"):
        monkeypatch.delenv(k, raising=False)
    project, state = tmp_path / "acme", tmp_path / "state"
    shutil.copytree(TEAM_PROJECT, project, ignore=shutil.ignore_patterns("target", "logs", "warehouse", "__pycache__"))
    profiles = project / "profiles.yml"
    profiles.write_text(profiles.read_text().replace(
        "    prod:", "    ci:\n      type: duckdb\n      path: \"{{ env_var('ACME_WAREHOUSE_DIR', 'warehouse') }}/acme_dev.duckdb\"\n"
                    "      schema: ci_42\n      threads: 2\n    prod:", 1))
    _parse(project, "ci")
    ci = Manifest.load(project / "target" / "manifest.json", project)
    assert _databases(ci) == {"acme_dev"} and {n.schema for n in ci.models()} == {"ci_42"}
    dev = DbtProjectInfo.from_settings(resolve_settings(state, project, "dev"))
    why = dev.other_target()
    assert why is not None and "ci_42" in why, why
    with pytest.warns(UserWarning, match="reading the agent's own parse"):
        path = dev.ensure_manifest()
    assert {n.schema for n in Manifest.load(path, project, dev.compiled_after).models()} == {"main"}
    # the ci target itself reads its own manifest
    assert DbtProjectInfo.from_settings(resolve_settings(state, project, "ci")).other_target() is None
