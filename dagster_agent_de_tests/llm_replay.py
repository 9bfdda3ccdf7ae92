"""Replay recorded Anthropic responses at the HTTP boundary: the SDK's own transport, or a local server.

Nothing here reaches the network. Each request the SDK sends is kept (``requests``: the JSON bodies,
``headers``) so a test can assert what the agent actually sent.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).parent / "fixtures" / "anthropic"


def httpx_module() -> Any:
    """The HTTP library this anthropic SDK is built on (``httpx``, or ``httpx2`` in newer SDKs)."""
    import anthropic._client as client

    return getattr(client, "httpx2", None) or client.httpx


class Replay:
    """Answers ``POST /v1/messages`` with the recorded responses of one conversation, in order."""

    def __init__(self, fixture: str, *, status: int = 200) -> None:
        data = json.loads((FIXTURES / fixture).read_text())
        self.responses: list[Any] = data if isinstance(data, list) else [data]
        self.status = status
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []

    def answer(self, path: str, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, Any]]:
        assert path.endswith("/v1/messages"), path
        self.requests.append(json.loads(body))
        self.headers.append({k.lower(): v for k, v in headers.items()})
        if self.status != 200:
            return self.status, self.responses[0]
        if len(self.requests) > len(self.responses):
            raise AssertionError(f"the agent sent request {len(self.requests)} but only {len(self.responses)} were recorded")
        return 200, self.responses[len(self.requests) - 1]

    def http_client(self) -> Any:
        """An ``httpx`` client for the SDK whose transport replays (the SDK's own HTTP stack runs)."""
        httpx = httpx_module()

        def handler(request: Any) -> Any:
            status, payload = self.answer(request.url.path, dict(request.headers), request.content)
            return httpx.Response(status, json=payload, headers={"request-id": f"req_replay_{len(self.requests)}"})

        return httpx.Client(transport=httpx.MockTransport(handler))

    def tool_results(self, request_index: int) -> list[dict[str, Any]]:
        """The tool_result blocks the agent sent in request ``request_index`` (0-based)."""
        last = self.requests[request_index]["messages"][-1]
        return [b for b in last["content"] if isinstance(b, dict) and b.get("type") == "tool_result"]

    @contextmanager
    def serve(self) -> Iterator[str]:
        """The same replay behind a local HTTP server; yields its base URL (for ``ANTHROPIC_BASE_URL``)."""
        replay = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                try:
                    status, payload = replay.answer(self.path, dict(self.headers), body)
                except AssertionError as e:
                    status, payload = 500, {"type": "error", "error": {"type": "api_error", "message": str(e)}}
                raw = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def log_message(self, *args: Any) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield f"http://127.0.0.1:{server.server_address[1]}"
        finally:
            server.shutdown()
            server.server_close()
