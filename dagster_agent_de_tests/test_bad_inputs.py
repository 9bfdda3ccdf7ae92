"""Bad inputs get a clear error (and one bad reconcile spec does not take the others down)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from dagster_agent_de.config import BUNDLED_PROJECT_DIR, resolve_settings
from dagster_agent_de.engines.onboard import profile_from_json_schema
from dagster_agent_de.engines.reconcile import InvalidSpec, ReconcileSpec, specs_from_manifest
from dagster_agent_de.errors import ProjectError, SpecError
from dagster_agent_de.project import DbtProjectInfo
from dagster_agent_de_tests.helpers import make_manifest


@pytest.mark.parametrize("doc", ['{"type": "object", "properties": {}}',
                                 '{"components": {"schemas": {"Empty": {"type": "object", "properties": {}}}}}'])
def test_an_api_schema_with_no_properties_is_refused(tmp_path: Path, doc: str) -> None:
    path = tmp_path / "api.json"
    path.write_text(doc)
    with pytest.raises(SpecError, match="has 0 properties"):
        profile_from_json_schema(path, "helpdesk", "tickets", name="Empty")


def test_a_dbt_project_yml_that_is_a_list_is_a_project_error(tmp_path: Path) -> None:
    project = tmp_path / "p"
    shutil.copytree(BUNDLED_PROJECT_DIR, project, ignore=shutil.ignore_patterns("target", "logs"))
    (project / "dbt_project.yml").write_text("- name: x\n- profile: y\n")
    with pytest.raises(ProjectError, match="dbt_project.yml must be a mapping"):
        DbtProjectInfo.from_settings(resolve_settings(tmp_path, project, None)).check_target()


def test_one_invalid_spec_is_returned_as_an_error_and_the_rest_load() -> None:
    good = {"name": "ok", "against": "t", "key": ["id"]}
    manifest = make_manifest(
        {"a": "main.a", "b": "main.b", "c": "main.c"},
        meta={
            "a": {"agent_de": {"reconcile": [good, {"name": "bad", "against": "t", "key": []},
                                             {"name": "ok", "against": "t", "key": ["id"]}, "nonsense"]}},
            "b": {"agent_de": {"reconcile": "not a list"}},
            "c": {"agent_de": {"reconcile": [good]}},
        },
    )
    specs = specs_from_manifest(manifest)
    valid = [(s.model, s.name) for s in specs if isinstance(s, ReconcileSpec)]
    invalid = {(s.model, s.name): str(s.error) for s in specs if isinstance(s, InvalidSpec)}
    assert valid == [("a", "ok"), ("c", "ok")]
    assert set(invalid) == {("a", "bad"), ("a", "ok_2"), ("a", "invalid_reconcile_spec_3"), ("b", "invalid_reconcile_spec")}
    assert "key" in invalid[("a", "bad")] and "unique" in invalid[("a", "ok_2")]
    assert "must be a mapping" in invalid[("a", "invalid_reconcile_spec_3")] and "must be a list" in invalid[("b", "invalid_reconcile_spec")]
    assert all(isinstance(s.error, SpecError) for s in specs if isinstance(s, InvalidSpec))


def test_invalid_spec_check_fails_with_the_message_and_the_others_still_load() -> None:
    from dagster import AssetKey, Definitions, asset

    from dagster_agent_de.dagster.checks import build_reconcile_checks

    @asset(name="a")
    def a_asset() -> int:
        return 1

    bad = InvalidSpec("a", "bad", SpecError("model a, reconcile spec 'bad': key: too short"))
    good = ReconcileSpec(name="ok", model="a", against="t", key=["id"])
    checks = build_reconcile_checks([bad, good])
    assert {k.name for c in checks for k in c.check_keys} == {"bad", "ok"}  # both checks exist: the location loads
    invalid_check = next(c for c in checks if {k.name for k in c.check_keys} == {"bad"})
    defs = Definitions(assets=[a_asset], asset_checks=[invalid_check])
    result = defs.resolve_implicit_global_asset_job_def().execute_in_process(raise_on_error=False)
    (evaluation,) = result.get_asset_check_evaluations()
    assert evaluation.passed is False and evaluation.asset_key == AssetKey("a")
    assert "key: too short" in evaluation.metadata["error"].value


def test_a_sensor_interval_that_is_not_a_number_names_the_variable() -> None:
    from dagster_agent_de.config import Cadence
    from dagster_agent_de.errors import ConfigError

    with pytest.raises(ConfigError, match="AGENT_DE_FAILED_CHECK_SECONDS='soon' is not a number of seconds"):
        Cadence.from_env({"AGENT_DE_FAILED_CHECK_SECONDS": "soon"})
    with pytest.raises(ConfigError, match="AGENT_DE_AFTER_RUN_SECONDS='0' must be a positive"):
        Cadence.from_env({"AGENT_DE_AFTER_RUN_SECONDS": "0"})
    assert Cadence.from_env({}) == Cadence()


def test_a_lookback_or_backoff_that_is_not_a_number_or_negative_names_the_variable() -> None:
    from dagster_agent_de.config import Cadence
    from dagster_agent_de.errors import ConfigError

    with pytest.raises(ConfigError, match=r"AGENT_DE_INVESTIGATE_LOOKBACK_HOURS='a day' is not a number of hours; "
                                          r"set it to e\.g\. 24"):
        Cadence.from_env({"AGENT_DE_INVESTIGATE_LOOKBACK_HOURS": "a day"})
    with pytest.raises(ConfigError, match=r"AGENT_DE_INVESTIGATE_LOOKBACK_HOURS='-1' must be a number of hours, 0 or more"):
        Cadence.from_env({"AGENT_DE_INVESTIGATE_LOOKBACK_HOURS": "-1"})
    with pytest.raises(ConfigError, match=r"AGENT_DE_RETRY_BACKOFF_SECONDS='nan' must be a number of seconds, 0 or more; "
                                          r"set it to e\.g\. 60"):
        Cadence.from_env({"AGENT_DE_RETRY_BACKOFF_SECONDS": "nan"})
    with pytest.raises(ConfigError, match=r"AGENT_DE_RETRY_BACKOFF_SECONDS='1m' is not a number of seconds"):
        Cadence.from_env({"AGENT_DE_RETRY_BACKOFF_SECONDS": "1m"})
    c = Cadence.from_env({"AGENT_DE_INVESTIGATE_LOOKBACK_HOURS": "0", "AGENT_DE_RETRY_BACKOFF_SECONDS": "2"})
    assert (c.investigate_lookback_hours, c.retry_backoff_seconds) == (0.0, 2.0)  # 0 is allowed; the dev test uses 2
    assert (Cadence().investigate_lookback_hours, Cadence().retry_backoff_seconds) == (24.0, 60.0)


def test_an_unreadable_snowflake_key_file_is_a_configuration_error_of_the_cli(team_env, tmp_path: Path,
                                                                                monkeypatch) -> None:
    """Exit 2, the configuration error, naming the profile's field and the variable that set the path."""
    pytest.importorskip("dagster_snowflake")
    from click.testing import CliRunner

    from dagster_agent_de.cli import main

    monkeypatch.setenv("ACME_SNOWFLAKE_KEY", str(tmp_path / "gone.p8"))
    r = CliRunner().invoke(main, ["--project-dir", str(team_env.project_dir), "--state-dir", str(tmp_path / "state"),
                                  "--target", "prod", "drift"])
    assert r.exit_code == 2, r.output
    assert r.stderr.startswith("agent-de: configuration error: the Snowflake private key file"), r.stderr
    assert "gone.p8" in r.stderr and "the private_key_path of target 'prod'" in r.stderr and "ACME_SNOWFLAKE_KEY" in r.stderr
