"""The one seam from the agent's results to Dagster events and metadata.

Like dagster-dbt's ``DagsterDbtTranslator``: overridable methods that call pure
``default_*`` functions. Every ``AssetCheckResult``, observation, materialization and metadata
entry the plugin emits is built here (``dagster_agent_de_tests/test_translator_seam.py`` checks
that no other module constructs one). One instance is passed to every check, job and sensor
(``build_agent_de_definitions(agent_translator=...)``), so a subclass changes them all.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dagster import (
    AssetCheckKey,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetKey,
    AssetMaterialization,
    AssetObservation,
    MetadataValue,
    TableColumn,
    TableRecord,
    TableSchema,
)

from dagster_agent_de.core.models import Escalation, Finding, FindingsReport, Severity

if TYPE_CHECKING:
    from dagster_agent_de.engines.drift.models import SchemaChange
    from dagster_agent_de.engines.entities.resolve import EntityResolution
    from dagster_agent_de.engines.intents.intents import IntentResult
    from dagster_agent_de.engines.metrics.conflicts import MetricAudit
    from dagster_agent_de.engines.onboard.workflow import Onboarding
    from dagster_agent_de.engines.pii_scan import UntaggedPII
    from dagster_agent_de.engines.volume import VolumeVerdict

MAX_TABLE_ROWS = 50


def _scalar(v: Any) -> Any:
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    return str(v)


def _cell(v: Any, column_type: str) -> float | str | None:
    if v is None:
        return None
    return float(v) if column_type == "float" else str(_scalar(v))


def default_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None) -> MetadataValue:
    """A Dagster table from dict rows (values stringified where Dagster cannot hold them)."""
    cols = list(columns or (list(rows[0].keys()) if rows else []))
    types = {}
    for c in cols:
        vals = [r.get(c) for r in rows if r.get(c) is not None]
        types[c] = "float" if vals and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in vals) else "string"
    records = [TableRecord({c: _cell(r.get(c), types[c]) for c in cols}) for r in rows[:MAX_TABLE_ROWS]]
    return MetadataValue.table(records=records, schema=TableSchema(columns=[TableColumn(c, types[c]) for c in cols]))


def default_json(obj: Any) -> MetadataValue:
    return MetadataValue.json(json.loads(json.dumps(obj, default=str)))


def default_ui_url() -> str:
    """The Dagster UI's base URL for links (``DAGSTER_UI_URL``; a relative link when unset)."""
    import os

    return os.environ.get("DAGSTER_UI_URL", "").rstrip("/")


def default_investigations_url(asset_key: AssetKey, check_name: str) -> str:
    """Runs filtered by the failed-check sensor's tag for this check.

    >>> default_investigations_url(AssetKey(["analytics", "orders"]), "orders_vs_raw")
    '/runs?q%5B0%5D=tag%3Aagent_de/check%3Danalytics/orders%3Aorders_vs_raw'
    """
    from urllib.parse import quote

    return f"{default_ui_url()}/runs?q%5B0%5D=" + quote(f"tag:agent_de/check={asset_key.to_user_string()}:{check_name}",
                                                      safe="/")


def default_answer_config(escalation_id: str, option: str) -> str:
    """Launchpad config to answer ``escalation_id`` with ``option``, ready to copy.

    >>> print(default_answer_config("ESC-1", "apply the fix"))
    ops:
      answer:
        config:
          escalation_id: ESC-1
          option: apply the fix
          answered_by: you@example.com
          note: ''
    """
    import yaml

    cfg = {"ops": {"answer": {"config": {"escalation_id": escalation_id, "option": option,
                                          "answered_by": "you@example.com", "note": ""}}}}
    return yaml.safe_dump(cfg, sort_keys=False).rstrip()


def default_md(text: str) -> MetadataValue:
    """A markdown metadata entry."""
    return MetadataValue.md(text)


def default_bullets(lines: Sequence[str]) -> str:
    """``- line`` per line, ``-`` for none.

    >>> default_bullets(["a", "b"])
    '- a\\n- b'
    >>> default_bullets([])
    '-'
    """
    return "\n".join(f"- {line}" for line in lines) or "-"


def default_pii_metadata(item: UntaggedPII) -> dict[str, MetadataValue]:
    return {"untagged_pii_columns": MetadataValue.int(len(item.hits)),
            "columns": MetadataValue.text(", ".join(h.column for h in item.hits) or "-"),
            "evidence": MetadataValue.md(default_bullets([h.evidence for h in item.hits]))}


def default_intent_metadata(results: Sequence[IntentResult]) -> dict[str, MetadataValue]:
    return {
        "violations": MetadataValue.int(sum(r.violations for r in results)),
        "intents": MetadataValue.int(len(results)),
        "why": MetadataValue.md(default_bullets([f"`{r.intent.model}.{getattr(r.intent, 'column', '')}` "
                                                 f"{r.intent.kind}: {r.intent.why}" for r in results])),
        "agent_de/statements": MetadataValue.md("\n\n".join(f"```sql\n{e.statement}\n```" for r in results
                                                            for e in r.evidence)[:4000] or "-"),
        **{f"{r.intent.model}.{k}": MetadataValue.float(float(v)) for r in results for k, v in r.numbers.items()},
    }


def default_volume_metadata(verdict: VolumeVerdict) -> dict[str, MetadataValue]:
    md: dict[str, MetadataValue] = {"row_count": MetadataValue.int(verdict.row_count),
                                    "history_runs": MetadataValue.int(verdict.history_n),
                                    "agent_de/kind": MetadataValue.text("volume")}
    for label, value in (("expected_median", verdict.expected), ("lower", verdict.lower), ("upper", verdict.upper)):
        if value is not None:
            md[label] = MetadataValue.float(float(value))
    return md


def default_investigation_metadata(run_id: str, check_name: str, elapsed_s: float,
                                   triggering_run_id: str = "") -> dict[str, MetadataValue]:
    """Where a finding came from: the failing run, the investigation run, the check, how long it took."""
    return {**({"agent_de/failing_run": MetadataValue.dagster_run(triggering_run_id)} if triggering_run_id else {}),
            "agent_de/investigation_run": MetadataValue.text(run_id),
            "agent_de/check": MetadataValue.text(check_name or "-"),
            "agent_de/duration_s": MetadataValue.float(round(elapsed_s, 3))}


def default_metric_conflicts_markdown(audit: MetricAudit) -> str:
    parts = []
    for c in audit.conflicts:
        ev = audit.evidence[c.metric]
        parts.append(f"### {c.metric}\n" + "\n".join(f"- `{d.describe()}`" for d in c.definitions)
                     + "\n" + "\n".join(f"- {x}" for x in c.differences)
                     + (f"\n- totals: {ev.result_summary}" if ev else ""))
    return "\n\n".join(parts) or "No conflicting definitions."


class AgentDETranslator:
    """Builds Dagster events from reports and findings. Subclass to change metadata or severity."""

    def check_severity(self, severity: str | Severity) -> AssetCheckSeverity:
        """Dagster's two levels from the agent's one scale: ``error`` and ``critical`` are ERROR, the rest WARN."""
        return AssetCheckSeverity.ERROR if Severity.parse(severity).rank >= Severity.ERROR.rank else AssetCheckSeverity.WARN

    # -- reconciliation ---------------------------------------------------------------------
    def reconcile_metadata(self, report: Any) -> dict[str, Any]:
        counts = report.counts()
        md: dict[str, Any] = {k: MetadataValue.float(float(v)) if isinstance(v, float) else MetadataValue.int(int(v))
                              for k, v in counts.items()}
        md["summary"] = MetadataValue.md(report.markdown())
        md["against"] = MetadataValue.text(report.against)
        md["method"] = MetadataValue.text(report.method)
        md["duration_ms"] = MetadataValue.float(round(report.duration_ms, 2))
        for c in report.columns:
            md[f"mismatched_pct.{c.column}"] = MetadataValue.float(round(c.pct, 4))
        for s in report.segments:
            seg = "_".join(str(v) for v in s.segment.values()) or "total"
            md[f"delta.{s.metric}.{seg}"] = MetadataValue.float(round(s.delta, 6))
        if report.segments:
            md["segments"] = default_table([
                {**{k: v for k, v in s.segment.items()}, "metric": s.metric, "pipeline": s.pipeline,
                 "truth": s.truth, "delta": s.delta, "pct": s.pct} for s in report.segments
            ])
        if report.samples:
            md["samples"] = default_json(report.samples)
        if report.bytes_moved is not None:
            md["bytes_moved"] = MetadataValue.int(report.bytes_moved)
        md["sql"] = MetadataValue.md("\n\n".join(f"```sql\n{s}\n```" for s in report.statements))
        md["report"] = default_json(report.model_dump(mode="json", exclude={"statements"}))
        return md

    def reconcile_check_result(self, report: Any, asset_key: AssetKey | None = None) -> AssetCheckResult:
        md = self.reconcile_metadata(report)
        description = report.summary()
        if not report.passed and asset_key is not None:
            # the evaluation is recorded before its investigation run exists: link to the runs the
            # failed-check sensor tags with this check
            url = default_investigations_url(asset_key, report.spec_name)
            md = {"agent_de/investigation_runs": MetadataValue.url(url), **md}
            description = (f"{description}\nThe agent investigates this failure: its run and finding are at "
                           f"{url} (the run tagged agent_de/check={asset_key.to_user_string()}:{report.spec_name}).")
        return AssetCheckResult(
            passed=report.passed,
            severity=self.check_severity(report.severity),
            metadata=md,
            description=description[:1000],
        )

    def error_check_result(
        self, error: Exception, severity: str = "error", what: str = "check",
        asset_key: AssetKey | None = None, check_name: str | None = None,
    ) -> AssetCheckResult:
        """A check that could not run fails with the cause (it never passes silently)."""
        return AssetCheckResult(
            asset_key=asset_key,
            check_name=check_name,
            passed=False,
            severity=self.check_severity(severity),
            metadata={"error": MetadataValue.text(str(error)), "error_type": MetadataValue.text(type(error).__name__)},
            description=f"the {what} could not run: {error}"[:1000],
        )

    # -- model runtime ----------------------------------------------------------------------
    def runtime_check_result(self, asset_key: AssetKey, check_name: str, verdict: Any, source: str) -> AssetCheckResult:
        """A ``model_runtime`` evaluation: WARN, with the runtime and its baseline (the UI plots ``seconds``)."""
        md: dict[str, Any] = {"seconds": MetadataValue.float(round(float(verdict.seconds), 3)),
                              "history_runs": MetadataValue.int(int(verdict.history_n)),
                              "runtime_source": MetadataValue.text(source), "agent_de/kind": MetadataValue.text("runtime")}
        for label, value in (("baseline_median_s", verdict.median), ("upper_s", verdict.upper)):
            if value is not None:
                md[label] = MetadataValue.float(round(float(value), 3))
        for name, value, median in getattr(verdict, "figures", ()):  # bytes/rows scanned, where reported
            md[name] = MetadataValue.float(float(value))
            if median is not None:
                md[f"baseline_median_{name}"] = MetadataValue.float(float(median))
        return AssetCheckResult(asset_key=asset_key, check_name=check_name, passed=verdict.passed,
                                severity=AssetCheckSeverity.WARN, metadata=md, description=verdict.reason[:1000])

    # -- schema drift -----------------------------------------------------------------------
    def column_schema(self, table: Any) -> MetadataValue:
        """``dagster/column_schema`` from a drift ``TableSchema`` snapshot."""
        from dagster import TableColumnConstraints
        from dagster import TableSchema as DagsterTableSchema

        return MetadataValue.table_schema(DagsterTableSchema(columns=[
            TableColumn(c.name, c.data_type, constraints=TableColumnConstraints(nullable=c.nullable))
            for c in table.columns
        ]))

    def drift_metadata(self, changes: Sequence[Any], notes: Sequence[str] = ()) -> dict[str, Any]:
        md: dict[str, Any] = {
            "changes": MetadataValue.int(len(changes)),
            "breaking_changes": MetadataValue.int(sum(1 for c in changes if c.severity.value == "breaking")),
        }
        if changes:
            lines = ["| severity | change | impacted models |", "|---|---|---|"]
            for c in changes:
                imp = ", ".join(f"`{i.model}`" + (f" ({', '.join(i.columns)})" if i.columns else "") for i in c.impacted) or "none"
                lines.append(f"| {c.severity.value} | {c.describe()} | {imp} |")
            for c in changes:
                if c.proposed_fix:
                    lines += ["", f"**Proposed fix** ({c.describe()}):", "", "```diff", c.proposed_fix.rstrip(), "```"]
            md["summary"] = MetadataValue.md("\n".join(lines + [f"\n_{n}_" for n in notes]))
            md["changes_table"] = default_table([c.as_row() for c in changes])
            md["changes_json"] = default_json([c.model_dump(mode="json") for c in changes])
            evidence = [self.rename_evidence_row(c, e) for c in changes for e in c.evidence]
            if evidence:
                md["rename_evidence"] = default_table(evidence)
        return md

    def rename_evidence_row(self, change: Any, e: Any) -> dict[str, Any]:
        """One value comparison behind a rename call: the verdict and the stats side by side."""
        row: dict[str, Any] = {"change": change.kind, "old_column": e.old_column, "new_column": e.new_column,
                               "verdict": e.verdict, "match_rate": e.match_rate, "keys_compared": e.keys_compared,
                               "scale": e.scale, "reason": e.reason or None}
        for side, stats in (("old", e.old_stats), ("new", e.new_stats)):
            for k in ("type", "rows", "nulls", "distinct", "min", "max"):
                row[f"{side}_{k}"] = stats.get(k)
        return row

    def escalation_refs_metadata(self, escalations: Sequence[Escalation]) -> dict[str, Any]:
        """Escalations something refers to, by id, kind and in full: on a drift check's evaluation, the questions
        its changes wait on; on an investigation's finding, the question a check already asked about its incident."""
        if not escalations:
            return {}
        return {
            "agent_de/escalations": MetadataValue.text(", ".join(e.id for e in escalations)),
            "agent_de/escalation_kinds": MetadataValue.text(", ".join(e.kind.value for e in escalations)),
            "agent_de/escalation_detail": MetadataValue.md("\n\n---\n\n".join(self.escalation_markdown(e)
                                                                             for e in escalations)),
        }

    def drift_check_result(self, asset_key: AssetKey, changes: Sequence[SchemaChange], notes: Sequence[str] = (),
                           escalations: Sequence[Escalation] = ()) -> AssetCheckResult:
        from dagster_agent_de.engines.drift.workflow import verdict_of

        verdict = verdict_of(list(changes))  # the same verdict `agent-de drift` prints
        asks = [f"escalation {e.id} ({e.kind.value}): {e.decision}"
                + (f" (it replaces {', '.join(e.supersedes)}, withdrawn)" if e.supersedes else "") for e in escalations]
        return AssetCheckResult(
            asset_key=asset_key,
            check_name="schema_drift",
            passed=verdict == "pass",  # info-only changes pass; warnings fail as WARN, breaking as ERROR (blocks)
            severity=AssetCheckSeverity.ERROR if verdict == "block" else AssetCheckSeverity.WARN,
            metadata={**self.drift_metadata(changes, notes), **self.escalation_refs_metadata(escalations)},
            description="; ".join([c.describe() for c in changes] + asks)[:1000] or "no schema drift",
        )

    # -- escalations ------------------------------------------------------------------------
    def escalation_markdown(self, e: Any) -> str:
        lines = [f"### {e.id} ({e.kind.value.replace('_', ' ')}): {e.decision}", "",
                 f"Owner: **{e.owner or '-'}** · state: {e.status()}"
                 + (f" (was due {e.due_at:%Y-%m-%d %H:%M} UTC)" if e.overdue() else
                    f" · due {e.due_at:%Y-%m-%d %H:%M} UTC" if e.due_at and e.state.value == "open" else "")
                 + f" · concerns `{e.asset or '-'}`"
                 + (f" · needs {e.approvals_required} distinct approvers" if e.approvals_required > 1 else ""), ""]
        if e.superseded_by:
            lines += [f"Withdrawn: **{e.superseded_by}** asks about the same incident now; answer that one.", ""]
        if e.supersedes:
            lines += [f"Replaces {', '.join(e.supersedes)} (withdrawn), asked earlier about the same incident.", ""]
        for i, o in enumerate(e.options):
            star = " (recommended)" if e.recommendation == i else ""
            lines.append(f"{i}. **{o.label}**{star}: {o.consequence}. Agent will: `{o.agent_action}`")
        lines += ["", f"Recommendation: {e.recommendation_reason or 'no recommendation'}",
                  f"Blocked: {e.blocking or '-'}; continues meanwhile: {e.continues or '-'}", "",
                  f"Answer: `agent-de escalations answer {e.id} --choice N --by you@example.com`, or launch the "
                  "`answer_escalation` job with one of these configs:"]
        for o in e.options:
            lines += ["", "```yaml", default_answer_config(e.id, o.label), "```"]
        if e.fix_diff:
            lines += ["", "```diff", e.fix_diff.rstrip(), "```"]
        return "\n".join(lines)

    def escalations_metadata(self, escalations: Sequence[Any]) -> dict[str, Any]:
        open_ = [e for e in escalations if e.state.value == "open"]
        return {
            "open": MetadataValue.int(len(open_)),
            "overdue": MetadataValue.int(sum(e.overdue() for e in open_)),
            "queue": default_table([
                {"id": e.id, "status": e.status(), "kind": e.kind.value, "decision": e.decision[:200],
                 "recommendation": (e.options[e.recommendation].label if e.recommendation is not None else "none"),
                 "owner": e.owner or "-", "age_hours": round(e.age_hours(), 2),
                 "due": f"{e.due_at:%Y-%m-%d %H:%M}" if e.due_at else "-",
                 "approvals": f"{len(e.approvals)}/{e.approvals_required}"} for e in open_
            ], ["id", "status", "kind", "decision", "recommendation", "owner", "age_hours", "due", "approvals"]),
            "detail": MetadataValue.md("\n\n---\n\n".join(self.escalation_markdown(e) for e in open_) or "No open escalations."),
        }

    # -- findings ---------------------------------------------------------------------------
    def finding_metadata(self, finding: Finding) -> dict[str, Any]:
        md: dict[str, Any] = {  # by importance: what, how sure (as a percentage and as a number to plot), why
            "agent_de/pattern": MetadataValue.text(finding.pattern),
            "agent_de/confidence_pct": MetadataValue.text(f"{finding.confidence:.0%}"),
            "agent_de/kind": MetadataValue.text(finding.kind),
            "agent_de/source": MetadataValue.text(finding.source),
            "agent_de/severity": MetadataValue.text(finding.severity.value),
            "agent_de/confidence": MetadataValue.float(round(finding.confidence, 3)),
            "agent_de/summary": MetadataValue.md(self.finding_markdown(finding)),
            "agent_de/finding": default_json(finding.model_dump(mode="json")),
        }
        if finding.evidence:
            md["agent_de/evidence"] = default_table([
                {"rationale": e.rationale, "result": e.result_summary, "rows": e.row_count, "statement": e.statement[:500]}
                for e in finding.evidence
            ])
        return md

    def performance_metadata(self, finding: Finding) -> dict[str, Any]:
        """A performance finding's operator table (the analyzed plan's operators behind the hypothesis) and its
        measured before/after figures, as tables on the model (nothing for other findings)."""
        plans = [e for e in finding.evidence if e.rationale.startswith("analyzed plan of ")]
        if not plans:
            return {}
        md: dict[str, Any] = {}
        if plans[0].rows_sample:
            cols = list(dict.fromkeys(k for r in plans[0].rows_sample for k in r))
            md["agent_de/operators"] = default_table(plans[0].rows_sample, cols)
        measured = [{"rewrite": e.rationale.removeprefix("verify: "), **e.rows_sample[0]}
                    for e in finding.evidence if e.rationale.startswith("verify: ") and e.rows_sample]
        if measured:
            md["agent_de/before_after"] = default_table(measured)
        return md

    def finding_markdown(self, finding: Finding) -> str:
        who = " — LLM second opinion" if finding.source == "llm" else ""
        lines = [f"### {finding.pattern} in `{finding.model or '?'}` ({finding.severity.value}, confidence {finding.confidence:.0%}){who}",
                 "", finding.summary]
        if finding.columns:
            lines += ["", "Columns: " + ", ".join(f"`{c}`" for c in finding.columns)]
        for e in finding.evidence[:5]:
            lines += ["", f"- **{e.rationale}** → {e.result_summary}", f"  ```sql\n  {e.statement.strip()[:800]}\n  ```"]
        if finding.proposed_fix:
            lines += ["", f"**Proposed fix:** {finding.proposed_fix.description}"]
            if finding.proposed_fix.diff:
                lines += ["", "```diff", finding.proposed_fix.diff.rstrip(), "```"]
        if finding.blast_radius:
            lines += ["", "Blast radius: " + ", ".join(f"`{b}`" for b in finding.blast_radius)]
        return "\n".join(lines)

    def finding_observation(self, finding: Finding, asset_key: AssetKey, extra: Mapping[str, Any] | None = None) -> AssetObservation:
        what = (f"Root cause: {finding.pattern} in {finding.model or '?'} (confidence {finding.confidence:.0%}). "
                if finding.pattern != "unexplained" else f"No known pattern explains it (confidence {finding.confidence:.0%}). ")
        todo = ("Review the proposed fix in agent_de/summary. " if finding.proposed_fix and finding.proposed_fix.diff else "")
        return AssetObservation(asset_key=asset_key, metadata={**self.finding_metadata(finding), **(extra or {})},
                                description=(what + todo + finding.summary)[:500])

    def investigation_metadata(self, run_id: str, check_name: str, elapsed_s: float,
                               triggering_run_id: str = "") -> dict[str, MetadataValue]:
        return default_investigation_metadata(run_id, check_name, elapsed_s, triggering_run_id)

    def findings_materialization(self, asset_key: AssetKey, report: FindingsReport,
                                 recent: Sequence[Mapping[str, Any]]) -> AssetMaterialization:
        """``agent_de/findings``: the recent findings, the latest in full, this run's hypotheses."""
        top = report.findings[0]
        return AssetMaterialization(asset_key=asset_key, metadata={
            "recent_findings": default_table([
                {"pattern": r.get("pattern"), "model": r.get("model"), "confidence": r.get("confidence"),
                 "check": r.get("check"), "summary": (r.get("summary") or "")[:200], "run_id": r.get("run_id")}
                for r in recent]),
            "latest": MetadataValue.md(self.finding_markdown(top)),
            "hypotheses": default_table([{"pattern": f.pattern, "model": f.model, "confidence": f.confidence,
                                          "source": f.source, "summary": f.summary[:200]} for f in report.findings]),
            "notes": MetadataValue.md("\n".join(f"- {n}" for n in report.notes)),
        })

    def escalation_observation(self, escalation: Escalation, asset_key: AssetKey) -> AssetObservation:
        """An escalation raised (or withdrawn for the one that replaced it), on the asset it concerns."""
        md = {
            "agent_de/escalation": MetadataValue.text(escalation.id),
            "agent_de/escalation_kind": MetadataValue.text(escalation.kind.value),
            "agent_de/escalation_detail": MetadataValue.md(self.escalation_markdown(escalation)),
        }
        if escalation.superseded_by:
            md["agent_de/superseded_by"] = MetadataValue.text(escalation.superseded_by)
        return AssetObservation(asset_key=asset_key, metadata=md)

    def escalations_materialization(self, asset_key: AssetKey, escalations: Sequence[Escalation]) -> AssetMaterialization:
        """``agent_de/escalations``: the open queue."""
        return AssetMaterialization(asset_key=asset_key, metadata=self.escalations_metadata(escalations))

    # -- other checks ---------------------------------------------------------------------
    def schema_observation(self, asset_key: AssetKey, table: Any, fingerprint: str | None = None) -> AssetObservation:
        """A source's live schema (``dagster/column_schema``), with the poll's fingerprint when it has one."""
        md: dict[str, MetadataValue] = {"dagster/column_schema": self.column_schema(table)}
        if fingerprint is not None:
            md["agent_de/schema_fingerprint"] = MetadataValue.text(fingerprint)
        return AssetObservation(asset_key=asset_key, metadata=md)

    def pii_check_result(self, asset_key: AssetKey, check_name: str, item: UntaggedPII) -> AssetCheckResult:
        """``pii_tagging``: WARN when a column holds personal data and is not tagged."""
        return AssetCheckResult(
            asset_key=asset_key, check_name=check_name, passed=not item.hits, severity=AssetCheckSeverity.WARN,
            description=("untagged PII: " + ", ".join(f"{h.column} ({h.kind}, by {h.by})" for h in item.hits))
            if item.hits else "no untagged PII",
            metadata=default_pii_metadata(item),
        )

    def intent_check_result(self, check_key: AssetCheckKey, results: Sequence[IntentResult]) -> AssetCheckResult:
        """An intent check: fails when any intent is violated, ERROR when a violated intent says so."""
        failed = [r for r in results if not r.passed]
        severity = "error" if any(r.intent.severity == "error" for r in failed) else "warn"
        return AssetCheckResult(
            asset_key=check_key.asset_key, check_name=check_key.name, passed=not failed,
            severity=self.check_severity(severity),
            description="; ".join(r.message for r in (failed or results))[:1000],
            metadata=default_intent_metadata(results),
        )

    def summed_inputs_unchecked(self, check_key: AssetCheckKey, model: str, unreadable: str | None,
                                note: str | None) -> AssetCheckResult:
        """``intent_summed_inputs_not_null`` when no input was derived: WARN when the model could not be read
        (its sums' inputs are unchecked), else pass saying why there is nothing to check."""
        if unreadable is not None:
            description = f"the inputs of {model}'s sums are not checked: {unreadable}; declare not_null intents on them"
        else:
            description = note or f"{model} has no column aggregated by SUM (a `sum(` in a window or a comment): nothing to check"
        return AssetCheckResult(
            asset_key=check_key.asset_key, check_name=check_key.name, passed=unreadable is None,
            severity=self.check_severity("warn"), description=description[:1000],
            metadata={"agent_de/kind": MetadataValue.text("intent"), "checked_inputs": MetadataValue.int(0),
                      "why": MetadataValue.text(description[:1000])},
        )

    def volume_check_result(self, asset_key: AssetKey, check_name: str, verdict: VolumeVerdict) -> AssetCheckResult:
        """``row_volume``: the row count and its band (the UI plots ``row_count``)."""
        return AssetCheckResult(
            asset_key=asset_key, check_name=check_name, passed=verdict.passed, metadata=default_volume_metadata(verdict),
            description=verdict.reason, severity=self.check_severity(verdict.severity),
        )

    # -- jobs that materialize the agent's own assets -------------------------------------
    def onboarding_materialization(self, asset_key: AssetKey, run: Onboarding) -> AssetMaterialization:
        proposal = run.proposal
        return AssetMaterialization(asset_key=asset_key, description=f"{proposal.relation} -> {proposal.model_name}", metadata={
            "relation": MetadataValue.text(proposal.relation),
            "model": MetadataValue.text(proposal.model_name),
            "proposal_dir": MetadataValue.path(str(run.proposal_dir)),
            "onboarding": MetadataValue.md(run.onboarding_md),
            "files": MetadataValue.md("\n\n".join(f"**{p}**\n```\n{c}\n```" for p, c in proposal.files.items())),
            "pii_columns": MetadataValue.int(len(proposal.pii)),
            "decisions": MetadataValue.int(len(proposal.decisions)),
            "escalations": MetadataValue.text(", ".join(e.id for e in run.escalations) or "-"),
        })

    def metrics_materialization(self, asset_key: AssetKey, audit: MetricAudit) -> AssetMaterialization:
        return AssetMaterialization(asset_key=asset_key, metadata={
            "definitions": MetadataValue.int(len(audit.definitions)),
            "conflicts": MetadataValue.int(len(audit.conflicts)),
            "catalog": default_table([{"metric": d.metric, "model": d.model, "column": d.column, "aggregate": d.aggregate,
                                       "expression": d.expression, "filters": "; ".join(sorted(d.filters)) or "-"}
                                      for d in audit.definitions]),
            "conflict_detail": MetadataValue.md(default_metric_conflicts_markdown(audit)),
            "notes": MetadataValue.md(default_bullets(audit.notes)),
        })

    def entities_materialization(self, asset_key: AssetKey, results: Sequence[tuple[EntityResolution, Sequence[Escalation]]],
                                 summary: Sequence[Mapping[str, Any]], out_dir: Path) -> AssetMaterialization:
        return AssetMaterialization(asset_key=asset_key, metadata={
            "models": default_table(summary) if summary else MetadataValue.text("no entity specs"),
            "keys_merged": MetadataValue.int(sum(len(r.entity_map) for r, _ in results)),
            "pairs_to_review": MetadataValue.int(sum(len(r.review) for r, _ in results)),
            "entity_maps": MetadataValue.path(str(out_dir)),
            "notes": MetadataValue.md(default_bullets([f"{r.spec.model}: {n}" for r, _ in results for n in r.notes])),
        })
