"""Volume checks in a real temporary Dagster instance: history from the check's own evaluations;
a run that empties a model fails the check (ERROR) and the failed-check sensor picks it up."""

from __future__ import annotations

from dagster import (
    AssetCheckKey,
    AssetCheckSeverity,
    AssetKey,
    AssetSelection,
    DagsterInstance,
    Definitions,
    build_sensor_context,
    define_asset_job,
)

from dagster_agent_de.dagster.definitions import build_definitions
from dagster_agent_de.dagster.volume import VOLUME_CHECK

QUIET = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}
KEY = AssetCheckKey(AssetKey(["fct_orders"]), VOLUME_CHECK)


def _evaluate(defs, instance):
    job = defs.resolve_job_def("volume_fct_orders")
    result = job.execute_in_process(instance=instance, raise_on_error=False, run_config=QUIET)
    (ev,) = [e for e in result.get_asset_check_evaluations() if e.check_name == VOLUME_CHECK]
    return ev


def test_volume_history_and_an_empty_load(demo_env) -> None:
    base = build_definitions(demo_env.settings)
    assert KEY in base.resolve_asset_graph().asset_check_keys
    volume_job = define_asset_job("volume_fct_orders", selection=AssetSelection.checks(KEY))
    defs = Definitions.merge(base, Definitions(jobs=[volume_job]))
    with DagsterInstance.ephemeral() as instance:
        first = [_evaluate(defs, instance) for _ in range(3)]
        assert [e.passed for e in first] == [True] * 3
        assert first[0].description.startswith("learning: 0 of 3")
        rows = first[0].metadata["row_count"].value
        assert rows > 0 and all(e.metadata["row_count"].value == rows for e in first)
        assert _evaluate(defs, instance).metadata["history_runs"].value == 3

        demo_env.write("create table main._fct_orders_saved as select * from main.fct_orders; delete from main.fct_orders")
        try:
            empty = _evaluate(defs, instance)
        finally:
            demo_env.write("insert into main.fct_orders select * from main._fct_orders_saved; drop table main._fct_orders_saved")
        assert (empty.passed, empty.severity) == (False, AssetCheckSeverity.ERROR)
        assert empty.description.startswith("empty: 0 rows") and empty.metadata["expected_median"].value == rows

        sensor = defs.resolve_sensor_def("failed_check_sensor")
        with build_sensor_context(instance=instance, repository_def=defs.get_repository_def(),
                                  resources={"agent_warehouse": defs.resources["agent_warehouse"]}) as ctx:
            result = sensor(ctx)
        checks = [r.tags["agent_de/check"] for r in (result.run_requests or [])]
        assert "fct_orders:row_volume" in checks
