"""The failed-check sensor on a real temporary (SQLite) instance: once each, never lost."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from dagster import (
    AssetCheckResult,
    AssetKey,
    AssetSelection,
    AssetSpec,
    DagsterInstance,
    Definitions,
    asset,
    asset_check,
    build_sensor_context,
    define_asset_job,
    job,
    op,
)

from dagster_agent_de.dagster.investigate import build_failed_check_sensor, investigate_job
from dagster_agent_de.dagster.resources import AgentWarehouseResource

STATE: dict = {"fail": True, "while_orders_runs": None}


@asset
def orders():
    if STATE["while_orders_runs"] is not None:
        STATE["while_orders_runs"]()  # in this step, with the run still in progress (no second thread)
    return 1


@asset_check(asset=AssetKey(["orders"]), name="orders_ok")
def orders_ok():
    return AssetCheckResult(passed=not STATE["fail"])


@asset
def payments():
    return 1


@asset_check(asset=AssetKey(["payments"]), name="payments_ok")
def payments_ok():
    return AssetCheckResult(passed=not STATE["fail"])


@asset_check(asset=AssetKey(["payments"]), name="quiet_check", metadata={"agent_de/investigate": False})
def quiet_check():
    return AssetCheckResult(passed=False)


def make_defs(tmp_path: Path) -> Definitions:
    return Definitions(
        assets=[orders, payments], asset_checks=[orders_ok, payments_ok, quiet_check],
        jobs=[define_asset_job("build", selection=[orders, payments]), investigate_job,
              define_asset_job("orders_only", selection=[orders]),
              define_asset_job("orders_check", selection=AssetSelection.checks(orders_ok))],
        sensors=[build_failed_check_sensor(lookback_hours=0)],
        resources={"agent_warehouse": AgentWarehouseResource(state_dir=str(tmp_path))},
    )


def tick(defs: Definitions, instance, cursor):
    sensor = defs.resolve_sensor_def("failed_check_sensor")
    with build_sensor_context(instance=instance, cursor=cursor, repository_def=defs.get_repository_def(),
                              resources={"agent_warehouse": defs.resources["agent_warehouse"]}) as ctx:
        result = sensor(ctx)
    return [r for r in (result.run_requests or [])], (result.cursor or cursor)


@pytest.fixture
def instance(tmp_path: Path):
    STATE["fail"] = True
    STATE["while_orders_runs"] = None
    (tmp_path / "home").mkdir()
    with DagsterInstance.local_temp(str(tmp_path / "home")) as inst:
        yield inst


def test_each_failure_once_two_in_one_tick_and_opt_out(instance, tmp_path: Path) -> None:
    defs = make_defs(tmp_path)
    _, cursor = tick(defs, instance, None)  # first tick: nothing yet
    defs.resolve_job_def("build").execute_in_process(instance=instance, raise_on_error=False)
    requests, cursor = tick(defs, instance, cursor)
    checks = sorted(r.tags["agent_de/check"] for r in requests)
    assert checks == ["orders:orders_ok", "payments:payments_ok"]  # two failures, two runs; quiet_check opted out
    assert len({r.run_key for r in requests}) == 2
    cfg = requests[0].run_config["ops"]["investigate_failure"]["config"]
    assert cfg["evaluation_id"] > 0 and cfg["triggering_run_id"] and cfg["check_name"]
    again, cursor2 = tick(defs, instance, cursor)
    assert again == [] and json.loads(cursor2) == json.loads(cursor)
    STATE["fail"] = False
    defs.resolve_job_def("build").execute_in_process(instance=instance, raise_on_error=False)
    passed, _ = tick(defs, instance, cursor)
    assert passed == []  # passing evaluations are not investigated


def test_first_tick_skips_history_older_than_the_lookback(instance, tmp_path: Path) -> None:
    defs = make_defs(tmp_path)
    defs.resolve_job_def("build").execute_in_process(instance=instance, raise_on_error=False)
    requests, _ = tick(defs, instance, None)
    assert requests == []  # lookback 0 h: old failures are history, not incidents


def test_sensor_error_loses_nothing(instance, tmp_path: Path, monkeypatch) -> None:
    defs = make_defs(tmp_path)
    _, cursor = tick(defs, instance, None)
    defs.resolve_job_def("build").execute_in_process(instance=instance, raise_on_error=False)
    storage = type(instance.event_log_storage)
    original = storage.get_asset_check_execution_history

    def boom(self, *a, **k):
        raise RuntimeError("storage hiccup")

    monkeypatch.setattr(storage, "get_asset_check_execution_history", boom)
    with pytest.raises(Exception, match="storage hiccup"):
        tick(defs, instance, cursor)  # a failed tick persists no cursor
    monkeypatch.setattr(storage, "get_asset_check_execution_history", original)
    requests, _ = tick(defs, instance, cursor)
    assert len(requests) == 2


def test_cursor_never_moves_past_a_check_still_planned(instance, tmp_path: Path) -> None:
    """A run still evaluating a check holds the cursor; a later run's failure of it is investigated meanwhile.

    The later run and the tick happen inside the first run's step, in the same thread: two runs executing
    at once in threads of one process swap the process's stdout/stderr (Dagster's compute log capture
    redirects file descriptors 1 and 2, and mirrors them with ``tail -F``) and can leave them redirected.
    """
    defs = make_defs(tmp_path)
    _, cursor = tick(defs, instance, None)
    (check_key,) = orders_ok.check_keys
    seen: dict = {}

    def while_orders_runs() -> None:
        seen["planned"] = instance.event_log_storage.get_asset_check_execution_history(check_key, limit=5)
        # a later run fails the same check while the first is still running
        defs.resolve_job_def("orders_check").execute_in_process(instance=instance, raise_on_error=False)
        seen["requests"], seen["cursor"] = tick(defs, instance, cursor)

    STATE["while_orders_runs"] = while_orders_runs
    try:
        slow = defs.resolve_job_def("orders_only").execute_in_process(instance=instance)
    finally:
        STATE["while_orders_runs"] = None
    planned = seen["planned"]
    assert planned and planned[0].status.value == "PLANNED" and planned[0].run_id == slow.run_id
    later_keys = {r.run_key for r in seen["requests"]}
    assert any(k.startswith("investigate:orders:orders_ok:") for k in later_keys)
    held = json.loads(seen["cursor"])["orders:orders_ok"]
    assert held < planned[0].id  # not past the record still PLANNED
    assert [e.passed for e in slow.get_asset_check_evaluations()] == [False]
    requests2, cursor2 = tick(defs, instance, seen["cursor"])
    new = {r.run_key for r in requests2} - later_keys
    assert any(k.startswith("investigate:orders:orders_ok:") for k in new)  # the slow run's failure, not lost
    assert json.loads(cursor2)["orders:orders_ok"] > held


def test_pause_stops_autonomous_investigations(instance, tmp_path: Path) -> None:
    from dagster_agent_de.engines.escalate.policy import set_paused

    defs = make_defs(tmp_path)
    _, cursor = tick(defs, instance, None)
    defs.resolve_job_def("build").execute_in_process(instance=instance, raise_on_error=False)
    state = defs.resources["agent_warehouse"].state()
    set_paused(state, True)
    sensor = defs.resolve_sensor_def("failed_check_sensor")
    with build_sensor_context(instance=instance, cursor=cursor, repository_def=defs.get_repository_def(),
                              resources={"agent_warehouse": defs.resources["agent_warehouse"]}) as ctx:
        result = sensor(ctx)
    assert "paused" in result.skip_message
    set_paused(state, False)
    requests, _ = tick(defs, instance, cursor)
    assert len(requests) == 2  # nothing was lost while paused


def test_investigation_fails_when_the_warehouse_is_down_and_is_retried_with_backoff(instance, tmp_path: Path, demo_env) -> None:
    """The run fails with the cause; the failure stays un-investigated; one retry per attempt, no duplicates."""
    from dagster import DagsterRunStatus

    down = AgentWarehouseResource(state_dir=str(tmp_path), project_dir=str(demo_env.project_dir),
                                  duckdb_path=str(tmp_path / "gone" / "warehouse.duckdb"))
    defs = Definitions(jobs=[investigate_job], resources={"agent_warehouse": down})
    config = {"ops": {"investigate_failure": {"config": {
        "asset_key": ["fct_orders"], "check_name": "orders_vs_stripe", "evaluation_id": 7, "triggering_run_id": ""}}}}
    tags = {"agent_de/check": "fct_orders:orders_vs_stripe", "agent_de/evaluation_id": "7", "agent_de/attempt": "1",
            "agent_de/trigger": "failed_check_sensor"}
    failed = defs.resolve_job_def("investigate").execute_in_process(
        instance=instance, run_config=config, tags=tags, raise_on_error=False)
    assert not failed.success
    error = next(e for e in failed.all_events if e.event_type_value == "STEP_FAILURE").event_specific_data.error
    chain, e = [], error
    while e is not None:
        chain.append(e.message)
        e = e.cause
    assert any("DuckDB warehouse file" in m and "does not exist" in m for m in chain), chain  # the cause, named
    sensor_defs = make_defs(tmp_path)
    retrying = Definitions(
        assets=[orders, payments], asset_checks=[orders_ok, payments_ok], jobs=[investigate_job],
        sensors=[build_failed_check_sensor(lookback_hours=0, retry_backoff_seconds=0)],
        resources={"agent_warehouse": AgentWarehouseResource(state_dir=str(tmp_path))},
    )
    _, cursor = tick(sensor_defs, instance, None)
    retry, cursor2 = tick(retrying, instance, cursor)
    (r,) = [x for x in retry if x.tags.get("agent_de/check") == "fct_orders:orders_vs_stripe"]
    assert r.tags["agent_de/attempt"] == "2" and r.run_key.endswith(":attempt2")
    assert r.run_config == config
    again, _ = tick(retrying, instance, cursor2)  # same run_key: Dagster launches it once
    assert [x.run_key for x in again if x.tags.get("agent_de/check") == "fct_orders:orders_vs_stripe"] == [r.run_key]
    waiting = Definitions(jobs=[investigate_job], asset_checks=[orders_ok], assets=[orders],
                          sensors=[build_failed_check_sensor(lookback_hours=0, retry_backoff_seconds=3600)],
                          resources={"agent_warehouse": AgentWarehouseResource(state_dir=str(tmp_path))})
    none, _ = tick(waiting, instance, cursor2)
    assert [x for x in none if x.tags.get("agent_de/check") == "fct_orders:orders_vs_stripe"] == []  # backoff
    assert instance.get_run_by_id(failed.run_id).status == DagsterRunStatus.FAILURE


@asset(key=AssetKey(["finance", "invoices"]))
def invoices():
    return 1


@asset_check(asset=AssetKey(["finance", "invoices"]), name="invoices_ok")
def invoices_ok():
    return AssetCheckResult(passed=False)


def test_a_check_of_another_code_location_is_not_ours(instance, tmp_path: Path) -> None:
    """Another location's failed check lands in the same instance: this location's sensor leaves it alone."""
    defs = make_defs(tmp_path)
    other = Definitions(assets=[invoices], asset_checks=[invoices_ok],
                        jobs=[define_asset_job("finance_build", selection=[invoices])])
    _, cursor = tick(defs, instance, None)
    run = other.resolve_job_def("finance_build").execute_in_process(instance=instance, raise_on_error=False)
    assert [e.passed for e in run.get_asset_check_evaluations()] == [False]
    requests, cursor = tick(defs, instance, cursor)
    assert requests == []
    defs.resolve_job_def("build").execute_in_process(instance=instance, raise_on_error=False)
    requests, _ = tick(defs, instance, cursor)
    assert sorted(r.tags["agent_de/check"] for r in requests) == ["orders:orders_ok", "payments:payments_ok"]


@asset_check(asset=AssetKey(["fct_orders"]), name="orders_vs_stripe")
def demo_check_failing():
    return AssetCheckResult(passed=False)


@op
def warehouse_down():
    raise RuntimeError("warehouse down")


@job(name="investigate")
def failing_investigation():
    warehouse_down()


def test_the_lookback_and_backoff_of_the_environment_reach_the_locations_sensor(
        instance, tmp_path: Path, demo_env, monkeypatch) -> None:
    """``AGENT_DE_INVESTIGATE_LOOKBACK_HOURS`` and ``AGENT_DE_RETRY_BACKOFF_SECONDS``, read once with the
    rest of the cadence, drive the failed-check sensor the code location builds; a bad value stops the load."""
    from dagster_agent_de.dagster.definitions import build_definitions
    from dagster_agent_de.errors import ConfigError

    check = "fct_orders:orders_vs_stripe"
    # a failure of one of the demo's checks, just now, and an investigation of it that failed
    Definitions(assets=[AssetSpec("fct_orders")], asset_checks=[demo_check_failing],
                jobs=[define_asset_job("fail_it", selection=AssetSelection.checks(demo_check_failing))],
                ).resolve_job_def("fail_it").execute_in_process(instance=instance, raise_on_error=False)
    failed = failing_investigation.execute_in_process(instance=instance, raise_on_error=False, tags={
        "agent_de/check": check, "agent_de/evaluation_id": "1", "agent_de/attempt": "1",
        "agent_de/trigger": "failed_check_sensor"})
    assert not failed.success

    def first_tick(lookback: str, backoff: str) -> list[tuple[str, str]]:
        monkeypatch.setenv("AGENT_DE_INVESTIGATE_LOOKBACK_HOURS", lookback)
        monkeypatch.setenv("AGENT_DE_RETRY_BACKOFF_SECONDS", backoff)
        requests, _ = tick(build_definitions(demo_env.settings), instance, None)
        return sorted((r.tags["agent_de/check"], r.tags["agent_de/attempt"]) for r in requests)

    # lookback 0 h: the failure predates the first tick; backoff 1 h: the failed investigation waits
    assert first_tick("0", "3600") == []
    # lookback 1 h: the failure is recent, investigated; backoff 0 s: the retry is due now
    assert first_tick("1", "0") == [(check, "1"), (check, "2")]
    monkeypatch.setenv("AGENT_DE_RETRY_BACKOFF_SECONDS", "-5")
    with pytest.raises(ConfigError, match=r"AGENT_DE_RETRY_BACKOFF_SECONDS='-5' must be a number of seconds, 0 or more"):
        build_definitions(demo_env.settings)
