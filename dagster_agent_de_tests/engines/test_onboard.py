"""Source onboarding on a constructed warehouse table and an API schema."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import yaml

from dagster_agent_de.adapters.audit import AuditLog
from dagster_agent_de.adapters.warehouse import DuckDBWarehouse
from dagster_agent_de.core.models import EscalationKind
from dagster_agent_de.engines.escalate.policy import PolicyRefusedError
from dagster_agent_de.engines.onboard import (
    apply_proposal,
    profile_from_json_schema,
    profile_table,
    project_wants_arguments_property,
    propose,
    write_proposal,
)
from dagster_agent_de.errors import ConfigError, SpecError
from dagster_agent_de.manifest import Manifest
from dagster_agent_de_tests.helpers import duck

NOW = datetime(2026, 11, 27, 12, 0, 0)
API = Path(__file__).parent.parent / "fixtures" / "api" / "helpdesk_openapi.yaml"


@pytest.fixture
def tickets(tmp_path: Path) -> Path:
    loaded = (NOW - timedelta(hours=3)).strftime("%Y-%m-%d %H:%M:%S")
    return duck(
        tmp_path / "wh.duckdb",
        "create schema zendesk",
        f"""create table zendesk.tickets as select
              range as "TicketId",
              'T-' || range as ticket_ref,
              range % 50 as customer_id,
              ['open', 'pending', 'solved'][1 + range % 3] as status,
              'user' || (range % 120) || '@example.com' as contact,
              case when range % 7 = 0 then null else 'Help with order ' || range end as subject,
              (range % 40) * 137 as fee_cents,
              (range * 3) % 100 as amount,
              timestamp '{loaded}' - (range % 24) * interval 1 hour as _loaded_at
            from range(200)""",
    )


def _manifest() -> Manifest:
    # an existing source with a unique key named customer_id: the new table's customer_id relates to it
    return Manifest({"nodes": {
        "model.p.stg_customers": {"name": "stg_customers", "resource_type": "model", "relation_name": "x", "depends_on": {"nodes": []}},
        "test.p.unique_stg_customers_customer_id": {
            "name": "unique_stg_customers_customer_id", "resource_type": "test", "column_name": "customer_id",
            "test_metadata": {"name": "unique", "kwargs": {"column_name": "customer_id"}},
            "depends_on": {"nodes": ["model.p.stg_customers"]}},
    }, "sources": {}})


def test_profile_takes_a_fixed_handful_of_queries(tickets: Path) -> None:
    audit = AuditLog(None)
    with DuckDBWarehouse(tickets, audit) as wh:
        prof = profile_table(wh, "zendesk", "tickets")
    assert prof.rows == 200 and [c.name for c in prof.columns][:2] == ["TicketId", "ticket_ref"]
    assert len([e for e in audit.events if e.kind == "query"]) == 5  # schema, aggregates, exact key check, value counts, PII sample
    assert {c.name for c in prof.columns if c.exact_unique} == {"TicketId", "ticket_ref"}
    assert prof.column("status").top_values == [("open", 67), ("pending", 67), ("solved", 66)]
    assert prof.column("subject").non_null == 171


def test_decisions_go_to_the_sources_owner_else_the_data_team(tickets: Path) -> None:
    """Without --owner, an escalation is owned as every other one is: the existing source's meta.owner,
    else ``data-team`` (never nobody); the generated YAML gets no owner it was not given."""
    with DuckDBWarehouse(tickets, AuditLog(None)) as wh:
        prof = profile_table(wh, "zendesk", "tickets")
    p = propose(prof, _manifest(), now=NOW)
    assert p.decisions and {e.owner for e in p.decisions} == {"data-team"}
    src = yaml.safe_load(p.files["models/staging/zendesk/_zendesk__sources.yml"])["sources"][0]
    assert "config" not in src
    owned = Manifest({"nodes": {}, "sources": {"source.p.zendesk.users": {
        "name": "users", "resource_type": "source", "source_name": "zendesk", "relation_name": "x",
        "source_meta": {"owner": "support-data"}, "config": {}, "meta": {}}}})
    assert {e.owner for e in propose(prof, owned, now=NOW).decisions} == {"support-data"}
    assert {e.owner for e in propose(prof, owned, owner="me", now=NOW).decisions} == {"me"}
    # the source exists: its entry is for the user to add, and the staging model does not compile until then
    (todo,) = [t for t in propose(prof, owned, now=NOW).todo if t.startswith("add this table")]
    assert "dbt cannot compile stg_zendesk__tickets until then" in todo.splitlines()[0], todo


def test_the_source_yaml_describes_the_raw_column_not_the_staged_one(tickets: Path) -> None:
    """fee_cents is in cents in the source; only the staging model's fee is in major units."""
    with DuckDBWarehouse(tickets, AuditLog(None)) as wh:
        p = propose(profile_table(wh, "zendesk", "tickets"), _manifest(), now=NOW)
    src = {c["name"]: c for c in yaml.safe_load(p.files["models/staging/zendesk/_zendesk__sources.yml"])["sources"][0]
           ["tables"][0]["columns"]}
    model = {c["name"]: c for c in yaml.safe_load(p.files["models/staging/zendesk/_zendesk__models.yml"])["models"][0]["columns"]}
    assert model["fee"]["description"] == "Fee in major units (from fee_cents)."
    assert "major units" not in src["fee_cents"]["description"], src["fee_cents"]


def test_proposal_does_what_the_data_shows_and_escalates_the_rest(tickets: Path) -> None:
    with DuckDBWarehouse(tickets, AuditLog(None)) as wh:
        p = propose(profile_table(wh, "zendesk", "tickets"), _manifest(), owner="support-data", now=NOW)
    assert p.model_name == "stg_zendesk__tickets"
    sql = p.files["models/staging/zendesk/stg_zendesk__tickets.sql"]
    assert '"TicketId" as ticket_id' in sql and "fee_cents / 100.0 as fee" in sql
    assert "{{ source('zendesk', 'tickets') }}" in sql
    src = yaml.safe_load(p.files["models/staging/zendesk/_zendesk__sources.yml"])["sources"][0]
    table = src["tables"][0]
    # dbt 1.10+ conventions: meta, loaded_at_field and freshness under config: (no PropertyMovedToConfigDeprecation)
    assert (src["name"], src["schema"], src["config"]) == ("zendesk", "zendesk", {"meta": {"owner": "support-data"}})
    assert "meta" not in src and "loaded_at_field" not in table and "freshness" not in table
    assert table["config"]["loaded_at_field"] == "_loaded_at"
    assert table["config"]["freshness"] == {"warn_after": {"count": 12, "period": "hour"}, "error_after": {"count": 24, "period": "hour"}}
    cols = {c["name"]: c for c in yaml.safe_load(p.files["models/staging/zendesk/_zendesk__models.yml"])["models"][0]["columns"]}
    assert cols["ticket_id"]["data_tests"] == ["unique", "not_null"]
    assert {"relationships": {"to": "ref('stg_customers')", "field": "customer_id", "config": {"severity": "warn"}}} \
        in cols["customer_id"]["data_tests"]
    assert {"accepted_values": {"values": ["open", "pending", "solved"], "config": {"severity": "warn"}}} in cols["status"]["data_tests"]
    assert cols["contact"]["config"] == {"meta": {"agent_de": {"pii": True, "pii_kind": "email"}}} and "meta" not in cols["contact"]
    assert "data_tests" not in cols["subject"]  # has NULLs, free text
    # the grain is ambiguous between two unique columns? TicketId is named like a key, ticket_ref is not
    assert any(d.startswith("grain: TicketId is unique") for d in p.done)
    kinds = {e.finding_pattern: e.kind for e in p.decisions}
    assert kinds == {"onboard:pii_handling": EscalationKind.AUTHORITY_GAP, "onboard:freshness_sla": EscalationKind.CONTEXT_GAP,
                     "onboard:units:amount": EscalationKind.CONTEXT_GAP}
    pii = next(e for e in p.decisions if e.finding_pattern == "onboard:pii_handling")
    assert "200 of 200 sampled values look like emails" in pii.options[0].evidence
    assert "unchanged" in pii.continues  # detected, never remediated
    assert "@example.com" not in str(p.model_dump())  # no sampled value is kept


def test_ambiguous_or_missing_grain_is_a_context_gap(tmp_path: Path) -> None:
    path = duck(tmp_path / "wh.duckdb", "create schema crm",
                "create table crm.events as select range % 10 as account_id, 'x' as kind from range(100)")
    with DuckDBWarehouse(path, AuditLog(None)) as wh:
        p = propose(profile_table(wh, "crm", "events"), _manifest(), now=NOW)
    (grain,) = [e for e in p.decisions if e.finding_pattern == "onboard:grain"]
    assert grain.kind == EscalationKind.CONTEXT_GAP and grain.recommendation is None
    assert "unique" not in p.files["models/staging/crm/_crm__models.yml"]
    assert any("no column says when a row was loaded" in t for t in p.todo)


def test_missing_table_names_what_to_fix(tickets: Path) -> None:
    with DuckDBWarehouse(tickets, AuditLog(None)) as wh, pytest.raises(ConfigError, match="zendesk.ticket was not found"):
        profile_table(wh, "zendesk", "ticket")


def test_api_schema_onboarding(tmp_path: Path) -> None:
    prof = profile_from_json_schema(API, "helpdesk", "tickets", name="Ticket")
    p = propose(prof, _manifest(), arguments_property=True)
    cols = {c["name"]: c for c in yaml.safe_load(p.files["models/staging/helpdesk/_helpdesk__models.yml"])["models"][0]["columns"]}
    assert cols["requester_email"]["config"]["meta"]["agent_de"]["pii_kind"] == "email"
    assert cols["id"]["data_tests"] == ["unique", "not_null"]
    assert "price_cents / 100.0 as price" in p.files["models/staging/helpdesk/stg_helpdesk__tickets.sql"].replace('"priceCents"', "price_cents")
    src = yaml.safe_load(p.files["models/staging/helpdesk/_helpdesk__sources.yml"])["sources"][0]["tables"][0]
    assert src["config"]["loaded_at_field"] == "createdAt" and "not loaded yet" in src["description"]
    grain = next(e for e in p.decisions if e.finding_pattern == "onboard:grain")
    assert grain.recommendation == 0 and "declared" in grain.options[0].label
    with pytest.raises(SpecError, match="pass the schema to onboard with --name \\(one of Ticket\\)"):
        profile_from_json_schema(API, "helpdesk", "tickets")


def test_apply_needs_a_human_and_never_overwrites(tickets: Path, tmp_path: Path) -> None:
    with DuckDBWarehouse(tickets, AuditLog(None)) as wh:
        p = propose(profile_table(wh, "zendesk", "tickets"), _manifest(), now=NOW)
    project = tmp_path / "project"
    project.mkdir()
    audit = AuditLog(None)
    with pytest.raises(PolicyRefusedError, match="needs a human present"):
        apply_proposal(p, project, audit, human_present=False)
    assert not (project / "models").exists()
    written = apply_proposal(p, project, audit, human_present=True)
    assert len(written) == 3 and all(w.exists() for w in written)
    with pytest.raises(ConfigError, match="would overwrite .*stg_zendesk__tickets.sql"):
        apply_proposal(p, project, audit, human_present=True)
    out = write_proposal(p, tmp_path / "proposals")
    assert "Decisions that need a human" in (out / "ONBOARDING.md").read_text()


def test_pii_scan_of_sources_honours_not_pii_answers_and_reports_unreadable_tables(tmp_path: Path) -> None:
    from dataclasses import dataclass, field

    from dagster_agent_de.engines.pii_scan import scan_sources

    @dataclass
    class Rule:  # what answering "not PII" records in the context store
        applies_to: list[str]
        suppresses: list[str] = field(default_factory=lambda: ["pii_untagged"])

    path = duck(tmp_path / "wh.duckdb", "create schema crm",
                "create table crm.people as select range as id, '+44 20 7946 ' || lpad(range::varchar, 4, '0') as contact, "
                "'x' as note from range(50)")
    manifest = Manifest({"nodes": {}, "sources": {
        "source.p.crm.people": {"name": "people", "source_name": "crm", "resource_type": "source",
                                "relation_name": '"wh"."crm"."people"', "columns": {}},
        "source.p.crm.gone": {"name": "gone", "source_name": "crm", "resource_type": "source",
                              "relation_name": '"wh"."crm"."gone"', "columns": {}}}})
    columns = {"crm.people": [("id", "BIGINT"), ("contact", "VARCHAR"), ("note", "VARCHAR")], "crm.gone": [("email", "VARCHAR")]}
    with DuckDBWarehouse(path, AuditLog(None)) as wh:
        found = {r.node: r for r in scan_sources(manifest, wh, columns)}
        silenced = {r.node: r for r in scan_sources(manifest, wh, columns, rules=[Rule(["crm.people.contact"])])}
    assert [(h.column, h.kind, h.by) for h in found["crm.people"].hits] == [("contact", "phone", "values")]
    assert silenced["crm.people"].hits == ()
    assert found["crm.gone"].error and "gone" in found["crm.gone"].error  # reported, never a silent pass


def test_answers_are_applied_and_never_asked_again(tickets: Path, tmp_path: Path, state_store) -> None:
    from dagster_agent_de.engines.escalate.answering import answer_escalation
    from dagster_agent_de.engines.escalate.policy import Policy
    from dagster_agent_de.engines.escalate.raising import answered_choices, raise_decisions

    with DuckDBWarehouse(tickets, AuditLog(None)) as wh:
        prof = profile_table(wh, "zendesk", "tickets")
    first = propose(prof, _manifest(), now=NOW)
    store = state_store
    raised = raise_decisions(store, first.decisions)
    assert sorted(e.finding_pattern for e in raised) == ["onboard:freshness_sla", "onboard:pii_handling", "onboard:units:amount"]

    # a human answers: hash the PII, hourly loads, amount is in cents
    choices = {"onboard:pii_handling": 0, "onboard:freshness_sla": 0, "onboard:units:amount": 0}
    for e in raised:
        answer_escalation(store, e.id, choices[e.finding_pattern or ""], by="ops@shop.test", policy=Policy())
    answers = answered_choices(store)
    assert answers[("zendesk.tickets", "onboard:units:amount")] == 0
    second = propose(prof, _manifest(), now=NOW, answers=answers)
    assert second.decisions == [] and raise_decisions(store, first.decisions) == []  # never asked twice
    sql = second.files["models/staging/zendesk/stg_zendesk__tickets.sql"]
    assert "{{ dbt.hash('contact') }} as contact" in sql and "amount / 100.0 as amount" in sql
    table = yaml.safe_load(second.files["models/staging/zendesk/_zendesk__sources.yml"])["sources"][0]["tables"][0]
    assert table["config"]["freshness"]["error_after"] == {"count": 6, "period": "hour"}  # hourly loads
    assert sum(d.startswith("answered by a human") for d in second.done) == 3

    dropped = propose(prof, _manifest(), now=NOW, answers={("zendesk.tickets", "onboard:pii_handling"): 2})
    assert "contact" not in dropped.files["models/staging/zendesk/stg_zendesk__tickets.sql"]
    assert "contact" not in dropped.files["models/staging/zendesk/_zendesk__models.yml"]


SNOWFLAKE_PROFILE = """{profile}:
  target: prod
  outputs:
    prod:
      type: snowflake
      account: not-an-account
      user: nobody
      password: not-a-password
      role: R
      warehouse: WH
      database: DB
      schema: ANALYTICS
      threads: 1
"""


def test_demo_and_proposal_yaml_pass_dbt_validation_for_snowflake(tickets: Path, tmp_path: Path) -> None:
    """dbt 1.10+ validates property placement for Snowflake (also BigQuery, Databricks, Redshift): the demo's
    YAML and an onboarding proposal parse without a PropertyMovedToConfigDeprecation (``dbt parse`` does not
    connect, so dummy credentials are enough)."""
    pytest.importorskip("dbt.adapters.snowflake", reason="needs dbt-snowflake (the dev extra)")
    import json
    import shutil
    import subprocess

    from dagster_agent_de.config import BUNDLED_PROJECT_DIR
    from dagster_agent_de.project import dbt_executable

    project = tmp_path / "project"
    shutil.copytree(BUNDLED_PROJECT_DIR, project, ignore=shutil.ignore_patterns("target", "logs", "dbt_packages"))
    with DuckDBWarehouse(tickets, AuditLog(None)) as wh:
        p = propose(profile_table(wh, "zendesk", "tickets"), _manifest(), owner="support-data", now=NOW,
                    arguments_property=project_wants_arguments_property(project))
    apply_proposal(p, project, AuditLog(None), human_present=True)
    profile = yaml.safe_load((project / "dbt_project.yml").read_text())["profile"]
    (tmp_path / "profiles").mkdir()
    (tmp_path / "profiles" / "profiles.yml").write_text(SNOWFLAKE_PROFILE.format(profile=profile))
    proc = subprocess.run(
        [dbt_executable(), "parse", "--project-dir", str(project), "--profiles-dir", str(tmp_path / "profiles"),
         "--no-partial-parse", "--show-all-deprecations", "--log-format", "json", "--no-send-anonymous-usage-stats"],
        cwd=project, capture_output=True, text=True,
    )
    events = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    names = [e["info"]["name"] for e in events]
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert any(e["info"]["name"] == "AdapterRegistered" and "snowflake" in e["info"]["msg"] for e in events)
    moved = [e["info"]["msg"] for e in events if e["info"]["name"] == "PropertyMovedToConfigDeprecation"]
    assert moved == [] and "DeprecationsSummary" not in names
    manifest = json.loads((project / "target" / "manifest.json").read_text())
    onboarded = manifest["sources"]["source.shop.zendesk.tickets"]
    assert onboarded["config"]["loaded_at_field"] == "_loaded_at" and onboarded["config"]["meta"] == {"owner": "support-data"}
    assert manifest["sources"]["source.shop.app.orders"]["config"]["freshness"]["error_after"]["count"] == 24


def _landed(tmp_path: Path, schema: str, *extra: str) -> Path:
    """A table as the probe's team landed it: a raw_ schema, a ticket's created_at weeks old (the last load
    was long ago), plus ``extra`` select items (a loader's timestamp)."""
    created = (NOW - timedelta(hours=874)).strftime("%Y-%m-%d %H:%M:%S")
    cols = ", ".join(["range as ticket_id", "range % 40 as account_id", "'person' || range || '@mail.com' as requester_email",
                      f"timestamp '{created}' as created_at", *extra])
    return duck(tmp_path / "dev.duckdb", f"create schema {schema}", f"create table {schema}.tickets as select {cols} from range(60)")


def test_the_source_does_not_pin_the_database_the_agent_ran_on(tmp_path: Path) -> None:
    """Profiled in dev's database, the source must resolve in prod's when dbt runs --target prod: no
    ``database:`` when the table is in the connection's (the target's) default database; pinned otherwise."""
    with DuckDBWarehouse(_landed(tmp_path, "raw_zendesk"), AuditLog(None)) as wh:
        prof = profile_table(wh, "raw_zendesk", "tickets")
    assert (prof.database, prof.session_database) == ("dev", "dev")
    p = propose(prof, _manifest(), source_name="zendesk", now=NOW)
    src = yaml.safe_load(p.files["models/staging/zendesk/_zendesk__sources.yml"])["sources"][0]
    assert "database" not in src and src["schema"] == "raw_zendesk"
    assert any(d.startswith("source without database: dev is the target's default database") for d in p.done)
    # a table in another database than the connection's stays pinned to it
    other = propose(replace(prof, database="raw"), _manifest(), source_name="zendesk", now=NOW)
    assert yaml.safe_load(other.files["models/staging/zendesk/_zendesk__sources.yml"])["sources"][0]["database"] == "raw"


def test_freshness_never_writes_a_threshold_the_data_already_fails(tmp_path: Path) -> None:
    """The latest created_at is 874 h old: every option would fail `dbt source freshness` at once. No threshold
    is written; the SLA is asked with no recommendation, saying why; a human's answer is written as given."""
    with DuckDBWarehouse(_landed(tmp_path, "raw_zendesk"), AuditLog(None)) as wh:
        prof = profile_table(wh, "raw_zendesk", "tickets")
    p = propose(prof, _manifest(), now=NOW)
    table = yaml.safe_load(p.files["models/staging/zendesk/_zendesk__sources.yml"])["sources"][0]["tables"][0]
    assert table["config"] == {"loaded_at_field": "created_at"}  # no freshness: dbt source freshness skips it
    (sla,) = [e for e in p.decisions if e.finding_pattern == "onboard:freshness_sla"]
    assert sla.recommendation is None and "874.0 h old" in sla.recommendation_reason
    assert "no freshness threshold is written" in sla.continues
    assert "created_at is a business event time" in sla.options[0].evidence
    assert any(t.startswith("no freshness threshold written: the latest created_at is 874.0 h old") for t in p.todo)
    assert any(t.startswith("created_at is a business event time") for t in p.todo)
    answered = propose(prof, _manifest(), now=NOW, answers={("zendesk.tickets", "onboard:freshness_sla"): 2})
    table = yaml.safe_load(answered.files["models/staging/zendesk/_zendesk__sources.yml"])["sources"][0]["tables"][0]
    assert table["config"]["freshness"]["error_after"] == {"count": 50, "period": "hour"}  # daily, as answered
    none = propose(prof, _manifest(), now=NOW, answers={("zendesk.tickets", "onboard:freshness_sla"): 3})
    assert "freshness" not in yaml.safe_load(none.files["models/staging/zendesk/_zendesk__sources.yml"])[
        "sources"][0]["tables"][0]["config"]


def test_a_load_timestamp_is_preferred_to_a_business_event_time(tmp_path: Path) -> None:
    """created_at says when a ticket was opened; the loader's _fivetran_synced says when it landed."""
    synced = (NOW - timedelta(hours=1)).strftime("%Y-%m-%d %H:%M:%S")
    with DuckDBWarehouse(_landed(tmp_path, "raw_zendesk", f"timestamp '{synced}' as _fivetran_synced"), AuditLog(None)) as wh:
        p = propose(profile_table(wh, "raw_zendesk", "tickets"), _manifest(), now=NOW)
    table = yaml.safe_load(p.files["models/staging/zendesk/_zendesk__sources.yml"])["sources"][0]["tables"][0]
    assert table["config"]["loaded_at_field"] == "_fivetran_synced"
    assert table["config"]["freshness"]["warn_after"] == {"count": 2, "period": "hour"}  # 1 h old: hourly loads
    assert not any("stands in as loaded_at_field" in t for t in p.todo)


def test_the_default_source_name_drops_raw_affixes_or_joins_the_existing_source(tmp_path: Path) -> None:
    with DuckDBWarehouse(_landed(tmp_path, "raw_zendesk"), AuditLog(None)) as wh:
        prof = profile_table(wh, "raw_zendesk", "tickets")
    p = propose(prof, _manifest(), now=NOW)
    assert (p.source_name, p.model_name) == ("zendesk", "stg_zendesk__tickets")
    assert p.source_name_from == "the schema raw_zendesk without its raw_ prefix"
    assert "models/staging/zendesk/_zendesk__sources.yml" in p.files
    assert propose(replace(prof, schema="zendesk_raw"), _manifest(), now=NOW).source_name == "zendesk"
    assert propose(prof, _manifest(), source_name="Support", now=NOW).source_name_from == "given"
    # the team already reads raw_zendesk as source `helpdesk`: the table joins it
    team = Manifest({"nodes": {}, "sources": {"source.p.helpdesk.users": {
        "name": "users", "resource_type": "source", "source_name": "helpdesk", "schema": "raw_zendesk", "relation_name": "x",
        "config": {}, "meta": {}}}})
    joined = propose(prof, team, now=NOW)
    assert joined.source_name == "helpdesk" and joined.source_name_from == "the existing source helpdesk reads the schema raw_zendesk"
    assert any(t.startswith("add this table under sources: helpdesk") for t in joined.todo)


def test_the_staging_model_is_in_dbt_staging_style(tickets: Path) -> None:
    """Import the source in a CTE, rename in the next, select from the last (the team's and dbt's style)."""
    with DuckDBWarehouse(tickets, AuditLog(None)) as wh:
        p = propose(profile_table(wh, "zendesk", "tickets"), _manifest(), now=NOW)
    sql = p.files["models/staging/zendesk/stg_zendesk__tickets.sql"]
    body = sql.split("\n", 1)[1]  # after the generated-by comment
    assert body.startswith("with source as (\n    select * from {{ source('zendesk', 'tickets') }}\n),\n\nrenamed as (\n"
                           "    select\n        \"TicketId\" as ticket_id,\n        ticket_ref,\n"), body
    assert body.endswith("        \"_loaded_at\" as loaded_at\n    from source\n)\n\nselect * from renamed\n"), body


def test_one_question_per_table_whatever_source_name_it_is_onboarded_as(tmp_path: Path, state_store) -> None:
    """Onboarding raw_zendesk.tickets as `zendesk`, then as `support`: the PII and freshness questions still
    open stand for the second (nothing asked twice); a human's answer given under one name holds for the other."""
    from dagster_agent_de.engines.escalate.answering import answer_escalation
    from dagster_agent_de.engines.escalate.policy import Policy
    from dagster_agent_de.engines.onboard import onboard_source

    path = _landed(tmp_path, "raw_zendesk")
    project = tmp_path / "project"
    project.mkdir()

    def run(source: str | None):
        with DuckDBWarehouse(path, AuditLog(None)) as wh:
            return onboard_source(wh, _manifest(), state_store, table="raw_zendesk.tickets", project_dir=project,
                                  proposals_dir=tmp_path / "proposals", source_name=source)

    first = run("zendesk")
    assert sorted(e.finding_pattern for e in first.escalations) == ["onboard:freshness_sla", "onboard:pii_handling"]
    second = run("support")
    assert second.escalations == [] and second.proposal.model_name == "stg_support__tickets"
    assert {e.id for e in second.already_asked} == {e.id for e in first.escalations}
    assert [e.finding_pattern for e in state_store.escalations()].count("onboard:pii_handling") == 1
    assert run(None).escalations == []  # the default name (zendesk) too
    (pii,) = [e for e in first.escalations if e.finding_pattern == "onboard:pii_handling"]
    answer_escalation(state_store, pii.id, 0, by="dpo@shop.test", policy=Policy())
    third = run("helpdesk")
    assert third.escalations == [] and [e.finding_pattern for e in third.already_asked] == ["onboard:freshness_sla"]
    assert "{{ dbt.hash('requester_email') }} as requester_email" in third.proposal.files[
        "models/staging/helpdesk/stg_helpdesk__tickets.sql"]
