"""Load a paginated JSON API as a source of truth (each page audited as an API call).

Safe by construction: ``http``/``https`` only; the bearer token goes only to the origin (scheme,
host, port) of the first request, never to another host named by a ``next`` link or a redirect;
one total deadline per request and one per source (a server trickling one byte a second is cut
off when the deadline passes, not per read); a cap on the bytes read; and an API that returns no
records, or records without columns, is an error naming the URL, never an empty truth.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import threading
import time
from typing import Any
from urllib.parse import urljoin, urlsplit

from dagster_agent_de.adapters.audit import AuditLog
from dagster_agent_de.errors import ConfigError, SourceOfTruthEmptyError, WarehouseUnavailableError

_REDIRECTS = (301, 302, 303, 307, 308)
_MAX_REDIRECTS = 5
_CHUNK = 64 * 1024


def _origin(url: str) -> tuple[str, str, int]:
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return parts.scheme.lower(), (parts.hostname or "").lower(), port


def check_http_url(url: str) -> str:
    """Return ``url`` if it is an absolute http(s) URL, else raise :class:`ConfigError`.

    >>> check_http_url("https://api.example.com/v1/orders")
    'https://api.example.com/v1/orders'
    >>> check_http_url("file:///etc/passwd")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    dagster_agent_de.errors.ConfigError: http source of truth 'file:///etc/passwd': only http:// and https:// URLs ...
    """
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise ConfigError(
            f"http source of truth {url!r}: only http:// and https:// URLs with a host are read; "
            "use `against: file:PATH` for a file"
        )
    return url


class _Deadline(Exception):
    pass


def _get(url: str, headers: dict[str, str], deadline: float, max_bytes: int) -> tuple[int, dict[str, str], bytes]:
    """One GET; the socket is shut down when ``deadline`` passes, whatever the server is doing."""
    parts = urlsplit(url)
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise _Deadline()
    conn_cls = http.client.HTTPSConnection if parts.scheme.lower() == "https" else http.client.HTTPConnection
    conn = conn_cls(parts.hostname or "", parts.port, timeout=remaining)
    expired = threading.Event()
    opened: list[socket.socket] = []  # http.client drops conn.sock once a response owns the connection

    def _cut() -> None:
        expired.set()
        for sock in opened:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    timer = threading.Timer(remaining, _cut)
    timer.daemon = True
    timer.start()
    try:
        conn.connect()
        opened.append(conn.sock)
        if expired.is_set():
            _cut()
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        conn.request("GET", path, headers=headers)
        resp = conn.getresponse()
        body = bytearray()
        while True:
            chunk = resp.read1(_CHUNK) if hasattr(resp, "read1") else resp.read(_CHUNK)
            if not chunk:
                break
            body.extend(chunk)
            if len(body) > max_bytes:
                raise ConfigError(
                    f"http source of truth {url}: the response is larger than {max_bytes:,} bytes; raise "
                    "`http.max_bytes` in the spec if that is expected"
                )
        if expired.is_set():
            raise _Deadline()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, bytes(body)
    except (OSError, http.client.HTTPException) as e:
        if expired.is_set():
            raise _Deadline() from e
        raise
    finally:
        timer.cancel()
        conn.close()


def fetch_json_pages(
    url: str,
    audit: AuditLog,
    *,
    records: str = "data",
    next_key: str | None = None,
    auth_env: str | None = None,
    max_pages: int = 1000,
    timeout_s: float = 30.0,
    total_timeout_s: float = 600.0,
    max_bytes: int = 100_000_000,
    rationale: str = "load the source of truth",
) -> list[dict[str, Any]]:
    """GET ``url`` and follow ``next_key`` links; return all records.

    Args:
        timeout_s: total time for one request (connect, redirects, headers and body).
        total_timeout_s: total time for the whole source (every page).
        max_bytes: bytes read over the whole source.
    """
    check_http_url(url)
    origin = _origin(url)
    headers = {"Accept": "application/json", "User-Agent": "dagster-agent-de"}
    auth: dict[str, str] = {}
    if auth_env:
        token = os.environ.get(auth_env)
        if not token:
            raise ConfigError(f"the http source of truth needs a token in environment variable {auth_env}")
        auth = {"Authorization": f"Bearer {token}"}
    source_deadline = time.monotonic() + total_timeout_s
    budget = max_bytes
    out: list[dict[str, Any]] = []
    page_url: str | None = url
    for _ in range(max_pages):
        if not page_url:
            break
        start = time.perf_counter()
        deadline = min(time.monotonic() + timeout_s, source_deadline)
        try:
            try:
                body_bytes, final_url = _get_following(page_url, origin, headers, auth, deadline, budget)
            except OSError as e:  # the socket's own timeout can fire a moment before the deadline's timer
                if time.monotonic() >= deadline - 0.05:
                    raise _Deadline() from e
                raise
            body = json.loads(body_bytes.decode())
        except _Deadline as e:
            limit = "the source's" if deadline == source_deadline else "the request's"
            _audit_error(audit, page_url, rationale, start, f"deadline ({limit}) passed")
            raise WarehouseUnavailableError(
                f"source of truth {page_url} did not answer within {limit} deadline "
                f"(timeout_s={timeout_s:g}, total_timeout_s={total_timeout_s:g} in the spec's http block)"
            ) from e
        except ConfigError as e:
            _audit_error(audit, page_url, rationale, start, str(e))
            raise
        except (OSError, http.client.HTTPException, ValueError) as e:
            _audit_error(audit, page_url, rationale, start, f"{type(e).__name__}: {e}")
            raise WarehouseUnavailableError(f"source of truth {page_url} could not be read: {e}") from e
        budget -= len(body_bytes)
        page = body if not records else (body.get(records) if isinstance(body, dict) else None)
        if not isinstance(page, list) or not all(isinstance(r, dict) for r in page):
            raise ConfigError(f"{page_url}: expected a list of records (JSON objects) under {records!r} in the response")
        out.extend(page)
        audit.record(kind="api_call", statement=f"GET {page_url}", rationale=rationale, rows=len(page),
                     duration_ms=(time.perf_counter() - start) * 1000)
        nxt = body.get(next_key) if (next_key and isinstance(body, dict)) else None
        page_url = check_http_url(urljoin(final_url, nxt)) if isinstance(nxt, str) and nxt else None
    if not out:
        raise SourceOfTruthEmptyError(
            f"the source of truth returned nothing: {url} gave 0 records under {records!r}; check the URL and the "
            "spec's `http.records` key (an empty source of truth cannot confirm anything)"
        )
    if not any(out_record for out_record in out):
        raise SourceOfTruthEmptyError(
            f"the source of truth returned nothing: {url} gave {len(out)} records with no fields; check the URL "
            "and the spec's `http.records` key"
        )
    return out


def _get_following(
    url: str, origin: tuple[str, str, int], headers: dict[str, str], auth: dict[str, str], deadline: float, budget: int
) -> tuple[bytes, str]:
    """GET ``url`` following redirects (http(s) only); credentials only while on ``origin``."""
    for _ in range(_MAX_REDIRECTS + 1):
        sent = {**headers, **(auth if _origin(url) == origin else {})}
        status, resp_headers, body = _get(url, sent, deadline, budget)
        if status in _REDIRECTS and resp_headers.get("location"):
            url = check_http_url(urljoin(url, resp_headers["location"]))
            budget -= len(body)
            continue
        if status >= 400:
            raise OSError(f"HTTP {status}")
        return body, url
    raise OSError(f"more than {_MAX_REDIRECTS} redirects")


def _audit_error(audit: AuditLog, url: str, rationale: str, start: float, error: str) -> None:
    audit.record(kind="api_call", statement=f"GET {url}", rationale=rationale, outcome="error",
                 error=error, duration_ms=(time.perf_counter() - start) * 1000)
