"""Investigate a slow model: its analyzed plan, the pattern library, a verified rewrite and its diff."""

from __future__ import annotations

import difflib
import re
import time
from pathlib import Path

from sqlglot.errors import SqlglotError

from dagster_agent_de.adapters.warehouse import Warehouse
from dagster_agent_de.core.models import Evidence, FindingsReport, PerformanceFinding, ProposedFix, Severity
from dagster_agent_de.engines.performance.detectors import DETECTORS
from dagster_agent_de.engines.performance.models import PerfContext, PerfFinding, PerfHypothesis, UpstreamView
from dagster_agent_de.engines.performance.plan import EXPLAIN_PREFIX, QueryPlan, explain_analyze
from dagster_agent_de.engines.performance.verify import WarehouseRuns, verify
from dagster_agent_de.errors import AgentDEError, WarehouseError
from dagster_agent_de.manifest import Manifest, Node
from dagster_agent_de.sql.scope import parse

VERIFY_TIMEOUT_S = 600
"""Snowflake's STATEMENT_TIMEOUT_IN_SECONDS for each verification run (``--verify-timeout``)."""


def detect(ctx: PerfContext, notes: list[str] | None = None) -> list[PerfHypothesis]:
    """Every detector's hypotheses, most confident first; a detector that fails is a note, not a lost investigation."""
    found: list[PerfHypothesis] = []
    for detector in DETECTORS:
        try:
            found += detector.detect(ctx)
        except Exception as e:
            if notes is None:
                raise
            notes.append(f"detector {detector.PATTERN} failed: {type(e).__name__}: {e}")
    return sorted(found, key=lambda h: -h.confidence)


def investigate_sql(warehouse: Warehouse, sql: str, *, model: str, source: str | None = None,
                    source_path: str | None = None, verify_rewrite: bool = True, repeats: int = 1,
                    min_speedup: float = 1.0, materialized: str = "",
                    upstream_views: list[UpstreamView] | None = None, plan: QueryPlan | None = None,
                    plan_statement: str = "", run_timeout_s: int | None = None) -> PerfFinding:
    """Investigate one compiled SELECT.

    Args:
        warehouse: the audited warehouse (DuckDB: EXPLAIN ANALYZE runs read-only through it).
        sql: the model's compiled SELECT.
        model: the model's name (for the finding).
        source: the model file's text; the diff of the verified rewrite is made against it.
        source_path: the file's path in the project (the diff's header).
        verify_rewrite: run the top hypothesis's rewrites and compare results before proposing one.
        repeats: EXPLAIN ANALYZE runs per side when timing (the best is kept).
        min_speedup: a rewrite with the same results must also be at least this many times faster
            (measured) to be proposed; 0 proposes any rewrite that leaves the results unchanged.
        materialized: the model's ``materialized`` config (the incremental detector reads it).
        upstream_views: the views the model reads, directly or through views (the view-chain detector).
        plan: the plan when it was read elsewhere (Snowflake's query history); else EXPLAIN ANALYZE runs.
        plan_statement: the statement that read ``plan`` (the finding's evidence).
        run_timeout_s: verify by running both SELECTs in full under this statement timeout (Snowflake,
            which has no EXPLAIN ANALYZE) instead of by EXPLAIN ANALYZE.
    """
    start = time.perf_counter()
    try:
        tree = parse(sql, warehouse.dialect)
    except SqlglotError as e:
        raise WarehouseError(f"the compiled SQL of {model} could not be parsed as {warehouse.dialect}: "
                             f"{str(e).splitlines()[0][:200]}") from e
    if plan is None:
        plan = explain_analyze(warehouse, sql, f"analyze the plan of {model} (performance investigation)")
    ctx = PerfContext(sql=sql, dialect=warehouse.dialect, tree=tree, plan=plan, materialized=materialized,
                      source=source, source_path=source_path or f"{model}.sql", upstream_views=upstream_views or [])
    notes: list[str] = []
    finding = PerfFinding(model=model, plan=plan, hypotheses=detect(ctx, notes), notes=notes,
                          plan_statement=plan_statement or EXPLAIN_PREFIX + sql.strip())
    top = finding.top
    if top is None or not verify_rewrite:
        finding.seconds_to_finding = time.perf_counter() - start
        return finding
    if not top.rewrites:
        finding.notes.append(f"no rewrite is known for this shape of {top.pattern}: fix it by hand")
    runs = WarehouseRuns(warehouse, sql, run_timeout_s) if run_timeout_s is not None else None
    for rewrite in top.rewrites:
        after = rewrite.edit(sql)
        if after == sql:
            continue
        try:
            if runs is not None:
                result = runs.verify(after, rewrite.description, min_speedup=min_speedup)
            else:
                result = verify(warehouse, sql, after, rewrite.description, repeats=repeats,
                                plan_before=plan, min_speedup=min_speedup)
        except (AgentDEError, SqlglotError) as e:
            finding.notes.append(f"could not verify '{rewrite.description}': {str(e).splitlines()[0][:200]}")
            continue
        if not result.accepted:
            finding.rejected.append(result)
            continue
        finding.verified = result
        if source is not None:
            new = rewrite.edit(source)
            rel = source_path or f"{model}.sql"
            finding.diff = "".join(difflib.unified_diff(
                source.splitlines(keepends=True), new.splitlines(keepends=True), fromfile=f"a/{rel}", tofile=f"b/{rel}"))
            if new == source:
                finding.notes.append(f"the rewrite did not apply to {rel} as written (generated by a macro?)")
        break
    if finding.verified is None and top.rewrites:
        finding.notes.append("no rewrite left the results unchanged and ran faster: nothing is proposed")
    finding.seconds_to_finding = time.perf_counter() - start
    return finding


def investigate_model(warehouse: Warehouse, manifest: Manifest, node: Node, *, repeats: int = 1,
                      verify_on_warehouse: bool = False, verify_timeout_s: int = VERIFY_TIMEOUT_S,
                      min_speedup: float = 1.0) -> PerfFinding:
    """Investigate a dbt model from the manifest: its compiled SELECT, and its ``.sql`` file for the diff.

    On Snowflake the plan is the model's last run in ``QUERY_HISTORY`` (``GET_QUERY_OPERATOR_STATS``).
    With no EXPLAIN ANALYZE, verifying a rewrite costs two full runs of the model's SELECT: done only when
    ``verify_on_warehouse`` (``agent-de investigate --verify``, the investigate job's
    ``verify_on_warehouse``), each run under ``STATEMENT_TIMEOUT_IN_SECONDS`` = ``verify_timeout_s``.
    ``min_speedup``: see :func:`investigate_sql`.
    """
    sql = manifest.compiled_sql(node.unique_id)
    if not sql:
        raise AgentDEError(f"{node.name} has no compiled SQL; run `dbt compile` (or `dbt build`) first")
    path: Path | None = manifest.model_file(node)
    source = path.read_text() if path is not None and path.exists() else None
    plan, statement, verify_rewrite, note, run_timeout_s = None, "", True, "", None
    if warehouse.dialect == "snowflake":
        from dagster_agent_de.engines.performance.snowflake import history_sql, last_query_plan

        tag = (node.raw.get("config") or {}).get("query_tag")
        plan, _ = last_query_plan(warehouse, node.unique_id, tag if isinstance(tag, str) else None)
        statement = history_sql(node.unique_id, tag if isinstance(tag, str) else None)
        verify_rewrite = verify_on_warehouse
        if verify_on_warehouse:
            run_timeout_s = verify_timeout_s
            note = ("Snowflake: the plan is the model's last run (QUERY_HISTORY, GET_QUERY_OPERATOR_STATS); the rewrite "
                    "was verified as requested by running the model's SELECT and the rewrite in full, each under "
                    f"STATEMENT_TIMEOUT_IN_SECONDS={verify_timeout_s}")
        else:
            note = ("Snowflake: the plan is the model's last run (QUERY_HISTORY, GET_QUERY_OPERATOR_STATS); verification "
                    "was not run (no EXPLAIN ANALYZE: it costs two full runs of the model's SELECT), so no diff is "
                    f"proposed. Ask for it with `agent-de investigate --asset {node.name} --check model_runtime "
                    "--verify` or the investigate job's config `verify_on_warehouse: true`")
    finding = investigate_sql(warehouse, sql, model=node.name, source=source,
                              source_path=node.raw.get("original_file_path"), repeats=repeats,
                              materialized=_materialized(node), upstream_views=upstream_views(manifest, node),
                              plan=plan, plan_statement=statement, verify_rewrite=verify_rewrite,
                              run_timeout_s=run_timeout_s, min_speedup=min_speedup)
    if note:
        finding.notes.append(note)
    return finding


def _materialized(node: Node) -> str:
    return str((node.raw.get("config") or {}).get("materialized") or "")


def upstream_views(manifest: Manifest, node: Node) -> list[UpstreamView]:
    """The views ``node`` reads, directly or through other views (nearest first), with how many models read each."""
    out: list[UpstreamView] = []
    frontier, depth, seen = [node.unique_id], 0, set()
    while frontier:
        depth += 1
        nxt = []
        for uid in frontier:
            for parent in manifest.parents(uid):
                p = manifest.nodes.get(parent)
                if p is None or parent in seen or p.resource_type != "model" or _materialized(p) != "view":
                    continue
                seen.add(parent)
                readers = [c for c in manifest.children(parent) if c.startswith("model.")]
                path = manifest.model_file(p)
                out.append(UpstreamView(name=p.name, depth=depth, readers=len(readers),
                                        path=str(p.raw.get("original_file_path") or ""),
                                        text=path.read_text() if path is not None and path.exists() else ""))
                nxt.append(parent)
        frontier = nxt
    return out


_POLICY_CONFIG = re.compile(
    r"(?im)^[+-](?![+-]).*\b(materialized|incremental_strategy|unique_key|on_schema_change|partition_by|cluster_by|"
    r"snowflake_warehouse|full_refresh)\b")
"""A diff line changing one of these changes how (and at what cost) the model is built: the owner decides."""


def needs_authority(finding: PerfFinding) -> str:
    """Why applying the finding's fix needs a human's authority ('' when it is a query rewrite).

    >>> from dagster_agent_de.engines.performance.plan import Operator, QueryPlan
    >>> f = PerfFinding("m", QueryPlan(Operator("X", 0, 0.0, {}), 0.0), [],
    ...                 diff="--- a/m.sql\\n+++ b/m.sql\\n+{{ config(materialized='table') }}\\n")
    >>> needs_authority(f)
    "Apply the fix to m? It changes the model's materialized config (how it is built and what it costs)"
    """
    top = finding.top
    if top is not None and top.needs_authority:
        return top.needs_authority
    diff = finding.diff or (top.diff if top else "")
    keys = sorted({m.group(1) for m in _POLICY_CONFIG.finditer(diff)})
    if keys:
        return (f"Apply the fix to {finding.model}? It changes the model's {', '.join(keys)} config "
                "(how it is built and what it costs)")
    return ""


def as_finding(finding: PerfFinding, sql: str) -> PerformanceFinding:
    """The investigation as a :class:`~dagster_agent_de.core.models.PerformanceFinding` (operator table and measured
    before/after figures as evidence; the diff only when a rewrite was verified)."""
    top = finding.top
    evidence = [Evidence(
        statement=finding.plan_statement or EXPLAIN_PREFIX + sql.strip(), rationale=f"analyzed plan of {finding.model}",
        result_summary=(f"{finding.plan.total_seconds:.3f}s, {finding.plan.rows_scanned:,} rows scanned, "
                        f"{finding.plan.bytes_spilled:,} bytes spilled"),
        rows_sample=list(top.operators) if top else [], row_count=len(top.operators) if top else 0,
        duration_ms=round(finding.plan.total_seconds * 1000, 2),
    )]
    for v in [*finding.rejected, *([finding.verified] if finding.verified else [])]:
        evidence.append(Evidence(
            statement=v.statement_after or EXPLAIN_PREFIX + v.sql_after.strip(), rationale=f"verify: {v.description}",
            result_summary=v.summary(), row_count=v.rows_after,
            rows_sample=[{"seconds_before": round(v.seconds_before, 4), "seconds_after": round(v.seconds_after, 4),
                          "speedup": round(v.speedup, 2), "rows_before": v.rows_before, "rows_after": v.rows_after,
                          "same_row_hash": v.same_hash}],
            duration_ms=round(v.seconds_after * 1000, 2),
        ))
    fix = None
    if top is not None and finding.verified is not None:
        fix = ProposedFix(description=finding.verified.summary(), diff=finding.diff,
                          files=[finding.diff.split("\n", 1)[0][len("--- a/"):]] if finding.diff else [])
    elif top is not None and top.diff:  # a change no read can verify (materializing a view): proposed, unverified
        fix = ProposedFix(description=f"{top.pattern} (not verified: it changes how a model is built)", diff=top.diff,
                          files=[top.diff.split("\n", 1)[0][len("--- a/"):]])
    return PerformanceFinding(
        pattern=top.pattern if top else "unexplained", model=finding.model, severity=Severity.WARNING,
        confidence=top.confidence if top else 0.0, summary=finding.summary(), evidence=evidence, proposed_fix=fix,
        verified=finding.verified is not None, needs_authority=needs_authority(finding) or None,
    )


def investigate_performance(warehouse: Warehouse, manifest: Manifest, node: Node, *, verify_on_warehouse: bool = False,
                            verify_timeout_s: int = VERIFY_TIMEOUT_S) -> FindingsReport:
    """The report for a failed ``model_runtime`` check (the investigation's ``performance`` kind);
    ``verify_on_warehouse``: see :func:`investigate_model`."""
    sql = manifest.compiled_sql(node.unique_id) or ""
    try:
        finding = investigate_model(warehouse, manifest, node, verify_on_warehouse=verify_on_warehouse,
                                    verify_timeout_s=verify_timeout_s)
    except AgentDEError as e:
        return FindingsReport(findings=[PerformanceFinding(
            pattern="unexplained", model=node.name, severity=Severity.WARNING, confidence=0.0,
            summary=f"the plan of {node.name} could not be analyzed: {str(e).splitlines()[0][:300]}",
        )], notes=[f"performance investigation of {node.name} failed: {e}"])
    return FindingsReport(findings=[as_finding(finding, sql)],
                          notes=[*finding.notes, f"time to finding: {finding.seconds_to_finding:.2f}s"])
