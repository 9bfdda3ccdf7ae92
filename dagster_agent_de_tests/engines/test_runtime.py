"""Runtime regressions against each model's own baseline, with its history in a real state store."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dagster_agent_de.adapters.state import SqlStateStore
from dagster_agent_de.engines.performance import (
    RuntimePolicy,
    judge_runtime,
    record_runtime,
    runtime_history,
    runtimes_from_run_results,
)
from dagster_agent_de.errors import ConfigError


@pytest.fixture()
def store(tmp_path: Path) -> SqlStateStore:
    return SqlStateStore(f"sqlite:///{tmp_path / 'state.db'}")


def test_a_tenfold_slowdown_fails_and_noise_passes(store: SqlStateStore) -> None:
    for i, s in enumerate([40.0, 42.0, 39.0, 41.0, 44.0, 38.0]):
        record_runtime(store, "fct_orders", s, f"run{i}")
    past = [h["seconds"] for h in runtime_history(store, "fct_orders")]
    slow = judge_runtime(400.0, past)
    assert not slow.passed and slow.median == 40.5 and "9.9x the median 40.5s" in slow.reason and slow.history_n == 6
    assert judge_runtime(55.0, past).passed  # within 50% of the median: noise, not a regression
    assert not judge_runtime(62.0, past).passed


def test_the_baseline_is_the_models_own_not_a_fixed_threshold(store: SqlStateStore) -> None:
    for i in range(6):
        record_runtime(store, "slow_by_design", 3600.0 + i, f"r{i}")
        record_runtime(store, "tiny", 0.2, f"r{i}")
    assert judge_runtime(3700.0, [h["seconds"] for h in runtime_history(store, "slow_by_design")]).passed
    # a tiny model is not flagged for sub-second noise, but is for a real slowdown
    tiny = [h["seconds"] for h in runtime_history(store, "tiny")]
    assert judge_runtime(0.9, tiny).passed and not judge_runtime(5.0, tiny).passed


def test_learning_until_enough_runs_and_each_run_recorded_once(store: SqlStateStore) -> None:
    for _ in range(3):
        record_runtime(store, "m", 5.0, "same-run")
    assert len(runtime_history(store, "m")) == 1
    verdict = judge_runtime(500.0, [5.0])
    assert verdict.passed and verdict.reason.startswith("learning")
    for i in range(30):
        record_runtime(store, "m", 5.0, f"r{i}")
    assert len(runtime_history(store, "m")) == 20


def test_meta_overrides() -> None:
    past = [10.0] * 6
    assert judge_runtime(1000.0, past, RuntimePolicy.from_meta("m", {"ignore": True})).passed
    capped = judge_runtime(130.0, [100.0] * 6, RuntimePolicy.from_meta("m", {"max_minutes": 2}))
    assert not capped.passed and "max_minutes" in capped.reason
    for bad in ({"max_minutes": "ten"}, {"ignore": "yes"}, {"max_minute": 1}, [1]):
        with pytest.raises(ConfigError, match="meta.agent_de.runtime"):
            RuntimePolicy.from_meta("m", bad)


def test_a_small_model_can_lower_the_one_second_floor_and_learn_from_fewer_runs() -> None:
    """A model that runs in 0.1 s and now takes 0.6 s is 6x slower, yet inside the default 1 s floor."""
    past = [0.10, 0.11, 0.09]
    assert judge_runtime(0.6, [*past, 0.1, 0.1]).passed  # default: under the floor
    assert judge_runtime(0.6, past).reason.startswith("learning: 3 of 5")  # default: still learning
    small = RuntimePolicy.from_meta("m", {"min_seconds": 0.2, "min_runs": 3})
    verdict = judge_runtime(0.6, past, small)
    assert not verdict.passed and verdict.upper == pytest.approx(0.30)
    assert judge_runtime(0.25, past, small).passed
    for bad in ({"min_seconds": -1}, {"min_seconds": "0.1"}, {"min_runs": 2}, {"min_runs": 3.5}, {"min_runs": True},
                {"min_runs": 21}):
        with pytest.raises(ConfigError, match=f"meta.agent_de.runtime.{next(iter(bad))}"):
            RuntimePolicy.from_meta("m", bad)


def test_run_results_durations(tmp_path: Path) -> None:
    path = tmp_path / "run_results.json"
    path.write_text(json.dumps({"results": [
        {"unique_id": "model.p.a", "status": "success", "execution_time": 1.5},
        {"unique_id": "model.p.b", "status": "error", "execution_time": 9.0},
        {"unique_id": "test.p.t", "status": "pass", "execution_time": 0.1},
    ]}))
    assert runtimes_from_run_results(path) == {"model.p.a": 1.5}
    assert runtimes_from_run_results(tmp_path / "missing.json") == {}
    path.write_text("{not json")
    with pytest.raises(ConfigError, match="run_results.json"):
        runtimes_from_run_results(path)
