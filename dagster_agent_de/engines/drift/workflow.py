"""The schema drift workflow: snapshot, diff, impact and the baseline policy, once for every caller.

``agent-de drift``, the Dagster ``schema_drift`` check and the schema-poll sensor all call
:func:`run_drift` (the sensor in its two halves, :func:`take_current` and :func:`judge`, so an
unchanged schema costs one snapshot and no write). The policy: the first snapshot becomes the
baseline; a relation whose changes are all info-level (an added column, a dropped column no model
reads) moves its baseline forward; a relation with a warning or breaking change keeps its baseline,
so the change is reported again until someone fixes it or records a new baseline
(``agent-de drift --baseline``). A change that needs a human's decision (a dropped column that models
read: which column replaces it?) raises its escalation in the state store once: a later pass that
sees the same change finds it open (or answered) and raises nothing new; an investigation that asked about
the same change first has its answered question stand for it, its open one replaced (see :func:`escalate`).
"""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING, Literal

from pydantic import Field

from dagster_agent_de.adapters.warehouse import Warehouse
from dagster_agent_de.core.models import Escalation, EscalationState, Frozen
from dagster_agent_de.core.state import StateStore
from dagster_agent_de.engines.drift.engine import compare, take_snapshot
from dagster_agent_de.engines.drift.models import AcceptedChange, DriftReport, SchemaChange, Snapshot
from dagster_agent_de.engines.drift.store import SnapshotStore
from dagster_agent_de.errors import ConfigError
from dagster_agent_de.manifest import Manifest

if TYPE_CHECKING:
    from dagster_agent_de.engines.notify.dispatch import Notifier

Verdict = Literal["pass", "warn", "block"]
"""``pass``: no change, or info-level only; ``warn``: a change a human should look at; ``block``: breaking."""


def verdict_of(changes: list[SchemaChange]) -> Verdict:
    """The verdict on a set of changes (the worst one decides).

    >>> verdict_of([])
    'pass'
    """
    worst = max((c.severity.rank for c in changes), default=-1)
    return "block" if worst >= 2 else "warn" if worst == 1 else "pass"


def schema_fingerprint(snapshot: Snapshot) -> str:
    """A short hash of every relation's type and column signature (the poll sensor's cursor)."""
    body = json.dumps({k: [t.table_type, t.signature] for k, t in sorted(snapshot.tables.items())}
                      | {"missing": snapshot.missing}, sort_keys=True)
    return hashlib.sha256(body.encode()).hexdigest()[:16]


def accept_non_risky(baseline: Snapshot, current: Snapshot, report: DriftReport) -> Snapshot:
    """The baseline moved forward for every relation whose changes are all info-level."""
    risky = {c.relation.lower() for c in report.changes if c.severity.rank >= 1}
    tables = dict(baseline.tables)
    for key, table in current.tables.items():
        if key not in risky:
            tables[key] = table
    missing = sorted(set(baseline.missing) & set(current.missing))
    return baseline.model_copy(update={"tables": tables, "missing": missing, "taken_at": current.taken_at})


def accept_unit_changes(old: Snapshot, new: Snapshot, manifest: Manifest) -> list[AcceptedChange]:
    """The unit changes a new baseline ``new`` accepts over ``old`` (a column's values now x 10^k), plus those
    ``old`` had accepted that still hold (the column still has the type it was changed to)."""
    found = [AcceptedChange(change=c.model_copy(update={"escalation": None}), accepted_at=new.taken_at)
             for c in compare(old, new, manifest).changes if c.unit_scale]
    seen = {(a.change.relation.lower(), str(a.change.new_column or a.change.column).lower()) for a in found}
    kept = []
    for a in old.accepted:
        table = new.tables.get(a.change.relation.lower())
        col = str(a.change.new_column or a.change.column).lower()
        now = table.by_name().get(col) if table is not None else None
        if now is not None and now.data_type == a.change.new_type and (a.change.relation.lower(), col) not in seen:
            kept.append(a)
    return kept + found


class DriftRun(Frozen):
    """One pass of the workflow: the report, the snapshot it judged, and what it did to the baseline."""

    report: DriftReport
    snapshot: Snapshot
    fingerprint: str
    baseline_created: bool = False
    advanced: list[str] = Field(default_factory=list)  # relations whose baseline moved forward
    raised: list[Escalation] = Field(default_factory=list)  # escalations this pass stored (ids assigned)
    escalations: list[Escalation] = Field(default_factory=list)  # stored and open for the changes: raised or earlier
    withdrawn: list[Escalation] = Field(default_factory=list)  # an investigation's questions the raised ones replaced
    accepted: list[SchemaChange] = Field(default_factory=list)  # unit changes a recorded baseline accepted

    @property
    def verdict(self) -> Verdict:
        return verdict_of(self.report.changes)

    def risky_relations(self) -> list[str]:
        """Relations with a warning or breaking change (their baseline did not move)."""
        return sorted({c.relation.lower() for c in self.report.changes if c.severity.rank >= 1})

    def escalations_for(self, changes: list[SchemaChange]) -> list[Escalation]:
        """The open escalations (stored, with their ids) that ``changes`` need answered."""
        wanted = {_decision_key(c.escalation) for c in changes if c.escalation}
        return [e for e in self.escalations if _decision_key(e) in wanted]


def _decision_key(esc: Escalation) -> tuple[str, str | None, str | None]:
    """What makes two escalations the same question (as ``raise_decisions`` deduplicates them)."""
    return esc.kind.value, esc.asset, esc.finding_pattern


def escalate(state: StateStore, report: DriftReport, manifest: Manifest,
             ) -> tuple[list[Escalation], list[Escalation], list[Escalation]]:
    """Store the escalations ``report``'s changes need: (raised now, every open one they need, the questions
    the raised ones withdrew).

    A question already open or answered for the same source is not asked again, so a check or
    sensor evaluated on every tick raises it once. One incident asks one question whichever ran first: when an
    investigation already asked about the change (it traced a failed test to the dropped column), its answered
    question stands for it (nothing is asked) and its open one is withdrawn for this one, naming it
    (:func:`~dagster_agent_de.engines.escalate.raising.raise_superseding`). It falls due as an investigation's
    questions do (:func:`~dagster_agent_de.engines.escalate.raising.due_date`); unanswered by then it stays the
    open question, overdue, and the next pass that still sees the change asks nothing new.
    """
    from dagster_agent_de.engines.escalate.raising import due_date, raise_superseding

    pending = [c.escalation for c in report.changes if c.escalation]
    if not pending:
        return [], [], []
    due = due_date()
    raised = raise_superseding(state, [e if e.due_at else e.model_copy(update={"due_at": due}) for e in pending],
                               manifest)
    wanted = {_decision_key(e) for e in pending}
    items = state.escalations()
    standing = [e for e in items if e.state == EscalationState.OPEN and _decision_key(e) in wanted]
    replaced = {i for e in raised for i in e.supersedes}
    return raised, standing, [e for e in items if e.id in replaced]


def take_current(manifest: Manifest, warehouse: Warehouse, store: SnapshotStore, *,
                 record_baseline: bool = False) -> Snapshot:
    """Snapshot now: a new baseline fingerprints every source column (what changed since the old baseline also
    at every scale); a detection only the columns that appeared or changed type since the last snapshot (tables
    unchanged since then keep theirs: no query)."""
    if record_baseline:  # every column, and what changed since the old baseline at every scale (a unit change?)
        return take_snapshot(manifest, warehouse, store.baseline(), fingerprints="full")
    return take_snapshot(manifest, warehouse, store.load("last") or store.baseline())


def judge(manifest: Manifest, store: SnapshotStore, current: Snapshot, *, record_baseline: bool = False,
          notifier: Notifier | None = None) -> DriftRun:
    """Compare ``current`` with the accepted baseline, apply the baseline policy and raise the escalations the
    changes need (see the module). Those told about a question this pass withdrew hear it, once, through
    ``notifier`` (``None``: nothing is sent)."""
    fingerprint = schema_fingerprint(current)
    baseline = store.baseline()
    if baseline is None or record_baseline:
        if current.missing and not current.tables:
            # a baseline of nothing would pass every later run: the sources are elsewhere (another target's
            # database, a schema not loaded yet)
            shown = ", ".join(current.missing[:3]) + (f" and {len(current.missing) - 3} more" if len(current.missing) > 3 else "")
            raise ConfigError(f"none of the {len(current.missing)} source tables of the manifest exist in the "
                              f"warehouse ({shown}): check the target (--target, DBT_TARGET) and that the sources are "
                              "loaded; no baseline was recorded")
        accepted = [] if baseline is None else accept_unit_changes(baseline, current, manifest)
        current = current.model_copy(update={"accepted": accepted})
        store.save("baseline", current)
        store.save("last", current)
        return DriftRun(report=DriftReport(baseline_at=None, snapshot_at=current.taken_at, baseline_created=True),
                        snapshot=current, fingerprint=fingerprint, baseline_created=True,
                        accepted=[a.change for a in accepted if a.accepted_at == current.taken_at])
    report = compare(baseline, current, manifest)
    store.save("baseline", accept_non_risky(baseline, current, report))
    store.save("last", current)
    changed = {c.relation.lower() for c in report.changes}
    risky = {c.relation.lower() for c in report.changes if c.severity.rank >= 1}
    raised, standing, withdrawn = escalate(store.state, report, manifest)
    if withdrawn:
        from dagster_agent_de.engines.notify.workflow import notify_safely, notify_withdrawn

        notify_safely(notifier, lambda n: notify_withdrawn(n, withdrawn, raised))
    return DriftRun(report=report, snapshot=current, fingerprint=fingerprint, advanced=sorted(changed - risky),
                    raised=raised, escalations=standing, withdrawn=withdrawn)


def run_drift(manifest: Manifest, warehouse: Warehouse, store: SnapshotStore, *,
              record_baseline: bool = False, notifier: Notifier | None = None) -> DriftRun:
    """Snapshot the sources, diff against the baseline with column-level impact, apply the baseline policy,
    raise the escalations the changes need, and tell those who heard of a question it withdrew (see :func:`judge`)."""
    current = take_current(manifest, warehouse, store, record_baseline=record_baseline)
    return judge(manifest, store, current, record_baseline=record_baseline, notifier=notifier)


def detect_drift(manifest: Manifest, warehouse: Warehouse, store: SnapshotStore, *,
                 record_baseline: bool = False) -> tuple[DriftReport, Snapshot]:
    """:func:`run_drift` as (report, snapshot)."""
    run = run_drift(manifest, warehouse, store, record_baseline=record_baseline)
    return run.report, run.snapshot
