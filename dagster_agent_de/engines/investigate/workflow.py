"""Investigating a failed check, once for every caller: ``agent-de investigate``, the ``investigate`` job,
and the re-investigation after an escalation is answered (``agent-de escalations answer`` and the
``answer_escalation`` job).

The steps: the rules in force, the failure (from the evaluation's recorded numbers, else measured again),
the investigation with the drift baselines and the optional LLM, the rules' notes on the report.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from dagster_agent_de.adapters.warehouse import Warehouse
from dagster_agent_de.core.models import Escalation, FindingsReport
from dagster_agent_de.core.state import StateStore
from dagster_agent_de.engines.escalate.context_store import ContextRules, load_rules
from dagster_agent_de.engines.investigate.engine import investigate
from dagster_agent_de.engines.investigate.failure import failure_from_check, failure_kind
from dagster_agent_de.engines.investigate.models import Failure
from dagster_agent_de.manifest import Manifest, Node


@dataclass(frozen=True)
class Investigation:
    """What one investigation produced: the report (best first, with the rules' notes) and the rules it used."""

    report: FindingsReport
    rules: ContextRules
    failure: Failure


def investigate_failure(
    manifest: Manifest, warehouse: Warehouse, state: StateStore, *, asset: str, check: str | None,
    project_dir: Path, state_dir: Path, metadata: dict[str, Any] | None = None, run_id: str | None = None,
    llm: Any = None, strict: bool = False, rules: ContextRules | None = None,
    verify_on_warehouse: bool = False, verify_timeout_s: int | None = None,
) -> Investigation:
    """Investigate the failed ``check`` on ``asset``.

    ``metadata``: the numbers the check's evaluation recorded (Dagster); without them the failure is
    measured again (``failure_from_check``; with ``strict``, an unknown check is a ``ConfigError``).
    ``rules``: the rules in force when the caller already loaded them (to report their notes first).
    """
    from dagster_agent_de.engines.drift import SnapshotStore

    rules = rules if rules is not None else load_rules(project_dir, state)
    node: Node = manifest.find(asset)
    if metadata:
        failure = Failure(asset=node.display_name, check=check or None, kind=failure_kind(manifest, node, check, metadata),
                          metadata=metadata, run_id=run_id)
    else:
        failure = replace(failure_from_check(manifest, node.unique_id, check or None, warehouse,
                                             [project_dir, state_dir], strict=strict), run_id=run_id)
    report = investigate(failure, manifest, warehouse, rules=rules.rules, drift_store=SnapshotStore(state), llm=llm,
                         verify_on_warehouse=verify_on_warehouse, verify_timeout_s=verify_timeout_s)
    report = report.model_copy(update={"notes": [*report.notes, *rules.notes()]})
    return Investigation(report=report, rules=rules, failure=failure)


def reinvestigation_target(manifest: Manifest, escalation: Escalation) -> Node | None:
    """The node whose failed check an answered escalation blocked (``None``: nothing to re-run)."""
    from dagster_agent_de.engines.escalate.raising import check_node

    if not (escalation.check and escalation.asset):
        return None
    return check_node(manifest, escalation) or manifest.find(escalation.asset)
