"""One error root for the whole package.

``ConfigError`` (and its children) mean the user must change something: a path, a
profile, a spec. ``AgentDERuntimeError`` (and its children) mean something failed at
run time: the warehouse dropped, a query timed out. Only the Dagster layer turns these
into ``Failure`` or failed checks. Every message names what to fix.
"""

from __future__ import annotations


class AgentDEError(Exception):
    """Root of every error raised by dagster-agent-de."""


class ConfigError(AgentDEError):
    """A user or configuration error: the message says what to change."""


class ProjectError(ConfigError):
    """The dbt project, its profile/target or its manifest is missing or invalid."""


class SpecError(ConfigError):
    """A declarative spec (reconcile, policy, context rule) is invalid."""


class SourceOfTruthEmptyError(SpecError):
    """The source of truth returned nothing (no records, or records without fields)."""


class StatementRefusedError(AgentDEError):
    """A statement was refused by the read-only guard or the autonomy policy.

    ``reason`` classifies the refusal: ``write``, ``external``, ``too_large``, ``unparsable``,
    ``empty`` (see :mod:`dagster_agent_de.sql.guard`), or ``policy``.
    """

    def __init__(self, message: str, *, reason: str = "policy") -> None:
        super().__init__(message)
        self.reason = reason


class AgentDERuntimeError(AgentDEError):
    """A failure at run time that is not the user's configuration."""


class WarehouseError(AgentDERuntimeError):
    """A warehouse statement failed."""


class WarehouseUnavailableError(WarehouseError):
    """The warehouse could not be reached (missing file, network, credentials)."""


class LLMError(AgentDERuntimeError):
    """The optional LLM (Anthropic) could not be reached or answered with an error."""
