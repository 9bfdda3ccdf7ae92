"""Find metrics defined more than once, differently.

A metric is an aggregated output column of a model (``sum(amount) as revenue``), named by its
column or by ``meta.agent_de.metric`` on the column. Each definition is traced down the lineage to
the source columns it is computed from and the filters on that path (``where status <>
'cancelled'`` in an upstream model counts). Two definitions of one name conflict when the
aggregate, the source columns or the filters differ; for additive ones (sum, count) one query
puts their totals side by side. Which one is right is a business decision: a context gap.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from sqlglot import exp

from dagster_agent_de.adapters.warehouse import Warehouse
from dagster_agent_de.core.models import Escalation, EscalationKind, EscalationOption, Evidence
from dagster_agent_de.errors import AgentDEError
from dagster_agent_de.manifest import Manifest, column_meta
from dagster_agent_de.sql.tracer import LineageTracer, strip_qualifiers

ADDITIVE = {"SUM", "COUNT"}


@dataclass(frozen=True)
class MetricDefinition:
    metric: str
    model: str
    column: str
    aggregate: str  # SUM, COUNT, AVG, ... of the outermost aggregate
    expression: str  # the column's SQL in its model
    sources: frozenset[str]  # source columns it is computed from: relation.column
    filters: frozenset[str]  # predicates on its lineage path, "predicate (model)"

    @property
    def additive(self) -> bool:
        return self.aggregate in ADDITIVE

    def describe(self) -> str:
        f = "; ".join(sorted(self.filters)) or "no filter"
        return f"{self.model}.{self.column} = {self.expression} [{f}]"


@dataclass
class MetricConflict:
    metric: str
    definitions: list[MetricDefinition]  # one per distinct definition (the first model of each)
    same_as: dict[str, list[str]] = field(default_factory=dict)  # representative model -> models defining it alike
    differences: list[str] = field(default_factory=list)


def _signature(d: MetricDefinition) -> tuple[str, frozenset[str], frozenset[str]]:
    return (d.aggregate, d.sources, d.filters)


def metric_definitions(manifest: Manifest, dialect: str, tracer: LineageTracer | None = None) -> tuple[list[MetricDefinition], list[str]]:
    """Every aggregated (or ``meta.agent_de.metric``-named) output column of every model; notes on what could not be read."""
    tracer = tracer or LineageTracer(manifest, dialect)  # shared: each model's SQL is analyzed once
    out: list[MetricDefinition] = []
    notes: list[str] = []
    for node in sorted(manifest.models(), key=lambda n: n.name):
        if not manifest.compiled_sql(node.unique_id):
            continue
        analysis = tracer.analysis(node)
        if analysis.error:
            notes.append(f"{node.name}: not parsed ({analysis.error[:160]})")
            continue
        named = {name.lower(): column_meta(col).get("agent_de", {}).get("metric")
                 for name, col in node.columns.items()}
        for column in analysis.output_names():
            if column == "*":
                continue
            found = analysis.definition(column)  # through CTEs: `select * from final`
            expr: exp.Expr | None = found[1] if found is not None else None
            agg = next(iter(expr.find_all(exp.AggFunc)), None) if expr is not None else None
            if agg is not None and (isinstance(agg.parent, exp.Window) or expr is not None and expr.find(exp.Window)):
                agg = None  # a window function keeps the grain: not a metric by itself
            metric = named.get(column) or (column if agg is not None else None)
            if not metric:
                continue
            sources, filters = tracer.trace(node, column)
            shown = strip_qualifiers(expr).sql(dialect=dialect) if expr is not None else column
            out.append(MetricDefinition(
                metric=str(metric).lower(), model=node.name, column=column,
                aggregate=(agg.key.upper() if agg is not None else ""), expression=shown,
                sources=frozenset(sources), filters=frozenset(filters),
            ))
    return out, notes


def find_conflicts(definitions: list[MetricDefinition]) -> list[MetricConflict]:
    by_metric: dict[str, list[MetricDefinition]] = defaultdict(list)
    for d in definitions:
        by_metric[d.metric].append(d)
    conflicts = []
    for metric, defs in sorted(by_metric.items()):
        groups: dict[tuple, list[MetricDefinition]] = {}
        for d in defs:
            groups.setdefault(_signature(d), []).append(d)
        if len(groups) < 2:
            continue
        reps = [g[0] for g in groups.values()]
        c = MetricConflict(metric=metric, definitions=reps, same_as={g[0].model: [d.model for d in g[1:]] for g in groups.values()})
        for a, b in zip(reps, reps[1:], strict=False):
            if a.aggregate != b.aggregate:
                c.differences.append(f"{a.model} aggregates with {a.aggregate or 'no aggregate'}, {b.model} with {b.aggregate or 'no aggregate'}")
            if a.sources != b.sources:
                c.differences.append(f"computed from different columns: {a.model} from {', '.join(sorted(a.sources)) or '?'}; "
                                     f"{b.model} from {', '.join(sorted(b.sources)) or '?'}")
            for only, x in ((a, a.filters - b.filters), (b, b.filters - a.filters)):
                for f in sorted(x):
                    c.differences.append(f"only {only.model} filters {f}")
        conflicts.append(c)
    return conflicts


@dataclass
class MetricAudit:
    definitions: list[MetricDefinition]
    conflicts: list[MetricConflict]
    evidence: dict[str, Evidence | None]
    notes: list[str]

    def escalations(self, manifest: Manifest) -> list[Escalation]:
        from dagster_agent_de.engines.escalate.raising import owner_of

        return [conflict_escalation(c, self.evidence[c.metric], owner_of(manifest, c.definitions[0].model)) for c in self.conflicts]

    def as_json(self) -> list[dict[str, object]]:
        return [{"metric": c.metric, "differences": c.differences, "same_as": c.same_as,
                 "definitions": [{"model": d.model, "column": d.column, "aggregate": d.aggregate, "expression": d.expression,
                                  "sources": sorted(d.sources), "filters": sorted(d.filters)} for d in c.definitions],
                 "evidence": ev.model_dump(mode="json") if (ev := self.evidence[c.metric]) else None} for c in self.conflicts]


def audit_metrics(manifest: Manifest, warehouse: Warehouse) -> MetricAudit:
    """Definitions, conflicts, and for each conflict its totals side by side."""
    defs, notes = metric_definitions(manifest, warehouse.dialect)
    conflicts = find_conflicts(defs)
    return MetricAudit(defs, conflicts, {c.metric: conflict_evidence(c, manifest, warehouse) for c in conflicts}, notes)


def conflict_evidence(conflict: MetricConflict, manifest: Manifest, warehouse: Warehouse) -> Evidence | None:
    """Totals of each additive definition, side by side, in one query (None when not comparable)."""
    defs = [d for d in conflict.definitions if d.additive]
    if len(defs) < 2:
        return None
    parts = []
    for i, d in enumerate(defs):
        rel = manifest.find(d.model).relation_name
        parts.append(f"(select sum({warehouse.quote(d.column)}) from {rel}) as d{i}")
    sql = "select " + ", ".join(parts)
    why = f"totals of the {len(defs)} definitions of {conflict.metric}"
    try:
        res = warehouse.query(sql, rationale=why)
    except AgentDEError as e:
        return Evidence(statement=sql, rationale=why, result_summary=f"query failed: {e}")
    row = res.rows[0]
    summary = ", ".join(f"{d.model}.{d.column}={row[i]}" for i, d in enumerate(defs))
    return Evidence(statement=sql, rationale=why, result_summary=summary, row_count=1,
                    rows_sample=[{f"{d.model}.{d.column}": (float(row[i]) if row[i] is not None else None) for i, d in enumerate(defs)}],
                    duration_ms=round(res.duration_ms, 2))


def conflict_escalation(conflict: MetricConflict, evidence: Evidence | None, owner: str | None = None) -> Escalation:
    totals = evidence.rows_sample[0] if evidence and evidence.rows_sample else {}
    options = []
    for d in conflict.definitions:
        total = totals.get(f"{d.model}.{d.column}")
        alike = conflict.same_as.get(d.model) or []
        options.append(EscalationOption(
            label=f"{d.model}.{d.column} is the definition of {conflict.metric}",
            evidence=d.describe() + (f"; total {total:,.2f}" if isinstance(total, float) else "")
            + (f"; also used by {', '.join(alike)}" if alike else ""),
            consequence="the others are proposed to be aligned to it (a code change, reviewed)",
            agent_action="record_rule", rule=f"{conflict.metric} is defined as in {d.model}.{d.column}: {d.describe()}",
        ))
    options.append(EscalationOption(label="they are different metrics: rename one", agent_action="record_rule",
                                    rule=f"the {conflict.metric} columns of {', '.join(d.model for d in conflict.definitions)} are different metrics",
                                    suppresses=["conflicting_metric_definitions"]))
    return Escalation(
        id="new", kind=EscalationKind.CONTEXT_GAP, owner=owner, asset=conflict.definitions[0].model,
        finding_pattern="conflicting_metric_definitions",
        decision=f"{conflict.metric!r} is computed {len(conflict.definitions)} different ways: " + "; ".join(conflict.differences)[:600]
        + ". Which is the definition?",
        options=options, recommendation=None, recommendation_reason="which definition is right is a business decision",
        blocking="aligning the definitions", continues="both stay as they are; dashboards may disagree",
        applies_to=[f"{d.model}.{d.column}" for d in conflict.definitions],
    )

