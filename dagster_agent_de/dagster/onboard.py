"""Onboarding from the Dagster UI: the ``onboard_source`` job (Launchpad).

Writes a proposal (always allowed), never edits the dbt project (applying code needs a human
present: ``agent-de onboard --apply``), raises the decisions as escalations, and records the
proposal as a materialization of ``agent_de/onboarding``.
"""

# No `from __future__ import annotations` here: Dagster reads these decorated functions' annotations when they
# are defined (a string `context` annotation or `Config` class is refused; verified on Dagster 1.13).

from pathlib import Path

from dagster import AssetKey, Config, JobDefinition, OpExecutionContext, job, op
from pydantic import Field

from dagster_agent_de.dagster.investigate import record_escalations_asset
from dagster_agent_de.dagster.resources import AgentWarehouseResource
from dagster_agent_de.dagster.translator import AgentDETranslator

ONBOARD_JOB = "onboard_source"
ONBOARDING_ASSET = AssetKey(["agent_de", "onboarding"])


class OnboardConfig(Config):
    """The table to onboard (or the API schema the loader will land)."""

    table: str = Field(description="schema.table or database.schema.table in the warehouse (the landing table for an API).")
    source_name: str = Field(default="", description="dbt source name (default: the existing source reading the schema, "
                                                     "else the schema without a raw_ prefix or _raw suffix).")
    api_schema: str = Field(default="", description="Path to a JSON Schema / OpenAPI file to onboard from instead of data.")
    api_schema_name: str = Field(default="", description="With an OpenAPI document: the components.schemas entry.")
    owner: str = Field(default="", description="Who answers this source's escalations.")


def build_onboard_job(translator: AgentDETranslator | None = None) -> JobDefinition:
    """The ``onboard_source`` job; its events are built by ``translator``."""
    translator = translator or AgentDETranslator()

    @op(name="onboard", description="Profile the table, write the dbt proposal, raise the decisions that need a human.")
    def onboard_op(context: OpExecutionContext, config: OnboardConfig, agent_warehouse: AgentWarehouseResource) -> dict:
        from dagster_agent_de.engines.onboard import onboard_source

        settings = agent_warehouse.settings()
        store = agent_warehouse.state()
        with agent_warehouse.get_warehouse(context) as wh:
            run = onboard_source(wh, agent_warehouse.manifest(), store, table=config.table, project_dir=settings.project_dir,
                                 proposals_dir=settings.proposals_dir, source_name=config.source_name or None,
                                 owner=config.owner or None, api_schema=Path(config.api_schema) if config.api_schema else None,
                                 api_schema_name=config.api_schema_name or None)
        context.log.info(f"source name: {run.proposal.source_name} ({run.proposal.source_name_from})")
        for e in run.escalations:
            context.log.info(f"escalation {e.id} ({e.kind.value}): {e.decision}")
        for e in run.already_asked:
            context.log.info(f"already asked, still open: {e.id} ({e.kind.value}, on {e.asset}): {e.decision}")
        context.log_event(translator.onboarding_materialization(ONBOARDING_ASSET, run))
        if run.escalations:
            record_escalations_asset(context, store, translator)
        return {"proposal_dir": str(run.proposal_dir), "model": run.proposal.model_name,
                "escalations": [e.id for e in run.escalations], "already_asked": [e.id for e in run.already_asked]}

    @job(name=ONBOARD_JOB, description="Onboard a source table or API schema: a dbt proposal plus the decisions for humans.",
         tags={"agent_de/kind": "onboarding"})
    def onboard_source_job():
        onboard_op()

    return onboard_source_job


onboard_source_job = build_onboard_job()
"""The ``onboard_source`` job with the default translator (``build_definitions`` builds its own)."""
