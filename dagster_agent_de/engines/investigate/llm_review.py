"""An optional second opinion from an LLM, over the same audited, read-only tools.

The deterministic investigation has already run. The model sees the failure, the lineage, the
compiled SQL and the library's hypotheses; it may run read-only SQL (through the same audited
warehouse and guard as the detectors: a write is refused and the refusal is audited) and read
compiled models; it ends by reporting one finding. What it reports is kept apart from the
library's findings (``source="llm"``), advisory (``warning``), capped in confidence, and backed
only by queries that actually ran: a cited query that does not exist or failed is not evidence.
Values of columns tagged PII never leave the warehouse.

Any LLM failure leaves the deterministic report as it was, with a note saying why.
"""

from __future__ import annotations

import json
from typing import Any, Protocol

from dagster_agent_de.core.masking import masker
from dagster_agent_de.core.models import (
    Evidence,
    Finding,
    FindingsReport,
    InvestigationFinding,
    ProposedFix,
    Severity,
)
from dagster_agent_de.engines.investigate.context import InvestigationContext
from dagster_agent_de.engines.pii_lineage import pii_index
from dagster_agent_de.errors import LLMError, ProjectError

MAX_CONFIDENCE = 0.7
"""An LLM finding never claims more than this: a verified library finding (up to 1.0) outranks it."""
UNVERIFIED_CONFIDENCE = 0.3
RESULT_ROWS = 20
SQL_CHARS = 4000

SYSTEM = """You are the investigation step of dagster-agent-de, an agent data engineer watching a dbt project.
A data quality check failed. A deterministic library of bug patterns (join drops, fan-outs, NULL semantics,
type coercion, currency mixing, duplicate keys, stale inputs, schema drift) has already run; its hypotheses
are below. Your job is a second opinion: confirm, refine or replace the leading hypothesis.
Rules:
- Every claim must rest on a query you ran with run_sql in this conversation. Cite its query_id.
- SQL is read-only (the warehouse refuses anything else) and runs in the warehouse's dialect.
- Prefer counts and aggregates over row dumps. Keep to a few queries.
- Finish by calling report_finding exactly once. If nothing explains the failure, report pattern
  "unexplained" and say what you ruled out. Do not guess business rules: say what a human must decide."""

TOOLS: list[dict[str, Any]] = [
    {
        "name": "run_sql",
        "description": "Run one read-only SQL query in the warehouse. Returns columns, up to 20 rows, row_count and a query_id to cite.",
        "input_schema": {
            "type": "object",
            "properties": {
                "sql": {"type": "string", "description": "One SELECT statement in the warehouse's dialect."},
                "rationale": {"type": "string", "description": "Why you run it (goes to the audit log)."},
            },
            "required": ["sql", "rationale"],
        },
    },
    {
        "name": "get_compiled_sql",
        "description": "The compiled SQL of a dbt model or the relation of a source, by name.",
        "input_schema": {"type": "object", "properties": {"model": {"type": "string"}}, "required": ["model"]},
    },
    {
        "name": "report_finding",
        "description": "Report the root cause you found (once, at the end).",
        "input_schema": {
            "type": "object",
            "properties": {
                "pattern": {"type": "string", "description": "Short snake_case name of the bug pattern, or 'unexplained'."},
                "model": {"type": "string", "description": "The dbt model (or source) where the bug is."},
                "columns": {"type": "array", "items": {"type": "string"}},
                "summary": {"type": "string", "description": "What is wrong and why, with the numbers."},
                "confidence": {"type": "number", "minimum": 0, "maximum": 1},
                "evidence": {"type": "array", "items": {"type": "string"}, "description": "query_ids of the queries that show it."},
                "proposed_fix": {"type": "string", "description": "The change you propose (a human applies it)."},
                "needs_human": {"type": "string", "description": "A business decision only a human can make, if any."},
            },
            "required": ["pattern", "model", "summary", "confidence", "evidence"],
        },
    },
]


class LLMClient(Protocol):
    model: str

    def create(self, *, system: str, messages: list[dict[str, Any]], tools: list[dict[str, Any]], rationale: str) -> dict[str, Any]: ...


def review(
    report: FindingsReport, ctx: InvestigationContext, llm: LLMClient, *, max_turns: int = 8, max_queries: int = 12
) -> FindingsReport:
    """Ask ``llm`` for a second opinion on ``report``; return the report with its finding added (or a note why not)."""
    session = _Session(ctx, max_queries)
    messages: list[dict[str, Any]] = [{"role": "user", "content": _brief(report, ctx)}]
    why = f"second opinion on the failure of {ctx.failure.check or 'a check'} on {ctx.failure.asset}"
    for turn in range(1, max_turns + 1):
        try:
            resp = llm.create(system=SYSTEM, messages=messages, tools=TOOLS, rationale=f"{why} (turn {turn})")
        except LLMError as e:
            return _with(report, None, f"LLM second opinion skipped: {e}")
        content = resp.get("content") or []
        messages.append({"role": "assistant", "content": content})
        uses = [b for b in content if b.get("type") == "tool_use"]
        if not uses:
            return _with(report, None, f"LLM ({llm.model}) ended without reporting a finding (stop: {resp.get('stop_reason')})")
        results = []
        for use in uses:
            if use.get("name") == "report_finding":
                finding, note = session.finding(use.get("input") or {})
                return _with(report, finding, note)
            results.append(session.tool_result(use))
        messages.append({"role": "user", "content": results})
    return _with(report, None, f"LLM ({llm.model}) reached {max_turns} turns without reporting a finding")


def _with(report: FindingsReport, finding: Finding | None, note: str) -> FindingsReport:
    findings = list(report.findings)
    if finding is not None:
        # after the library's unexplained marker or its findings at least as confident: deterministic first
        at = next((i for i, f in enumerate(findings) if f.pattern != "unexplained" and f.confidence < finding.confidence),
                  len(findings))
        findings.insert(at, finding)
    return report.model_copy(update={"findings": findings, "notes": [*report.notes, note]})


class _Session:
    def __init__(self, ctx: InvestigationContext, max_queries: int) -> None:
        self.ctx = ctx
        self.max_queries = max_queries
        self.queries: dict[str, Evidence] = {}
        self.failed: set[str] = set()
        self.pii = pii_index(ctx.manifest, ctx.dialect).names()  # by name too: over-mask rather than leak

    def tool_result(self, use: dict[str, Any]) -> dict[str, Any]:
        name, args = use.get("name"), use.get("input") or {}
        try:
            if name == "run_sql":
                body = self._run_sql(str(args.get("sql") or ""), str(args.get("rationale") or "LLM query"))
            elif name == "get_compiled_sql":
                body = self._compiled(str(args.get("model") or ""))
            else:
                raise ValueError(f"unknown tool {name!r}; use run_sql, get_compiled_sql or report_finding")
        except ValueError as e:
            return {"type": "tool_result", "tool_use_id": use.get("id"), "content": str(e), "is_error": True}
        return {"type": "tool_result", "tool_use_id": use.get("id"), "content": json.dumps(body, default=str)}

    def _run_sql(self, sql: str, rationale: str) -> dict[str, Any]:
        if len(self.queries) >= self.max_queries:
            raise ValueError(f"query budget of {self.max_queries} used up; report your finding now")
        qid = f"q{len(self.queries) + 1}"
        res, ev = self.ctx.run(sql, f"LLM: {rationale}")
        self.queries[qid] = ev
        if res is None:
            self.failed.add(qid)
            raise ValueError(f"{qid}: {ev.result_summary}")
        rows = [masker().mask_row(r, self.pii) for r in res.dicts(RESULT_ROWS)]  # lineage-masked in ctx.run already
        return {"query_id": qid, "columns": res.columns, "rows": rows, "row_count": res.row_count}

    def _compiled(self, name: str) -> dict[str, Any]:
        try:
            node = self.ctx.manifest.find(name)
        except ProjectError as e:
            raise ValueError(str(e)) from e
        if node.is_source:
            return {"model": node.display_name, "relation": node.relation_name, "compiled_sql": None}
        sql = self.ctx.manifest.compiled_sql(node.unique_id) or ""
        return {"model": node.display_name, "relation": node.relation_name, "compiled_sql": sql[:SQL_CHARS]}

    def finding(self, args: dict[str, Any]) -> tuple[Finding, str]:
        cited = [str(q) for q in args.get("evidence") or []]
        evidence = [self.queries[q] for q in cited if q in self.queries and q not in self.failed]
        bogus = [q for q in cited if q not in self.queries or q in self.failed]
        try:
            claimed = float(args.get("confidence", 0.0))
        except (TypeError, ValueError):
            claimed = 0.0
        verified = bool(evidence)
        confidence = max(0.0, min(claimed, MAX_CONFIDENCE if verified else UNVERIFIED_CONFIDENCE))
        fix = str(args.get("proposed_fix") or "").strip()
        finding = InvestigationFinding(
            kind="investigation", source="llm", pattern=str(args.get("pattern") or "unexplained")[:80],
            model=str(args.get("model") or self.ctx.failure.asset), columns=[str(c) for c in args.get("columns") or []],
            severity=Severity.WARNING, confidence=round(confidence, 3), summary=str(args.get("summary") or "")[:2000],
            evidence=evidence, proposed_fix=ProposedFix(description=fix) if fix else None, verified=verified,
            needs_context=(str(args["needs_human"]) if args.get("needs_human") else None),
        )
        note = (f"LLM second opinion: {finding.pattern} in {finding.model} (claimed {claimed:.0%}, kept {confidence:.0%}), "
                f"{len(evidence)} supporting quer{'y' if len(evidence) == 1 else 'ies'} of {len(self.queries)} run")
        if bogus:
            note += f"; cited {', '.join(bogus)} which did not run or failed (not evidence)"
        return finding, note


def _brief(report: FindingsReport, ctx: InvestigationContext) -> str:
    f = ctx.failure
    lines = [f"Failed check: {f.check or '-'} on {f.asset} (kind: {f.kind})",
             "Check metadata: " + json.dumps({k: v for k, v in f.metadata.items() if not isinstance(v, (dict, list))}, default=str)[:2000],
             f"Warehouse dialect: {ctx.dialect}"]
    try:
        node = ctx.manifest.find(f.asset)
    except ProjectError:
        node = None
    if node is not None:
        ups = [ctx.manifest.nodes[u] for u in ctx.manifest.upstream(node.unique_id)][:40]
        lines.append("Lineage (failing model first, then upstream): " + ", ".join(
            f"{n.display_name} [{n.relation_name}]" for n in [node, *ups]))
        sql = ctx.manifest.compiled_sql(node.unique_id) if not node.is_source else None
        if sql:
            lines += [f"Compiled SQL of {node.display_name}:", sql[:SQL_CHARS]]
    lines.append("Library hypotheses (best first):")
    for finding in report.findings[:5]:
        lines.append(f"- {finding.pattern} in {finding.model} (confidence {finding.confidence:.2f}): {finding.summary[:600]}")
        for e in finding.evidence[:3]:
            lines.append(f"    evidence: {e.rationale} -> {e.result_summary[:300]}")
    if ctx.rules:
        lines.append("Business context recorded from earlier answers (treat as true):")
        lines += [f"- {getattr(r, 'id', '?')}: {getattr(r, 'rule', r)}" for r in ctx.rules[:20]]
    return "\n".join(lines)
