"""Runtime checks: one ``model_runtime`` check (WARN) per dbt model against its own trailing baseline.

The runtime is what dagster-dbt records on each materialization (``Execution Duration``), else the
model's ``execution_time`` in ``target/run_results.json``. Each materialization is recorded once in
the agent's state store (the baseline: the last successful runs); a regression fails the check, and
the failed-check sensor starts the investigation like any other (kind ``performance``).
"""

# No `from __future__ import annotations` here: Dagster reads these decorated functions' annotations when they
# are defined (a string `context` annotation or `Config` class is refused; verified on Dagster 1.13).

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dagster import AssetCheckExecutionContext, AssetCheckSpec, AssetKey, multi_asset_check

from dagster_agent_de.dagster.resources import AgentWarehouseResource
from dagster_agent_de.dagster.translator import AgentDETranslator
from dagster_agent_de.engines.performance.runtime import (
    RuntimePolicy,
    RuntimeVerdict,
    judge_run,
    read_run_results,
    record_runtime,
    runtime_history,
)
from dagster_agent_de.errors import AgentDEError

RUNTIME_CHECK = "model_runtime"
DURATION_KEY = "Execution Duration"
"""What dagster-dbt puts in a model's materialization metadata (seconds)."""


def _latest_duration(instance: Any, key: AssetKey) -> tuple[float, str] | None:
    """(seconds, an id of that materialization) from the asset's latest materialization, if it has a duration."""
    entry = instance.get_latest_materialization_event(key)
    mat = entry.asset_materialization if entry is not None else None
    value = getattr((mat.metadata or {}).get(DURATION_KEY), "value", None) if mat is not None else None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value), f"{entry.run_id}:{entry.timestamp}"
    return None


def build_runtime_checks(models: Mapping[str, tuple[AssetKey, str, RuntimePolicy | AgentDEError]],
                         run_results: Path | None = None,
                         translator: AgentDETranslator | None = None):
    """``models``: name -> (asset key, unique id, policy, or the error of a bad ``meta.agent_de.runtime``: that
    model's check fails with it). Opt out with ``meta.agent_de.runtime: {ignore: true}``."""
    translator = translator or AgentDETranslator()
    by_key = {key: (name, uid, policy) for name, (key, uid, policy) in models.items()}
    specs = [AssetCheckSpec(RUNTIME_CHECK, asset=key, description="Runtime vs the model's own recent successful runs "
                            "(median and spread); overrides in meta.agent_de.runtime", metadata={"agent_de/kind": "runtime"})
             for key in by_key]

    @multi_asset_check(specs=specs, name="runtime_checks", can_subset=True)
    def runtime_checks(context: AssetCheckExecutionContext, agent_warehouse: AgentWarehouseResource):
        selected = sorted(context.selected_asset_check_keys, key=lambda k: k.asset_key.to_user_string())
        try:
            store = agent_warehouse.state()
            from_file, scanned = read_run_results(run_results) if run_results is not None else ({}, {})
        except AgentDEError as e:
            context.log.error(f"runtime checks could not run: {e}")
            for k in selected:
                yield translator.error_check_result(e, "warn", "runtime check", k.asset_key, RUNTIME_CHECK)
            return
        for k in selected:
            name, uid, policy = by_key[k.asset_key]
            if isinstance(policy, AgentDEError):  # a bad meta.agent_de.runtime: say what to fix, never pass
                context.log.error(f"runtime check of {name} could not run: {policy}")
                yield translator.error_check_result(policy, "error", "runtime check", k.asset_key, RUNTIME_CHECK)
                continue
            found = _latest_duration(context.instance, k.asset_key)
            source = "materialization"
            if found is None and uid in from_file and run_results is not None:
                found, source = (from_file[uid], f"run_results:{run_results.stat().st_mtime_ns}"), "run_results.json"
            if found is None:
                yield translator.runtime_check_result(k.asset_key, RUNTIME_CHECK, RuntimeVerdict(
                    True, 0.0, "no runtime recorded yet (no materialization with an Execution Duration)"), "none")
                continue
            seconds, run = found
            past = [h for h in runtime_history(store, name) if h.get("run_id") != run]
            figures = scanned.get(uid, {})  # bytes/rows the adapter reported for the model's last dbt run
            verdict = judge_run(seconds, figures, past, policy)
            record_runtime(store, name, seconds, run, figures)
            yield translator.runtime_check_result(k.asset_key, RUNTIME_CHECK, verdict, source)

    return runtime_checks
