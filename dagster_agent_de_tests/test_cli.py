from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from dagster_agent_de.adapters.audit import AuditLog
from dagster_agent_de.adapters.state import open_state_store
from dagster_agent_de.cli import main
from dagster_agent_de.config import BUNDLED_PROJECT_DIR, resolve_settings
from dagster_agent_de.errors import ConfigError, ProjectError
from dagster_agent_de.project import DbtProjectInfo, load_manifest


def _run(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_demo_data_is_deterministic(tmp_path: Path) -> None:
    import duckdb

    sums = []
    for name in ("a", "b"):
        r = _run("--state-dir", str(tmp_path / name), "demo-data", "--scale", "500")
        assert r.exit_code == 0, r.output
        assert "app.orders=500" in r.output
        con = duckdb.connect(str(tmp_path / name / "warehouse.duckdb"))
        sums.append(con.execute(
            "select sum(hash(order_id, customer_id, ordered_at, status, currency, amount_cents)) from app.orders"
        ).fetchone())
        con.close()
        assert (tmp_path / name / "finance_revenue.csv").read_text().startswith("order_date,currency,revenue")
    assert sums[0] == sums[1]


def test_audit_tail_reads_the_durable_log(tmp_path: Path) -> None:
    store = open_state_store(resolve_settings(tmp_path))
    log = AuditLog(store, actor="op:investigate", run_id="abc")
    log.record(statement="select 1", rationale="first", rows=1)
    AuditLog(store, actor="cli").record(statement="select 2", rationale="second", rows=1)
    r = _run("--state-dir", str(tmp_path), "audit", "tail", "--run", "abc", "--json")
    lines = [json.loads(x) for x in r.output.splitlines()]
    assert [x["rationale"] for x in lines] == ["first"]
    assert {"ts", "actor", "run_id", "rationale", "statement", "dialect", "rows", "duration_ms", "outcome"} <= set(lines[0])
    r = _run("--state-dir", str(tmp_path), "audit", "tail")
    assert "first" in r.output and "second" in r.output


def test_unknown_target_is_a_clear_error(tmp_path: Path) -> None:
    r = CliRunner().invoke(main, ["--state-dir", str(tmp_path), "--target", "bigquery", "audit", "tail"])
    assert r.exit_code == 2 and "target 'bigquery' is not an output of profile 'agent_de_demo'" in r.output
    assert "available targets: duckdb, snowflake" in r.output


def test_unwritable_state_dir_is_a_clear_error(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        blocker = tmp_path / "file"
        blocker.write_text("x")
        state = blocker / "state"  # a path under a regular file can never be created, even by root
    else:
        state = tmp_path / "ro"
        state.mkdir(mode=0o500)
    r = CliRunner().invoke(main, ["--state-dir", str(state), "demo-data", "--scale", "100"])
    assert r.exit_code == 2 and "not writable" in r.output and str(state) in r.output


def test_profile_target_that_does_not_exist(tmp_path: Path) -> None:
    project = tmp_path / "p"
    shutil.copytree(BUNDLED_PROJECT_DIR, project, ignore=shutil.ignore_patterns("target", "logs"))
    text = (project / "profiles.yml").read_text().replace("    snowflake:\n", "    snowflake_prod:\n")
    (project / "profiles.yml").write_text(text)
    with pytest.raises(ProjectError, match="target 'snowflake' is not an output.*duckdb, snowflake_prod"):
        DbtProjectInfo.from_settings(resolve_settings(tmp_path, project, "snowflake"))


def test_missing_project_names_the_fix(tmp_path: Path) -> None:
    with pytest.raises(ProjectError, match="no dbt_project.yml"):
        DbtProjectInfo.from_settings(resolve_settings(tmp_path, tmp_path / "nowhere", None))


@pytest.mark.parametrize("content, match", [
    ("{not json", "cannot be read"),
    ('{"metadata": {}}', "is not a dbt manifest"),
])
def test_bad_manifest_names_the_fix(tmp_path: Path, content: str, match: str) -> None:
    path = tmp_path / "manifest.json"
    path.write_text(content)
    with pytest.raises(ProjectError, match=match):
        load_manifest(path)


def test_bad_target_env_var_is_a_config_error(monkeypatch) -> None:
    monkeypatch.setenv("AGENT_DE_TARGET", "oracle")
    with pytest.raises(ConfigError, match="AGENT_DE_TARGET"):
        resolve_settings()


def test_investigate_verify_timeout_must_be_a_positive_number_of_seconds(tmp_path: Path) -> None:
    r = CliRunner().invoke(main, ["--state-dir", str(tmp_path), "investigate", "--asset", "fct_revenue", "--check",
                                  "model_runtime", "--verify", "--verify-timeout", "0"])
    assert r.exit_code == 2 and "--verify-timeout" in r.output and "0 is not in the range x>=1" in r.output


def test_reconcile_exits_2_when_the_warehouse_cannot_be_opened(team_env, monkeypatch, tmp_path: Path) -> None:
    """An unreachable warehouse is a runtime error naming the fix (exit 2, as `drift` gives), not a breach (1)."""
    monkeypatch.setenv("AGENT_DE_DUCKDB_PATH", str(tmp_path / "nope.duckdb"))
    args = ["--state-dir", str(tmp_path / "state"), "--project-dir", str(team_env.project_dir)]
    r = CliRunner().invoke(main, [*args, "reconcile"])
    assert r.exit_code == 2, r.output
    assert "ERROR orders.orders_vs_raw" in r.output and "nope.duckdb does not exist" in r.output
    assert "AGENT_DE_DUCKDB_PATH names it" in r.output and "agent-de demo" not in r.output  # where the path came from
    drift = CliRunner().invoke(main, [*args, "drift"])
    assert drift.exit_code == 2 and "nope.duckdb does not exist" in drift.output


REPO_ROOT = Path(__file__).resolve().parents[1]


def test_a_command_run_inside_a_dbt_project_reads_that_project(team_env, monkeypatch, tmp_path: Path) -> None:
    """dbt reads the project in the current directory, and so does agent-de when nothing else names one."""
    # a copy of the team's parsed project without its warehouse (other tests build the shared one)
    project = tmp_path / "acme"
    shutil.copytree(team_env.project_dir, project, ignore=shutil.ignore_patterns("warehouse", ".agent_de"))
    monkeypatch.chdir(project)
    for k in ("AGENT_DE_PROJECT_DIR", "AGENT_DE_STATE_DIR", "AGENT_DE_TARGET", "AGENT_DE_DUCKDB_PATH", "DBT_TARGET"):
        monkeypatch.delenv(k, raising=False)  # a demo run in this process sets some of them
    r = CliRunner().invoke(main, ["--state-dir", str(tmp_path / "state"), "reconcile", "--json"])
    assert r.stderr == "", r.stderr
    out = json.loads(r.stdout)
    # the team's one spec, on its model `orders` (no warehouse here: the spec errors, exit 2); none of the demo's
    assert [(e["model"], e["name"]) for e in out["errors"]] == [("orders", "orders_vs_raw")], out
    assert "acme_dev.duckdb does not exist" in out["errors"][0]["error"]
    assert "fct_revenue" not in r.output
    probe = CliRunner().invoke(main, ["--state-dir", str(tmp_path / "state"), "--target", "nope", "audit", "tail"])
    assert probe.exit_code == 2 and "profile 'acme'" in probe.output, probe.output
    # the state dir defaults to ./.agent_de there, as with an explicit `--project-dir .`
    tail = CliRunner().invoke(main, ["audit", "tail"])
    assert tail.exit_code == 0 and str(project / ".agent_de") in tail.output, tail.output


def test_the_demo_commands_and_a_directory_without_a_dbt_project_use_the_demo(
        team_env, monkeypatch, tmp_path: Path) -> None:
    monkeypatch.delenv("AGENT_DE_PROJECT_DIR", raising=False)
    monkeypatch.chdir(REPO_ROOT)
    assert not (REPO_ROOT / "dbt_project.yml").exists()
    r = CliRunner().invoke(main, ["--state-dir", str(tmp_path), "--target", "nope", "audit", "tail"])
    assert r.exit_code == 2 and "profile 'agent_de_demo'" in r.output, r.output
    # inside the team's project, `demo-data` still writes the demo's warehouse (in the state dir), not the team's
    monkeypatch.chdir(team_env.project_dir)
    team_warehouse = team_env.warehouse_path.stat().st_mtime_ns
    data = CliRunner().invoke(main, ["--state-dir", str(tmp_path), "demo-data", "--scale", "100"])
    assert data.exit_code == 0 and "app.orders=100" in data.stdout, data.output
    assert "uses the demo project, not the dbt project in the current directory" in data.stderr
    assert (tmp_path / "warehouse.duckdb").exists() and team_env.warehouse_path.stat().st_mtime_ns == team_warehouse
    # an explicit flag wins over the current directory
    flag = CliRunner().invoke(main, ["--state-dir", str(tmp_path), "--project-dir", str(BUNDLED_PROJECT_DIR),
                                     "--target", "nope", "audit", "tail"])
    assert flag.exit_code == 2 and "profile 'agent_de_demo'" in flag.output, flag.output


def test_an_answer_note_is_kept_beside_the_rule_and_an_overdue_question_listed_as_such(team_env, tmp_path: Path) -> None:
    """`escalations answer --note` records the option's rule and keeps the note beside it (listed with the answer
    and the rule); a question past its due date is listed as overdue, still open."""
    from datetime import timedelta

    from dagster_agent_de.core.models import Escalation, EscalationKind, EscalationOption, utcnow
    from dagster_agent_de.engines.escalate.raising import raise_escalations

    args = ["--state-dir", str(tmp_path / "state"), "--project-dir", str(team_env.project_dir)]
    store = open_state_store(resolve_settings(tmp_path / "state", team_env.project_dir))
    (asked,) = raise_escalations(store, [Escalation(
        id="", kind=EscalationKind.CONTEXT_GAP, decision="Orders with status NULL: do they count?", asset="orders",
        applies_to=["orders.status"], finding_pattern="null_semantics", owner="sales",
        due_at=utcnow() - timedelta(hours=2), options=[
            EscalationOption(label="They are excluded on purpose", agent_action="record_rule",
                             rule="null_semantics on orders.status is intended business logic",
                             suppresses=["null_semantics"]),
            EscalationOption(label="They count: fix the model", agent_action="apply_fix")])])
    listed = CliRunner().invoke(main, [*args, "escalations", "list"])
    assert listed.exit_code == 0, listed.output
    assert f"{asked.id}    overdue" in listed.output
    answered = CliRunner().invoke(main, [*args, "escalations", "answer", asked.id, "--option",
                                         "they are excluded on purpose", "--by", "ana@shop.example",
                                         "--note", "drafts never count, says sales", "--no-rerun"])
    assert answered.exit_code == 0, answered.output
    (rule,) = store.rules()
    assert (rule.rule, rule.note, rule.source) == ("null_semantics on orders.status is intended business logic",
                                                   "drafts never count, says sales", asked.id)
    history = CliRunner().invoke(main, [*args, "escalations", "list", "--all"])
    assert f"{asked.id}    answered" in history.output
    assert ("answered by ana@shop.example: They are excluded on purpose (note: drafts never count, says sales)"
            in history.output)
    context = CliRunner().invoke(main, [*args, "context", "list"])
    assert "intended business logic" in context.output
    assert "note (ana@shop.example): drafts never count, says sales" in context.output
