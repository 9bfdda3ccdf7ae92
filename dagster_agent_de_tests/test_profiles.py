"""Connections come from the team's dbt profile: any target name, the type from the output."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

from dagster_agent_de.adapters.audit import AuditLog
from dagster_agent_de.adapters.warehouse import open_warehouse
from dagster_agent_de.config import resolve_settings
from dagster_agent_de.errors import ConfigError, ProjectError
from dagster_agent_de.project import DbtProjectInfo

TEAM = Path(__file__).parent / "fixtures" / "team_project"


@pytest.fixture
def team_copy(tmp_path: Path, monkeypatch) -> Path:
    for k in ("AGENT_DE_DUCKDB_PATH", "AGENT_DE_TARGET", "DBT_TARGET", "DBT_PROFILES_DIR", "ACME_WAREHOUSE_DIR"):
        monkeypatch.delenv(k, raising=False)
    project = tmp_path / "acme"
    shutil.copytree(TEAM, project, ignore=shutil.ignore_patterns("target", "warehouse", "__pycache__"))
    return project


def test_a_dev_target_needs_no_agent_variables(team_copy: Path, tmp_path: Path) -> None:
    settings = resolve_settings(tmp_path / "state", team_copy)
    assert (settings.resolved_target, settings.warehouse_type) == ("dev", "duckdb")
    # the file is named only in the profile, relative to the project (where dbt runs)
    assert settings.duckdb_path == team_copy / "warehouse" / "acme_dev.duckdb"
    assert settings.overrides() == []
    import duckdb

    settings.duckdb_path.parent.mkdir()
    con = duckdb.connect(str(settings.duckdb_path))
    con.execute("create table t as select 1 as x")
    con.close()
    with open_warehouse(settings, AuditLog(None)) as wh:
        assert wh.query("select x from t", rationale="reads the team's file").scalar() == 1


def test_a_missing_duckdb_file_says_how_to_build_it_for_this_project(
        team_copy: Path, tmp_path: Path, monkeypatch) -> None:
    """A team's project: the profile's target names the file and `dbt build` for that target makes it;
    `agent-de demo` is the fix only for the demo."""
    from dagster_agent_de.config import BUNDLED_PROJECT_DIR
    from dagster_agent_de.errors import WarehouseUnavailableError

    monkeypatch.delenv("AGENT_DE_PROJECT_DIR", raising=False)
    team = resolve_settings(tmp_path / "state", team_copy)
    with pytest.raises(WarehouseUnavailableError) as err:
        open_warehouse(team, AuditLog(None)).query("select 1", rationale="open")
    message = str(err.value)
    assert f"{team_copy / 'warehouse' / 'acme_dev.duckdb'} does not exist" in message
    assert "target 'dev' of profile 'acme'" in message and "'warehouse/acme_dev.duckdb'" in message, message
    assert "run `dbt build --target dev`" in message and "agent-de demo" not in message
    demo = resolve_settings(tmp_path / "demo_state", BUNDLED_PROJECT_DIR, "duckdb")
    with pytest.raises(WarehouseUnavailableError, match=r"warehouse.duckdb does not exist: run `agent-de demo` first"):
        open_warehouse(demo, AuditLog(None)).query("select 1", rationale="open")


def test_an_explicit_override_wins_and_says_so(team_copy: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("AGENT_DE_DUCKDB_PATH", str(tmp_path / "other.duckdb"))
    settings = resolve_settings(tmp_path / "other_state", team_copy)
    assert settings.duckdb_path == tmp_path / "other.duckdb"
    assert settings.overrides() and "overrides the profile" in settings.overrides()[0]
    # and a --state-dir never moves the file the profile names
    monkeypatch.delenv("AGENT_DE_DUCKDB_PATH")
    assert resolve_settings(tmp_path / "s2", team_copy).duckdb_path == team_copy / "warehouse" / "acme_dev.duckdb"


def test_the_warehouse_type_comes_from_the_output_not_the_target_name(team_copy: Path, tmp_path: Path) -> None:
    prod = resolve_settings(tmp_path, team_copy, "prod")
    assert (prod.resolved_target, prod.warehouse_type) == ("prod", "snowflake")
    with pytest.raises(ProjectError, match=r"target 'duckdb' is not an output of profile 'acme'.*available targets: dev, prod"):
        resolve_settings(tmp_path, team_copy, "duckdb")


def test_dbt_target_env_var_is_honoured(team_copy: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("DBT_TARGET", "prod")
    assert resolve_settings(tmp_path, team_copy).resolved_target == "prod"


def test_unsupported_type_names_the_supported_ones(team_copy: Path, tmp_path: Path) -> None:
    text = (team_copy / "profiles.yml").read_text().replace("type: snowflake", "type: bigquery")
    (team_copy / "profiles.yml").write_text(text)
    with pytest.raises(ProjectError, match="type 'bigquery'.*supports duckdb, snowflake, postgres"):
        resolve_settings(tmp_path, team_copy, "prod")


def _rsa_key(path: Path) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))


def test_snowflake_key_pair_auth_and_query_tag_reach_the_connector(team_copy: Path, tmp_path: Path, monkeypatch) -> None:
    """What the agent passes to ``snowflake.connector.connect`` (fakesnow stands in for the server)."""
    fakesnow = pytest.importorskip("fakesnow")
    import snowflake.connector

    key = tmp_path / "rsa_key.p8"
    _rsa_key(key)
    monkeypatch.setenv("ACME_SNOWFLAKE_KEY", str(key))
    settings = resolve_settings(tmp_path, team_copy, "prod")
    calls: list[dict] = []
    with fakesnow.patch(), monkeypatch.context() as m:  # undone before fakesnow's own patch is
        patched = snowflake.connector.connect

        def recording(*args, **kwargs):
            calls.append(kwargs)
            return patched(*args, **kwargs)

        m.setattr(snowflake.connector, "connect", recording)
        with open_warehouse(settings, AuditLog(None, run_id="run-42")) as wh:
            assert wh.query("select 1 as one", rationale="connect").scalar() == 1
    args = calls[0]
    assert args["account"] == "acme-prod" and args["user"] == "dbt_prod"
    assert args["role"] == "transformer" and args["warehouse"] == "transforming" and args["database"] == "analytics"
    assert "password" not in args and isinstance(args["private_key"], bytes)  # the key pair, loaded from the path
    assert '"run_id": "run-42"' in args["session_parameters"]["QUERY_TAG"]
    assert "dagster-agent-de" in args["session_parameters"]["QUERY_TAG"]


def test_each_snowflake_statement_carries_its_audit_event_id(state_store, monkeypatch) -> None:
    fakesnow = pytest.importorskip("fakesnow")
    from dagster_agent_de.adapters.audit import read_audit
    from dagster_agent_de.adapters.warehouse.snowflake import SnowflakeWarehouse

    sent: list[str] = []
    with fakesnow.patch():
        from dagster_snowflake import SnowflakeResource

        resource = SnowflakeResource(account="a", user="u", password="p")

        class Spy(SnowflakeWarehouse):
            def _run(self, sql, max_rows):
                sent.append(sql)
                return super()._run(sql, max_rows)

        with Spy.from_resource(resource, AuditLog(state_store)) as wh:
            wh.query("select 1", rationale="tagged")
    (event,) = [e for e in read_audit(state_store) if e.kind == "query"]
    assert event.event_id and sent[0].endswith(f"/* agent_de audit_event={event.event_id} */")
    assert event.statement == "select 1"  # the audit log keeps the statement as the agent wrote it


def test_snowflake_without_credentials_names_what_to_set(team_copy: Path, tmp_path: Path) -> None:
    text = (team_copy / "profiles.yml").read_text().replace(
        "      private_key_path: \"{{ env_var('ACME_SNOWFLAKE_KEY', '/secrets/rsa_key.p8') }}\"\n", "")
    (team_copy / "profiles.yml").write_text(text)
    with pytest.raises(ConfigError, match="no credentials: set password, private_key_path or authenticator"):
        open_warehouse(resolve_settings(tmp_path, team_copy, "prod"), AuditLog(None))


@pytest.mark.parametrize("how", ["env_var set", "env_var unset: its default", "written in profiles.yml"])
def test_an_unreadable_snowflake_key_file_names_where_its_path_came_from(
        team_copy: Path, tmp_path: Path, monkeypatch, how: str) -> None:
    pytest.importorskip("dagster_snowflake")
    profiles = team_copy / "profiles.yml"
    if how == "env_var set":
        path = str(tmp_path / "missing.p8")
        monkeypatch.setenv("ACME_SNOWFLAKE_KEY", path)
    elif how == "env_var unset: its default":
        monkeypatch.delenv("ACME_SNOWFLAKE_KEY", raising=False)
        path = "/secrets/rsa_key.p8"
    else:
        path = str(tmp_path)  # a directory: exists, cannot be read as a file
        profiles.write_text(profiles.read_text().replace(
            "\"{{ env_var('ACME_SNOWFLAKE_KEY', '/secrets/rsa_key.p8') }}\"", repr(path)))
    with pytest.raises(ConfigError) as err:
        open_warehouse(resolve_settings(tmp_path, team_copy, "prod"), AuditLog(None))
    message = str(err.value)
    assert f"private key file {path!r}" in message and "cannot be read" in message, message
    assert "it is the private_key_path of target 'prod' of profile 'acme'" in message and str(profiles) in message, message
    if how == "env_var set":
        assert "comes from the environment variable ACME_SNOWFLAKE_KEY" in message, message
        assert "set ACME_SNOWFLAKE_KEY to the path of a private key file you can read" in message, message
    elif how == "env_var unset: its default":
        assert "the default of env_var('ACME_SNOWFLAKE_KEY')" in message and "ACME_SNOWFLAKE_KEY is not set" in message
    else:
        assert "ACME_SNOWFLAKE_KEY" not in message, message
        assert f"change private_key_path in {profiles}" in message, message


def test_a_stale_manifest_is_reparsed(team_copy: Path, tmp_path: Path) -> None:
    info = DbtProjectInfo.from_settings(resolve_settings(tmp_path, team_copy))
    assert info.staleness() == "no manifest yet"
    first = info.ensure_manifest()
    assert info.staleness() is None
    time.sleep(0.05)
    spec = team_copy / "models" / "marts" / "_marts.yml"
    spec.write_text(spec.read_text().replace("abs_tol: 0.01", "abs_tol: 0.5"))
    os.utime(spec, (time.time() + 2, time.time() + 2))
    assert info.staleness() == "models/marts/_marts.yml changed after the last parse"
    from dagster_agent_de.project import load_manifest

    manifest = load_manifest(info.ensure_manifest())
    orders = next(n for n in manifest["nodes"].values() if n.get("name") == "orders" and n["resource_type"] == "model")
    assert "abs_tol: 0.5" not in str(orders) and "0.5" in str(orders["config"]["meta"])  # the edited spec is read
    assert first == info.manifest_path


def test_a_read_only_project_parses_into_the_state_dir(team_copy: Path, tmp_path: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip("root writes anywhere: a read-only directory cannot be made here")
    os.chmod(team_copy, 0o555)
    try:
        info = DbtProjectInfo.from_settings(resolve_settings(tmp_path / "state", team_copy))
        assert info.target_path == tmp_path / "state" / "dbt_target"
        assert info.ensure_manifest().exists()
    finally:
        os.chmod(team_copy, 0o755)
