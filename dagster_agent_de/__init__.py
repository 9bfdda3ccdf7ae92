"""dagster-agent-de: an agent data engineer for dbt projects, as a Dagster code location.

Import the Dagster definitions from ``dagster_agent_de.dagster.definitions`` (``defs``);
this top-level module stays cheap to import and re-exports only the error types and
settings helpers that users handle directly.
"""

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

__all__ = [
    "AgentDEError",
    "AgentDERuntimeError",
    "ConfigError",
    "ProjectError",
    "Settings",
    "SpecError",
    "StatementRefusedError",
    "WarehouseError",
    "WarehouseUnavailableError",
    "resolve_settings",
]
