"""The investigation: lineage walk, hop counts, the pattern library, ranked findings.

Deterministic: the same failure on the same data gives the same finding. Every query goes
through the audited read-only warehouse. When nothing explains the failure the report says
so, with what was ruled out, and never invents a cause.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

from dagster_agent_de.adapters.warehouse import Warehouse
from dagster_agent_de.core.models import Evidence, Finding, FindingsReport, InvestigationFinding, Severity
from dagster_agent_de.engines.investigate.context import InvestigationContext
from dagster_agent_de.engines.investigate.detectors import DETECTORS
from dagster_agent_de.engines.investigate.failure import failure_symptom
from dagster_agent_de.engines.investigate.models import CANNOT_CAUSE, Failure, Hypothesis
from dagster_agent_de.errors import ProjectError
from dagster_agent_de.manifest import Manifest, Node

MIN_CONFIDENCE = 0.3
MAX_NODES = 200


def _lineage(manifest: Manifest, node: Node, failure: Failure | None = None) -> list[Node]:
    """Where to look: the failing node and its upstream; for a dbt test, every node the test reads
    (a relationships test reads both sides: the ``to:`` model and its upstream too)."""
    starts = [node]
    for uid in _test_nodes(manifest, failure):
        other = manifest.nodes.get(uid)
        if other is not None and other.unique_id != node.unique_id:
            starts.append(other)
    out: dict[str, Node] = {}
    for start in starts:
        out.setdefault(start.unique_id, start)
    for start in starts:
        for u in manifest.upstream(start.unique_id):
            if len(out) >= MAX_NODES:
                break
            out.setdefault(u, manifest.nodes[u])
    return list(out.values())


def _test_nodes(manifest: Manifest, failure: Failure | None) -> list[str]:
    """The other nodes a failing check reads: a dbt test's models, a reconciliation's truth side in the project."""
    if failure is None or not failure.check:
        return []
    for test in manifest.data.get("nodes", {}).values():
        if test.get("resource_type") == "test" and test.get("name") == failure.check:
            return list((test.get("depends_on") or {}).get("nodes") or [])
    return _truth_side(manifest, failure)


def _truth_side(manifest: Manifest, failure: Failure) -> list[str]:
    import re

    from dagster_agent_de.engines.reconcile import parse_specs

    try:
        node = manifest.find(failure.asset)
        specs = parse_specs(node.name, node.agent_de_meta.get("reconcile")) if not node.is_source else []
    except Exception:  # a malformed spec is reported by the reconcile check itself
        return []
    for spec in specs:
        if spec.name != failure.check:
            continue
        m = re.fullmatch(r"\s*source\(\s*['\"]([^'\"]+)['\"]\s*,\s*['\"]([^'\"]+)['\"]\s*\)\s*", spec.against)
        r = re.fullmatch(r"\s*ref\(\s*['\"]([^'\"]+)['\"]\s*\)\s*", spec.against)
        try:
            if m:
                return [manifest.source(m.group(1), m.group(2)).unique_id]
            if r:
                return [manifest.find(r.group(1)).unique_id]
        except ProjectError:
            return []
    return []


def hop_counts(ctx: InvestigationContext, nodes: list[Node]) -> tuple[dict[str, int], Evidence | None]:
    """Row count of every node on the path, in one query (one per node if that fails)."""
    rel_nodes = [n for n in nodes if n.relation_name]
    if not rel_nodes:
        return {}, None
    parts = [f"select '{n.display_name}' as node, count(*) as row_count from {n.relation_name}" for n in rel_nodes]
    res, ev = ctx.run(" union all ".join(parts), "row counts per hop, to locate where rows disappear or multiply")
    counts: dict[str, int] = {}
    if res is not None:
        counts = {r[0]: int(r[1]) for r in res.rows}
        return counts, ev
    for n, sql in zip(rel_nodes, parts, strict=False):
        r, _ = ctx.run(sql, f"row count of {n.display_name}")
        if r is not None:
            counts[n.display_name] = int(r.rows[0][1])
    return counts, Evidence(statement="; ".join(parts), rationale="row counts per hop",
                            result_summary=", ".join(f"{k}={v}" for k, v in counts.items()))


def _apply_rules(h: Hypothesis, rules: list[Any]) -> Hypothesis:
    """A rule that explains the pattern (``suppresses`` it, or names no pattern at all) lowers it; a rule that
    decided its fix (``acknowledges`` it) leaves it the cause, cited, so nothing is asked again."""
    targets = {h.model.lower()} | {f"{h.model}.{c}".lower() for c in h.columns}
    for rule in rules:
        applies = {a.lower() for a in getattr(rule, "applies_to", [])}
        if not applies & targets:
            continue
        suppresses = set(getattr(rule, "suppresses", None) or [])
        acknowledges = set(getattr(rule, "acknowledges", None) or [])
        if h.pattern in acknowledges:
            h = replace(h, fix_decided_in=[*h.fix_decided_in, rule.id],
                        summary=f"{h.summary} — its fix is decided (context rule {rule.id}: {rule.rule!r}) but not in "
                                "effect yet")
        elif h.pattern in suppresses or (not suppresses and not acknowledges):
            h = replace(h, confidence=round(h.confidence * 0.2, 3), cited_rules=[*h.cited_rules, rule.id],
                        summary=f"{h.summary} — explained by context rule {rule.id}: {rule.rule!r}")
    return h


_SYMPTOM_WORDS = {"duplicates": "duplicate keys", "nulls": "NULLs", "unaccepted_values": "values outside the accepted list",
                  "orphans": "keys without a parent"}


def _fitting(manifest: Manifest, failure: Failure, hypotheses: list[Hypothesis]) -> tuple[list[Hypothesis], str]:
    """The hypotheses that can cause what the failed check found (``models.CANNOT_CAUSE``), and a note
    naming the ones that cannot (e.g. a filter dropping NULL rows for a failed ``unique`` test)."""
    symptom = failure_symptom(manifest, failure)
    if symptom is None:
        return hypotheses, ""
    cannot = CANNOT_CAUSE[symptom]
    unfit = [h for h in hypotheses if h.pattern in cannot and h.confidence >= MIN_CONFIDENCE]
    if not unfit:
        return [h for h in hypotheses if h.pattern not in cannot], ""
    named = ", ".join(dict.fromkeys(f"{h.pattern} in {h.model}" for h in unfit))
    return [h for h in hypotheses if h.pattern not in cannot], (
        f"not ranked as a cause: {named}, found but unable to produce {_SYMPTOM_WORDS[symptom]}, "
        f"which {failure.check} reports")


def investigate(
    failure: Failure,
    manifest: Manifest,
    warehouse: Warehouse,
    *,
    rules: list[Any] | None = None,
    drift_store: Any = None,
    severity: Severity = Severity.ERROR,
    llm: Any = None,
    verify_on_warehouse: bool = False,
    verify_timeout_s: int | None = None,
) -> FindingsReport:
    """Investigate one failed check; return findings best first.

    ``llm`` (an :class:`~dagster_agent_de.adapters.llm.AnthropicLLM`, optional) adds a second
    opinion after the library has run (see :mod:`.llm_review`); without it nothing changes.
    ``verify_on_warehouse`` (a slow model on Snowflake): verify the rewrite by running the model's SELECT
    and the rewrite in full, each under a statement timeout of ``verify_timeout_s`` (default 600 s).
    """
    start = time.perf_counter()
    ctx = InvestigationContext(manifest, warehouse, failure, rules=list(rules or []), drift_store=drift_store)
    try:
        node = manifest.find(failure.asset)
    except ProjectError:
        return FindingsReport(findings=[InvestigationFinding(
            pattern="unexplained", model=failure.asset, severity=Severity.WARNING, confidence=0.0,
            summary=f"{failure.asset} is not in the dbt manifest any more (deleted or renamed since the failure?); "
                    "nothing to investigate.",
        )], notes=[f"asset {failure.asset} not found in the manifest"])
    if failure.kind == "performance":  # a failed model_runtime check: the plan, not the rows, explains it
        from dagster_agent_de.engines.performance.engine import VERIFY_TIMEOUT_S, investigate_performance

        return investigate_performance(warehouse, manifest, node, verify_on_warehouse=verify_on_warehouse,
                                       verify_timeout_s=verify_timeout_s or VERIFY_TIMEOUT_S)
    nodes = _lineage(manifest, node, failure)
    counts, count_ev = hop_counts(ctx, nodes)
    hypotheses: list[Hypothesis] = []
    ran: list[str] = []
    defects: list[str] = []
    for n in nodes:
        if not n.is_source:
            facts = ctx.facts(n)
            if facts.error:
                ctx.notes.append(f"SQL detectors skipped for {n.name}: {facts.error}")
                continue
        for detector in DETECTORS:
            queries, failures = ctx.queries, len(ctx.query_failures)
            try:
                found = detector.detect(ctx, n)
            except Exception as e:  # one detector's bug must not lose the investigation
                defects.append(detector.PATTERN)
                ctx.notes.append(f"detector {detector.PATTERN} failed on {n.display_name}: {type(e).__name__}: {e}")
                continue
            if len(ctx.query_failures) > failures:  # our own query failed: a defect to report, not a cause ruled out
                defects.append(detector.PATTERN)
                for msg in ctx.query_failures[failures:]:
                    ctx.notes.append(f"detector {detector.PATTERN} on {n.display_name}: a query of the agent failed "
                                     f"(not a ruled-out cause): {msg}")
            elif ctx.queries > queries or found:
                ran.append(f"{detector.PATTERN}@{n.display_name}")  # it applied and measured
            hypotheses.extend(_apply_rules(h, ctx.rules) for h in found)
    found_patterns = {h.pattern for h in hypotheses if h.confidence >= MIN_CONFIDENCE}
    hypotheses, unfit = _fitting(manifest, failure, hypotheses)
    order = {n.display_name: i for i, n in enumerate(nodes)}
    hypotheses.sort(key=lambda h: (-h.confidence, order.get(h.model, 99), h.pattern))
    downstream = {n.display_name: [manifest.nodes[d].display_name for d in manifest.downstream(n.unique_id)] for n in nodes}
    findings: list[Finding] = []
    for h in hypotheses:
        if h.confidence < MIN_CONFIDENCE and not h.cited_rules:
            continue
        evidence = list(h.evidence)
        if count_ev is not None and not findings:
            evidence.append(count_ev)
        findings.append(InvestigationFinding(
            kind="investigation", pattern=h.pattern, model=h.model, columns=h.columns, confidence=h.confidence,
            severity=severity if h.confidence >= 0.5 and not h.cited_rules else Severity.WARNING,
            summary=h.summary, evidence=evidence, proposed_fix=h.proposed_fix,
            blast_radius=[h.model, *downstream.get(h.model, [])] if h.model in downstream else [h.model],
            verified=h.verified, cited_rules=h.cited_rules, fix_decided_in=h.fix_decided_in,
            needs_context=h.needs_business_context,
            needs_authority=h.needs_authority,
        ))
    ruled_out = sorted({r.split("@")[0] for r in ran} - found_patterns - set(defects))
    notes = list(ctx.notes)
    if unfit:
        notes.append(unfit)
    others = [manifest.nodes[u].display_name for u in _test_nodes(manifest, failure)
              if u != node.unique_id and u in manifest.nodes]
    also = f" and of {', '.join(others)} (what {failure.check} also reads)" if others else ""
    notes.append(f"checked {len(nodes)} node(s) upstream of {node.display_name}{also} with {len(DETECTORS)} detectors "
                 f"in {(time.perf_counter() - start):.2f}s")
    if counts:
        notes.append("rows per hop: " + ", ".join(f"{k}={v:,}" for k, v in counts.items()))
    if not findings or findings[0].cited_rules:
        findings.insert(0, InvestigationFinding(
            kind="investigation", pattern="unexplained", model=node.display_name, severity=Severity.WARNING, confidence=0.0,
            summary=(f"No pattern in the library explains the failure of {failure.check or 'the check'} on "
                     f"{node.display_name}. Ruled out: {', '.join(ruled_out) or 'nothing could be checked'}."
                     + (f" Not checked, because a query of the agent failed: {', '.join(sorted(set(defects)))} "
                        "(see the notes)." if defects else "")),
            evidence=[count_ev] if count_ev else [],
        ))
    report = FindingsReport(findings=findings, notes=notes)
    if llm is not None:
        from dagster_agent_de.engines.investigate.llm_review import review

        report = review(report, ctx, llm)
    return report
