"""schema_drift: a recent change to an upstream source's schema that the models read."""

from __future__ import annotations

from dagster_agent_de.core.models import Evidence, ProposedFix
from dagster_agent_de.engines.drift.fix import unit_conversion
from dagster_agent_de.engines.drift.models import unit_words
from dagster_agent_de.engines.investigate.context import InvestigationContext
from dagster_agent_de.engines.investigate.models import Hypothesis
from dagster_agent_de.manifest import Node

PATTERN = "schema_drift"


def detect(ctx: InvestigationContext, node: Node) -> list[Hypothesis]:
    """Runs for each upstream source: compares the live schema with the accepted baseline."""
    if not node.is_source or ctx.drift_store is None or node.schema is None:
        return []
    from dagster_agent_de.engines.drift import compare, snapshot_schema
    from dagster_agent_de.engines.drift.fingerprint import attach_fingerprints

    baseline = ctx.drift_store.baseline()
    if baseline is None:
        return []
    rel = (node.database, node.schema, node.identifier or node.name)
    key = ".".join(p for p in rel if p).lower()
    scoped = baseline.model_copy(update={"tables": {k: v for k, v in baseline.tables.items() if k == key},
                                         "missing": [m for m in baseline.missing if m == key]})
    # the columns that appeared are fingerprinted as `agent-de drift` does (one query for the table), so a
    # rename is judged by the values here too, never by the names alone when the values say otherwise
    current = attach_fingerprints(ctx.warehouse, ctx.manifest, snapshot_schema(ctx.warehouse, [rel]), scoped)
    report = compare(scoped, current, ctx.manifest)
    changes = [c for c in report.changes if c.severity.rank >= 1]
    if not changes:
        return []
    out = []
    own_check = ctx.failure.kind == "schema_drift"
    for change in changes:
        first = next((i.model for i in change.impacted if i.hops == 1), None) or node.display_name
        breaking = change.severity.rank >= 2
        # a warning-level change (widened, nullability loosened) breaks no reader: it answers its own drift
        # check, but is at most a weak lead for another check's failure (rows lost, duplicated, mismatched)
        conf = 0.6 + 0.35 * change.confidence if breaking or own_check else 0.25 + 0.2 * change.confidence
        readers = ", ".join(i.model for i in change.impacted) or "no model"
        effect = f"it breaks {readers}" if breaking else f"read by {readers}"
        ev = Evidence(statement=current.statements[0] if current.statements else "", rationale="live schema vs baseline",
                      result_summary=change.describe(), rows_sample=[change.as_row()])
        if change.unit_scale:  # the values moved units (dollars to cents): the fix converts them back
            what = f"Convert {change.new_column or change.column} back to the old units in {first} " \
                   f"({unit_conversion(str(change.new_column or change.column), change.unit_scale)})"
        else:
            what = f"Adapt {first} to the new schema so downstream columns stay stable"
        out.append(Hypothesis(
            pattern=PATTERN, model=first, confidence=round(conf, 3),
            columns=[c for c in (change.column, change.new_column) if c],
            summary=f"{change.describe()}; {effect} ({change.severity.value}).",
            evidence=[ev],
            proposed_fix=ProposedFix(description=what
                                     + (" and update the source definition" if change.kind == "column_renamed" else ""),
                                     diff=change.proposed_fix or "",
                                     files=sorted({ln[6:] for ln in (change.proposed_fix or "").splitlines() if ln.startswith("+++ b/")})),
            needs_authority=(f"Ask the owners of {node.display_name} whether the change is intended and permanent "
                             "(a source contract change)") if change.kind in ("column_dropped", "table_dropped") else None,
            needs_business_context=(f"Is the unit change of {node.display_name}.{change.column} intended "
                                    f"(values {unit_words(change.unit_scale)})? Ask the owners of {node.display_name}")
            if change.unit_scale else None,
        ))
    return out
