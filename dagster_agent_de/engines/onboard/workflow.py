"""Onboarding as one workflow, called by ``agent-de onboard`` and by the ``onboard_source`` job.

Profile the table (or read the API schema), propose the dbt files, write the proposal directory,
keep it in the state store, apply it to the project when a human is present, and raise the
decisions that need a human. The callers only render the result.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from dagster_agent_de.adapters.warehouse import Warehouse
from dagster_agent_de.core.models import Escalation
from dagster_agent_de.core.state import StateStore
from dagster_agent_de.engines.escalate.raising import answered_choices, raise_decisions
from dagster_agent_de.engines.onboard.api_schema import profile_from_json_schema
from dagster_agent_de.engines.onboard.generate import OnboardingProposal, propose
from dagster_agent_de.engines.onboard.profile import profile_table, split_table
from dagster_agent_de.engines.onboard.write import (
    apply_proposal,
    project_wants_arguments_property,
    write_proposal,
)
from dagster_agent_de.manifest import Manifest


@dataclass(frozen=True)
class Onboarding:
    """What one onboarding produced: the proposal, where it was written, and what it raised."""

    proposal: OnboardingProposal
    proposal_dir: Path
    onboarding_md: str
    applied: list[Path] = field(default_factory=list)
    escalations: list[Escalation] = field(default_factory=list)


def onboard_source(
    warehouse: Warehouse,
    manifest: Manifest,
    store: StateStore,
    *,
    table: str,
    project_dir: Path,
    proposals_dir: Path,
    source_name: str | None = None,
    owner: str | None = None,
    api_schema: Path | None = None,
    api_schema_name: str | None = None,
    apply: bool = False,
) -> Onboarding:
    """Onboard ``table`` (``schema.table`` or ``database.schema.table``).

    Args:
        warehouse: the audited warehouse (profiling, and the audit of an applied proposal).
        manifest: the dbt project's manifest (existing sources, naming).
        store: the state store: earlier answers, the proposal artifact, the escalations.
        table: the table to profile; with ``api_schema``, the table the loader will land.
        project_dir: the dbt project (its flags, and where ``apply`` writes).
        proposals_dir: where the proposal directory is written (``Settings.proposals_dir``).
        source_name: the dbt source name (default: the schema).
        owner: who answers this source's escalations (``meta.owner``).
        api_schema: a JSON Schema / OpenAPI document to onboard from instead of warehouse data.
        api_schema_name: with an OpenAPI document, its ``components.schemas`` entry.
        apply: write the files into the project (only when a human is present: the CLI's ``--apply``).
    """
    database, schema, name = split_table(table)
    if api_schema is not None:
        prof = profile_from_json_schema(api_schema, schema, name, name=api_schema_name)
    else:
        prof = profile_table(warehouse, schema, name, database)
    proposal = propose(prof, manifest, source_name=source_name, owner=owner,
                       arguments_property=project_wants_arguments_property(project_dir),
                       answers=answered_choices(store))
    out = write_proposal(proposal, proposals_dir)
    store.put_artifact("onboarding", out.name, (out / "proposal.json").read_text())
    applied = apply_proposal(proposal, project_dir, warehouse.audit, human_present=True) if apply else []
    raised = raise_decisions(store, proposal.decisions)
    return Onboarding(proposal, out, (out / "ONBOARDING.md").read_text(), applied, raised)
