"""Drift in Dagster: the schema-poll sensor and the blocking gate before dbt, on a real instance."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import pytest
from dagster import AssetCheckKey, AssetKey, DagsterInstance, build_sensor_context

from dagster_agent_de.dagster.definitions import build_definitions
from dagster_agent_de.dagster.drift import DRIFT_CHECK, build_schema_poll_sensor
from dagster_agent_de.dagster.resources import AgentWarehouseResource
from dagster_agent_de.engines.escalate.raising import DUE


@pytest.fixture
def resource(demo_env, tmp_path: Path) -> AgentWarehouseResource:
    """The session's warehouse and project, with a private state dir (its own drift store)."""
    return AgentWarehouseResource(state_dir=str(tmp_path), project_dir=str(demo_env.project_dir),
                                  duckdb_path=str(demo_env.settings.duckdb_path))


class _Cursor:
    def __init__(self, cursor):
        self.cursor = cursor


def _tick(sensor, instance, resource, cursor=None):
    """Evaluate the sensor once; returns its result and the cursor it leaves."""
    with build_sensor_context(instance=instance, cursor=cursor, resources={"agent_warehouse": resource}) as ctx:
        result = sensor(ctx)
    new_cursor = getattr(result, "cursor", None) or ctx.cursor
    return result, _Cursor(new_cursor)


def test_sensor_catches_a_rename_on_its_first_tick_after_the_change(demo_env, resource) -> None:
    sensor = build_schema_poll_sensor()
    with DagsterInstance.ephemeral() as instance:
        first, ctx = _tick(sensor, instance, resource)
        assert not first.run_requests and "baseline" in (first.skip_reason.skip_message or "")
        assert {e.asset_key for e in first.asset_events} >= {AssetKey(["stripe", "charges"])}
        obs = next(e for e in first.asset_events if e.asset_key == AssetKey(["stripe", "charges"]))
        assert "amount" in [c.name for c in obs.metadata["dagster/column_schema"].schema.columns]
        cursor = ctx.cursor
        unchanged, ctx2 = _tick(sensor, instance, resource, cursor)
        assert unchanged is not None and not getattr(unchanged, "run_requests", None)
        demo_env.write("alter table stripe.charges rename column amount to amount_cents")
        try:
            result, ctx3 = _tick(sensor, instance, resource, cursor)
            again, _ = _tick(sensor, instance, resource, ctx3.cursor)
        finally:
            demo_env.write("alter table stripe.charges rename column amount_cents to amount")
    (request,) = result.run_requests
    assert request.asset_check_keys == [AssetCheckKey(AssetKey(["stripe", "charges"]), DRIFT_CHECK)]
    assert request.run_key and request.tags["agent_de/trigger"] == "schema_poll_sensor"
    assert not getattr(again, "run_requests", None)  # the same drift is not requested twice


def test_breaking_drift_gates_the_dbt_build_before_any_model_runs(demo_env, resource, tmp_path: Path) -> None:
    from dagster_agent_de.config import resolve_settings

    settings = resolve_settings(tmp_path, demo_env.project_dir, "duckdb")
    from dataclasses import replace

    settings = replace(settings, duckdb_override=demo_env.settings.duckdb_path)
    defs = build_definitions(settings)
    job = defs.resolve_job_def("dbt_build")
    with DagsterInstance.ephemeral() as instance:
        # baseline: run only the drift checks (no dbt) on the unchanged schema
        drift_job = defs.resolve_job_def("schema_drift_check")
        assert drift_job.execute_in_process(instance=instance).success
        demo_env.write("alter table stripe.charges rename column amount to amount_cents")
        try:
            result = job.execute_in_process(instance=instance, raise_on_error=False)
        finally:
            demo_env.write("alter table stripe.charges rename column amount_cents to amount")
    assert not result.success
    evals = {(e.asset_key.to_user_string(), e.check_name): e for e in result.get_asset_check_evaluations()}
    drift = evals[("stripe/charges", DRIFT_CHECK)]
    assert not drift.passed and drift.severity.value == "ERROR"
    assert "renamed to amount_cents" in (drift.description or "")
    assert drift.metadata["breaking_changes"].value == 1
    # the values behind the call, side by side (stripe.charges declares no key: the stats decide)
    (row,) = drift.metadata["rename_evidence"].records
    assert (row.data["old_column"], row.data["new_column"], row.data["verdict"]) == ("amount", "amount_cents", "same_values")
    assert row.data["old_rows"] == row.data["new_rows"] and row.data["old_max"] == row.data["new_max"]
    assert evals[("app/orders", DRIFT_CHECK)].passed
    assert result.get_asset_materialization_events() == []  # no model was built on the changed schema
    started = [e.step_key for e in result.all_events if e.event_type_value == "STEP_START"]
    assert "dbt_models" not in started


def test_sensor_survives_an_unreachable_warehouse(tmp_path: Path, demo_env) -> None:
    broken = AgentWarehouseResource(state_dir=str(tmp_path), project_dir=str(demo_env.project_dir),
                                    duckdb_path=str(tmp_path / "missing.duckdb"))
    with DagsterInstance.ephemeral() as instance:
        result, ctx = _tick(build_schema_poll_sensor(), instance, broken)
    assert "could not snapshot" in result.skip_message and ctx.cursor is None  # nothing advanced


def _changes(items) -> set[tuple]:
    return {(c["kind"], c["relation"].lower(), c.get("column"), c.get("new_column"), c["severity"]) for c in items}


def test_the_cli_and_the_dagster_check_give_the_same_drift_verdict(demo_env, tmp_path: Path, monkeypatch) -> None:
    """One workflow (``engines/drift/workflow.py``) decides for both callers: the same change gets the same
    verdict, and once either has accepted an additive change, neither reports it again."""
    import json
    from dataclasses import replace

    from click.testing import CliRunner

    from dagster_agent_de.cli import main
    from dagster_agent_de.config import resolve_settings

    dagster_state, cli_state = tmp_path / "dagster", tmp_path / "cli"
    monkeypatch.setenv("AGENT_DE_DUCKDB_PATH", str(demo_env.settings.duckdb_path))
    settings = replace(resolve_settings(dagster_state, demo_env.project_dir, "duckdb"),
                       duckdb_override=demo_env.settings.duckdb_path)
    job = build_definitions(settings).resolve_job_def("schema_drift_check")

    def cli(state: Path) -> tuple[str, set[tuple], int]:
        r = CliRunner().invoke(main, ["--state-dir", str(state), "--project-dir", str(demo_env.project_dir),
                                      "drift", "--json"], catch_exceptions=False)
        out = json.loads(r.output)
        return out["verdict"], _changes(out["changes"]), r.exit_code

    def dagster(instance) -> tuple[str, set[tuple]]:
        result = job.execute_in_process(instance=instance, raise_on_error=False)
        evals = result.get_asset_check_evaluations()
        assert evals and {e.check_name for e in evals} == {DRIFT_CHECK}
        failed = [e for e in evals if not e.passed]
        verdict = ("block" if any(e.severity.value == "ERROR" for e in failed) else "warn") if failed else "pass"
        changes = [c for e in evals if "changes_json" in e.metadata for c in e.metadata["changes_json"].value]
        return verdict, _changes(changes)

    with DagsterInstance.ephemeral() as instance:
        assert dagster(instance) == ("pass", set())  # both record their baseline
        assert cli(cli_state)[0] == "pass"
        added = {("column_added", "warehouse.hubspot.contacts", "phone", None, "info")}
        demo_env.write("alter table hubspot.contacts add column phone varchar")
        try:
            assert dagster(instance) == ("pass", added)
            assert cli(cli_state) == ("pass", added, 0)
            # accepted by both: the baseline moved forward, the change is not reported again
            assert dagster(instance) == ("pass", set())
            assert cli(cli_state) == ("pass", set(), 0)
            assert cli(dagster_state) == ("pass", set(), 0)  # the CLI on the baseline the Dagster check moved
            demo_env.write("alter table stripe.charges rename column amount to amount_cents")
            try:
                verdict, changes = dagster(instance)
                assert verdict == "block"
                assert {(k, c, n) for k, _, c, n, _ in changes} == {("column_renamed", "amount", "amount_cents")}
                assert cli(cli_state) == (verdict, changes, 1)
                # a breaking change keeps its baseline: both report it until it is fixed or re-baselined
                assert dagster(instance) == (verdict, changes)
                assert cli(cli_state) == (verdict, changes, 1)
            finally:
                demo_env.write("alter table stripe.charges rename column amount_cents to amount")
        finally:
            demo_env.write("alter table hubspot.contacts drop column phone")


@contextmanager
def _stage_replaced(demo_env) -> Iterator[None]:
    """hubspot.contacts loses ``lifecycle_stage`` (read by stg_hubspot_contacts) and gains ``stage_code``, whose
    values are not the old ones: a drop and an add, not a rename. Afterwards the table is as it was."""
    demo_env.write("create table hubspot.contacts_before_drift as select * from hubspot.contacts")
    try:
        demo_env.write("alter table hubspot.contacts add column stage_code integer")
        demo_env.write("update hubspot.contacts set stage_code = length(lifecycle_stage) + contact_id % 7")
        demo_env.write("alter table hubspot.contacts drop column lifecycle_stage")
        yield
    finally:
        demo_env.write("create or replace table hubspot.contacts as select * from hubspot.contacts_before_drift")
        demo_env.write("drop table hubspot.contacts_before_drift")


REPLACED_OPTIONS = ["stage_code replaces lifecycle_stage", "nothing replaces lifecycle_stage: the source dropped it"]
CONTACTS = AssetKey(["hubspot", "contacts"])


def _drift_job(demo_env, state: Path):
    from dataclasses import replace

    from dagster_agent_de.config import resolve_settings

    settings = replace(resolve_settings(state, demo_env.project_dir, "duckdb"), duckdb_override=demo_env.settings.duckdb_path)
    return settings, build_definitions(settings).resolve_job_def("schema_drift_check")


def _contacts_eval(result):
    return next(e for e in result.get_asset_check_evaluations() if e.asset_key == CONTACTS)


def _escalation_events(result) -> tuple[list, list]:
    """(escalation observations, materializations of the escalations queue) a run logged."""
    observed = [e.event_specific_data.asset_observation for e in result.all_events
                if e.event_type_value == "ASSET_OBSERVATION"
                and "agent_de/escalation" in e.event_specific_data.asset_observation.metadata]
    queue = [m.event_specific_data.materialization for m in result.get_asset_materialization_events()
             if m.asset_key == AssetKey(["agent_de", "escalations"])]
    return observed, queue


def test_the_drift_check_asks_which_column_replaces_a_dropped_one_once(demo_env, tmp_path: Path) -> None:
    """The check raises the escalation ``agent-de drift`` raises, stores it, shows it on every evaluation, and
    does not raise it again when evaluated again on the same change."""
    from dagster_agent_de.adapters.state import open_state_store
    from dagster_agent_de.core.models import EscalationKind

    settings, job = _drift_job(demo_env, tmp_path)
    with DagsterInstance.ephemeral() as instance:
        assert job.execute_in_process(instance=instance).success  # the baseline
        with _stage_replaced(demo_env):
            first = job.execute_in_process(instance=instance, raise_on_error=False)
            second = job.execute_in_process(instance=instance, raise_on_error=False)
    (esc,) = open_state_store(settings).escalations()  # one, after two evaluations
    assert esc.kind == EscalationKind.CONTEXT_GAP and esc.check == DRIFT_CHECK and esc.asset == "hubspot.contacts"
    assert esc.due_at is not None and abs(esc.due_at - esc.created_at - DUE) < timedelta(minutes=1)  # as investigations'
    assert [o.label for o in esc.options] == REPLACED_OPTIONS and esc.recommendation is None
    assert "Which column replaces it?" in esc.decision and "stg_hubspot_contacts" in esc.decision
    for result in (first, second):
        check = _contacts_eval(result)
        assert not check.passed and check.severity.value == "ERROR"
        assert check.metadata["agent_de/escalations"].value == esc.id  # the open question, on every evaluation
        assert check.metadata["agent_de/escalation_kinds"].value == "context_gap"
        detail = check.metadata["agent_de/escalation_detail"].value
        assert all(label in detail for label in REPLACED_OPTIONS) and f"escalation_id: {esc.id}" in detail
        assert f"escalation {esc.id} (context_gap)" in (check.description or "")
    observed, queue = _escalation_events(first)
    assert [o.asset_key for o in observed] == [CONTACTS] and observed[0].metadata["agent_de/escalation"].value == esc.id
    assert len(queue) == 1 and queue[0].metadata["open"].value == 1
    assert _escalation_events(second) == ([], [])  # nothing new raised, nothing new recorded
    # the other sources' checks are untouched by it
    assert all("agent_de/escalations" not in e.metadata for e in second.get_asset_check_evaluations() if e.asset_key != CONTACTS)


def test_the_poll_sensor_raises_the_escalation_and_the_check_it_requests_finds_it_open(
        demo_env, resource, tmp_path: Path) -> None:
    from dagster_agent_de.core.models import EscalationKind

    sensor = build_schema_poll_sensor()
    _, job = _drift_job(demo_env, tmp_path)  # the same state dir as the sensor's resource
    with DagsterInstance.ephemeral() as instance:
        _, ctx = _tick(sensor, instance, resource)  # the baseline
        with _stage_replaced(demo_env):
            result, _ = _tick(sensor, instance, resource, ctx.cursor)
            (esc,) = resource.state().escalations()
            run = job.execute_in_process(instance=instance, raise_on_error=False)  # the checks it requests
    (request,) = result.run_requests
    assert request.asset_check_keys == [AssetCheckKey(CONTACTS, DRIFT_CHECK)]
    assert esc.kind == EscalationKind.CONTEXT_GAP and [o.label for o in esc.options] == REPLACED_OPTIONS
    observed = [e for e in result.asset_events if "agent_de/escalation" in e.metadata]
    assert [(e.asset_key, e.metadata["agent_de/escalation"].value) for e in observed] == [(CONTACTS, esc.id)]
    assert any(e.asset_key == AssetKey(["agent_de", "escalations"]) for e in result.asset_events)
    assert [e.id for e in resource.state().escalations()] == [esc.id]  # the check raised no second one
    assert _contacts_eval(run).metadata["agent_de/escalations"].value == esc.id


def test_the_cli_and_the_dagster_check_raise_the_same_escalation(demo_env, tmp_path: Path, monkeypatch) -> None:
    """The same change asks the same question through ``agent-de drift`` and the drift check: the decision is
    the workflow's, not a caller's."""
    import json

    from click.testing import CliRunner

    from dagster_agent_de.adapters.state import open_state_store
    from dagster_agent_de.cli import main

    dagster_state, cli_state = tmp_path / "dagster", tmp_path / "cli"
    monkeypatch.setenv("AGENT_DE_DUCKDB_PATH", str(demo_env.settings.duckdb_path))
    settings, job = _drift_job(demo_env, dagster_state)
    cli_settings, _ = _drift_job(demo_env, cli_state)

    def cli() -> dict:
        r = CliRunner().invoke(main, ["--state-dir", str(cli_state), "--project-dir", str(demo_env.project_dir),
                                      "drift", "--json"], catch_exceptions=False)
        return json.loads(r.output)

    def asked(esc) -> tuple:
        return (esc.kind, esc.decision, esc.asset, esc.owner, esc.check, esc.finding_pattern, esc.applies_to,
                esc.recommendation, esc.blocking, [o.model_dump() for o in esc.options])

    with DagsterInstance.ephemeral() as instance:
        assert job.execute_in_process(instance=instance).success and cli()["baseline_created"]
        with _stage_replaced(demo_env):
            check = _contacts_eval(job.execute_in_process(instance=instance, raise_on_error=False))
            out = cli()
            again = cli()
    (by_check,) = open_state_store(settings).escalations()
    (by_cli,) = open_state_store(cli_settings).escalations()
    assert out["escalations"] == [by_cli.id] and again["escalations"] == []  # the CLI's behaviour is unchanged
    assert asked(by_check) == asked(by_cli)
    assert [o.label for o in by_cli.options] == REPLACED_OPTIONS
    assert by_cli.decision in check.metadata["agent_de/escalation_detail"].value
    (dropped,) = [c for c in out["changes"] if c["kind"] == "column_dropped"]
    assert dropped["escalation"]["decision"] == by_check.decision



def test_the_investigation_of_the_failed_drift_check_attaches_to_its_question(demo_env, tmp_path: Path) -> None:
    """The drift check fails for a dropped column a model reads and asks which column replaces it; the
    investigation the failed-check sensor requests traces the failure to the same change and asks nothing new:
    its finding names the drift check's question, and the state store holds one question for the one incident."""
    from dagster_agent_de.adapters.state import open_state_store

    settings, job = _drift_job(demo_env, tmp_path)
    defs = build_definitions(settings)
    sensor = defs.resolve_sensor_def("failed_check_sensor")

    def tick(instance, cursor):
        with build_sensor_context(instance=instance, cursor=cursor, repository_def=defs.get_repository_def(),
                                  resources={"agent_warehouse": defs.resources["agent_warehouse"]}) as ctx:
            result = sensor(ctx)
        return result, (getattr(result, "cursor", None) or ctx.cursor)

    with DagsterInstance.ephemeral() as instance:
        assert job.execute_in_process(instance=instance).success  # the baseline
        _, cursor = tick(instance, None)
        with _stage_replaced(demo_env):
            assert not _contacts_eval(job.execute_in_process(instance=instance, raise_on_error=False)).passed
            (asked,) = open_state_store(settings).escalations()  # the drift check's question
            result, _ = tick(instance, cursor)
            (request,) = [r for r in result.run_requests if r.tags["agent_de/check"] == f"hubspot/contacts:{DRIFT_CHECK}"]
            run = defs.resolve_job_def("investigate").execute_in_process(
                instance=instance, run_config=request.run_config, tags=request.tags)
            observed = {key: [r.asset_observation for r in instance.fetch_observations(key, limit=20).records
                              if r.run_id == run.run_id] for key in (CONTACTS, AssetKey(["stg_hubspot_contacts"]))}
    assert run.success
    report = run.output_for_node("investigate_failure")
    top = report["findings"][0]
    assert (top["pattern"], top["model"], top["columns"]) == ("schema_drift", "stg_hubspot_contacts", ["lifecycle_stage"])
    assert [e.id for e in open_state_store(settings).escalations()] == [asked.id]  # no second question
    assert any(n.startswith(f"{asked.id} (context_gap, open) already asks") for n in report["notes"])
    for key, observations in observed.items():  # the finding, on the source and on the model reading it
        (finding,) = [o for o in observations if "agent_de/pattern" in o.metadata]
        assert finding.metadata["agent_de/escalations"].value == asked.id, key
        assert "Which column replaces it?" in finding.metadata["agent_de/escalation_detail"].value
        assert not [o for o in observations if "agent_de/escalation" in o.metadata]  # no escalation raised
    assert _escalation_events(run) == ([], [])


def _investigate_model(defs, instance):
    """The investigation of a failure on ``stg_hubspot_contacts`` (the model reading the dropped column), as the
    failed-check sensor requests it for a failed dbt test there, before any drift check saw the change."""
    run = defs.resolve_job_def("investigate").execute_in_process(instance=instance, run_config={
        "ops": {"investigate_failure": {"config": {"asset_key": ["stg_hubspot_contacts"]}}}})
    assert run.success
    return run


def test_a_question_the_investigation_asked_first_is_superseded_by_the_drift_checks(demo_env, tmp_path: Path) -> None:
    """The reverse order: the investigation of the model runs before the drift check and asks the owners whether
    the drop is intended; the drift check then asks which column replaces it (the sharper question, to the
    source's owner) and withdraws the investigation's, naming its own: one open question for the one incident."""
    from dagster_agent_de.adapters.state import open_state_store
    from dagster_agent_de.core.models import EscalationKind, EscalationState

    settings, job = _drift_job(demo_env, tmp_path)
    defs = build_definitions(settings)
    store = open_state_store(settings)
    with DagsterInstance.ephemeral() as instance:
        assert job.execute_in_process(instance=instance).success  # the baseline
        with _stage_replaced(demo_env):
            report = _investigate_model(defs, instance).output_for_node("investigate_failure")
            (first,) = store.escalations()  # the investigation's question
            drift = job.execute_in_process(instance=instance, raise_on_error=False)
            again = job.execute_in_process(instance=instance, raise_on_error=False)
            later = _investigate_model(defs, instance).output_for_node("investigate_failure")
    top = report["findings"][0]
    assert (top["pattern"], top["model"], top["columns"]) == ("schema_drift", "stg_hubspot_contacts", ["lifecycle_stage"])
    assert (first.kind, first.finding_pattern, first.asset) == (EscalationKind.AUTHORITY_GAP, "schema_drift",
                                                                "stg_hubspot_contacts")
    withdrawn, asked = store.escalations()
    assert withdrawn.id == first.id and withdrawn.state == EscalationState.WITHDRAWN
    assert asked.state == EscalationState.OPEN and "Which column replaces it?" in asked.decision
    assert withdrawn.superseded_by == asked.id  # the note pointing at the question that stands for it
    assert [e.id for e in store.escalations() if e.state == EscalationState.OPEN] == [asked.id]
    check = _contacts_eval(drift)
    assert check.metadata["agent_de/escalations"].value == asked.id
    assert f"(it replaces {first.id}, withdrawn)" in (check.description or "")
    assert f"Replaces {first.id} (withdrawn)" in check.metadata["agent_de/escalation_detail"].value
    observed, queue = _escalation_events(drift)  # the question raised on the source, the withdrawn one on the model
    assert [(o.asset_key, o.metadata["agent_de/escalation"].value) for o in observed] == [
        (CONTACTS, asked.id), (AssetKey(["stg_hubspot_contacts"]), first.id)]
    assert observed[1].metadata["agent_de/superseded_by"].value == asked.id
    assert f"Withdrawn: **{asked.id}**" in observed[1].metadata["agent_de/escalation_detail"].value
    assert len(queue) == 1 and queue[0].metadata["open"].value == 1  # the queue no longer lists the withdrawn one
    assert _contacts_eval(again).metadata["agent_de/escalations"].value == asked.id
    assert _escalation_events(again) == ([], [])
    # the next investigation of the incident attaches to the question that stands
    assert any(n.startswith(f"{asked.id} (context_gap, open) already asks") for n in later["notes"])
    assert len(store.escalations()) == 2


def test_an_answered_investigation_question_is_not_asked_again_by_the_drift_check(demo_env, tmp_path: Path) -> None:
    """The owners answered the investigation's question before the drift check ran: the answer stands for the
    incident (it became context), so the drift check asks nothing and withdraws nothing."""
    from dagster_agent_de.adapters.state import open_state_store
    from dagster_agent_de.core.models import EscalationState
    from dagster_agent_de.engines.escalate.answering import answer_escalation
    from dagster_agent_de.engines.escalate.policy import Policy

    settings, job = _drift_job(demo_env, tmp_path)
    defs = build_definitions(settings)
    store = open_state_store(settings)
    with DagsterInstance.ephemeral() as instance:
        assert job.execute_in_process(instance=instance).success  # the baseline
        with _stage_replaced(demo_env):
            _investigate_model(defs, instance)
            (first,) = store.escalations()
            answer_escalation(store, first.id, 1, by="ana@shop.example", policy=Policy())
            drift = job.execute_in_process(instance=instance, raise_on_error=False)
    (answered,) = store.escalations()
    assert answered.id == first.id and answered.state == EscalationState.ANSWERED
    check = _contacts_eval(drift)
    assert not check.passed  # the change is still reported until fixed or re-baselined
    assert "agent_de/escalations" not in check.metadata and _escalation_events(drift) == ([], [])


def _tell_the_team(srv, store, report: dict, question) -> None:
    """As the investigate op tells the team (its webhook) when a failed check, with its evaluation, started it."""
    from dagster_agent_de.adapters.notify import senders_from_settings
    from dagster_agent_de.core.models import InvestigationFinding
    from dagster_agent_de.engines.notify.dispatch import Notifier
    from dagster_agent_de.engines.notify.settings import NotificationSettings
    from dagster_agent_de.engines.notify.workflow import notify_investigation

    told = NotificationSettings.model_validate({"channels": {"team": {"kind": "webhook", "url_env": "HOOK_URL"}},
                                                "default": ["team"]})
    notifier = Notifier(told, senders_from_settings(dict(told.channels), {"HOOK_URL": srv.url + "/hook"}), store,
                        sleep=lambda s: None)
    notify_investigation(notifier, asset="stg_hubspot_contacts", check="not_null_stage", evaluation_id=7,
                         failing_run=None, check_description="not_null_stage failed", numbers=[],
                         finding=InvestigationFinding.model_validate(report["findings"][0]),
                         investigation_run="run-1", escalations=[question], owner=None)


def test_those_told_of_a_question_the_drift_check_withdraws_hear_it_once(demo_env, tmp_path: Path, monkeypatch) -> None:
    """The investigation's question went out to the team's webhook; when the drift check withdraws it for its own,
    the same webhook hears that once (a second evaluation sends nothing), naming the question to answer instead."""
    from dagster_agent_de.adapters.state import open_state_store
    from dagster_agent_de.core.models import EscalationState
    from dagster_agent_de_tests.notify.servers import http_recorder

    settings, job = _drift_job(demo_env, tmp_path)
    defs = build_definitions(settings)
    store = open_state_store(settings)
    with http_recorder() as srv, DagsterInstance.ephemeral() as instance:
        cfg = tmp_path / "notifications.yml"
        cfg.write_text("notifications:\n  channels:\n    team: {kind: webhook, url_env: HOOK_URL}\n  default: [team]\n")
        monkeypatch.setenv("AGENT_DE_NOTIFICATIONS", str(cfg))
        monkeypatch.setenv("HOOK_URL", srv.url + "/hook")
        assert job.execute_in_process(instance=instance).success  # the baseline
        with _stage_replaced(demo_env):
            report = _investigate_model(defs, instance).output_for_node("investigate_failure")
            (first,) = store.escalations()
            _tell_the_team(srv, store, report, first)
            job.execute_in_process(instance=instance, raise_on_error=False)
            job.execute_in_process(instance=instance, raise_on_error=False)
    withdrawn, asked = store.escalations()
    assert withdrawn.id == first.id and withdrawn.state == EscalationState.WITHDRAWN
    hooks = srv.posted("/hook")
    assert [h["event"] for h in hooks] == ["failed", "investigated", "escalated", "withdrawn"]
    assert len({h["incident_id"] for h in hooks}) == 1  # in the incident's thread
    assert f"{first.id} withdrawn: {asked.id} asks about this incident now" in hooks[-1]["title"]


def test_the_cli_notifies_through_the_same_workflows(demo_env, tmp_path: Path, monkeypatch) -> None:
    """`agent-de drift` raising the question that withdraws the investigation's tells the team's webhook once (as the
    drift check does; a second run sends nothing), and `agent-de escalations answer` replies in the incident once."""
    from click.testing import CliRunner

    from dagster_agent_de.adapters.state import open_state_store
    from dagster_agent_de.cli import main
    from dagster_agent_de.core.models import EscalationState
    from dagster_agent_de_tests.notify.servers import http_recorder

    settings, _ = _drift_job(demo_env, tmp_path)  # the CLI below reads the same private state dir
    defs = build_definitions(settings)
    store = open_state_store(settings)
    monkeypatch.setenv("AGENT_DE_DUCKDB_PATH", str(demo_env.settings.duckdb_path))

    def cli(*args: str):
        return CliRunner().invoke(main, ["--state-dir", str(tmp_path), "--project-dir", str(demo_env.project_dir), *args])

    with http_recorder() as srv, DagsterInstance.ephemeral() as instance:
        cfg = tmp_path / "notifications.yml"
        cfg.write_text("notifications:\n  channels:\n    team: {kind: webhook, url_env: HOOK_URL}\n  default: [team]\n")
        monkeypatch.setenv("AGENT_DE_NOTIFICATIONS", str(cfg))
        monkeypatch.setenv("HOOK_URL", srv.url + "/hook")
        baseline = cli("drift")
        assert baseline.exit_code == 0, baseline.output
        with _stage_replaced(demo_env):
            report = _investigate_model(defs, instance).output_for_node("investigate_failure")
            (first,) = store.escalations()
            _tell_the_team(srv, store, report, first)
            raised = cli("drift")
            after_raise = [h["event"] for h in srv.posted("/hook")]
            again = cli("drift")
        withdrawn, asked = store.escalations()
        answer = ["escalations", "answer", asked.id, "--choice", "1", "--by", "ana@shop.example", "--no-rerun"]
        answered = cli(*answer)
        retried = cli(*answer)  # the same answer again: what is stored, told nobody twice
    assert raised.exit_code == again.exit_code == 1, raised.output
    assert withdrawn.id == first.id and withdrawn.state == EscalationState.WITHDRAWN and asked.supersedes == [first.id]
    assert after_raise == ["failed", "investigated", "escalated", "withdrawn"]
    assert "notification to team: sent" in raised.output and "notification to team" not in again.output
    assert answered.exit_code == retried.exit_code == 0, answered.output
    hooks = srv.posted("/hook")
    assert [h["event"] for h in hooks] == [*after_raise, "answered"]
    assert len({h["incident_id"] for h in hooks}) == 1  # the answer replies in the incident's thread
    assert f"{first.id} withdrawn: {asked.id} asks about this incident now" in hooks[-2]["title"]
    assert hooks[-1]["title"].startswith(f"{asked.id} answered by ana@shop.example")
