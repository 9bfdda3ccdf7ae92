"""No raw PII value leaves a demo run (issue #13's "done when"), end to end on the session's real demo.

Only the sources' columns stay tagged (``app.customers.email`` and ``full_name``: the tags a team
writes once, where the data lands); the models' tags are removed, so every model column is PII by
lineage alone. A reconciliation of ``dim_customers`` against ``stg_customers`` uses the e-mail as its
key (through an alias in the model, ``contact_email``), the name as its segment, and both as compared
columns. The source data changes so that it fails; the check job, the failed-check sensor and the
investigate job run in process, and so do ``agent-de reconcile --json`` and ``investigate --json``.
Every place a value could leave (every event of those runs, every row of the state store, the CLI's
output) is then searched for the raw values read straight from the warehouse: none is there, and the
masked form (``pii:`` and hex) is.
"""

from __future__ import annotations

import json
import re
from contextlib import ExitStack

import duckdb
from click.testing import CliRunner
from dagster import DagsterInstance
from sqlalchemy import select

from dagster_agent_de.adapters.state import open_state_store
from dagster_agent_de.adapters.state.schema import metadata as state_tables
from dagster_agent_de.cli import main
from dagster_agent_de.dagster.definitions import build_definitions
from dagster_agent_de.engines.pii_lineage import pii_index
from dagster_agent_de.manifest import Manifest
from dagster_agent_de.project import DbtProjectInfo
from dagster_agent_de_tests.dagster.test_investigation_e2e import QUIET, _run_check_job, _sensor_tick
from dagster_agent_de_tests.helpers import drop_escalations
from dagster_agent_de_tests.llm_replay import Replay
from dagster_agent_de_tests.notify.servers import http_recorder

MARTS = "models/marts/_marts.yml"
STAGING = "models/staging/_staging.yml"
TAG = "        config: {meta: {agent_de: {pii: true}}}\n"
DIM = "models/marts/dim_customers.sql"
SPEC = """\
          reconcile:
            - name: customers_vs_app
              description: Every customer in the mart is the application's customer, by e-mail.
              against: "ref('stg_customers')"
              key: [contact_email]
              key_against: [email]
              compare:
                full_name: {}
                email: {}
              segment_by: [full_name]
              aggregates: ["count(*)"]
              sample_size: 20
              severity: error
"""
MASKED = r"pii:[0-9a-f]{16}"
# the application renames 20 customers and gains 15 the mart has not seen yet (undone afterwards)
RENAMED = "customer_id % 25 = 0"
CHANGE = [f"update app.customers set full_name = 'Renamed Person ' || customer_id where {RENAMED}",
          "insert into app.customers select customer_id + 900000, 'newcomer' || customer_id || '@example.org', "
          "'Newcomer ' || customer_id, country, tier, created_at, _loaded_at from app.customers where customer_id <= 15"]
UNDO = ["delete from app.customers where customer_id > 900000",
        f"update app.customers set full_name = 'Customer ' || customer_id where {RENAMED}"]


def _raw_pii(path) -> set[str]:
    """Every e-mail and name the pipeline and the source of truth hold, read straight from the warehouse."""
    con = duckdb.connect(str(path), read_only=True)
    try:
        rows = con.execute("select email, full_name from app.customers union all "
                           "select email, full_name from main.dim_customers").fetchall()
    finally:
        con.close()
    return {v for row in rows for v in row if v}


def _event_text(instance, run_id: str) -> str:
    """Every event of a run: its message and its event-specific data (check metadata, observations,
    materializations, outputs), stringified."""
    out = []
    for entry in instance.all_logs(run_id):
        out.append(entry.user_message or "")
        if entry.dagster_event is not None:
            data = entry.dagster_event.event_specific_data
            out.append(repr(data))
            md = getattr(data, "metadata", None) or getattr(getattr(data, "materialization", None), "metadata", None) \
                or getattr(getattr(data, "asset_observation", None), "metadata", None) or {}
            out.append(json.dumps({k: str(getattr(v, "value", v)) for k, v in md.items()}))
    return "\n".join(out)


def _state_text(store) -> str:
    """Every row of every table of the state store (audit, findings, escalations, rules, notifications...)."""
    out = []
    with store.engine.connect() as conn:
        for table in state_tables.sorted_tables:
            out.extend(repr(tuple(r)) for r in conn.execute(select(table)))
    return "\n".join(out)


def test_no_raw_pii_leaves_a_demo_run(demo_env, monkeypatch, tmp_path) -> None:
    settings = demo_env.settings
    # every notification channel too: Slack's Web API and a webhook on loopback
    slack = http_recorder()
    hooks = slack.__enter__()
    cfg = tmp_path / "notifications.yml"
    cfg.write_text("notifications:\n  channels:\n"
                   "    data: {kind: slack, channel: '#data', base_url_env: SLACK_API}\n"
                   "    hook: {kind: webhook, url_env: HOOK_URL}\n  default: [data, hook]\n"
                   "  page: [info, warning, error, critical]\n")  # send everything at once: nothing waits for a digest
    monkeypatch.setenv("AGENT_DE_NOTIFICATIONS", str(cfg))
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-test")
    monkeypatch.setenv("SLACK_API", hooks.url + "/api/")
    monkeypatch.setenv("HOOK_URL", hooks.url + "/hook")
    store = open_state_store(settings)
    before = {e.id for e in store.escalations()}
    with ExitStack() as undo:
        undo.callback(demo_env.dbt, "run", "-s", "dim_customers", "-q")  # last: rebuilt from the restored files
        undo.enter_context(demo_env.patched(DIM, "    c.email,\n", "    c.email,\n    c.email as contact_email,\n"))
        undo.enter_context(demo_env.patched(MARTS, "          # entity resolution", SPEC + "          # entity resolution"))
        undo.enter_context(demo_env.patched(MARTS, "      - name: email\n" + TAG, "      - name: email\n"))
        undo.enter_context(demo_env.patched(STAGING, TAG, ""))  # stg_customers and stg_hubspot_contacts
        demo_env.dbt("run", "-s", "dim_customers", "-q")  # also parses: the manifest carries the spec and the alias
        manifest = Manifest.load(DbtProjectInfo.from_settings(settings).manifest_path, demo_env.project_dir)
        index = pii_index(manifest)
        assert {rel.split(".")[-1] for rel in index.tagged} == {"customers", "contacts"}  # the sources only
        assert index.relation_pii("main.dim_customers") >= {"email", "contact_email", "full_name"}  # by lineage
        undo.callback(lambda: [demo_env.write(sql) for sql in UNDO])
        for sql in CHANGE:
            demo_env.write(sql)
        undo.callback(drop_escalations, store, lambda e: e.id in before)
        raw = _raw_pii(settings.duckdb_path)
        assert len(raw) > 1000 and "customer17@example.com" in raw and "Renamed Person 25" in raw

        defs = build_definitions(settings)
        with DagsterInstance.get() as instance:
            _, cursor = _sensor_tick(defs, instance, None)
            checked = _run_check_job(defs, instance, "reconcile")
            failed = {e.check_name: e for e in checked.get_asset_check_evaluations()}["customers_vs_app"]
            md = failed.metadata
            assert not failed.passed and md["missing_in_pipeline"].value == 15 and md["mismatched_rows"].value == 20
            result, cursor = _sensor_tick(defs, instance, cursor)
            (request,) = [r for r in result.run_requests if r.tags["agent_de/check"] == "dim_customers:customers_vs_app"]
            replay = Replay("demo_pii_review.json")  # the LLM second opinion asks for e-mails and names
            with replay.serve() as url:
                monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test-pii")
                monkeypatch.setenv("ANTHROPIC_BASE_URL", url)
                run = defs.resolve_job_def("investigate").execute_in_process(
                    instance=instance, run_config={**request.run_config, **QUIET}, tags=request.tags)
            monkeypatch.delenv("ANTHROPIC_API_KEY")
            assert run.success
            findings = run.output_for_node("investigate_failure")["findings"]
            (llm,) = [f for f in findings if f["source"] == "llm"]
            assert llm["model"] == "dim_customers" and llm["evidence"][0]["rows_sample"]  # evidence with values
            sent = json.loads(replay.tool_results(1)[0]["content"])["rows"]  # what the LLM saw of its own query
            assert len(sent) == 5 and all(re.fullmatch(MASKED, str(v)) for row in sent for v in row.values()), sent
            texts = {"check run events": _event_text(instance, checked.run_id),
                     "investigation events": _event_text(instance, run.run_id),
                     "the LLM's requests": json.dumps(replay.requests)}

        cli = ["--state-dir", str(settings.state_dir), "--project-dir", str(demo_env.project_dir)]
        rec = CliRunner().invoke(main, [*cli, "reconcile", "--name", "customers_vs_app", "--json"])
        assert rec.exit_code == 1, rec.output
        report = json.loads(rec.output)["reports"][0]
        assert report["samples"]["missing_in_pipeline"] and len(report["segments"]) > 400
        inv = CliRunner().invoke(main, [*cli, "investigate", "--asset", "dim_customers", "--check", "customers_vs_app",
                                        "--json", "--no-llm"])
        assert inv.exit_code == 0, inv.output
        # masking keeps counts numbers: every detector ran (join_fanout probes the e-mail join of dim_customers)
        assert not [n for n in json.loads(inv.output)["notes"] if " failed on " in n]
        slack.__exit__(None, None, None)
        assert hooks.posted("chat.postMessage") and hooks.posted("/hook")  # the channels were told
        texts |= {"reconcile --json": rec.output, "investigate --json": inv.output,
                  "notifications": json.dumps([r["body"] for r in hooks.requests]),
                  "state store": _state_text(store),
                  "escalations": json.dumps([e.model_dump(mode="json") for e in store.escalations()])}

    leaks = {where: sorted(v for v in raw if v in text)[:3] for where, text in texts.items()}
    assert not any(leaks.values()), f"raw PII escaped: {leaks}"
    masked = re.compile(MASKED)
    for where in ("check run events", "reconcile --json", "the LLM's requests"):
        assert masked.search(texts[where]), f"no masked value in {where}: the test would pass vacuously"
    assert set(masked.findall(texts["check run events"])) & set(masked.findall(texts["reconcile --json"]))  # one key
