"""Onboarding as one workflow, called by ``agent-de onboard`` and by the ``onboard_source`` job.

Profile the table (or read the API schema), propose the dbt files, write the proposal directory,
keep it in the state store, apply it to the project when a human is present, and raise the
decisions that need a human. The callers only render the result.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from dagster_agent_de.adapters.warehouse import Warehouse
from dagster_agent_de.core.models import Escalation, EscalationState
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
    already_asked: list[Escalation] = field(default_factory=list)
    """Open questions that stand for the proposal's decisions (asked by an earlier onboarding of the table,
    under this source name or another): nothing new was asked for them."""


def _relation_key(relation: str) -> tuple[str, ...]:
    """``"db"."schema"."table"`` -> ("db", "schema", "table"), lower-case, unquoted."""
    return tuple(p.strip().strip('"`[]').lower() for p in relation.split("."))


def _same_relation(a: str, b: str) -> bool:
    ka, kb = _relation_key(a), _relation_key(b)
    n = 3 if len(ka) == len(kb) == 3 else 2  # a relation named without its database matches on schema.table
    return ka[-n:] == kb[-n:]


def onboarded_as(store: StateStore, relation: str) -> set[str]:
    """The assets (``source.table``) earlier onboardings of ``relation`` proposed, whatever source name they
    used (read from the stored proposals)."""
    out = set()
    for name in store.artifact_names("onboarding"):
        try:
            doc = json.loads(store.get_artifact("onboarding", name) or "{}")
        except json.JSONDecodeError:
            continue
        if isinstance(doc, dict) and doc.get("relation") and _same_relation(str(doc["relation"]), relation):
            out.add(f"{doc.get('source_name')}.{doc.get('table')}")
    return out


def _open_for(decision: Escalation, assets: set[str], items: list[Escalation]) -> list[Escalation]:
    """Open questions asking ``decision`` about the same table under any of ``assets``."""
    return [e for e in items if e.state == EscalationState.OPEN and e.kind == decision.kind
            and e.finding_pattern == decision.finding_pattern and e.asset in assets]


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
        source_name: the dbt source name (default: the existing source reading the schema, else the schema
            without a ``raw_`` prefix or ``_raw`` suffix; said in ``proposal.source_name_from``).
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
    aliases = onboarded_as(store, prof.relation)  # before this proposal is stored
    proposal = propose(prof, manifest, source_name=source_name, owner=owner,
                       arguments_property=project_wants_arguments_property(project_dir),
                       answers=answered_choices(store), aliases=aliases)
    out = write_proposal(proposal, proposals_dir)
    store.put_artifact("onboarding", out.name, (out / "proposal.json").read_text())
    applied = apply_proposal(proposal, project_dir, warehouse.audit, human_present=True) if apply else []
    # one question per table: one still open under another source name stands (checked before the store's
    # transaction, which skips those open or answered under this one)
    asset = f"{proposal.source_name}.{proposal.table}"
    before = store.escalations()
    raised = raise_decisions(store, [d for d in proposal.decisions if not _open_for(d, aliases - {asset}, before)])
    now = store.escalations()
    ids = {e.id for e in raised}
    standing = [e for d in proposal.decisions for e in _open_for(d, aliases | {asset}, now) if e.id not in ids]
    return Onboarding(proposal, out, (out / "ONBOARDING.md").read_text(), applied, raised,
                      sorted({e.id: e for e in standing}.values(), key=lambda e: e.created_at))
