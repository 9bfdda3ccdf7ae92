"""Send one message to the right channels, once: routing by owner, severity and quiet hours, one thread
per incident, deduplication across sensor ticks and retries, a rate limit per channel, retries with
backoff. A channel that stays down is logged and never fails the investigation that notifies.

Thread references and deduplication keys live in the agent's state store (:class:`NotificationLedger`),
shared by every process that notifies (sensors, run workers, the CLI).
"""

from __future__ import annotations

import os
import time as _time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from dagster_agent_de.adapters.notify import Sender, SenderError, senders_from_settings
from dagster_agent_de.core.models import Severity, utcnow
from dagster_agent_de.core.notifications import Message
from dagster_agent_de.engines.notify.settings import NotificationSettings, load_notification_settings


class NotificationLedger(Protocol):
    """What the notifier remembers (implemented by the state store)."""

    def claim_notification(self, key: str) -> bool:
        """Record ``key`` as sent; ``False`` if it already was (by any process)."""

    def release_notification(self, key: str) -> None:
        """Forget a claim whose send failed, so a retry can send it."""

    def notification_thread(self, channel: str, incident: str) -> str | None: ...

    def set_notification_thread(self, channel: str, incident: str, ref: str) -> None: ...

    def defer_notification(self, channel: str, line: str) -> None:
        """Keep a line for the channel's next digest (a warning, or quiet hours)."""

    def take_deferred_notifications(self, channel: str) -> list[str]: ...


@dataclass
class Delivery:
    channel: str
    outcome: str  # sent | duplicate | deferred | failed | rate_limited
    detail: str = ""


_SENT: dict[str, deque[float]] = {}


@dataclass
class Notifier:
    settings: NotificationSettings
    senders: Mapping[str, Sender]
    ledger: NotificationLedger
    log: Callable[[str], None] = print
    attempts: int = 3
    backoff_s: float = 0.5
    sleep: Callable[[float], None] = _time.sleep
    clock: Callable[[], datetime] = utcnow
    deliveries: list[Delivery] = field(default_factory=list)

    def notify(self, message: Message, channels: list[str] | None = None) -> list[Delivery]:
        """Send ``message`` to the owner's channels (or ``channels``); return what happened on each."""
        out = []
        for name in channels if channels is not None else self.settings.channels_for(message.owner):
            out.append(self._one(name, message))
        self.deliveries += out
        return out

    def _pages(self, message: Message) -> bool:
        if message.event in ("digest", "answered", "withdrawn", "overdue", "fixed"):  # follow-ups someone awaits
            return True
        if message.severity not in self.settings.page:
            return False
        quiet = self.settings.quiet_hours
        return not (quiet and quiet.contains(self.clock().time()) and message.severity != Severity.CRITICAL)

    def _one(self, name: str, message: Message) -> Delivery:
        sender = self.senders.get(name)
        if sender is None:
            return Delivery(name, "failed", "channel has no sender (missing token or URL?)")
        thread = self.ledger.notification_thread(name, message.incident_id)
        if not self._pages(message) and thread is None:
            self.ledger.defer_notification(name, f"[{message.incident_id}] {message.title}")
            return Delivery(name, "deferred", "kept for the digest (severity or quiet hours)")
        key = f"{name}:{message.dedup_key}"
        if not self.ledger.claim_notification(key):
            return Delivery(name, "duplicate")
        window = _SENT.setdefault(name, deque())
        now = _time.monotonic()
        while window and now - window[0] > 60:
            window.popleft()
        if len(window) >= self.settings.rate_per_minute:
            self.ledger.release_notification(key)
            self.ledger.defer_notification(name, f"[{message.incident_id}] {message.title}")
            return Delivery(name, "rate_limited", f"more than {self.settings.rate_per_minute}/min: kept for the digest")
        error = ""
        for attempt in range(self.attempts):
            try:
                ref = sender.send(message, thread)
            except SenderError as e:
                error = str(e)
                self.log(f"notification to {name} failed (attempt {attempt + 1}/{self.attempts}): {e}")
                if attempt + 1 < self.attempts:
                    self.sleep(self.backoff_s * 2**attempt)
                continue
            except Exception as e:  # noqa: BLE001 - a sender's own bug: released for a retry, logged, never the caller's
                self.ledger.release_notification(key)
                self.log(f"notification to {name} failed: {type(e).__name__}: {e}")
                return Delivery(name, "failed", f"{type(e).__name__}: {e}")
            window.append(_time.monotonic())
            if ref and thread is None:
                self.ledger.set_notification_thread(name, message.incident_id, ref)
            return Delivery(name, "sent", ref or "")
        self.ledger.release_notification(key)
        return Delivery(name, "failed", error)

    def digest(self, message: Message) -> list[Delivery]:
        """The digest to its channels, with every line held back since the last one (by severity, quiet
        hours or the rate limit, on any channel) appended once."""
        held: dict[str, None] = {}
        for name in self.settings.channels:
            held.update(dict.fromkeys(self.ledger.take_deferred_notifications(name)))
        body = message.body + (("\n\nHeld back since the last digest:\n" + "\n".join(held)) if held else "")
        out = []
        for name in self.settings.digest:
            out.append(self._one(name, message.model_copy(update={"body": body})))
        self.deliveries += out
        return out


def build_notifier(project_dir: Path, ledger: NotificationLedger, *, log: Callable[[str], None] = print,
                   env: Mapping[str, str] | None = None, slack_client: Any = None) -> Notifier | None:
    """The deployment's notifier, from the ``notifications:`` block (``AGENT_DE_NOTIFICATIONS`` or
    ``vars.agent_de.notifications``) and the channels' secrets in ``env``; ``None`` when no channel is declared
    (nothing is sent). Every caller builds it here: the Dagster layer (Slack through dagster-slack's
    ``slack_client``) and the CLI (``slack_sdk``, imported only when a Slack channel is declared)."""
    from dagster_agent_de.profile import load_project_yaml

    env = dict(os.environ if env is None else env)
    settings = load_notification_settings(load_project_yaml(project_dir), env)
    if not settings.channels:
        return None
    senders = senders_from_settings(dict(settings.channels), env, slack_client=slack_client)
    missing = sorted(set(settings.channels) - set(senders))
    if missing:
        log(f"notification channels without their secret in the environment: {', '.join(missing)}")
    return Notifier(settings, senders, ledger, log=log)


def notifier_or_none(project_dir: Path, ledger: NotificationLedger, *, log: Callable[[str], None],
                     slack_client: Any = None) -> Notifier | None:
    """:func:`build_notifier` for a workflow that notifies as it works: a block that cannot be built (a bad
    ``notifications:`` block, a missing extra) is logged and gives ``None``, never the caller's failure."""
    try:
        return build_notifier(project_dir, ledger, log=log, slack_client=slack_client)
    except Exception as e:  # noqa: BLE001 - a notification problem is reported, never the caller's failure
        log(f"notifications were not sent: {type(e).__name__}: {e}")
        return None


def delivery_lines(notifier: Notifier | None) -> list[str]:
    """What ``notifier`` did on each channel, one line each (for a run log or stderr)."""
    return [f"notification to {d.channel}: {d.outcome}{' ' + d.detail if d.detail else ''}"
            for d in (notifier.deliveries if notifier is not None else [])]
