"""Escalations in Dagster: raised by an investigation, answered by the job or the CLI, re-run with the rule."""

from __future__ import annotations

import json
from contextlib import contextmanager

from click.testing import CliRunner
from dagster import AssetKey

from dagster_agent_de.adapters.state import open_state_store
from dagster_agent_de.cli import main
from dagster_agent_de.core.models import Escalation, EscalationKind, EscalationOption
from dagster_agent_de.core.state import StateStore
from dagster_agent_de.dagster.investigate import ESCALATIONS_ASSET
from dagster_agent_de.engines.escalate.context_store import CONTEXT_FILE, load_rules
from dagster_agent_de.engines.escalate.raising import raise_escalations
from dagster_agent_de_tests.dagster.test_investigation_e2e import QUIET, _investigate, _run_check_job, env  # noqa: F401
from dagster_agent_de_tests.helpers import drop_escalations


@contextmanager
def _caught(demo_env, defs, instance):
    """WT-01 NULL semantics injected and failing its reconciliation; restored (rules too) afterwards."""
    with demo_env.incident("wt01_null_semantics", rebuild="fct_orders+"):
        try:
            demo_env.dbt("run", "-s", "fct_orders+", "-q")
            _run_check_job(defs, instance, "reconcile")
            yield
        finally:
            (demo_env.project_dir / CONTEXT_FILE).unlink(missing_ok=True)
            open_state_store(demo_env.settings).forget(["rules"])


def _context_gap(store: StateStore, asset: str):
    return [e for e in store.escalations() if e.state.value == "open" and e.kind.value == "context_gap" and e.asset == asset]


def test_context_gap_answered_by_the_job_becomes_a_rule_and_reruns(env) -> None:  # noqa: F811
    demo_env, defs, instance, cursor = env
    store = open_state_store(demo_env.settings)
    with _caught(demo_env, defs, instance):
        run, _, _ = _investigate(defs, instance, cursor, "fct_orders:orders_vs_stripe")
        (esc,) = _context_gap(store, "fct_orders")
        assert "NULL" in esc.decision and esc.owner == "analytics-team" and esc.check == "orders_vs_stripe"
        mat = instance.get_latest_materialization_event(ESCALATIONS_ASSET)
        queue = mat.asset_materialization.metadata["queue"].value
        assert esc.id in [r.data["id"] for r in queue.records]
        assert "context_gap" in [r.data["kind"] for r in queue.records]
        obs = [o.asset_observation for o in instance.fetch_observations(AssetKey(["fct_orders"]), limit=10).records]
        assert any(o.metadata.get("agent_de/escalation") and o.metadata["agent_de/escalation"].value == esc.id for o in obs)
        # the queue shows a ready Launchpad config for each option, by its name
        detail = mat.asset_materialization.metadata["detail"].value
        assert f"escalation_id: {esc.id}\n      option: {esc.options[1].label}" in detail

        answered = defs.resolve_job_def("answer_escalation").execute_in_process(instance=instance, run_config={
            **QUIET, "ops": {"answer": {"config": {
                "escalation_id": esc.id, "option": esc.options[1].label.upper(), "answered_by": "ana@shop.example",
                "note": "orders without a status are drafts and are excluded on purpose"}}}})
        assert answered.success
        out = answered.output_for_node("answer")
        assert out["closed"] and out["rule"]["source"] == esc.id
        rules = load_rules(demo_env.project_dir, store).rules
        # the option's rule is what was decided; the note (why) is kept beside it, never in its place
        assert any(r.source == esc.id and r.rule == esc.options[1].rule and "drafts" in (r.note or "") for r in rules)
        assert esc.id not in [e.id for e in store.escalations() if e.state.value == "open"]
        cited = [f for f in [out["rerun_top"]] if f]
        rerun_run = instance.get_run_by_id(answered.run_id)
        assert rerun_run.tags["agent_de/escalation"] == esc.id
        latest = [r.asset_observation for r in instance.fetch_observations(AssetKey(["fct_orders"]), limit=20).records
                  if r.run_id == answered.run_id and "agent_de/finding" in r.asset_observation.metadata]
        assert cited and latest  # the re-run recorded its finding on the failing asset
        assert out["rerun_top"]["pattern"] != "null_semantics"  # the rule explains it now


def test_context_gap_answered_from_the_cli(env) -> None:  # noqa: F811
    demo_env, defs, instance, cursor = env
    store = open_state_store(demo_env.settings)
    args = ["--state-dir", str(demo_env.settings.state_dir), "--project-dir", str(demo_env.project_dir)]
    with _caught(demo_env, defs, instance):
        _investigate(defs, instance, cursor, "fct_orders:orders_vs_stripe")
        (esc,) = _context_gap(store, "fct_orders")
        listed = CliRunner().invoke(main, [*args, "escalations", "list"])
        assert esc.id in listed.output and "context_gap" in listed.output
        bad = CliRunner().invoke(main, [*args, "escalations", "answer", esc.id, "--choice", "7", "--by", "bo"])
        assert bad.exit_code == 2 and "out of range" in bad.output
        ok = CliRunner().invoke(main, [*args, "escalations", "answer", esc.id, "--choice", "1", "--by", "bo@shop.example",
                                       "--note", "status NULL means draft"])
        assert ok.exit_code == 0, ok.output
        assert f"context rule R-{esc.id} recorded" in ok.output and "re-investigated orders_vs_stripe" in ok.output
        assert "null_semantics" not in ok.output.split("re-investigated")[1].splitlines()[0]
        again = CliRunner().invoke(main, [*args, "escalations", "answer", esc.id, "--choice", "1", "--by", "x"])
        assert again.exit_code == 2 and "already answered" in again.output
        # a corrupt committed context file never means "no rules": the stored answer still explains the failure,
        # the report names the file and line, and the CLI exits 2 with the same message
        (demo_env.project_dir / CONTEXT_FILE).write_text("rules:\n  - id: R-x\n    rule: a: b\n")
        inv = CliRunner().invoke(main, [*args, "investigate", "--asset", "fct_orders", "--check", "orders_vs_stripe",
                                        "--json", "--no-llm"])
        assert inv.exit_code == 2
        report = json.loads(inv.output[: inv.output.rindex("}") + 1])
        assert report["findings"][0]["pattern"] != "null_semantics"
        (note,) = [n for n in report["notes"] if "malformed" in n]
        assert f"{demo_env.project_dir / CONTEXT_FILE}: line 3 is not valid YAML" in note
        assert f"agent-de: configuration error: {demo_env.project_dir / CONTEXT_FILE}: line 3" in inv.output


def test_four_eyes_identities_come_from_the_run_user_tag(env) -> None:  # noqa: F811
    """Dagster+ tags a run with the user who launched it: that identity approves, not the typed name."""
    demo_env, defs, instance, _ = env
    store = open_state_store(demo_env.settings)
    before = {e.id for e in store.escalations()}
    (esc,) = raise_escalations(store, [Escalation(
        id="", kind=EscalationKind.AUTHORITY_GAP, decision="Apply it?", asset="fct_revenue", approvals_required=2,
        finding_pattern="four_eyes_test", options=[EscalationOption(label="Approve", agent_action="apply_fix"),
                                                   EscalationOption(label="Reject")])])

    def answer(typed: str, user: str | None) -> dict:
        run = defs.resolve_job_def("answer_escalation").execute_in_process(
            instance=instance, tags={"user": user} if user else {}, run_config={**QUIET, "ops": {"answer": {"config": {
                "escalation_id": esc.id, "choice": 0, "answered_by": typed}}}})
        assert run.success
        return run.output_for_node("answer")

    try:
        first = answer("controller@shop.example", "cfo@shop.example")  # typed a colleague's name: the tag wins
        assert not first["closed"] and [a["by"] for a in first["escalation"]["approvals"]] == ["cfo@shop.example"]
        again = answer("someone.else@shop.example", "CFO@shop.example")  # the same person again: no second approval
        assert not again["closed"] and len(again["escalation"]["approvals"]) == 1
        done = answer("controller@shop.example", None)  # no tag (OSS Dagster): answered_by
        assert done["closed"]
        assert [a.by for a in store.escalations()[-1].approvals] == ["cfo@shop.example", "controller@shop.example"]
    finally:
        drop_escalations(store, lambda e: e.id in before)
