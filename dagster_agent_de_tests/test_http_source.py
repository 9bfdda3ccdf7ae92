"""The HTTP source of truth against real local servers on 127.0.0.1: credentials stay on the first
origin, deadlines are total, responses are capped, only http(s), and nothing is an error."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from click.testing import CliRunner

from dagster_agent_de.adapters.audit import AuditLog
from dagster_agent_de.adapters.http_source import fetch_json_pages
from dagster_agent_de.engines.reconcile import ReconcileSpec
from dagster_agent_de.errors import ConfigError, SourceOfTruthEmptyError, SpecError, WarehouseUnavailableError

Route = Callable[[BaseHTTPRequestHandler], None]


@contextmanager
def serve(routes: dict[str, Route]) -> Iterator[tuple[str, list[tuple[str, str | None]]]]:
    """A real HTTP server; yields its base URL and the (path, Authorization header) of each request."""
    seen: list[tuple[str, str | None]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            seen.append((self.path, self.headers.get("Authorization")))
            routes[self.path.split("?")[0]](self)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()


def _json(payload: object, status: int = 200) -> Route:
    def route(h: BaseHTTPRequestHandler) -> None:
        body = json.dumps(payload).encode()
        h.send_response(status)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)
    return route


def _redirect(location: Callable[[], str]) -> Route:
    def route(h: BaseHTTPRequestHandler) -> None:
        h.send_response(302)
        h.send_header("Location", location())
        h.send_header("Content-Length", "0")
        h.end_headers()
    return route


def test_token_goes_only_to_the_first_origin(monkeypatch) -> None:
    monkeypatch.setenv("TRUTH_TOKEN", "tok-123")
    routes: dict[str, Route] = {}
    other: dict[str, Route] = {"/page3": _json({"data": [{"id": 3}]}), "/hop": _json({"data": [{"id": 4}]})}
    with serve(routes) as (a, a_seen), serve(other) as (b, b_seen):  # two ports: two origins
        routes["/page1"] = _json({"data": [{"id": 1}], "next": "/page2"})  # relative: same origin, keeps the token
        routes["/page2"] = _json({"data": [{"id": 2}], "next": f"{b}/page3"})
        rows = fetch_json_pages(f"{a}/page1", AuditLog(None), next_key="next", auth_env="TRUTH_TOKEN")
        assert [r["id"] for r in rows] == [1, 2, 3]
        assert a_seen == [("/page1", "Bearer tok-123"), ("/page2", "Bearer tok-123")]
        assert b_seen == [("/page3", None)]
        routes["/moved"] = _redirect(lambda: f"{b}/hop")  # a redirect to another origin: followed, no token
        assert fetch_json_pages(f"{a}/moved", AuditLog(None), auth_env="TRUTH_TOKEN") == [{"id": 4}]
        assert a_seen[-1] == ("/moved", "Bearer tok-123") and b_seen[-1] == ("/hop", None)


def _trickle(h: BaseHTTPRequestHandler) -> None:
    h.send_response(200)
    h.send_header("Content-Type", "application/json")
    h.end_headers()
    try:
        for ch in '{"data": [' + '{"id": 1},' * 1000:
            h.wfile.write(ch.encode())
            h.wfile.flush()
            time.sleep(0.5)
    except OSError:
        pass


def _slow_headers(h: BaseHTTPRequestHandler) -> None:
    try:
        h.wfile.write(b"HTTP/1.1 200 OK\r\n")
        for _ in range(1000):
            h.wfile.write(b"X: y\r\n")
            h.wfile.flush()
            time.sleep(0.5)
    except OSError:
        pass


@pytest.mark.parametrize("route", [_trickle, _slow_headers], ids=["slow body", "slow headers"])
def test_a_server_sending_a_byte_at_a_time_hits_the_request_deadline(route: Route) -> None:
    with serve({"/slow": route}) as (base, _):
        start = time.monotonic()
        with pytest.raises(WarehouseUnavailableError, match="deadline"):
            fetch_json_pages(f"{base}/slow", AuditLog(None), timeout_s=1.5)
        assert time.monotonic() - start < 5


def test_the_source_deadline_bounds_all_pages_together() -> None:
    def slowish(h: BaseHTTPRequestHandler) -> None:
        time.sleep(0.4)
        _json({"data": [{"id": 1}], "next": "/p"})(h)

    with serve({"/p": slowish}) as (base, seen):
        start = time.monotonic()
        with pytest.raises(WarehouseUnavailableError, match="source's deadline"):
            fetch_json_pages(f"{base}/p", AuditLog(None), next_key="next", timeout_s=5, total_timeout_s=1.5)
        assert time.monotonic() - start < 4 and 2 <= len(seen) <= 5


def test_response_size_is_capped() -> None:
    with serve({"/big": _json({"data": [{"id": i, "pad": "x" * 100} for i in range(1000)]})}) as (base, _):
        with pytest.raises(ConfigError, match="larger than 10,000 bytes"):
            fetch_json_pages(f"{base}/big", AuditLog(None), max_bytes=10_000)


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://example.com/x", "/relative/path", "http:///nohost"])
def test_only_http_urls(url: str) -> None:
    with pytest.raises(ConfigError, match="only http"):
        fetch_json_pages(url, AuditLog(None))
    with pytest.raises(SpecError, match="only http"):
        from dagster_agent_de.engines.reconcile import parse_specs

        parse_specs("m", [dict(name="t", against="http", key=["id"], http={"url": url})])


def test_a_next_link_or_redirect_to_a_file_url_is_refused(monkeypatch) -> None:
    with serve({"/a": _json({"data": [{"id": 1}], "next": "file:///etc/passwd"}),
                "/r": _redirect(lambda: "file:///etc/passwd")}) as (base, _):
        with pytest.raises(ConfigError, match="only http"):
            fetch_json_pages(f"{base}/a", AuditLog(None), next_key="next")
        with pytest.raises(ConfigError, match="only http"):
            fetch_json_pages(f"{base}/r", AuditLog(None))


@pytest.mark.parametrize("payload", [{"data": []}, {"data": [{}, {}]}], ids=["no records", "no columns"])
def test_nothing_is_a_clear_error(payload: object) -> None:
    with serve({"/e": _json(payload)}) as (base, _):
        with pytest.raises(SourceOfTruthEmptyError, match="the source of truth returned nothing"):
            fetch_json_pages(f"{base}/e", AuditLog(None))


def test_an_empty_http_truth_exits_2_from_the_cli(demo_env) -> None:
    from dagster_agent_de.cli import main

    with serve({"/empty": _json({"data": []})}) as (base, _):
        spec = (  # the demo's specs sit under config.meta (dbt 1.10+)
            "          reconcile:\n"
            "            - name: revenue_vs_api\n"
            "              against: http\n"
            f"              http: {{url: '{base}/empty'}}\n"
            "              key: [order_date, currency]\n"
            "            - name: revenue_vs_finance_export\n"
        )
        with demo_env.patched("models/marts/_marts.yml",
                              "          reconcile:\n            - name: revenue_vs_finance_export\n", spec):
            demo_env.dbt("parse", "-q")
            r = CliRunner().invoke(main, ["--state-dir", str(demo_env.settings.state_dir), "--project-dir",
                                          str(demo_env.project_dir), "reconcile", "--model", "fct_revenue"])
        demo_env.dbt("parse", "-q")
    assert r.exit_code == 2, r.output
    assert "ERROR fct_revenue.revenue_vs_api: the source of truth returned nothing" in r.output
    assert "Traceback" not in r.output


def test_spec_validation_of_http_block(tmp_path: Path) -> None:
    spec = ReconcileSpec.model_validate(dict(name="t", model="m", against="http", key=["id"],
                                             http={"url": "https://api.example.com/x", "max_bytes": 1000}))
    assert spec.http is not None and spec.http.total_timeout_s == 600.0 and spec.http.max_bytes == 1000
