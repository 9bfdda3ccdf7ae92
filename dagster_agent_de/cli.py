"""The ``agent-de`` command line."""

from __future__ import annotations

import json
import os
import sys
import warnings
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from dagster_agent_de.config import Settings, cwd_project, resolve_settings
from dagster_agent_de.errors import AgentDEError, ConfigError

if TYPE_CHECKING:  # the investigation engine loads when a command needs it
    from dagster_agent_de.engines.investigate.workflow import Investigation


def _fail_cleanly(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn our errors into one clear line and exit code 2 (1 is kept for 'found a problem')."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except AgentDEError as e:
            kind = "configuration error" if isinstance(e, ConfigError) else "error"
            click.echo(f"agent-de: {kind}: {e}", err=True)
            sys.exit(2)

    return wrapper


DEMO_COMMANDS = frozenset({"demo", "demo-data"})
"""Commands about the demo: they never read the dbt project of the current directory."""


@click.group()
@click.option("--project-dir", type=click.Path(file_okay=False), default=None,
              help="dbt project (default: AGENT_DE_PROJECT_DIR, else the dbt project in the current directory, "
                   "as dbt reads it, else the demo: its working copy or the bundled one).")
@click.option("--target", default=None,
              help="dbt target: any output of the project's profile (default: AGENT_DE_TARGET, DBT_TARGET, "
                   "or the profile's own target). The warehouse type comes from the output's `type`.")
@click.option("--state-dir", type=click.Path(file_okay=False), default=None,
              help="State directory (default: AGENT_DE_STATE_DIR or ./.agent_de).")
@click.pass_context
@_fail_cleanly
def main(ctx: click.Context, project_dir: str | None, target: str | None, state_dir: str | None) -> None:
    """dagster-agent-de: the agent data engineer for your dbt project.

    \b
    Which dbt project a command reads, first match wins:
      1. --project-dir
      2. AGENT_DE_PROJECT_DIR
      3. the current directory, when it holds dbt_project.yml (as dbt does)
      4. the demo: its working copy in the state dir, else the bundled demo
    `demo` and `demo-data` skip 3: they are about the demo.
    """
    demo_only = ctx.invoked_subcommand in DEMO_COMMANDS
    here = Path.cwd()
    ctx.obj = resolve_settings(state_dir, project_dir, target, cwd=None if demo_only else here)
    if demo_only and not project_dir and not os.environ.get("AGENT_DE_PROJECT_DIR") and cwd_project(here):
        click.echo(f"agent-de: `{ctx.invoked_subcommand}` uses the demo project, not the dbt project in the current "
                   "directory (the other commands read that one)", err=True)
    if target:
        _ = ctx.obj.profile_target  # an explicit --target must exist in the profile: fail now, naming the targets


@main.command("demo-data")
@click.option("--scale", type=int, default=10_000, show_default=True, help="Number of orders.")
@click.pass_obj
@_fail_cleanly
def demo_data(settings: Settings, scale: int) -> None:
    """Generate the deterministic demo source data into the demo's warehouse (DuckDB; with `--target postgres`,
    loaded into the PostgreSQL database of the demo profile's `postgres` output too)."""
    from dagster_agent_de.demo.runner import generate_demo_sources

    settings.ensure_state_dir()
    click.echo(generate_demo_sources(settings, scale=scale).describe())


@main.command()
@click.option("--scale", type=int, default=10_000, show_default=True, help="Number of orders.")
@click.option("--incident", default=None,
              help="Then inject a seed incident and let the agent catch it: wt02_join_drop, wt01_null_semantics, "
                   "wt01_currency_mixing, wt01_duplicate_payments, wt04_rename, wt05_slow_model (runs at 1,000,000 "
                   "orders or more: a slow model is slow only over enough rows).")
@click.pass_obj
@_fail_cleanly
def demo(settings: Settings, scale: int, incident: str | None) -> None:
    """Run the main job on the embedded default: data, dbt build and checks in Dagster.

    `--target postgres` builds on a PostgreSQL server instead: the demo profile's postgres output reads
    AGENT_DE_PG_HOST, AGENT_DE_PG_PORT, AGENT_DE_PG_USER, AGENT_DE_PG_PASSWORD, AGENT_DE_PG_DBNAME, AGENT_DE_PG_SCHEMA.
    """
    from dagster_agent_de.demo.incidents import get_incident
    from dagster_agent_de.demo.runner import run_demo

    if settings.target and settings.warehouse_type not in ("duckdb", "postgres"):
        raise ConfigError(f"`agent-de demo` builds on DuckDB (the default) or PostgreSQL (`--target postgres` with "
                          f"AGENT_DE_PG_HOST set), not on {settings.warehouse_type}; drop --target")
    if incident:
        get_incident(incident)  # fail fast on a typo
    result = run_demo(settings, scale=scale, incident=incident)
    for line in result.lines():
        click.echo(line)
    sys.exit(0 if result.success else 1)


@main.command()
@click.option("--port", type=int, default=3000, show_default=True)
@click.pass_obj
@_fail_cleanly
def dev(settings: Settings, port: int) -> None:
    """Start `dagster dev` on this project with the demo's Dagster instance."""
    from pathlib import Path

    from dagster_agent_de.bundled import bundled_workspace_file

    env = {**os.environ, "DAGSTER_HOME": str(settings.dagster_home),
           "AGENT_DE_STATE_DIR": str(settings.state_dir), "AGENT_DE_PROJECT_DIR": str(settings.project_dir)}
    settings.dagster_home.mkdir(parents=True, exist_ok=True)
    dagster = str(Path(sys.executable).parent / "dagster")
    os.execve(dagster, [dagster, "dev", "-w", str(bundled_workspace_file()), "-p", str(port)], env)


@main.group()
def audit() -> None:
    """Read the audit log: every query, API call and action the agent made."""


@audit.command("tail")
@click.option("--run", "run_id", default=None, help="Only events of this Dagster run id.")
@click.option("-n", "limit", type=int, default=50, show_default=True, help="How many events.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@click.pass_obj
@_fail_cleanly
def audit_tail(settings: Settings, run_id: str | None, limit: int, as_json: bool) -> None:
    """Show the latest audit events."""
    from dagster_agent_de.adapters.audit import read_audit

    store = _state(settings)
    events = read_audit(store, run_id=run_id, limit=limit)
    for e in events:
        if as_json:
            click.echo(e.model_dump_json())
        else:
            rows = "-" if e.rows is None else e.rows
            click.echo(
                f"{e.ts.isoformat(timespec='seconds')} {e.actor} run={e.run_id or '-'} {e.kind} {e.outcome} "
                f"rows={rows} {e.duration_ms:.0f}ms why={e.rationale!r}\n    {' '.join(e.statement.split())[:300]}"
                + (f"\n    error: {e.error}" if e.error else "")
            )
    if not events and not as_json:
        click.echo(f"no audit events in {store.url}" + (f" for run {run_id}" if run_id else ""))


def _state(settings: Settings):
    """The state store (audit, baselines, findings, escalations, rules) for CLI commands."""
    from dagster_agent_de.adapters.state import open_state_store

    return open_state_store(settings)


def _notifier(settings: Settings, state):
    """The deployment's notifier, built as Dagster builds it (the same ``notifications:`` block and secrets from
    the environment; Slack through ``slack_sdk``, imported only when a Slack channel is declared), by the commands
    that tell people something; ``None`` when no channel is declared: nothing is sent. A block that cannot be
    built is said on stderr, never the command's failure."""
    from dagster_agent_de.engines.notify.dispatch import notifier_or_none

    return notifier_or_none(settings.project_dir, state, log=lambda line: click.echo(f"agent-de: {line}", err=True))


def _say_deliveries(notifier) -> None:
    """What the notifier did on each channel (stderr: ``--json`` output stays parseable)."""
    from dagster_agent_de.engines.notify.dispatch import delivery_lines

    for line in delivery_lines(notifier):
        click.echo(line, err=True)


def _context(settings: Settings):
    """Manifest and an audited read-only warehouse for CLI commands (actor ``cli``)."""
    from dagster_agent_de.adapters.audit import AuditLog
    from dagster_agent_de.adapters.warehouse import open_warehouse
    from dagster_agent_de.manifest import Manifest
    from dagster_agent_de.project import DbtProjectInfo

    info = DbtProjectInfo.from_settings(settings)
    audit = AuditLog(_state(settings), actor="cli")
    warehouse = open_warehouse(settings, audit)  # a bad connection setting is said before any dbt parse
    with warnings.catch_warnings():  # the notes are said once, below, not as Python warnings
        warnings.simplefilter("ignore")
        path = info.ensure_manifest(env=settings.dbt_env())
    for note in info.notes:
        click.echo(f"note: {note}", err=True)
    manifest = Manifest.load(path, settings.project_dir, info.compiled_after)
    return manifest, warehouse


@main.command()
@click.option("--model", "model", default=None, help="Only specs declared on this model.")
@click.option("--name", "name", default=None, help="Only the spec with this name.")
@click.option("--json", "as_json", is_flag=True, help="Print the reports (and findings) as JSON.")
@click.pass_obj
@_fail_cleanly
def reconcile(settings: Settings, model: str | None, name: str | None, as_json: bool) -> None:
    """Reconcile models against their sources of truth (meta.agent_de.reconcile). Exit 1 on a breach."""
    from dagster_agent_de.core.models import FindingsReport
    from dagster_agent_de.engines.reconcile import InvalidSpec, reconcile_all, specs_from_manifest

    manifest, wh = _context(settings)
    specs = specs_from_manifest(manifest)
    if model:
        manifest.find(model)  # a clear error for an unknown model
        specs = [s for s in specs if s.model == model]
    if name:
        specs = [s for s in specs if s.name == name]
    if not specs:
        raise ConfigError("no reconcile specs matched; declare them under meta.agent_de.reconcile on a model")
    with wh:
        results = reconcile_all(specs, manifest, wh, search_dirs=[settings.project_dir, settings.state_dir])
    failed = config_error = False
    reports, findings, errors = [], [], []
    for spec, result in results:
        if isinstance(result, Exception):
            # a spec that could not run (bad spec, unreachable warehouse or source of truth) is not a breach:
            # the user must fix something, exit 2 as every other command does
            failed = config_error = True
            errors.append({"model": spec.model, "name": spec.name, "error": str(result)})
            if not as_json:
                click.echo(f"ERROR {spec.model}.{spec.name}: {result}")
            continue
        assert not isinstance(spec, InvalidSpec)
        failed = failed or not result.passed
        reports.append(result.model_dump(mode="json") | {"passed": result.passed})
        findings.extend(result.to_findings())
        if not as_json:
            click.echo(result.summary())
            for seg in result.segments:
                if seg.pct > spec.thresholds.aggregate_pct + 1e-9:
                    click.echo(f"    {seg.metric} {seg.segment}: pipeline {seg.pipeline} vs truth {seg.truth} ({seg.pct:.2f}%)")
            for note in result.notes:
                click.echo(f"    note: {note}")
    if as_json:
        out = FindingsReport(findings=findings).model_dump(mode="json")
        out["reports"] = reports
        out["errors"] = errors
        _echo_json(out)
    sys.exit(2 if config_error else 1 if failed else 0)


@main.command()
@click.option("--baseline", "record_baseline", is_flag=True, help="Record the current schemas as the new baseline.")
@click.option("--json", "as_json", is_flag=True, help="Print the drift report as JSON.")
@click.pass_obj
@_fail_cleanly
def drift(settings: Settings, record_baseline: bool, as_json: bool) -> None:
    """Snapshot source schemas and diff against the stored baseline. Exit 1 on breaking drift."""
    from dagster_agent_de.engines.drift import SnapshotStore, run_drift

    manifest, wh = _context(settings)
    store = SnapshotStore(_state(settings))
    notifier = _notifier(settings, store.state)  # those told of a question this run withdraws hear it
    with wh:
        run = run_drift(manifest, wh, store, record_baseline=record_baseline, notifier=notifier)
    _say_deliveries(notifier)
    report, snapshot = run.report, run.snapshot
    raised = run.raised  # e.g. which column replaces a dropped one: asked once, by the workflow
    if as_json:
        _echo_json(report.model_dump(mode="json") | {"breaking": report.breaking, "verdict": run.verdict,
                                                     "baseline_advanced": run.advanced,
                                                     "escalations": [e.id for e in raised],
                                                     "withdrawn": [e.id for e in run.withdrawn],
                                                     "accepted": [c.model_dump(mode="json") for c in run.accepted]})
    elif report.baseline_created:
        click.echo(f"baseline recorded: {len(snapshot.tables)} relations in {snapshot.duration_ms:.0f} ms "
                   f"(in {store.state.url})")
        for c in run.accepted:
            click.echo(f"accepted a unit change: {c.describe()}; the models reading it see the new units until "
                       "they convert (an investigation of a failure downstream names it)")
    elif not report.changes:
        click.echo(f"no schema drift ({len(snapshot.tables)} relations checked in {snapshot.duration_ms:.0f} ms)")
    else:
        for c in report.changes:
            click.echo(f"{c.severity.value.upper():8} {c.describe()}")
            for i in c.impacted:
                cols = f" reads {', '.join(i.columns)}" if i.columns else ""
                click.echo(f"           -> {i.model}{cols}" + (f" (impact unknown: {i.unknown})" if i.unknown else ""))
            for e in c.evidence:
                click.echo(f"           values of {e.old_column} vs {e.new_column}: {e.describe()}")
            if c.proposed_fix:
                click.echo("         proposed fix:")
                click.echo("\n".join("           " + line for line in c.proposed_fix.splitlines()))
        for note in report.notes:
            click.echo(f"note: {note}")
        if run.advanced:
            click.echo("info-level changes only; baseline moved forward for: " + ", ".join(run.advanced))
        for esc in raised:
            click.echo(f"escalation {esc.id} ({esc.kind.value}): {esc.decision}"
                       + (f" (it replaces {', '.join(esc.supersedes)}, withdrawn)" if esc.supersedes else ""))
    sys.exit(1 if report.breaking else 0)


@main.command()
@click.option("--asset", required=True, help="The failing asset: a model name, source.table or asset key a/b.")
@click.option("--check", "check", default=None, help="The failed check (reconcile spec, dbt test or schema_drift).")
@click.option("--json", "as_json", is_flag=True, help="Print the documented findings JSON, best first.")
@click.option("--llm/--no-llm", "use_llm", default=True, show_default=True,
              help="Add the LLM second opinion when ANTHROPIC_API_KEY is set (never needed).")
@click.option("--verify", "verify_on_warehouse", is_flag=True,
              help="A slow model on Snowflake: verify the rewrite by running the model's SELECT and the rewrite in "
              "full (two warehouse runs; DuckDB always verifies with EXPLAIN ANALYZE).")
@click.option("--verify-timeout", "verify_timeout_s", type=click.IntRange(min=1), default=600, show_default=True,
              help="Seconds each --verify run may take (Snowflake STATEMENT_TIMEOUT_IN_SECONDS).")
@click.pass_obj
@_fail_cleanly
def investigate(settings: Settings, asset: str, check: str | None, as_json: bool, use_llm: bool,
                verify_on_warehouse: bool, verify_timeout_s: int) -> None:
    """Investigate a failure: lineage, SQL analysis, the pattern library, a finding with evidence."""
    from dagster_agent_de.adapters.llm import llm_from_env
    from dagster_agent_de.engines.investigate.workflow import investigate_failure

    manifest, wh = _context(settings)
    state = _state(settings)
    with wh:
        done = investigate_failure(manifest, wh, state, asset=asset, check=check, project_dir=settings.project_dir,
                                   state_dir=settings.state_dir, llm=llm_from_env(wh.audit) if use_llm else None,
                                   strict=True, verify_on_warehouse=verify_on_warehouse,
                                   verify_timeout_s=verify_timeout_s)
    report, rules = done.report, done.rules
    if as_json:
        _echo_json(report.model_dump(mode="json"))
        _fail_on_context(rules)
        return
    _echo_investigation(done)
    _fail_on_context(rules)


def _echo_investigation(done: Investigation) -> None:
    """The report as text: when the check passes now, the note saying so first (once), then the findings."""
    report, notes = done.report, list(done.report.notes)
    if done.passes_now and notes:
        click.echo(f"note: {notes.pop(0)}\n")  # first: the findings below explain no failure
    for i, f in enumerate(report.findings):
        tag = "ROOT CAUSE" if i == 0 and f.pattern != "unexplained" and not done.passes_now else f"#{i + 1}"
        if f.source == "llm":
            tag += " (LLM second opinion)"
        click.echo(f"{tag}: {f.pattern} in {f.model} (confidence {f.confidence:.0%})")
        click.echo(f"  {f.summary}")
        for e in f.evidence[:3]:
            click.echo(f"  evidence: {e.rationale} -> {e.result_summary}")
        if f.proposed_fix:
            click.echo(f"  proposed fix: {f.proposed_fix.description}")
            if f.proposed_fix.diff:
                click.echo("\n".join("    " + line for line in f.proposed_fix.diff.splitlines()))
        if i == 0:
            click.echo("")
    for note in notes:
        click.echo(f"note: {note}")


def _fail_on_context(rules) -> None:
    """A malformed context file is a configuration error (exit 2), after the report that ran without it."""
    from dagster_agent_de.errors import SpecError

    if rules.error:
        raise SpecError(rules.error)


@main.command()
@click.option("--table", "table", required=True,
              help="The table to onboard: schema.table (or database.schema.table); with --api-schema, the table the loader will land.")
@click.option("--source", "source_name", default=None,
              help="dbt source name (default: the existing source reading the schema, else the schema without raw_/_raw).")
@click.option("--api-schema", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Onboard from an API's JSON Schema / OpenAPI document instead of warehouse data.")
@click.option("--name", "schema_name", default=None, help="With an OpenAPI document: which components.schemas entry.")
@click.option("--owner", default=None, help="Who answers this source's escalations (meta.owner).")
@click.option("--apply", "apply", is_flag=True, help="Write the files into the dbt project (you are the human present).")
@click.option("--json", "as_json", is_flag=True, help="Print the proposal as JSON.")
@click.pass_obj
@_fail_cleanly
def onboard(settings: Settings, table: str, source_name: str | None, api_schema: Path | None, schema_name: str | None,
            owner: str | None, apply: bool, as_json: bool) -> None:
    """Onboard a source: sources.yml with freshness, a staging model, tests and docs; the decisions
    that need a human become escalations. Writes a proposal under <state dir>/proposals (--apply: into the project)."""
    from dagster_agent_de.engines.onboard import onboard_source

    manifest, wh = _context(settings)
    with wh:
        run = onboard_source(wh, manifest, _state(settings), table=table, project_dir=settings.project_dir,
                             proposals_dir=settings.proposals_dir, source_name=source_name, owner=owner,
                             api_schema=api_schema, api_schema_name=schema_name, apply=apply)
    proposal, out, written, new = run.proposal, run.proposal_dir, run.applied, run.escalations
    if as_json:
        _echo_json({**proposal.model_dump(mode="json"), "proposal_dir": str(out), "applied": [str(p) for p in written],
                    "escalations": [e.id for e in new], "already_asked": [e.id for e in run.already_asked]})
        return
    click.echo(f"onboarding {proposal.relation} -> {proposal.model_name}")
    if source_name is None:
        click.echo(f"  source name: {proposal.source_name} ({proposal.source_name_from}); "
                   "to name it otherwise, re-run with --source NAME")
    for d in proposal.done:
        click.echo(f"  done: {d}")
    for t in proposal.todo:
        click.echo(f"  for you: {t}")
    for e in new:
        click.echo(f"  escalation {e.id} ({e.kind.value}): {e.decision}")
    for e in run.already_asked:
        click.echo(f"  already asked, still open: {e.id} ({e.kind.value}, on {e.asset}): {e.decision}")
    click.echo(f"proposal: {out}" + (f"; applied {len(written)} file(s) to {settings.project_dir}" if written else
                                     " (review it, or re-run with --apply)"))


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print the conflicts as JSON.")
@click.option("--escalate/--no-escalate", default=True, show_default=True, help="Raise each conflict as a context gap.")
@click.pass_obj
@_fail_cleanly
def metrics(settings: Settings, as_json: bool, escalate: bool) -> None:
    """Find metrics defined more than once, differently (lineage, filters, totals side by side). Exit 1 if any."""
    from dagster_agent_de.engines.escalate.raising import raise_decisions
    from dagster_agent_de.engines.metrics import audit_metrics

    manifest, wh = _context(settings)
    with wh:
        audit = audit_metrics(manifest, wh)
    conflicts = audit.conflicts
    raised = raise_decisions(_state(settings), audit.escalations(manifest)) if escalate and conflicts else []
    if as_json:
        _echo_json({"definitions": len(audit.definitions), "notes": audit.notes, "escalations": [e.id for e in raised],
                    "conflicts": audit.as_json()})
    else:
        click.echo(f"{len(audit.definitions)} metric definition(s), {len(conflicts)} conflict(s)")
        for c in conflicts:
            click.echo(f"CONFLICT {c.metric}:")
            for d in c.definitions:
                click.echo(f"  {d.describe()}" + (f" (also {', '.join(c.same_as[d.model])})" if c.same_as.get(d.model) else ""))
            for diff in c.differences:
                click.echo(f"  - {diff}")
            ev = audit.evidence[c.metric]
            if ev:
                click.echo(f"  totals: {ev.result_summary}")
        for e in raised:
            click.echo(f"escalation {e.id} ({e.kind.value}): {e.decision[:160]}")
        for n in audit.notes:
            click.echo(f"note: {n}")
    sys.exit(1 if conflicts else 0)


@main.command()
@click.option("--model", default=None, help="Only this model's meta.agent_de.entities spec.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
@_fail_cleanly
def entities(settings: Settings, model: str | None, as_json: bool) -> None:
    """Resolve entities: merge records at high confidence, ask about the uncertain ones (context gaps)."""
    from dagster_agent_de.engines.entities import resolve_and_record, specs_from_manifest
    from dagster_agent_de.engines.escalate.context_store import load_rules

    manifest, wh = _context(settings)
    specs = [s for s in specs_from_manifest(manifest) if model in (None, s.model)]
    if not specs:
        raise ConfigError(f"no meta.agent_de.entities spec{f' on model {model}' if model else ''} in the project; "
                          "declare key and match (email/name/phone) on the model")
    out_dir = settings.entity_maps_dir
    with wh:
        results = resolve_and_record(specs, manifest, wh, rules=load_rules(settings.project_dir, _state(settings)).rules,
                                     store=_state(settings), out_dir=out_dir)
    if as_json:
        _echo_json([{"model": r.spec.model, "rows": r.rows, "merged_pairs": len(r.merged), "keys_merged": len(r.entity_map),
                     "entities": len(set(r.entity_map.values())), "review": len(r.review), "truncated": r.truncated,
                     "escalations": [e.id for e in raised], "entity_map": str(out_dir / f"{r.spec.model}.csv"),
                     "notes": r.notes}
                    for r, raised in results])
        return
    for r, raised in results:
        click.echo(f"{r.spec.model}: {r.rows:,} rows; {len(r.entity_map)} keys merged into {len(set(r.entity_map.values()))} "
                   f"entities (>= {r.spec.auto_merge_at:.0%}); {len(r.review)} pair(s) to review"
                   + (" (candidate pairs truncated)" if r.truncated else ""))
        for e in raised:
            click.echo(f"  escalation {e.id}: {e.decision[:160]}")
        for n in r.notes:
            click.echo(f"  note: {n}")
        click.echo(f"  entity map: {out_dir / (r.spec.model + '.csv')}")


@main.group()
def escalations() -> None:
    """The decisions waiting for a human: context gaps and authority gaps."""


@escalations.command("list")
@click.option("--all", "show_all", is_flag=True, help="Include answered and withdrawn ones (and expired ones an older version left).")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
@_fail_cleanly
def escalations_list(settings: Settings, show_all: bool, as_json: bool) -> None:
    items = _state(settings).escalations()
    items = items if show_all else [e for e in items if e.state.value == "open"]
    if as_json:
        _echo_json([e.model_dump(mode="json") | {"status": e.status()} for e in items])
        return
    if not items:
        click.echo("no open escalations" if not show_all else "no escalations")
    for e in items:
        rec = e.options[e.recommendation].label if e.recommendation is not None else "no recommendation"
        due = f" due={e.due_at:%Y-%m-%d}" if e.due_at else ""
        click.echo(f"{e.id:8} {e.status():9} {e.kind.value:14} owner={e.owner or '-':16} age={e.age_hours():.1f}h{due} "
                   f"approvals={len(e.approvals)}/{e.approvals_required}\n         {e.decision}\n         recommended: {rec}")
        if e.answer is not None:
            label = e.options[e.answer.choice].label if 0 <= e.answer.choice < len(e.options) else "?"
            click.echo(f"         answered by {e.answer.by}: {label}" + (f" (note: {e.answer.note})" if e.answer.note else ""))


@escalations.command("show")
@click.argument("esc_id")
@click.pass_obj
@_fail_cleanly
def escalations_show(settings: Settings, esc_id: str) -> None:
    from dagster_agent_de.engines.escalate.answering import EscalationError

    match = [e for e in _state(settings).escalations() if e.id == esc_id]
    if not match:
        raise EscalationError(f"unknown escalation {esc_id}")
    e = match[0]
    click.echo(f"{e.id} [{e.status()}] {e.kind.value}: {e.decision}")
    click.echo(f"owner: {e.owner}  concerns: {e.asset}  check: {e.check}  due: {e.due_at}")
    if e.superseded_by:
        click.echo(f"withdrawn: {e.superseded_by} asks about the same incident now; answer that one")
    if e.supersedes:
        click.echo(f"replaces: {', '.join(e.supersedes)} (withdrawn, asked earlier about the same incident)")
    for i, o in enumerate(e.options):
        star = " (recommended)" if e.recommendation == i else ""
        click.echo(f"  [{i}] {o.label}{star}\n      consequence: {o.consequence}\n      agent will: {o.agent_action}")
    click.echo(f"why: {e.recommendation_reason or '-'}\nblocked: {e.blocking}\ncontinues: {e.continues}")
    for a in e.approvals:
        click.echo(f"approval: {a.by} chose {a.choice} at {a.at:%Y-%m-%d %H:%M} {a.note}")
    if e.fix_diff:
        click.echo(e.fix_diff)


@escalations.command("answer")
@click.argument("esc_id")
@click.option("--choice", type=int, default=None, help="Number of the option (see `show`).")
@click.option("--option", "option", default=None, help="Or the option by its name, e.g. 'apply the fix'.")
@click.option("--note", default="", help="Why (kept beside the rule the chosen option records).")
@click.option("--by", "by", default=lambda: os.environ.get("USER", ""), help="Who answers (default: $USER).")
@click.option("--no-rerun", is_flag=True, help="Do not re-run the blocked investigation.")
@click.pass_obj
@_fail_cleanly
def escalations_answer(settings: Settings, esc_id: str, choice: int | None, option: str | None, note: str, by: str,
                       no_rerun: bool) -> None:
    """Answer an escalation; the answer becomes durable context and the blocked work re-runs."""
    from dagster_agent_de.adapters.audit import AuditLog
    from dagster_agent_de.engines.escalate.answering import answer_escalation, option_by_name
    from dagster_agent_de.engines.escalate.policy import load_policy

    manifest, wh = _context(settings)
    state = _state(settings)
    if option is not None:
        esc = next((e for e in state.escalations() if e.id == esc_id), None)
        if esc is None:
            raise ConfigError(f"no escalation {esc_id}; `agent-de escalations list` shows the open ones")
        choice = option_by_name(esc, option)
    if choice is None:
        raise ConfigError("give --option NAME or --choice N (see `agent-de escalations show ID`)")
    notifier = _notifier(settings, state)  # the answer replies in the incident's thread
    result = answer_escalation(state, esc_id, choice, by=by, note=note, policy=load_policy(settings.project_dir),
                               audit=AuditLog(state, actor="cli"), manifest=manifest, notifier=notifier)
    click.echo(result.describe())
    _say_deliveries(notifier)
    esc = result.escalation
    from dagster_agent_de.engines.investigate.workflow import investigate_failure, reinvestigation_target

    target = reinvestigation_target(manifest, esc) if result.closed and not no_rerun else None
    if target is not None:
        with wh:
            report = investigate_failure(manifest, wh, state, asset=target.unique_id, check=esc.check,
                                         project_dir=settings.project_dir, state_dir=settings.state_dir).report
        top = report.findings[0]
        click.echo(f"re-investigated {esc.check}: {top.pattern} in {top.model} ({top.confidence:.0%})")
        click.echo(f"  {top.summary}")


@main.command()
@click.pass_obj
@_fail_cleanly
def pause(settings: Settings) -> None:
    """Stop autonomous work (sensor-launched investigations) until `agent-de resume`."""
    from dagster_agent_de.engines.escalate.policy import set_paused

    state = _state(settings)
    set_paused(state, True, os.environ.get("USER", "cli"))
    click.echo(f"paused: autonomous investigations stop until `agent-de resume` (flag in {state.url})")


@main.command()
@click.pass_obj
@_fail_cleanly
def resume(settings: Settings) -> None:
    """Resume autonomous work after `agent-de pause`."""
    from dagster_agent_de.engines.escalate.policy import set_paused

    set_paused(_state(settings), False)
    click.echo("resumed")


@main.group()
def context() -> None:
    """Business context: the rules answers decided (in the state store) over agent_de_context.yml."""


@context.command("export")
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Where to write (default: agent_de_context.yml in the dbt project).")
@click.pass_obj
@_fail_cleanly
def context_export(settings: Settings, output: Path | None) -> None:
    """Write the rules in force to agent_de_context.yml, for a pull request."""
    from dagster_agent_de.engines.escalate.context_store import export_rules

    path, count = export_rules(settings.project_dir, _state(settings), output)
    click.echo(f"wrote {count} rule(s) to {path}; commit it so the rules are reviewed like code")


@context.command("list")
@click.pass_obj
@_fail_cleanly
def context_list(settings: Settings) -> None:
    """Show the rules in force and where each comes from."""
    from dagster_agent_de.engines.escalate.context_store import load_rules

    rules = load_rules(settings.project_dir, _state(settings))
    for r in rules.rules:
        click.echo(f"{r.id:16} {r.source:14} on {', '.join(r.applies_to) or '-'}: {r.rule}"
                   + (f"\n{'':16} note ({r.decided_by or '-'}): {r.note}" if r.note else ""))
    if not rules.rules:
        click.echo("no context rules")
    for note in rules.notes():
        click.echo(f"note: {note}")
    _fail_on_context(rules)


def _echo_json(obj: Any) -> None:
    click.echo(json.dumps(obj, indent=2, default=str))


if __name__ == "__main__":
    main()
