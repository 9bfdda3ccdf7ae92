"""Sidecar and library mode: run the agent's checks after each run of the team's own dbt assets.

The team's location owns the dbt assets and runs ``dbt build``; the agent's checks on those assets
live here, in a checks-only job. A run-status sensor that watches every code location launches that
job for the assets a finished run materialized (verified on Dagster 1.13: ``run_status_sensor(
monitor_all_code_locations=True)`` fires for another location's runs; see ``DESIGN.md``).
"""

from __future__ import annotations

from collections.abc import Sequence

from dagster import (
    AssetCheckKey,
    DagsterEventType,
    DagsterRunStatus,
    DefaultSensorStatus,
    RunRequest,
    RunStatusSensorContext,
    run_status_sensor,
)

CHECKS_JOB = "agent_de_checks"
AFTER_RUN_SENSOR = "agent_de_after_dbt_run_sensor"
AFTER_FAILED_RUN_SENSOR = "agent_de_after_failed_dbt_run_sensor"


def build_after_dbt_run_sensors(checks_job, check_keys: Sequence[AssetCheckKey], own_jobs: Sequence[str],
                                default_status: DefaultSensorStatus = DefaultSensorStatus.RUNNING,
                                minimum_interval_seconds: int = 30) -> list:
    """After each finished run (of any location) that materialized assets the agent checks, request the
    checks-only job for exactly those assets' checks (``run_key``: once per run). Failed runs count too:
    a run whose dbt tests failed still materialized the models before them."""
    by_asset: dict = {}
    for key in check_keys:
        by_asset.setdefault(key.asset_key, []).append(key)
    own = set(own_jobs)

    def evaluate(context: RunStatusSensorContext) -> RunRequest | None:
        # None (not a SkipReason) lets the sensor go on to the next finished run in the same tick
        run = context.dagster_run
        if run.job_name in own or any(t.startswith("agent_de/") for t in run.tags):
            return None
        records = context.instance.get_records_for_run(
            run.run_id, of_type=DagsterEventType.ASSET_MATERIALIZATION).records
        materialized = {r.event_log_entry.dagster_event.asset_key for r in records
                        if r.event_log_entry.dagster_event is not None}
        wanted = sorted({k for a in materialized for k in by_asset.get(a, [])}, key=lambda k: k.to_user_string())
        if not wanted:
            return None
        return RunRequest(run_key=f"after-run:{run.run_id}", asset_check_keys=wanted,
                          tags={"agent_de/trigger": AFTER_RUN_SENSOR, "agent_de/triggering_run": run.run_id})

    sensors = []
    for status, name in ((DagsterRunStatus.SUCCESS, AFTER_RUN_SENSOR), (DagsterRunStatus.FAILURE, AFTER_FAILED_RUN_SENSOR)):
        sensors.append(run_status_sensor(
            name=name, run_status=status, monitor_all_code_locations=True, request_job=checks_job,
            default_status=default_status, minimum_interval_seconds=minimum_interval_seconds,
            description=f"After each of your runs that ends in {status.value} having materialized dbt assets, "
                        "runs the agent's checks on them.",
        )(evaluate))
    return sensors
