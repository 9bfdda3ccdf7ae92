"""Notifications at their boundaries: a local server for Slack's Web API, Teams and webhooks, aiosmtpd for
e-mail, and the real state store for threads and deduplication."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from dagster_agent_de.adapters.notify import senders_from_settings
from dagster_agent_de.core.models import (
    Approval,
    Escalation,
    EscalationKind,
    EscalationOption,
    EscalationState,
    InvestigationFinding,
    ProposedFix,
    Severity,
)
from dagster_agent_de.engines.notify.dispatch import Notifier
from dagster_agent_de.engines.notify.settings import NotificationSettings, load_notification_settings
from dagster_agent_de.engines.notify.workflow import (
    notify_answer,
    notify_digest,
    notify_investigation,
    notify_overdue,
    notify_withdrawn,
)
from dagster_agent_de.errors import SpecError
from dagster_agent_de_tests.notify.servers import http_recorder, smtp_server

FINDING = InvestigationFinding(pattern="join_row_drop", model="int_orders_enriched", confidence=0.944, severity=Severity.ERROR,
                  summary="The INNER join to stg_hubspot_contacts drops 1,381 of 2,000 rows (69.0%).",
                  proposed_fix=ProposedFix(description="keep unmatched orders",
                                           diff="-inner join {{ ref('stg_hubspot_contacts') }} as h\n"
                                                "+left join {{ ref('stg_hubspot_contacts') }} as h\n"))


@pytest.fixture(autouse=True)
def _fresh_rate_windows() -> None:
    """The per-channel rate window is per process: each test starts with none spent."""
    from dagster_agent_de.engines.notify import dispatch

    dispatch._SENT.clear()


def _esc(i: int, owner: str = "finance", due: datetime | None = None) -> Escalation:
    return Escalation(id=f"ESC-{i}", kind=EscalationKind.AUTHORITY_GAP, owner=owner, asset="int_orders_enriched",
                      decision="Apply the fix to int_orders_enriched? It changes finance-reported tables",
                      options=[EscalationOption(label="apply the fix"), EscalationOption(label="leave it")],
                      due_at=due)


def _settings(server_url: str, **extra) -> tuple[NotificationSettings, dict[str, str]]:
    raw = {
        "ui_url": "https://dagster.acme.io",
        "channels": {
            "data": {"kind": "slack", "channel": "#data-alerts", "token_env": "T", "base_url_env": "SLACK_URL"},
            "finance": {"kind": "slack", "channel": "#finance-data", "token_env": "T", "base_url_env": "SLACK_URL"},
            "hook": {"kind": "webhook", "url_env": "HOOK_URL"},
            "teams": {"kind": "teams", "url_env": "TEAMS_URL"},
        },
        "default": ["data"],
        "owners": {"finance": ["finance", "hook"], "ops": ["teams"]},
        **extra,
    }
    env = {"T": "xoxb-test", "SLACK_URL": server_url + "/api/", "HOOK_URL": server_url + "/hook",
           "TEAMS_URL": server_url + "/teams"}
    return NotificationSettings.model_validate(raw), env


def _notifier(settings, env, state_store, **kw) -> Notifier:
    logs: list[str] = []
    n = Notifier(settings, senders_from_settings(dict(settings.channels), env), state_store, log=logs.append,
                 sleep=lambda s: None, **kw)
    n.logs = logs  # type: ignore[attr-defined]
    return n


def _incident(notifier, escalations=(), evaluation_id=42, attached=()):
    return notify_investigation(
        notifier, asset="fct_orders", check="orders_vs_stripe", evaluation_id=evaluation_id, failing_run="run-9",
        check_description="orders_vs_stripe failed on fct_orders", numbers=[("missing_pct", "68.17")],
        finding=FINDING, investigation_run="run-10", escalations=list(escalations), owner="finance",
        attached=list(attached))


def _drift_question(i: int, owner: str = "finance", **kw) -> Escalation:
    return Escalation(id=f"ESC-{i}", kind=EscalationKind.CONTEXT_GAP, owner=owner, asset="hubspot.contacts",
                      decision="hubspot.contacts.lifecycle_stage disappeared. Which column replaces it?",
                      options=[EscalationOption(label="stage replaces lifecycle_stage"),
                               EscalationOption(label="nothing replaces lifecycle_stage")], **kw)


def test_one_thread_per_incident_in_the_owners_channel(state_store) -> None:
    with http_recorder() as srv:
        settings, env = _settings(srv.url)
        out = _incident(_notifier(settings, env, state_store), [_esc(1)])
        slack = srv.posted("chat.postMessage")
        assert [m["channel"] for m in slack] == ["#finance-data"] * 3  # routed by owner, not the default
        first, finding, escalation = slack
        assert "thread_ts" not in first or not first.get("thread_ts")
        assert finding["thread_ts"] == escalation["thread_ts"] == srv.answered("chat.postMessage")[0]  # its thread
        assert "Check orders_vs_stripe failed on fct_orders" in first["text"]
        assert "confidence 94%" in finding["text"] and "0.944" not in finding["text"]
        assert "+left join" in finding["text"]
        buttons = [e["url"] for b in finding["blocks"] if b["type"] == "actions" for e in b["elements"]]
        assert "https://dagster.acme.io/runs/run-10" in buttons
        assert "agent-de escalations answer ESC-1 --option 'apply the fix' --by <you>" in escalation["text"]
        hooks = srv.posted("/hook")
        assert [h["event"] for h in hooks] == ["failed", "investigated", "escalated"]
        assert len({h["incident_id"] for h in hooks}) == 1  # channels that cannot thread carry the incident id
        assert {d.outcome for d in out} == {"sent"}


def test_a_second_sensor_tick_or_retry_sends_nothing_twice(state_store) -> None:
    with http_recorder() as srv:
        settings, env = _settings(srv.url)
        _incident(_notifier(settings, env, state_store), [_esc(1)])
        again = _incident(_notifier(settings, env, state_store), [_esc(1)])  # another process, same store
        assert {d.outcome for d in again} == {"duplicate"}
        assert len(srv.posted("chat.postMessage")) == 3
        _incident(_notifier(settings, env, state_store), [], evaluation_id=43)  # the next failure: a new thread
        posts = srv.posted("chat.postMessage")
        ts = srv.answered("chat.postMessage")
        assert len(posts) == 5 and not posts[3].get("thread_ts") and posts[4]["thread_ts"] == ts[3] != ts[0]


def test_a_channel_that_is_down_is_retried_logged_and_never_raises(state_store) -> None:
    with http_recorder() as srv:
        settings, env = _settings(srv.url, owners={"finance": ["hook"]})
        srv.fail_next = 1
        n = _notifier(settings, env, state_store)
        out = _incident(n)
        assert [d.outcome for d in out] == ["sent", "sent"]  # the 503 was retried
        srv.fail_next = 10
        down = _incident(n, evaluation_id=99)
        assert {d.outcome for d in down} == {"failed"} and any("503" in line for line in n.logs)
        srv.fail_next = 0
        again = _incident(n, evaluation_id=99)  # the failed sends were not claimed: the retry delivers them
        assert {d.outcome for d in again} == {"sent"}


def test_a_sender_that_breaks_releases_its_message_for_the_next_try(state_store) -> None:
    """Not a SenderError (a bug in a channel's client): the delivery fails, is logged, the caller goes on, and the
    message is not marked sent, so the next attempt delivers it."""
    with http_recorder() as srv:
        settings, env = _settings(srv.url, owners={"finance": ["hook"]})
        n = _notifier(settings, env, state_store)
        hook = n.senders["hook"]
        real = hook.send

        def broken(message, thread):  # noqa: ANN001, ANN202
            raise KeyError("thread_ts")

        hook.send = broken  # type: ignore[method-assign]
        down = _incident(n, evaluation_id=7)
        assert {d.outcome for d in down} == {"failed"} and any("KeyError" in line for line in n.logs)
        hook.send = real  # type: ignore[method-assign]
        assert {d.outcome for d in _incident(n, evaluation_id=7)} == {"sent"}
        assert len(srv.posted("/hook")) == 2


def test_warnings_and_quiet_hours_wait_for_the_digest(state_store) -> None:
    with http_recorder() as srv:
        settings, env = _settings(srv.url, quiet_hours={"start": "22:00", "end": "07:00"}, digest=["data"])
        night = datetime(2026, 11, 29, 23, 30, tzinfo=timezone.utc)
        n = _notifier(settings, env, state_store, clock=lambda: night)
        out = _incident(n, [_esc(1)])
        assert {d.outcome for d in out} == {"deferred"} and not srv.posted("chat.postMessage")
        digest = notify_digest(n, [_esc(1)], now=night)
        (post,) = srv.posted("chat.postMessage")
        assert post["channel"] == "#data-alerts" and digest[0].outcome == "sent"
        assert "Held back since the last digest" in post["text"] and "Check orders_vs_stripe failed" in post["text"]


def test_the_email_digest_lists_open_escalations_past_due_first(state_store) -> None:
    now = datetime(2026, 11, 29, 8, tzinfo=timezone.utc)
    with smtp_server() as (port, received):
        settings = NotificationSettings.model_validate({
            "channels": {"mail": {"kind": "email", "to": ["data@acme.io"], "smtp_host": "127.0.0.1", "smtp_port": port}},
            "digest": ["mail"]})
        n = _notifier(settings, {}, state_store)
        escalations = [_esc(1, due=now + timedelta(days=2)), _esc(2, due=now - timedelta(days=1)), _esc(3)]
        out = notify_digest(n, escalations, now=now)
        assert out[0].outcome == "sent"
        (mail,) = received
        assert mail["Subject"] == "[DIGEST-2026-11-29] 3 open decisions (1 past due)"
        body = mail.get_payload()
        lines = [line for line in body.splitlines() if "ESC-" in line]
        assert lines[0].startswith("PAST DUE ESC-2") and lines[1].startswith("ESC-1") and lines[2].startswith("ESC-3")
        assert "https://" in body or "http://" in body  # a link to the escalations asset


def test_an_email_thread_references_the_first_message(state_store) -> None:
    with smtp_server() as (port, received):
        settings = NotificationSettings.model_validate({
            "channels": {"mail": {"kind": "email", "to": ["finance@acme.io"], "smtp_host": "127.0.0.1", "smtp_port": port}},
            "owners": {"finance": ["mail"]}})
        _incident(_notifier(settings, {}, state_store), [_esc(7)])
        first, second, third = received
        assert first["Subject"].startswith("[INC-") and "In-Reply-To" not in first
        assert second["In-Reply-To"] == third["In-Reply-To"] == first["Message-ID"]


def test_teams_carries_the_incident_id_and_links(state_store) -> None:
    with http_recorder() as srv:
        settings, env = _settings(srv.url, owners={"finance": ["teams"]})
        _incident(_notifier(settings, env, state_store))
        cards = srv.posted("/teams")
        assert len(cards) == 2 and all(c["title"].startswith("[INC-") for c in cards)
        assert any(a["targets"][0]["uri"].startswith("https://dagster.acme.io/assets/") for a in cards[0]["potentialAction"])


def test_a_bad_block_names_the_field() -> None:
    with pytest.raises(SpecError, match="channels nope are routed to but not declared"):
        load_notification_settings({"vars": {"agent_de": {"notifications": {"default": ["nope"]}}}}, env={})
    with pytest.raises(SpecError, match="channels.x"):
        load_notification_settings({"vars": {"agent_de": {"notifications": {"channels": {"x": {"kind": "sms"}}}}}}, env={})
    assert load_notification_settings({}, env={}).channels == {}  # nothing declared: nothing is sent


def test_a_withdrawn_question_is_taken_back_once_in_its_thread(state_store) -> None:
    """The drift check's question replaced the investigation's: those told about ESC-1 hear it once, in the
    incident's thread, with the question to answer instead; the replacement's answer follows in that thread."""
    with http_recorder() as srv:
        settings, env = _settings(srv.url)
        _incident(_notifier(settings, env, state_store), [_esc(1)])
        replacement = _drift_question(2, supersedes=["ESC-1"])
        withdrawn = _esc(1).model_copy(update={"state": EscalationState.WITHDRAWN, "superseded_by": "ESC-2"})
        out = notify_withdrawn(_notifier(settings, env, state_store), [withdrawn], [replacement])
        assert [(d.channel, d.outcome) for d in out] == [("finance", "sent"), ("hook", "sent")]
        slack = srv.posted("chat.postMessage")
        assert len(slack) == 4 and slack[3]["channel"] == "#finance-data"
        assert slack[3]["thread_ts"] == srv.answered("chat.postMessage")[0]  # in the incident's thread
        assert "ESC-1 withdrawn: ESC-2 asks about this incident now" in slack[3]["text"]
        assert "agent-de escalations answer ESC-2 --option 'stage replaces lifecycle_stage'" in slack[3]["text"]
        assert [h["event"] for h in srv.posted("/hook")] == ["failed", "investigated", "escalated", "withdrawn"]
        again = notify_withdrawn(_notifier(settings, env, state_store), [withdrawn], [replacement])  # the next tick
        assert {d.outcome for d in again} == {"duplicate"} and len(srv.posted("chat.postMessage")) == 4
        never_told = _esc(9).model_copy(update={"state": EscalationState.WITHDRAWN, "superseded_by": "ESC-2"})
        assert notify_withdrawn(_notifier(settings, env, state_store), [never_told], [replacement]) == []
        answered = replacement.model_copy(update={"state": EscalationState.ANSWERED,
                                                  "answer": Approval(by="ana@shop.example", choice=0)})
        notify_answer(_notifier(settings, env, state_store), answered)
        assert srv.posted("chat.postMessage")[4]["thread_ts"] == srv.answered("chat.postMessage")[0]


def test_a_finding_attached_to_an_open_question_is_said_in_the_incident_and_to_those_told(state_store) -> None:
    with http_recorder() as srv:
        settings, env = _settings(srv.url)
        asked = _drift_question(5, owner="ops")
        _incident(_notifier(settings, env, state_store), [asked], evaluation_id=41)  # ESC-5 told to ops (teams)
        out = _incident(_notifier(settings, env, state_store), [], attached=[asked])
        assert [d.channel for d in out] == ["finance", "hook"] * 3 + ["teams"]  # failed, finding, attached; ops
        assert {d.outcome for d in out} == {"sent"}
        note = srv.posted("chat.postMessage")[-1]
        assert note["thread_ts"] == srv.answered("chat.postMessage")[3]  # in this incident's thread (its first post)
        assert "No new question: ESC-5 already asks about this (join_row_drop in int_orders_enriched" in note["text"]
        assert "agent-de escalations answer ESC-5" in note["text"]
        (card,) = [c for c in srv.posted("/teams") if "No new question" in c["title"]]  # ops, in ESC-5's incident
        assert card["title"].startswith("[INC-") and card["title"] != srv.posted("/teams")[0]["title"]
        again = _incident(_notifier(settings, env, state_store), [], attached=[asked])
        assert {d.outcome for d in again} == {"duplicate"}
        answered = asked.model_copy(update={"state": EscalationState.ANSWERED})
        before = len(srv.requests)
        _incident(_notifier(settings, env, state_store), [], attached=[answered], evaluation_id=44)
        assert not [r for r in srv.requests[before:] if "No new question" in json.dumps(r["body"])]


def test_an_overdue_question_is_reminded_once(state_store) -> None:
    now = datetime(2026, 12, 7, 8, tzinfo=timezone.utc)
    with http_recorder() as srv:
        settings, env = _settings(srv.url)
        late, on_time = _esc(1, due=now - timedelta(days=1)), _esc(2, due=now + timedelta(days=1))
        _incident(_notifier(settings, env, state_store), [late, on_time])
        out = notify_overdue(_notifier(settings, env, state_store), [late, on_time], now=now)
        assert [(d.channel, d.outcome) for d in out] == [("finance", "sent"), ("hook", "sent")]
        reminder = srv.posted("chat.postMessage")[-1]
        assert "Reminder: ESC-1 is overdue (due 2026-12-06 08:00 UTC)" in reminder["text"]
        assert reminder["thread_ts"] == srv.answered("chat.postMessage")[0]
        tomorrow = notify_overdue(_notifier(settings, env, state_store), [late, on_time], now=now + timedelta(days=1))
        assert {d.outcome for d in tomorrow} == {"duplicate"}  # at most one reminder, whatever the number of digests
        assert [h["event"] for h in srv.posted("/hook")].count("overdue") == 1


def test_the_answer_workflow_tells_the_closing_answer_once(state_store) -> None:
    """A four-eyes decision: the first approval closes nothing and says nothing; the second is the answer, sent
    once (the same answer retried sends nothing)."""
    from dagster_agent_de.engines.escalate.answering import answer_escalation
    from dagster_agent_de.engines.escalate.policy import Policy
    from dagster_agent_de.engines.escalate.raising import raise_escalations

    (esc,) = raise_escalations(state_store, [_esc(0).model_copy(update={
        "id": "", "approvals_required": 2, "finding_pattern": "four_eyes",
        "options": [EscalationOption(label="apply the fix", agent_action="apply_fix"), EscalationOption(label="leave it")]})])
    with http_recorder() as srv:
        settings, env = _settings(srv.url)
        n = _notifier(settings, env, state_store)
        first = answer_escalation(state_store, esc.id, 0, by="cfo@acme.io", policy=Policy(), notifier=n)
        assert not first.closed and n.deliveries == [] and srv.requests == []
        second = answer_escalation(state_store, esc.id, 0, by="controller@acme.io", policy=Policy(), notifier=n)
        retried = answer_escalation(state_store, esc.id, 0, by="controller@acme.io", policy=Policy(),
                                    notifier=_notifier(settings, env, state_store))
        assert second.closed and retried.retried
        assert [h["event"] for h in srv.posted("/hook")] == ["answered"]  # finance's channels: its Slack and hook
        (post,) = srv.posted("chat.postMessage")
        assert post["channel"] == "#finance-data" and f"{esc.id} answered by controller@acme.io: apply the fix" in post["text"]
