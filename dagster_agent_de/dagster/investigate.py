"""Investigation in Dagster: the failed-check sensor and the ``investigate`` job.

The sensor reads the per-check execution index (works on SQLite and PostgreSQL storage),
requests one run per failed evaluation (``run_key`` makes it idempotent), and never moves
its cursor past an evaluation still PLANNED in a running run.
"""

# No `from __future__ import annotations` here: Dagster reads these decorated functions' annotations when they
# are defined (a string `context` annotation or `Config` class is refused; verified on Dagster 1.13).

import time
from collections.abc import Sequence

from dagster import (
    AssetCheckKey,
    AssetKey,
    Config,
    DefaultSensorStatus,
    JobDefinition,
    OpExecutionContext,
    RunRequest,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    job,
    op,
    sensor,
)
from pydantic import Field

from dagster_agent_de.core.models import FindingsReport, Severity
from dagster_agent_de.dagster.cursors import FailedCheckCursor
from dagster_agent_de.dagster.resources import AgentWarehouseResource
from dagster_agent_de.dagster.translator import AgentDETranslator
from dagster_agent_de.engines.escalate.context_store import load_rules

INVESTIGATE_JOB = "investigate"
FINDINGS_ASSET = AssetKey(["agent_de", "findings"])
ESCALATIONS_ASSET = AssetKey(["agent_de", "escalations"])


class InvestigateConfig(Config):
    """Which failure to investigate (filled in by the failed-check sensor, or by hand in the Launchpad)."""

    asset_key: list[str] = Field(description="Asset key path of the failing asset, e.g. ['fct_orders'].")
    check_name: str = Field(default="", description="Name of the failed check ('' for a failed run or by-hand).")
    evaluation_id: int = Field(default=0, description="Id of the failed check evaluation record (0 if unknown).")
    triggering_run_id: str = Field(default="", description="Run in which the check failed.")
    verify_on_warehouse: bool = Field(
        default=False, description="A slow model on Snowflake (no EXPLAIN ANALYZE): verify the proposed rewrite by "
        "running the model's SELECT and the rewrite in full (two warehouse runs, each under a statement timeout).")
    verify_timeout_s: int = Field(default=600, gt=0, description="STATEMENT_TIMEOUT_IN_SECONDS of each verification run.")


def _metadata_values(entry_metadata) -> dict:
    out = {}
    for k, v in (entry_metadata or {}).items():
        value = getattr(v, "value", v)
        if isinstance(value, (int, float, str, bool)) or value is None:
            out[k] = value
    return out


def evaluation_metadata(instance, check_key: AssetCheckKey, evaluation_id: int) -> dict:
    """Metadata of one check evaluation, from the per-check index."""
    if not evaluation_id:
        return {}
    for record in instance.event_log_storage.get_asset_check_execution_history(check_key, limit=100):
        if record.id == evaluation_id and record.event is not None and record.event.dagster_event is not None:
            data = record.event.dagster_event.event_specific_data
            md = _metadata_values(getattr(data, "metadata", {}))
            report = getattr(data, "metadata", {}).get("report")
            if report is not None:
                cols = [c["column"] for c in (getattr(report, "value", {}) or {}).get("columns", []) if c.get("mismatched")]
                md["mismatched_columns"] = cols
            severity = getattr(data, "severity", None)
            if severity is not None:  # how loud the check itself is (a notification pages on ERROR)
                md["check_severity"] = str(getattr(severity, "value", severity)).lower()
            return md
    return {}


def record_investigation(context, agent_warehouse: AgentWarehouseResource, asset_key: Sequence[str], check_name: str,
                         evaluation_id: int, triggering_run_id: str, metadata: dict | None = None, *,
                         translator: AgentDETranslator, verify_on_warehouse: bool = False,
                         verify_timeout_s: int | None = None) -> FindingsReport:
    """Run the engine and record everything a user sees: observations, tags, findings, escalations.

    Shared by the ``investigate`` job and by ``answer_escalation`` (which re-runs the blocked work).
    """
    # the investigation engine (sqlglot, the pattern library) loads when a run needs it, not at code-location load
    from dagster_agent_de.engines.escalate.policy import load_policy
    from dagster_agent_de.engines.investigate.workflow import escalate_finding, investigate_failure

    settings = agent_warehouse.settings()
    check_key = AssetCheckKey(AssetKey(asset_key), check_name) if check_name else None
    if metadata is None:
        metadata = evaluation_metadata(context.instance, check_key, evaluation_id) if check_key else {}
    metadata = metadata or {}
    manifest = agent_warehouse.manifest()
    keys = agent_warehouse.asset_keys()
    node = keys.node(manifest, asset_key)
    state = agent_warehouse.state()
    rules = load_rules(settings.project_dir, state)
    for note in rules.notes():
        context.log.warning(note)
    from dagster_agent_de.adapters.llm import llm_from_env

    llm = llm_from_env(agent_warehouse.audit_log(context))  # optional: ANTHROPIC_API_KEY on the code location
    start = time.perf_counter()
    with agent_warehouse.get_warehouse(context) as wh:
        # with no recorded evaluation (a re-run, or by hand) the engine measures the failure again
        done = investigate_failure(
            manifest, wh, state, asset=node.unique_id, check=check_name or None, project_dir=settings.project_dir,
            state_dir=settings.state_dir, metadata=metadata, run_id=triggering_run_id or None, llm=llm, rules=rules,
            verify_on_warehouse=verify_on_warehouse, verify_timeout_s=verify_timeout_s,
        )
    report: FindingsReport = done.report
    elapsed = time.perf_counter() - start
    # before the observations: a question a check already asked about this incident is named on the finding;
    # a check that passes now (a dbt test re-run, a reconciliation measured again) asks nothing
    escalated = escalate_finding(state, manifest, report, load_policy(settings.project_dir), check=check_name,
                                 passes_now=done.passes_now)
    report, new = escalated.report, escalated.raised
    top = report.findings[0]
    context.log.info(f"finding: {top.pattern} in {top.model} ({top.confidence:.0%}): {top.summary}")
    tags = {
        # same form as the sensor's tag (asset:check), so both find the run
        "agent_de/asset": "/".join(asset_key),
        "agent_de/check": f"{'/'.join(asset_key)}:{check_name}" if check_name else "",
        "agent_de/evaluation_id": str(evaluation_id) if evaluation_id else "", "agent_de/triggering_run": triggering_run_id,
        "agent_de/root_cause": top.pattern, "agent_de/culprit": top.model or "",
    }
    context.instance.add_run_tags(context.run_id, {k: v for k, v in tags.items() if v})
    if triggering_run_id and context.instance.get_run_by_id(triggering_run_id):
        context.instance.add_run_tags(triggering_run_id, {"agent_de/investigation_run": context.run_id})
    extra = translator.investigation_metadata(context.run_id, check_name, elapsed, triggering_run_id)
    failing_key = keys.by_uid.get(node.unique_id, AssetKey(asset_key))
    extra = {**extra, **translator.performance_metadata(top)}
    top_extra = {**extra, **translator.escalation_refs_metadata(escalated.attached)}
    context.log_event(translator.finding_observation(top, failing_key, top_extra))
    culprit = manifest.find(top.model) if top.model and top.pattern != "unexplained" else None
    if culprit is not None and keys.key(culprit) != failing_key:
        context.log_event(translator.finding_observation(top, keys.key(culprit), top_extra))
    for second in [f for f in report.findings if f.source == "llm"]:
        context.log.info(f"LLM second opinion: {second.pattern} in {second.model} ({second.confidence:.0%}): {second.summary}")
        context.log_event(translator.finding_observation(second, failing_key, extra))
    state.record_findings(report.findings[:5], run_id=context.run_id, check=check_name)
    recent = state.recent_findings(20)
    context.log_event(translator.findings_materialization(FINDINGS_ASSET, report, recent))
    esc_store = state
    for esc in escalated.attached:
        context.log.info(f"no new question: escalation {esc.id} ({esc.state.value}) already asks about it: {esc.decision}")
    for esc in new:
        context.log.info(f"escalation {esc.id} ({esc.kind.value}) for {esc.owner}: {esc.decision}")
        key = keys.key(manifest.find(esc.asset)) if esc.asset else failing_key
        context.log_event(translator.escalation_observation(esc, key))
    if new:
        record_escalations_asset(context, esc_store, translator)
    _notify(context, agent_warehouse, manifest, node, failing_key, check_name, evaluation_id, triggering_run_id,
            metadata, top, new, escalated.attached)
    return report


_NUMBERS = ("missing_pct", "missing_in_pipeline", "extra_in_pipeline", "mismatched_rows", "rows_pipeline", "rows_truth",
            "duplicate_keys_pipeline", "failed_rows")


def _notify(context, agent_warehouse, manifest, node, failing_key, check_name, evaluation_id, triggering_run_id,
            metadata, top, escalations, attached=()) -> None:
    """Tell the owner's channels: the failed check opens the incident's thread, the finding and the
    escalations reply in it. Never fails the investigation (a channel that is down is logged)."""
    if not check_name or not evaluation_id:
        return  # by hand, or a re-run after an answer: the incident's thread already exists (or none is wanted)
    from dagster_agent_de.dagster.notify import notifier_for
    from dagster_agent_de.engines.escalate.raising import owner_of
    from dagster_agent_de.engines.notify.workflow import notify_investigation

    try:
        notifier = notifier_for(agent_warehouse, context)
        if notifier is None:
            return
        numbers = [(k, f"{metadata[k]:,}" if isinstance(metadata[k], int) else str(metadata[k]))
                   for k in _NUMBERS if metadata.get(k) is not None]
        deliveries = notify_investigation(
            notifier, asset=failing_key.to_user_string(), check=check_name, evaluation_id=evaluation_id or None,
            failing_run=triggering_run_id or None, check_description=f"{check_name} failed on {node.display_name}",
            numbers=numbers, finding=top, investigation_run=context.run_id, escalations=escalations, attached=attached,
            severity=Severity.parse(metadata["check_severity"]) if metadata.get("check_severity") else None,
            owner=owner_of(manifest, node.unique_id, default="") or None)
    except Exception as e:  # a notification problem is reported, never the investigation's failure
        context.log.warning(f"notifications were not sent: {type(e).__name__}: {e}")
        return
    for d in deliveries:
        context.log.info(f"notification to {d.channel}: {d.outcome}{' ' + d.detail if d.detail else ''}")


def record_escalations_asset(context, store, translator: AgentDETranslator) -> None:
    context.log_event(translator.escalations_materialization(ESCALATIONS_ASSET, store.escalations()))


def build_investigate_job(translator: AgentDETranslator | None = None) -> JobDefinition:
    """The ``investigate`` job; its events are built by ``translator``."""
    translator = translator or AgentDETranslator()

    @op(name="investigate_failure", description="Investigate one failed check: lineage, SQL analysis, pattern library.")
    def investigate_op(context: OpExecutionContext, config: InvestigateConfig, agent_warehouse: AgentWarehouseResource):
        report = record_investigation(context, agent_warehouse, config.asset_key, config.check_name,
                                      config.evaluation_id, config.triggering_run_id, translator=translator,
                                      verify_on_warehouse=config.verify_on_warehouse,
                                      verify_timeout_s=config.verify_timeout_s)
        return report.model_dump(mode="json")

    @job(name=INVESTIGATE_JOB, description="Investigate a failed check; findings appear as observations on the assets.",
         tags={"agent_de/kind": "investigation"})
    def investigate_job():
        investigate_op()

    return investigate_job


investigate_job = build_investigate_job()
"""The ``investigate`` job with the default translator (``build_definitions`` builds its own)."""


def _opted_out(context: SensorEvaluationContext, key: AssetCheckKey) -> bool:
    if context.repository_def is None:
        return False
    try:
        spec = context.repository_def.asset_graph.get_check_spec(key)
    except Exception:  # a watched check of another location: not in this graph
        return False
    return (spec.metadata or {}).get("agent_de/investigate") is False


MAX_ATTEMPTS = 3


def _retries(instance, backoff_seconds: float, now: float) -> list[RunRequest]:
    """Re-request investigations whose run failed (e.g. the warehouse was down), with exponential backoff.

    A failure counts as investigated only once an investigation run for it succeeded; run keys carry the
    attempt number, so a retry is requested once, however often the sensor ticks.
    """
    from dagster import DagsterRunStatus, RunsFilter

    runs = instance.get_runs(filters=RunsFilter(job_name=INVESTIGATE_JOB, tags={"agent_de/trigger": "failed_check_sensor"}),
                             limit=200)
    by_eval: dict[str, list] = {}
    for run in runs:
        ev = run.tags.get("agent_de/evaluation_id")
        if ev:
            by_eval.setdefault(f"{run.tags.get('agent_de/check')}:{ev}", []).append(run)
    out = []
    for key, group in by_eval.items():
        if any(r.status not in (DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED) for r in group):
            continue  # succeeded, or still queued/running
        last = max(group, key=lambda r: int(r.tags.get("agent_de/attempt", "1")))
        attempt = int(last.tags.get("agent_de/attempt", "1"))
        if attempt >= MAX_ATTEMPTS:
            continue
        record = instance.get_run_record_by_id(last.run_id)
        ended = (record.end_time or record.create_timestamp.timestamp()) if record else now
        if now - ended < backoff_seconds * (2 ** (attempt - 1)):
            continue
        tags = {**{k: v for k, v in last.tags.items() if k.startswith("agent_de/") and k not in (
            "agent_de/root_cause", "agent_de/culprit", "agent_de/asset")}, "agent_de/attempt": str(attempt + 1)}
        out.append(RunRequest(run_key=f"investigate:{key}:attempt{attempt + 1}", run_config=last.run_config, tags=tags))
    return out


def build_failed_check_sensor(
    minimum_interval_seconds: int = 30,
    lookback_hours: float = 24,
    opted_out_assets: Sequence[AssetKey] = (),
    default_status: DefaultSensorStatus = DefaultSensorStatus.RUNNING,
    retry_backoff_seconds: float = 60,
    watched_check_keys: Sequence[AssetCheckKey] = (),
    investigate: JobDefinition | None = None,
):
    """Request one ``investigate`` run per new failed check evaluation of this code location, and of
    ``watched_check_keys`` (in sidecar mode: the team's dbt tests, which are checks of their location).

    Its first tick investigates only failures of the last ``lookback_hours``. A failed investigation
    run (warehouse unreachable, a code error) is retried up to ``MAX_ATTEMPTS`` times with exponential
    backoff from ``retry_backoff_seconds``. The code location takes both from :class:`~dagster_agent_de.config.Cadence`
    (``AGENT_DE_INVESTIGATE_LOOKBACK_HOURS``, ``AGENT_DE_RETRY_BACKOFF_SECONDS``).
    """
    lookback = float(lookback_hours)
    backoff = float(retry_backoff_seconds)
    skip_assets = set(opted_out_assets)

    @sensor(name="failed_check_sensor", job=investigate or investigate_job, minimum_interval_seconds=minimum_interval_seconds,
            default_status=default_status,
            description="Launches an investigation for each new failed asset check (reconciliation, drift, dbt tests).")
    def failed_check_sensor(context: SensorEvaluationContext, agent_warehouse: AgentWarehouseResource):
        from dagster_agent_de.engines.escalate.policy import is_paused

        if is_paused(agent_warehouse.state()):
            return SkipReason("autonomous work is paused (`agent-de pause`); `agent-de resume` to continue")
        cursor = FailedCheckCursor.parse(context.cursor)
        updates: dict[str, int] = {}
        first_tick = not context.cursor
        since = time.time() - lookback * 3600
        instance = context.instance
        own = context.repository_def.asset_graph.asset_check_keys if context.repository_def else set()
        keys = sorted(set(own) | set(watched_check_keys), key=lambda k: k.to_user_string())
        latest = instance.event_log_storage.get_latest_asset_check_execution_by_key(keys)
        requests = []
        for key in keys:
            if key.asset_key in skip_assets or _opted_out(context, key):
                continue
            ck = key.to_user_string()
            last_seen = cursor.last_seen(ck)
            if key not in latest or latest[key].id <= last_seen:
                continue
            records = instance.event_log_storage.get_asset_check_execution_history(key, limit=100)
            advance_to = last_seen
            blocked = False
            for record in sorted(records, key=lambda r: r.id):
                if record.id <= last_seen:
                    continue
                status = record.status.value
                if status == "PLANNED":
                    run = instance.get_run_by_id(record.run_id)
                    if run is not None and not run.is_finished:
                        blocked = True  # still running: never move past it
                    if not blocked:
                        advance_to = record.id  # the run ended without evaluating the check
                    continue
                if status == "FAILED" and not (first_tick and record.create_timestamp < since):
                    requests.append(RunRequest(
                        run_key=f"investigate:{ck}:{record.id}",
                        run_config={"ops": {"investigate_failure": {"config": {
                            "asset_key": list(key.asset_key.path), "check_name": key.name,
                            "evaluation_id": record.id, "triggering_run_id": record.run_id,
                        }}}},
                        tags={"agent_de/check": ck, "agent_de/evaluation_id": str(record.id), "agent_de/attempt": "1",
                              "agent_de/triggering_run": record.run_id, "agent_de/trigger": "failed_check_sensor"},
                    ))
                if not blocked:
                    advance_to = record.id
            updates[ck] = advance_to
        new_cursor = cursor.advanced(updates).dump()
        requests += _retries(instance, backoff, time.time())
        if not requests:
            return SensorResult(skip_reason="no new failed checks", cursor=new_cursor)
        return SensorResult(run_requests=requests, cursor=new_cursor)

    return failed_check_sensor
