"""Answering escalations from the Dagster UI: the ``answer_escalation`` job (Launchpad)."""

# No `from __future__ import annotations` here: Dagster reads these decorated functions' annotations when they
# are defined (a string `context` annotation or `Config` class is refused; verified on Dagster 1.13).

from collections.abc import Mapping

from dagster import Config, JobDefinition, OpExecutionContext, job, op
from pydantic import Field

from dagster_agent_de.dagster.investigate import record_escalations_asset, record_investigation
from dagster_agent_de.dagster.notify import log_deliveries, optional_notifier
from dagster_agent_de.dagster.resources import AgentWarehouseResource
from dagster_agent_de.dagster.translator import AgentDETranslator
from dagster_agent_de.engines.escalate.answering import answer_escalation
from dagster_agent_de.engines.escalate.policy import load_policy
from dagster_agent_de.errors import ConfigError

ANSWER_JOB = "answer_escalation"


class AnswerConfig(Config):
    """Your answer to one escalation (see the agent_de/escalations asset for the open queue)."""

    escalation_id: str = Field(description="e.g. ESC-3")
    option: str = Field(default="", description="The option you choose, by its name as the escalation lists it "
                                                "(e.g. 'apply the fix'); or give `choice`.")
    choice: int = Field(default=-1, description="Or the option's number (0 = first).")
    note: str = Field(default="", description="Why; kept beside the rule the chosen option records.")
    answered_by: str = Field(description="Who answers (e-mail). Four-eyes decisions need distinct people.")


def build_answer_job(translator: AgentDETranslator | None = None) -> JobDefinition:
    """The ``answer_escalation`` job; its events are built by ``translator``."""
    translator = translator or AgentDETranslator()

    @op(name="answer", description="Record the answer, act on it, and re-run the blocked investigation.")
    def answer_op(context: OpExecutionContext, config: AnswerConfig, agent_warehouse: AgentWarehouseResource) -> dict:
        return _answer(context, config, agent_warehouse, translator)

    @job(name=ANSWER_JOB, description="Answer an escalation from the Launchpad; re-runs the blocked investigation.",
         tags={"agent_de/kind": "escalation_answer"})
    def answer_escalation_job():
        answer_op()

    return answer_escalation_job


def _answer(context: OpExecutionContext, config: AnswerConfig, agent_warehouse: AgentWarehouseResource,
            translator: AgentDETranslator) -> dict:
    # the investigation engine (sqlglot, the pattern library) loads when a run needs it, not at code-location load
    from dagster_agent_de.engines.investigate.workflow import reinvestigation_target

    settings = agent_warehouse.settings()
    store = agent_warehouse.state()
    manifest = agent_warehouse.manifest()
    audit = agent_warehouse.audit_log(context)
    by = answerer(context.run.tags if context.run else {}, config.answered_by)
    if by != config.answered_by.strip().lower():
        context.log.info(f"answering as {by}, the user who launched this run (the run's `{USER_TAG}` tag)")
    choice = option_index(store, config.escalation_id, config.option, config.choice)
    notifier = optional_notifier(agent_warehouse, context)  # the answer replies in the incident's thread
    result = answer_escalation(store, config.escalation_id, choice, by=by, note=config.note,
                               policy=load_policy(settings.project_dir), audit=audit, manifest=manifest,
                               notifier=notifier)
    context.log.info(result.describe())
    log_deliveries(context, notifier)
    context.instance.add_run_tags(context.run_id, {"agent_de/escalation": config.escalation_id,
                                                   "agent_de/answered_by": by})
    esc = result.escalation
    rerun = None
    # the failed check the answer unblocks, as `agent-de escalations answer` finds it; none for a question no
    # check raised (an onboarding decision, on a source the proposal creates and the manifest does not have yet)
    target = reinvestigation_target(manifest, esc) if result.closed else None
    if target is not None and esc.check:
        # re-investigate the failure that raised it, now with the new context
        rerun = record_investigation(context, agent_warehouse, agent_warehouse.asset_keys().key(target).path,
                                     esc.check, 0, "", metadata=None, translator=translator)
    record_escalations_asset(context, store, translator)
    return {"escalation": esc.model_dump(mode="json"), "closed": result.closed,
            "rule": result.rule.model_dump(mode="json") if result.rule else None,
            "rerun_top": rerun.findings[0].model_dump(mode="json") if rerun else None}


USER_TAG = "user"
"""The run tag Dagster+ sets to the e-mail of the user who launched the run."""


def answerer(run_tags: Mapping[str, str], answered_by: str) -> str:
    """Who answers: the authenticated user who launched the run when Dagster knows it, else ``answered_by``.

    Four-eyes approvals need two distinct identities; a typed name alone cannot prove that when
    the deployment knows who launched the run.
    """
    from dagster_agent_de.engines.escalate.answering import identity

    return identity(run_tags.get(USER_TAG) or answered_by)


answer_escalation_job = build_answer_job()
"""The ``answer_escalation`` job with the default translator (``build_definitions`` builds its own)."""


def option_index(store, escalation_id: str, option: str, choice: int) -> int:
    """The option named ``option`` (case and spacing ignored), else ``choice``; a clear error naming the options."""
    from dagster_agent_de.engines.escalate.answering import option_by_name

    if not option:
        if choice < 0:
            raise ConfigError(f"answer {escalation_id} with `option` (its name) or `choice` (its number)")
        return choice
    esc = next((e for e in store.escalations() if e.id == escalation_id), None)
    if esc is None:
        raise ConfigError(f"no escalation {escalation_id}; see the agent_de/escalations asset for the open queue")
    return option_by_name(esc, option)
