"""Anthropic's Messages API behind one audited call.

Optional: nothing in the agent needs it. :func:`llm_from_env` returns ``None`` without an
``ANTHROPIC_API_KEY`` (or with ``AGENT_DE_LLM=off``), and the deterministic investigation
stands alone. Every request is one audit event (``kind="api_call"``): model, turn, tokens,
duration, outcome; the key never reaches the log.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from typing import Any, cast

from dagster_agent_de.adapters.audit import AuditLog
from dagster_agent_de.errors import ConfigError, LLMError

DEFAULT_MODEL = "claude-sonnet-5"
_OFF = {"0", "off", "false", "no", "none"}


class AnthropicLLM:
    """One Anthropic client; :meth:`create` sends one Messages API request.

    Args:
        audit: where each request is recorded.
        api_key: the Anthropic API key.
        model: the model name (``AGENT_DE_LLM_MODEL`` overrides the default).
        base_url: a gateway or proxy in front of the API (``ANTHROPIC_BASE_URL``).
        http_client: an ``httpx`` client for the SDK (tests replay recorded responses through its transport).
    """

    def __init__(
        self,
        audit: AuditLog,
        *,
        api_key: str,
        model: str = DEFAULT_MODEL,
        base_url: str | None = None,
        http_client: Any = None,
        max_tokens: int = 2048,
        timeout_s: float = 60.0,
        max_retries: int = 2,
    ) -> None:
        try:
            import anthropic
        except ImportError as e:  # pragma: no cover - anthropic is a dependency; a broken env says how to fix it
            raise ConfigError("the LLM layer needs the `anthropic` package: pip install anthropic") from e
        self.audit = audit
        self.model = model
        self.max_tokens = max_tokens
        kwargs: dict[str, Any] = {"api_key": api_key, "timeout": timeout_s, "max_retries": max_retries}
        if base_url:
            kwargs["base_url"] = base_url
        if http_client is not None:
            kwargs["http_client"] = http_client
        self._client = anthropic.Anthropic(**kwargs)
        self.endpoint = str(self._client.base_url).rstrip("/") + "/v1/messages"

    def create(
        self, *, system: str, messages: list[dict[str, Any]], tools: list[dict[str, Any]], rationale: str
    ) -> dict[str, Any]:
        """Send one request; return the response as a plain dict (``content``, ``stop_reason``, ``usage``).

        Raises:
            LLMError: the API could not be reached, refused the key, or answered with an error;
                the message says which and what to do.
        """
        import anthropic

        summary = f"POST {self.endpoint} model={self.model} messages={len(messages)} tools={[t['name'] for t in tools]}"
        start = time.perf_counter()
        try:
            resp = self._client.messages.create(
                model=self.model, max_tokens=self.max_tokens, system=system,
                messages=cast(Any, messages), tools=cast(Any, tools),  # the API's own JSON shapes
            )
        except anthropic.AuthenticationError as e:
            raise self._failed(summary, rationale, start, "the API key was refused (401); check ANTHROPIC_API_KEY", e) from e
        except anthropic.APIStatusError as e:
            raise self._failed(summary, rationale, start, f"the API answered {e.status_code}", e) from e
        except anthropic.APIConnectionError as e:
            raise self._failed(summary, rationale, start, f"cannot reach {self.endpoint} (network, proxy or ANTHROPIC_BASE_URL)", e) from e
        data = resp.model_dump(mode="json", exclude_none=True)  # null fields are not sent back in the next turn
        usage = data.get("usage") or {}
        self.audit.record(
            kind="api_call", statement=f"{summary} -> stop={data.get('stop_reason')} "
            f"tokens in={usage.get('input_tokens')} out={usage.get('output_tokens')}",
            rationale=rationale, dialect="anthropic", target=self.model,
            duration_ms=(time.perf_counter() - start) * 1000, outcome="ok",
        )
        return data

    def _failed(self, summary: str, rationale: str, start: float, what: str, e: Exception) -> LLMError:
        self.audit.record(
            kind="api_call", statement=summary, rationale=rationale, dialect="anthropic", target=self.model,
            duration_ms=(time.perf_counter() - start) * 1000, outcome="error", error=f"{type(e).__name__}: {e}",
        )
        return LLMError(f"Anthropic request failed: {what} ({type(e).__name__}: {e})")


def llm_from_env(audit: AuditLog, env: Mapping[str, str] | None = None, *, http_client: Any = None) -> AnthropicLLM | None:
    """The LLM when configured, else ``None`` (the agent works without it).

    ``ANTHROPIC_API_KEY`` enables it; ``AGENT_DE_LLM=off`` disables it even with a key;
    ``AGENT_DE_LLM_MODEL`` and ``ANTHROPIC_BASE_URL`` choose the model and endpoint.

    >>> llm_from_env(AuditLog(None), {}) is None, llm_from_env(AuditLog(None), {"ANTHROPIC_API_KEY": "k", "AGENT_DE_LLM": "off"})
    (True, None)
    """
    env = os.environ if env is None else env
    key = env.get("ANTHROPIC_API_KEY", "").strip()
    if not key or env.get("AGENT_DE_LLM", "").strip().lower() in _OFF:
        return None
    return AnthropicLLM(audit, api_key=key, model=env.get("AGENT_DE_LLM_MODEL") or DEFAULT_MODEL,
                        base_url=env.get("ANTHROPIC_BASE_URL") or None, http_client=http_client)
