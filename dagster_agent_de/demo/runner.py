"""``agent-de demo``: the main job on the embedded default (DuckDB)."""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

from dagster_agent_de.adapters.audit import AuditLog
from dagster_agent_de.adapters.state import describe_state, open_state_store
from dagster_agent_de.bundled import bundled_workspace_file
from dagster_agent_de.config import BUNDLED_PROJECT_DIR, Settings, resolve_settings
from dagster_agent_de.demo.data import (
    DemoDataSummary,
    execute_postgres,
    generate_demo_data,
    load_into_postgres,
)
from dagster_agent_de.demo.incidents import SqlRunner
from dagster_agent_de.errors import ConfigError
from dagster_agent_de.profile import load_project_yaml

_COPY_IGNORE = shutil.ignore_patterns("target", "logs", "dbt_packages", ".user.yml")


@dataclass
class DemoResult:
    settings: Settings
    data: DemoDataSummary
    success: bool
    materialized: list[str] = field(default_factory=list)
    checks_passed: list[str] = field(default_factory=list)
    checks_failed: list[str] = field(default_factory=list)
    run_id: str = ""
    incident_lines: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        s = self.settings
        return [
            self.data.describe(),
            f"dbt project: {s.project_dir}",
            f"Dagster run {self.run_id} ({'success' if self.success else 'FAILURE'}): "
            f"{len(self.materialized)} assets materialized, {len(self.checks_passed)} checks passed, "
            f"{len(self.checks_failed)} failed" + (f" ({', '.join(self.checks_failed)})" if self.checks_failed else ""),
            f"Dagster instance: {s.dagster_home}",
            f"agent state (audit log, baselines, escalations): {describe_state(s)}",
            *self.incident_lines,
            f"Next: `agent-de dev` (or DAGSTER_HOME={s.dagster_home} dagster dev -w {bundled_workspace_file()}) "
            "and open http://127.0.0.1:3000",
            "Try: `agent-de demo --incident wt02_join_drop` (a join that drops 70% of orders, caught and investigated), "
            "`agent-de demo --incident wt05_slow_model` (a model made slow, caught against its runtime baseline, "
            "explained from its plan and fixed), `agent-de onboard --table support.tickets`, `agent-de metrics`, "
            "`agent-de entities`.",
        ]


def prepare_demo_project(settings: Settings) -> Settings:
    """Use a working copy of the bundled project under the state dir, so incidents injected
    into its SQL never touch the repository. A user-given project is used as it is."""
    if settings.project_dir != BUNDLED_PROJECT_DIR and settings.project_dir != settings.demo_project_dir:
        return settings
    dest = settings.demo_project_dir
    tmp = dest.with_name(dest.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(BUNDLED_PROJECT_DIR, tmp, ignore=_COPY_IGNORE)
    shutil.rmtree(dest, ignore_errors=True)
    tmp.rename(dest)
    return resolve_settings(settings.state_dir, dest, settings.target)


def postgres_conninfo(settings: Settings) -> dict[str, Any]:
    """libpq parameters of the demo's ``postgres`` output (the ``AGENT_DE_PG_*`` variables its profile reads).

    Raises:
        ConfigError: no server is given (``AGENT_DE_PG_HOST`` unset), naming the variables to set.
    """
    from dagster_agent_de.adapters.warehouse.postgres import PostgresWarehouse

    target = settings.profile_target
    demo, project = load_project_yaml(BUNDLED_PROJECT_DIR), load_project_yaml(settings.project_dir)
    if (project.get("name"), project.get("profile")) != (demo.get("name"), demo.get("profile")):
        # the demo drops and reloads its source tables (DROP TABLE ... CASCADE): never in a team's database
        raise ConfigError(f"the demo loads its sources into PostgreSQL only for the demo project (dbt project "
                          f"{demo.get('name')!r}, profile {demo.get('profile')!r}); {settings.project_dir} is project "
                          f"{project.get('name')!r} with profile {project.get('profile')!r}: unset AGENT_DE_PROJECT_DIR "
                          "or point --project-dir at the demo")
    if not target.output.get("host"):
        raise ConfigError(f"`agent-de demo --target {target.target}` needs a PostgreSQL server: "
                          + target.missing("host") + "; also AGENT_DE_PG_PORT (5432), AGENT_DE_PG_USER (postgres), "
                          "AGENT_DE_PG_PASSWORD (or PGPASSFILE), AGENT_DE_PG_DBNAME (agent_de_demo) as needed")
    wh = PostgresWarehouse.from_profile_output(target.output, AuditLog(None))
    return dict(wh.conninfo)


def source_sql_runner(settings: Settings) -> SqlRunner | None:
    """Where an incident's source-data statements run: the demo's PostgreSQL on a postgres target, else
    ``None`` (the DuckDB file)."""
    if settings.warehouse_type != "postgres":
        return None
    return partial(execute_postgres, postgres_conninfo(settings))


def incident_scale(incident: str | None, scale: int) -> tuple[int, list[str]]:
    """The scale an incident is shown at: at least its ``min_scale``, and a note when raised.

    >>> incident_scale("wt05_slow_model", 2_000)[1]
    ['scale raised from 2,000 to 1,000,000 orders: wt05_slow_model is visible only over enough rows']
    >>> incident_scale("wt02_join_drop", 2_000)
    (2000, [])
    """
    from dagster_agent_de.demo.incidents import get_incident

    min_scale = get_incident(incident).min_scale if incident else 0
    if scale >= min_scale:
        return scale, []
    return min_scale, [f"scale raised from {scale:,} to {min_scale:,} orders: {incident} is visible only over enough rows"]


def generate_demo_sources(settings: Settings, *, scale: int = 10_000) -> DemoDataSummary:
    """The demo's source tables: generated into the state dir's DuckDB file, then, on a ``postgres`` target
    (the demo profile's dbt-postgres output), loaded into that database by COPY."""
    conninfo = postgres_conninfo(settings) if settings.warehouse_type == "postgres" else None
    data = generate_demo_data(settings.duckdb_path, scale=scale)
    if conninfo is not None:
        start = time.perf_counter()
        tables = load_into_postgres(settings.duckdb_path, conninfo)
        where = f"PostgreSQL {conninfo.get('user')}@{conninfo.get('host')}:{conninfo.get('port')}/{conninfo['dbname']}"
        data = replace(data, tables=tables, seconds=data.seconds + time.perf_counter() - start, where=where)
    return data


def run_demo(settings: Settings, *, scale: int = 10_000, incident: str | None = None,
             raise_scale: bool = True) -> DemoResult:
    """Generate data, build the dbt project through Dagster into a persistent instance.

    ``raise_scale=False`` keeps ``scale`` below the incident's ``min_scale``: for a project whose model
    says how small a regression counts (``meta.agent_de.runtime.min_seconds``), as the tests' does.

    On a ``postgres`` target (a dbt-postgres output of the demo's profile) the data is generated in the
    state dir's DuckDB file as always, then loaded into the PostgreSQL database, where dbt builds and the
    agent checks; the finance export stays a file beside it.
    """
    from dagster import DagsterInstance

    settings.ensure_state_dir()
    settings = prepare_demo_project(settings)
    notes: list[str] = []
    if raise_scale:
        scale, notes = incident_scale(incident, scale)
    data = generate_demo_sources(settings, scale=scale)
    if settings.warehouse_type == "postgres" and settings.target:
        # the demo profile's default target reads AGENT_DE_TARGET: every later resolution in this process (the
        # Dagster resources, dbt started by dagster-dbt) then finds the PostgreSQL output too
        os.environ["AGENT_DE_TARGET"] = settings.target
    # fresh source tables: the old schema baseline no longer describes them
    open_state_store(settings).forget(["drift", "escalations", "findings"])
    os.environ.setdefault("DAGSTER_HOME", str(settings.dagster_home))
    Path(os.environ["DAGSTER_HOME"]).mkdir(parents=True, exist_ok=True)
    os.environ["AGENT_DE_STATE_DIR"] = str(settings.state_dir)
    os.environ["AGENT_DE_PROJECT_DIR"] = str(settings.project_dir)

    from dagster_agent_de.dagster.definitions import DBT_BUILD_JOB, build_definitions

    defs = build_definitions(settings)
    job = defs.resolve_job_def(DBT_BUILD_JOB)
    with DagsterInstance.get() as instance:
        result = job.execute_in_process(
            instance=instance, raise_on_error=False,
            run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}},
        )
    materialized = sorted(
        e.asset_key.to_user_string() for e in result.get_asset_materialization_events() if e.asset_key
    )
    passed: list[str] = []
    failed: list[str] = []
    for ev in result.get_asset_check_evaluations():
        (passed if ev.passed else failed).append(ev.check_name)
    out = DemoResult(settings, data, result.success, materialized, sorted(passed), sorted(failed), result.run_id)
    out.incident_lines = notes
    if incident:
        with DagsterInstance.get() as instance:
            out.incident_lines += run_incident(settings, defs, instance, incident)
    return out


_QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def run_incident(settings: Settings, defs, instance, name: str) -> list[str]:
    """Inject a seed incident, run what would run in production, and let the agent catch it."""
    from dagster import build_sensor_context

    from dagster_agent_de.demo.incidents import get_incident, inject

    incident = get_incident(name)
    sensor = defs.resolve_sensor_def("failed_check_sensor")
    resources = {"agent_warehouse": defs.resources["agent_warehouse"]}
    repo = defs.get_repository_def()
    with build_sensor_context(instance=instance, repository_def=repo, resources=resources) as ctx:
        first = sensor(ctx)
    cursor = first.cursor
    lines = [f"== incident {incident.name} ({incident.walkthrough}): {incident.story}"]
    selection = None
    if incident.check == "model_runtime":
        selection = [_model_key(repo, incident.expected_model)]
        lines += _record_runtime_baseline(settings, defs, instance, incident.expected_model, selection)
    inject(incident, settings.project_dir, settings.duckdb_path, source_sql_runner(settings))
    job = "schema_drift_check" if incident.expected_pattern == "schema_drift" else "dbt_build"
    run = defs.resolve_job_def(job).execute_in_process(instance=instance, raise_on_error=False, run_config=_QUIET,
                                                       asset_selection=selection)
    for ev in run.get_asset_check_evaluations():
        if not ev.passed:
            lines.append(f"FAILED check {ev.asset_key.to_user_string()}:{ev.check_name}: {(ev.description or '')[:300]}")
    if job == "dbt_build" and not run.get_asset_materialization_events():
        lines.append("dbt_build was stopped before any model ran")
    with build_sensor_context(instance=instance, cursor=cursor, repository_def=repo, resources=resources) as ctx:
        result = sensor(ctx)
    for request in result.run_requests or []:
        inv = defs.resolve_job_def("investigate").execute_in_process(
            instance=instance, run_config={**request.run_config, **_QUIET}, tags=request.tags, raise_on_error=False)
        if not inv.success:
            lines.append(f"investigation of {request.tags['agent_de/check']} failed (see run {inv.run_id})")
            continue
        top = inv.output_for_node("investigate_failure")["findings"][0]
        lines.append(f"investigated {request.tags['agent_de/check']} (run {inv.run_id}):")
        lines.append(f"  root cause: {top['pattern']} in {top['model']} (confidence {top['confidence']:.0%})")
        lines += [f"  {ln}" for ln in top["summary"].splitlines()]
        fix = top.get("proposed_fix") or {}
        if fix.get("diff"):
            lines += ["  proposed fix:"] + ["    " + ln for ln in fix["diff"].splitlines()]
    for esc in [e for e in open_state_store(settings).escalations() if e.state.value == "open"]:
        lines.append(f"escalation {esc.id} [{esc.kind.value}] for {esc.owner}: {esc.decision}")
    lines.append("Answer with `agent-de escalations answer ID --choice N`, or the answer_escalation job in the UI.")
    return lines


def _model_key(repo, model: str):
    """The asset key of a dbt model of the demo (its last path element is the model's name)."""
    keys = [k for k in repo.asset_graph.get_all_asset_keys() if k.path[-1] == model]
    if len(keys) != 1:
        raise RuntimeError(f"expected one asset for model {model}, found {keys}")
    return keys[0]


def _record_runtime_baseline(settings: Settings, defs, instance, model: str, selection) -> list[str]:
    """Materialize the model until its ``model_runtime`` check has a baseline (``min_runs`` of its
    ``meta.agent_de.runtime``): real timed dbt runs through Dagster, each recorded by the check itself
    (the demo's first build counted as one)."""
    from dagster_agent_de.engines.performance.runtime import RuntimePolicy, runtime_history
    from dagster_agent_de.manifest import Manifest
    from dagster_agent_de.project import DbtProjectInfo

    store = open_state_store(settings)
    node = Manifest.load(DbtProjectInfo.from_settings(settings).manifest_path, settings.project_dir).find(model)
    min_runs = RuntimePolicy.from_meta(model, node.agent_de_meta.get("runtime")).min_runs
    job = defs.resolve_job_def("dbt_build")
    while len(runtime_history(store, model)) < min_runs:
        run = job.execute_in_process(instance=instance, raise_on_error=False, run_config=_QUIET, asset_selection=selection)
        if not run.success:
            return [f"the baseline run of {model} failed (run {run.run_id}): the incident cannot be shown"]
    seconds = [h["seconds"] for h in runtime_history(store, model)]
    return [f"baseline of {model}: {len(seconds)} timed dbt runs through Dagster, "
            f"{', '.join(f'{s:.2f}s' for s in seconds)}"]
