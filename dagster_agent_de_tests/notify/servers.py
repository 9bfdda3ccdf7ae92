"""Real servers on loopback standing in for Slack's Web API, webhooks and an SMTP relay."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs


@dataclass
class Recorder:
    requests: list[dict[str, Any]] = field(default_factory=list)
    fail_next: int = 0  # answer this many requests with HTTP 503 (a channel that is down)
    url: str = ""

    def posted(self, path: str) -> list[dict[str, Any]]:
        return [r["body"] for r in self.requests if r["path"].endswith(path)]

    def answered(self, path: str) -> list[str]:
        """The ``ts`` the fake Slack answered each post to ``path`` with."""
        return [r["ts"] for r in self.requests if r["path"].endswith(path)]


@contextmanager
def http_recorder() -> Iterator[Recorder]:
    """Slack's Web API (``/api/chat.postMessage`` answers ``{"ok": true, "ts": ...}``) and any webhook."""
    rec = Recorder()
    counter = iter(range(1, 10**6))

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            raw = self.rfile.read(int(self.headers.get("content-length") or 0)).decode()
            if rec.fail_next > 0:
                rec.fail_next -= 1
                self.send_response(503)
                self.end_headers()
                return
            ctype = self.headers.get("content-type", "")
            body = json.loads(raw) if "json" in ctype else {k: v[0] for k, v in parse_qs(raw).items()}
            if isinstance(body.get("blocks"), str):
                body["blocks"] = json.loads(body["blocks"])
            ts = f"1700000000.{next(counter):06d}"
            rec.requests.append({"path": self.path, "body": body, "auth": self.headers.get("authorization"), "ts": ts})
            out = {"ok": True, "ts": ts, "channel": body.get("channel")}
            data = json.dumps(out).encode()
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    rec.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield rec
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def smtp_server() -> Iterator[tuple[int, list[Any]]]:
    """aiosmtpd on loopback; yields (port, received messages as ``email.message.Message``)."""
    from email import message_from_bytes

    from aiosmtpd.controller import Controller

    received: list[Any] = []

    class Handler:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
            received.append(message_from_bytes(envelope.content))
            return "250 OK"

    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    controller = Controller(Handler(), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield port, received
    finally:
        controller.stop()
