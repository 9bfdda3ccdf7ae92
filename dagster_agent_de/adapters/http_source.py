"""Load a paginated JSON API into a DataFrame (audited as API calls)."""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
from typing import Any

from dagster_agent_de.adapters.audit import AuditLog
from dagster_agent_de.errors import ConfigError, WarehouseUnavailableError


def fetch_json_pages(
    url: str,
    audit: AuditLog,
    *,
    records: str = "data",
    next_key: str | None = None,
    auth_env: str | None = None,
    max_pages: int = 1000,
    timeout_s: float = 30.0,
    rationale: str = "load the source of truth",
) -> list[dict[str, Any]]:
    """GET ``url`` and follow ``next_key`` links; return all records. Each page is one audit event."""
    headers = {"Accept": "application/json", "User-Agent": "dagster-agent-de"}
    if auth_env:
        token = os.environ.get(auth_env)
        if not token:
            raise ConfigError(f"the http source of truth needs a token in environment variable {auth_env}")
        headers["Authorization"] = f"Bearer {token}"
    out: list[dict[str, Any]] = []
    page_url: str | None = url
    for _ in range(max_pages):
        if not page_url:
            break
        start = time.perf_counter()
        try:
            req = urllib.request.Request(page_url, headers=headers)
            with urllib.request.urlopen(req, timeout=timeout_s) as resp:
                body = json.loads(resp.read().decode())
        except (urllib.error.URLError, TimeoutError, ValueError, OSError) as e:
            audit.record(kind="api_call", statement=f"GET {page_url}", rationale=rationale, outcome="error",
                         error=f"{type(e).__name__}: {e}", duration_ms=(time.perf_counter() - start) * 1000)
            raise WarehouseUnavailableError(f"source of truth {page_url} could not be read: {e}") from e
        page = body if not records else (body.get(records) if isinstance(body, dict) else None)
        if not isinstance(page, list):
            raise ConfigError(f"{page_url}: expected a list of records under {records!r} in the JSON response")
        out.extend(page)
        audit.record(kind="api_call", statement=f"GET {page_url}", rationale=rationale, rows=len(page),
                     duration_ms=(time.perf_counter() - start) * 1000)
        page_url = body.get(next_key) if (next_key and isinstance(body, dict)) else None
    return out
