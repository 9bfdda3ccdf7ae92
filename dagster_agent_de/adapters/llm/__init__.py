"""The optional LLM layer: Anthropic's Messages API, audited like every warehouse query."""

from __future__ import annotations

from dagster_agent_de.adapters.llm.anthropic import DEFAULT_MODEL, AnthropicLLM, llm_from_env

__all__ = ["DEFAULT_MODEL", "AnthropicLLM", "llm_from_env"]
