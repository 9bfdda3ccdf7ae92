"""One class per channel; all share ``send(message, thread) -> thread reference | None``."""

from __future__ import annotations

import json
import smtplib
import urllib.error
import urllib.request
from email.message import EmailMessage
from email.utils import make_msgid
from typing import Any, Protocol

from dagster_agent_de.core.notifications import Message
from dagster_agent_de.errors import AgentDERuntimeError

_TIMEOUT_S = 10.0
_SEVERITY_EMOJI = {"info": ":information_source:", "warning": ":warning:", "error": ":red_circle:",
                   "critical": ":rotating_light:"}


class SenderError(AgentDERuntimeError):
    """A channel could not deliver a message (it is retried, then logged; never fails the caller)."""


class Sender(Protocol):
    name: str

    def send(self, message: Message, thread: str | None = None) -> str | None: ...


def slack_blocks(message: Message) -> list[dict[str, Any]]:
    """Block Kit: the title and what to do first, the numbers as fields, the diff as code, then links."""
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text":
            f"{_SEVERITY_EMOJI.get(message.severity.value, '')} *{message.title}*"
            + (f"\n{message.action}" if message.action else "")}},
    ]
    if message.facts:
        blocks.append({"type": "section", "fields": [
            {"type": "mrkdwn", "text": f"*{k}*\n{v}"} for k, v in message.facts[:10]]})
    if message.body:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": message.body[:2900]}})
    if message.diff:
        more = "\n… (truncated: the full diff is in Dagster)" if message.diff_truncated else ""
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": f"```{message.diff[:2800]}```{more}"}})
    if message.links:
        blocks.append({"type": "actions", "elements": [
            {"type": "button", "text": {"type": "plain_text", "text": link.label}, "url": link.url}
            for link in message.links[:5]]})
    blocks.append({"type": "context", "elements": [
        {"type": "mrkdwn", "text": f"{message.incident_id} · {message.event} · dagster-agent-de"}]})
    return blocks


class SlackSender:
    """Slack Web API ``chat.postMessage``; replies go into the incident's thread."""

    def __init__(self, name: str, client: Any, channel: str) -> None:
        self.name, self.client, self.channel = name, client, channel

    def send(self, message: Message, thread: str | None = None) -> str | None:
        try:
            resp = self.client.chat_postMessage(channel=self.channel, text=message.text()[:3000],
                                                blocks=slack_blocks(message), thread_ts=thread)
        except Exception as e:  # slack_sdk raises SlackApiError / URLError: one error type for the retry loop
            raise SenderError(f"slack {self.channel}: {type(e).__name__}: {e}") from e
        return thread or str(resp.get("ts") or "") or None


def _post_json(url: str, payload: dict[str, Any], headers: dict[str, str] | None = None) -> None:
    if not url.startswith(("https://", "http://")):
        raise SenderError(f"webhook URL must be http(s), got {url[:40]!r}")
    req = urllib.request.Request(url, data=json.dumps(payload).encode(), method="POST",
                                 headers={"content-type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=_TIMEOUT_S) as resp:
            resp.read(65536)
    except (urllib.error.URLError, OSError) as e:
        raise SenderError(f"POST {url.split('?')[0]} failed: {e}") from e


class TeamsSender:
    """A Teams incoming webhook (a MessageCard): cannot thread, so the incident id leads the title."""

    def __init__(self, name: str, url: str) -> None:
        self.name, self.url = name, url

    def send(self, message: Message, thread: str | None = None) -> str | None:
        card = {
            "@type": "MessageCard", "@context": "https://schema.org/extensions",
            "summary": f"[{message.incident_id}] {message.title}"[:200],
            "themeColor": {"critical": "C50F1F", "error": "D13438", "warning": "FFB900"}.get(message.severity.value, "0078D4"),
            "title": f"[{message.incident_id}] {message.title}",
            "sections": [{"text": message.action, "facts": [{"name": k, "value": v} for k, v in message.facts]},
                         *([{"text": message.body.replace("\n", "<br>")}] if message.body else []),
                         *([{"text": f"<pre>{message.diff}</pre>"}] if message.diff else [])],
            "potentialAction": [{"@type": "OpenUri", "name": link.label, "targets": [{"os": "default", "uri": link.url}]}
                                for link in message.links],
        }
        _post_json(self.url, card)
        return None


class WebhookSender:
    """A generic JSON webhook (PagerDuty, Opsgenie, in-house tools): the message as data."""

    def __init__(self, name: str, url: str, headers: dict[str, str] | None = None) -> None:
        self.name, self.url, self.headers = name, url, headers or {}

    def send(self, message: Message, thread: str | None = None) -> str | None:
        payload = {"source": "dagster-agent-de", "incident_id": message.incident_id, "event": message.event,
                   "severity": message.severity.value, "title": message.title, "action": message.action,
                   "facts": dict(message.facts), "body": message.body, "diff": message.diff,
                   "links": {link.label: link.url for link in message.links}, "dedup_key": message.dedup_key,
                   "owner": message.owner, "asset": message.asset}
        _post_json(self.url, payload, self.headers)
        return None


class EmailSender:
    """SMTP. The incident id leads the subject; replies reference the first message (mail clients thread)."""

    def __init__(self, name: str, *, host: str, port: int, sender: str, to: list[str], starttls: bool = False,
                 user: str | None = None, password: str | None = None) -> None:
        self.name, self.host, self.port, self.sender, self.to = name, host, port, sender, to
        self.starttls, self.user, self.password = starttls, user, password

    def send(self, message: Message, thread: str | None = None) -> str | None:
        mail = EmailMessage()
        mail["Subject"] = f"[{message.incident_id}] {message.title}"[:250]
        mail["From"] = self.sender
        mail["To"] = ", ".join(self.to)
        msg_id = make_msgid(domain="dagster-agent-de")
        mail["Message-ID"] = msg_id
        if thread:
            mail["In-Reply-To"] = thread
            mail["References"] = thread
        mail.set_content(message.text())
        try:
            with smtplib.SMTP(self.host, self.port, timeout=_TIMEOUT_S) as smtp:
                if self.starttls:
                    smtp.starttls()
                if self.user:
                    smtp.login(self.user, self.password or "")
                smtp.send_message(mail)
        except (smtplib.SMTPException, OSError) as e:
            raise SenderError(f"smtp {self.host}:{self.port}: {e}") from e
        return thread or msg_id


def senders_from_settings(channels: dict[str, Any], env: dict[str, str], slack_client: Any = None) -> dict[str, Sender]:
    """A sender for each declared channel whose secrets are set. ``slack_client(token, base_url)``
    builds the Slack client (the Dagster layer passes dagster-slack's ``SlackResource``); by default a
    ``slack_sdk.WebClient`` (install ``dagster-agent-de[slack]``)."""
    out: dict[str, Sender] = {}
    for name, ch in channels.items():
        if ch.kind == "slack":
            token = env.get(ch.token_env)
            if not token:
                continue
            base_url = env.get(ch.base_url_env) if ch.base_url_env else None
            if slack_client is None:
                try:
                    from slack_sdk import WebClient
                except ImportError as e:
                    raise SenderError("Slack notifications need slack_sdk: pip install 'dagster-agent-de[slack]'") from e
                client = WebClient(token=token, base_url=base_url) if base_url else WebClient(token=token)
            else:
                client = slack_client(token, base_url)
            out[name] = SlackSender(name, client, ch.channel)
        elif ch.kind in ("teams", "webhook"):
            url = env.get(ch.url_env)
            if not url:
                continue
            if ch.kind == "teams":
                out[name] = TeamsSender(name, url)
            else:
                headers = json.loads(env[ch.headers_env]) if ch.headers_env and env.get(ch.headers_env) else {}
                out[name] = WebhookSender(name, url, headers)
        elif ch.kind == "email":
            out[name] = EmailSender(name, host=ch.smtp_host, port=ch.smtp_port, sender=ch.sender, to=list(ch.to),
                                    starttls=ch.starttls, user=env.get(ch.user_env) if ch.user_env else None,
                                    password=env.get(ch.password_env) if ch.password_env else None)
    return out
