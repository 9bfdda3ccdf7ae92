"""dagster-agent-de: an agent data engineer for dbt projects, as a Dagster code location.

Import the Dagster definitions from ``dagster_agent_de.dagster.definitions`` (``defs``), or merge
:func:`build_agent_de_definitions` into your own (library mode); this top-level module stays cheap
to import and re-exports only what users handle directly.
"""

from __future__ import annotations

from dagster_agent_de.config import Settings, resolve_settings
from dagster_agent_de.errors import (
    AgentDEError,
    AgentDERuntimeError,
    ConfigError,
    ProjectError,
    SpecError,
    StatementRefusedError,
    WarehouseError,
    WarehouseUnavailableError,
)

__version__ = "0.1.0"


def __getattr__(name: str) -> object:
    """``build_agent_de_definitions`` and ``AgentDETranslator`` (library mode) import Dagster: loaded on first use only."""
    if name == "build_agent_de_definitions":
        from dagster_agent_de.dagster.definitions import build_agent_de_definitions

        return build_agent_de_definitions
    if name == "AgentDETranslator":
        from dagster_agent_de.dagster.translator import AgentDETranslator

        return AgentDETranslator
    raise AttributeError(name)


__all__ = [
    "AgentDEError",
    "AgentDETranslator",
    "AgentDERuntimeError",
    "ConfigError",
    "ProjectError",
    "Settings",
    "SpecError",
    "StatementRefusedError",
    "WarehouseError",
    "WarehouseUnavailableError",
    "build_agent_de_definitions",
    "resolve_settings",
]
