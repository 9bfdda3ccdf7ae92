"""The ``model_runtime`` check in a real temporary Dagster instance: runtimes from materialization
metadata (as dagster-dbt records them), the baseline in the state store, a 10x slowdown fails (WARN)."""

from __future__ import annotations

from pathlib import Path

import pytest
from dagster import (
    AssetCheckSeverity,
    AssetKey,
    AssetMaterialization,
    AssetSelection,
    AssetSpec,
    DagsterInstance,
    Definitions,
    define_asset_job,
)

from dagster_agent_de.dagster.resources import AgentWarehouseResource
from dagster_agent_de.dagster.runtime import RUNTIME_CHECK, build_runtime_checks
from dagster_agent_de.engines.performance import RuntimePolicy

ORDERS, QUIET = AssetKey(["fct_orders"]), AssetKey(["quiet"])


@pytest.fixture
def instance(tmp_path: Path):
    (tmp_path / "home").mkdir()
    with DagsterInstance.local_temp(str(tmp_path / "home")) as inst:
        yield inst


def _defs(tmp_path: Path) -> Definitions:
    checks = build_runtime_checks({
        "fct_orders": (ORDERS, "model.p.fct_orders", RuntimePolicy()),
        "quiet": (QUIET, "model.p.quiet", RuntimePolicy(ignore=True)),
    })
    return Definitions(
        assets=[AssetSpec(ORDERS), AssetSpec(QUIET)], asset_checks=[checks],
        jobs=[define_asset_job("runtime", selection=AssetSelection.checks(checks))],
        resources={"agent_warehouse": AgentWarehouseResource(state_dir=str(tmp_path))},
    )


def _run(defs: Definitions, instance: DagsterInstance, seconds: float) -> dict[AssetKey, object]:
    for key in (ORDERS, QUIET):
        instance.report_runless_asset_event(AssetMaterialization(key, metadata={"Execution Duration": seconds}))
    result = defs.get_job_def("runtime").execute_in_process(instance=instance)
    return {e.asset_key: e for e in result.get_asset_check_evaluations()}


def test_a_tenfold_slowdown_fails_the_check_as_a_warning(tmp_path: Path, instance: DagsterInstance) -> None:
    defs = _defs(tmp_path)
    for s in (4.0, 4.2, 3.9, 4.1, 4.0):
        evaluation = _run(defs, instance, s)[ORDERS]
        assert evaluation.passed and evaluation.check_name == RUNTIME_CHECK
    assert evaluation.description == "learning: 4 of 5 past runs recorded"
    assert _run(defs, instance, 4.0)[ORDERS].description == "4.0s, within the baseline (median 4.0s, at most 6.0s)"
    slow = _run(defs, instance, 40.0)
    assert not slow[ORDERS].passed and slow[ORDERS].severity == AssetCheckSeverity.WARN
    assert "regression: 40.0s, 10.0x the median 4.0s" in (slow[ORDERS].description or "")
    assert slow[ORDERS].metadata["baseline_median_s"].value == 4.0
    assert slow[QUIET].passed and "ignored" in (slow[QUIET].description or "")


def test_the_same_materialization_is_counted_once(tmp_path: Path, instance: DagsterInstance) -> None:
    defs = _defs(tmp_path)
    _run(defs, instance, 4.0)
    result = defs.get_job_def("runtime").execute_in_process(instance=instance)  # no new materialization
    evaluation = {e.asset_key: e for e in result.get_asset_check_evaluations()}[ORDERS]
    assert evaluation.metadata["history_runs"].value == 0


def test_bytes_the_warehouse_reports_are_judged_against_their_own_baseline(tmp_path: Path,
                                                                            instance: DagsterInstance) -> None:
    """``adapter_response`` in run_results.json (dbt-bigquery's bytes_processed, dbt-snowflake's rows_affected):
    recorded with each run, and a run that scans far more than its baseline fails even at the same runtime."""
    import json

    run_results = tmp_path / "run_results.json"
    checks = build_runtime_checks({"fct_orders": (ORDERS, "model.p.fct_orders", RuntimePolicy())}, run_results=run_results)
    defs = Definitions(assets=[AssetSpec(ORDERS)], asset_checks=[checks],
                       jobs=[define_asset_job("runtime", selection=AssetSelection.checks(checks))],
                       resources={"agent_warehouse": AgentWarehouseResource(state_dir=str(tmp_path))})

    def run(scanned: float):
        run_results.write_text(json.dumps({"results": [{
            "unique_id": "model.p.fct_orders", "status": "success", "execution_time": 4.0,
            "adapter_response": {"_message": "SUCCESS 1", "code": "SUCCESS", "rows_affected": 1,
                                 "bytes_processed": scanned, "bytes_billed": scanned}}]}))
        instance.report_runless_asset_event(AssetMaterialization(ORDERS, metadata={"Execution Duration": 4.0}))
        (evaluation,) = defs.get_job_def("runtime").execute_in_process(instance=instance).get_asset_check_evaluations()
        return evaluation

    for scanned in (1.0e9, 1.1e9, 0.9e9, 1.0e9, 1.0e9):
        assert run(scanned).passed
    same = run(1.05e9)
    assert same.passed and same.metadata["bytes_processed"].value == 1.05e9
    assert same.metadata["baseline_median_bytes_processed"].value == 1.0e9
    more = run(8.0e9)
    assert not more.passed and more.severity == AssetCheckSeverity.WARN
    assert "within the baseline" in (more.description or "") and "bytes_processed 8,000,000,000, 8.0x" in (
        more.description or "")
