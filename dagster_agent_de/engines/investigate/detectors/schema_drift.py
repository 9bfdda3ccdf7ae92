"""schema_drift: a recent change to an upstream source's schema that the models read (or an accepted unit change
they still read unconverted)."""

from __future__ import annotations

import re

from dagster_agent_de.core.models import Evidence, ProposedFix
from dagster_agent_de.engines.drift.fix import propose_fix, unit_conversion
from dagster_agent_de.engines.drift.models import AcceptedChange, Snapshot
from dagster_agent_de.engines.investigate.context import InvestigationContext
from dagster_agent_de.engines.investigate.models import Hypothesis
from dagster_agent_de.manifest import Node

PATTERN = "schema_drift"


def detect(ctx: InvestigationContext, node: Node) -> list[Hypothesis]:
    """Runs for each upstream source: compares the live schema with the accepted baseline, and names the unit
    changes that baseline accepted which a model still reads unconverted."""
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
    live = {str(c.column).lower() for c in report.changes}
    out = [h for a in baseline.accepted
           if a.change.relation.lower() == key and str(a.change.new_column or a.change.column).lower() not in live
           for h in _accepted(ctx, node, a, baseline)]
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
        ))  # a unit change's question (is it intended?) is the drift check's, to the source's owner: named, not asked again
    return out


def _accepted(ctx: InvestigationContext, node: Node, accepted: AcceptedChange, baseline: Snapshot) -> list[Hypothesis]:
    """A unit change a recorded baseline accepted (``agent-de drift --baseline``): the drift check is quiet about
    it, but a model reading the column unconverted still sees the new units. A lead when the failing model reads
    the column; a strong one when what a reconciliation found mismatched comes from it."""
    if ctx.failure.kind == "schema_drift":
        return []  # the check's own question is about the live schema, which matches the accepted baseline
    from dagster_agent_de.engines.drift.impact import ImpactAnalyzer
    from dagster_agent_de.errors import ProjectError
    from dagster_agent_de.sql.lineage import normalize_relation

    change = accepted.change
    col, scale = str(change.new_column or change.column), int(change.unit_scale or 0)
    try:
        failing = ctx.manifest.find(ctx.failure.asset)
    except ProjectError:
        return []
    analyzer = ImpactAnalyzer(ctx.manifest, ctx.dialect, baseline)
    readers = analyzer.impacted(change.relation, col)
    if failing.name not in {i.model for i in readers} and failing.unique_id != node.unique_id:
        return []  # the failing model does not read it: no explanation of this failure
    conv = unit_conversion(col, scale)
    first = [ctx.manifest.find(i.model) for i in readers if i.hops == 1]
    unconverted = [m for m in first if not _converts(ctx, m, conv)]
    if not unconverted:
        return []  # every direct reader converts already: the change is handled
    fix = propose_fix(change, ctx.manifest) or ""
    outputs = {o.lower() for m in unconverted
               for o in analyzer.columns(m.unique_id).outputs_from(normalize_relation(node.relation_name or ""), col)}
    mismatched = {c.lower() for c in ctx.failure.mismatched_columns()}
    traced = ctx.failure.kind == "reconciliation" and bool(mismatched & (outputs | {col.lower()}))
    names = ", ".join(m.name for m in unconverted)
    ev = Evidence(statement="", rationale="the drift baseline's accepted changes",
                  result_summary=f"{change.describe()}; accepted {accepted.accepted_at:%Y-%m-%d %H:%M} UTC",
                  rows_sample=[change.as_row()])
    return [Hypothesis(
        pattern=PATTERN, model=unconverted[0].name, confidence=0.9 if traced else 0.6, columns=[col],
        summary=(f"{change.describe()}: accepted into the drift baseline on {accepted.accepted_at:%Y-%m-%d}, but {names} "
                 f"still read{'s' if len(unconverted) == 1 else ''} {col} unconverted (no {conv} in the SQL)"
                 + (f"; what the reconciliation found mismatched ({', '.join(sorted(mismatched & (outputs | {col.lower()})))}) "
                    "comes from it" if traced else "")
                 + "."),
        evidence=[ev],
        proposed_fix=ProposedFix(description=f"Convert {col} back to the old units in {names} ({conv})", diff=fix,
                                 files=sorted({ln[6:] for ln in fix.splitlines() if ln.startswith("+++ b/")})),
    )]


def _converts(ctx: InvestigationContext, model: Node, conv: str) -> bool:
    """Whether ``model``'s SQL has the conversion already (see :func:`sql_converts`)."""
    path = ctx.manifest.model_file(model)
    text = path.read_text() if path is not None and path.exists() else (ctx.manifest.compiled_sql(model.unique_id) or "")
    return sql_converts(text, conv)


def sql_converts(sql: str, conv: str) -> bool:
    """Whether ``sql`` applies ``conv`` (``total / 100.0``, ``amount * 1000``): the column itself (qualified or quoted;
    not one whose name ends like it: ``subtotal``), by the same factor (``100``, ``100.0``; not ``1000``), outside comments.

    >>> sql_converts("select total / 100 as total", "total / 100.0"), sql_converts("select subtotal/100.0", "total / 100.0")
    (True, False)
    >>> sql_converts("select total / 1000 as t -- total / 100.0", "total / 100.0"), sql_converts('o."total" / 100', "total / 100.0")
    (False, True)
    """
    m = re.fullmatch(r"(.+?) ([/*]) (\d+)(?:\.0)?", conv)
    if m is None:
        return False
    col, op, factor = m.groups()
    text = re.sub(r"--[^\n]*|/\*.*?\*/|\{#.*?#\}", " ", sql, flags=re.S)
    return re.search(rf"(?i)(?<![\w$])\"?{re.escape(col)}\"?\s*\)?\s*{re.escape(op)}\s*{factor}(?:\.0*)?(?![\w.])", text) is not None
