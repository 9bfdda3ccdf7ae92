"""Investigating a failed check, once for every caller: ``agent-de investigate``, the ``investigate`` job,
and the re-investigation after an escalation is answered (``agent-de escalations answer`` and the
``answer_escalation`` job).

The steps: the rules in force, the failure (from the evaluation's recorded numbers, with the check run again to
say whether it passes now; else measured again),
the investigation with the drift baselines and the optional LLM, the rules' notes on the report. Then, for the
callers that ask humans (the Dagster jobs), :func:`escalate_finding`: the top finding's questions, unless a
check already asked about the same incident.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from dagster_agent_de.adapters.warehouse import Warehouse
from dagster_agent_de.core.models import Escalation, FindingsReport
from dagster_agent_de.core.state import StateStore
from dagster_agent_de.engines.escalate.context_store import ContextRules, load_rules
from dagster_agent_de.engines.escalate.policy import Policy
from dagster_agent_de.engines.investigate.engine import investigate
from dagster_agent_de.engines.investigate.failure import (
    dbt_test_now,
    failure_from_check,
    failure_kind,
    reconciliation_now,
)
from dagster_agent_de.engines.investigate.models import Failure
from dagster_agent_de.manifest import Manifest, Node


@dataclass(frozen=True)
class Investigation:
    """What one investigation produced: the report (best first, with the rules' notes) and the rules it used."""

    report: FindingsReport
    rules: ContextRules
    failure: Failure

    @property
    def passes_now(self) -> bool:
        """The check, measured again, passes: the report explains no failure and asks humans nothing."""
        return self.failure.metadata.get("passed") is True


def investigate_failure(
    manifest: Manifest, warehouse: Warehouse, state: StateStore, *, asset: str, check: str | None,
    project_dir: Path, state_dir: Path, metadata: dict[str, Any] | None = None, run_id: str | None = None,
    llm: Any = None, strict: bool = False, rules: ContextRules | None = None,
    verify_on_warehouse: bool = False, verify_timeout_s: int | None = None,
) -> Investigation:
    """Investigate the failed ``check`` on ``asset``.

    ``metadata``: the numbers the check's evaluation recorded (Dagster); the check is still run again
    first (a dbt test's compiled SQL, a reconciliation's comparison: read-only) to say when it passes now
    (:attr:`Investigation.passes_now`: the report says so first and asks nothing). Without them the failure
    is measured again (``failure_from_check``; with ``strict``, an unknown check is a ``ConfigError``).
    ``rules``: the rules in force when the caller already loaded them (to report their notes first).
    """
    from dagster_agent_de.engines.drift import SnapshotStore

    rules = rules if rules is not None else load_rules(project_dir, state)
    node: Node = manifest.find(asset)
    if metadata:
        failure = Failure(asset=node.display_name, check=check or None, kind=failure_kind(manifest, node, check, metadata),
                          metadata=metadata, run_id=run_id)
        if failure.kind == "dbt_test":  # recorded by an earlier run: does the test still fail?
            failure = replace(failure, metadata={**metadata, **dbt_test_now(manifest, check, warehouse, node)})
        elif failure.kind == "reconciliation":  # the same question: its comparison, run again
            now = reconciliation_now(manifest, node, check, warehouse, [project_dir, state_dir])
            # passing now: its numbers (the note says them); still failing: the recorded failure is the one to explain
            failure = replace(failure, metadata={**metadata, **now} if now.get("passed") is True
                              else {**metadata, "passed": False} if now else metadata)
    else:
        failure = replace(failure_from_check(manifest, node.unique_id, check or None, warehouse,
                                             [project_dir, state_dir], strict=strict), run_id=run_id)
    report = investigate(failure, manifest, warehouse, rules=rules.rules, drift_store=SnapshotStore(state), llm=llm,
                         verify_on_warehouse=verify_on_warehouse, verify_timeout_s=verify_timeout_s)
    passing = []
    if failure.kind == "reconciliation" and failure.metadata.get("passed") is True:
        passing = [f"{failure.check} passes now (measured again: {failure.metadata.get('matched', 0):,} matched, nothing "
                   "missing, extra or mismatched beyond its thresholds): there is no failure to explain"]
    elif failure.kind == "dbt_test" and failure.metadata.get("passed") is True:
        passing = [f"{failure.check} passes now (its compiled SQL, run again, returns no failing rows): there is no "
                   "failure to explain; the findings below are what the library sees, not a root cause, and ask nothing"]
    report = report.model_copy(update={"notes": [*passing, *report.notes, *rules.notes()]})
    return Investigation(report=report, rules=rules, failure=failure)


@dataclass(frozen=True)
class Escalated:
    """What the investigation asked humans: the questions it raised, or the ones it attached to."""

    report: FindingsReport  # with a note naming each question it attached to
    raised: list[Escalation]  # stored now, with their ids
    attached: list[Escalation]  # asked earlier about the same incident (e.g. by the drift check): nothing new asked


def escalate_finding(state: StateStore, manifest: Manifest, report: FindingsReport, policy: Policy, *,
                     check: str | None = None, passes_now: bool = False) -> Escalated:
    """Raise what the top finding needs from humans, once per incident.

    With ``passes_now`` (the check measured again passes: :attr:`Investigation.passes_now`) nothing is
    asked: there is no incident, and the report's first note says so.

    A question a check already asked about the incident the finding explains (the drift check's "which
    column replaces it?" for the dropped column the investigation traces) stands for the finding's own: the
    investigation attaches its finding to that question (named in the report's notes) and asks nothing new.
    """
    from dagster_agent_de.engines.escalate.raising import raise_for_finding

    if passes_now:
        return Escalated(report=report, raised=[], attached=[])
    top = report.findings[0]
    raised, attached = raise_for_finding(state, top, manifest, policy, check=check)
    notes = [f"{e.id} ({e.kind.value}, {e.state.value}) already asks about this {top.pattern} "
             f"(raised by the {e.check or 'agent'} check on {e.asset}): {e.decision}" for e in attached]
    return Escalated(report=report.model_copy(update={"notes": [*report.notes, *notes]}) if notes else report,
                     raised=raised, attached=attached)


def reinvestigation_target(manifest: Manifest, escalation: Escalation) -> Node | None:
    """The node whose failed check an answered escalation blocked (``None``: nothing to re-run)."""
    from dagster_agent_de.engines.escalate.raising import check_node

    if not (escalation.check and escalation.asset):
        return None
    return check_node(manifest, escalation) or manifest.find(escalation.asset)
