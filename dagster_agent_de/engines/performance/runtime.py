"""Runtime regressions: each model's runtime against its own trailing baseline, never a fixed threshold.

The history (the last :data:`HISTORY` successful runs, seconds and run id) is kept in the agent's state
store as one small JSON artifact per model. A run is a regression when it is slower than the median
plus ``max(K robust deviations, 50% of the median, 1 s)``; ``meta.agent_de.runtime`` may add an
absolute ceiling (``max_minutes``), opt the model out (``ignore: true``), lower or raise the one-second floor
for a model that runs in well under a second (``min_seconds``), or judge after fewer or more past runs
(``min_runs``, at least 3).
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from dagster_agent_de.core.state import StateStore
from dagster_agent_de.errors import ConfigError

HISTORY = 20
"""Successful runs kept per model."""
MIN_HISTORY = 5
"""Fewer past runs than this: the check passes while it learns (``meta.agent_de.runtime.min_runs``)."""
MAD_K = 4.0
MIN_SLOWDOWN = 0.5
"""A run within 50% of the median is never a regression (warehouses are noisy)."""
MIN_SECONDS = 1.0
"""Nor one less than a second slower than the median (``meta.agent_de.runtime.min_seconds``)."""
_MIN_RUNS_FLOOR = 3
"""The median and spread of fewer runs say nothing."""
_KEYS = ("ignore", "max_minutes", "min_seconds", "min_runs")
_ARTIFACT = "model_runtime"


@dataclass(frozen=True)
class RuntimePolicy:
    """``meta.agent_de.runtime`` of a model."""

    ignore: bool = False
    max_minutes: float | None = None
    min_seconds: float = MIN_SECONDS
    """A run less than this much slower than the median is never a regression."""
    min_runs: int = MIN_HISTORY
    """Past runs needed before the check judges."""

    @classmethod
    def from_meta(cls, model: str, meta: Any) -> RuntimePolicy:
        """Read the policy; a wrong type is a :class:`ConfigError` naming the model and the key.

        >>> RuntimePolicy.from_meta("m", {"max_minutes": 5})
        RuntimePolicy(ignore=False, max_minutes=5.0, min_seconds=1.0, min_runs=5)
        >>> RuntimePolicy.from_meta("m", {"min_seconds": 0.1, "min_runs": 3})
        RuntimePolicy(ignore=False, max_minutes=None, min_seconds=0.1, min_runs=3)
        """
        if meta is None:
            return cls()
        if not isinstance(meta, Mapping):
            raise ConfigError(f"{model}: meta.agent_de.runtime must be a mapping ({', '.join(_KEYS)}), got {meta!r}")
        unknown = set(meta) - set(_KEYS)
        if unknown:
            raise ConfigError(f"{model}: meta.agent_de.runtime has unknown keys {sorted(unknown)}; use {', '.join(_KEYS)}")
        ignore, max_minutes = meta.get("ignore", False), meta.get("max_minutes")
        min_seconds, min_runs = meta.get("min_seconds", MIN_SECONDS), meta.get("min_runs", MIN_HISTORY)
        if not isinstance(ignore, bool):
            raise ConfigError(f"{model}: meta.agent_de.runtime.ignore must be true or false, got {ignore!r}")
        if max_minutes is not None and (not _is_number(max_minutes) or max_minutes <= 0):
            raise ConfigError(f"{model}: meta.agent_de.runtime.max_minutes must be a positive number, got {max_minutes!r}")
        if not _is_number(min_seconds) or min_seconds < 0:
            raise ConfigError(f"{model}: meta.agent_de.runtime.min_seconds must be a number of seconds >= 0, "
                              f"got {min_seconds!r}")
        if isinstance(min_runs, bool) or not isinstance(min_runs, int) or not _MIN_RUNS_FLOOR <= min_runs <= HISTORY:
            raise ConfigError(f"{model}: meta.agent_de.runtime.min_runs must be a whole number from {_MIN_RUNS_FLOOR} "
                              f"to {HISTORY}, got {min_runs!r}")
        return cls(ignore=ignore, max_minutes=float(max_minutes) if max_minutes is not None else None,
                   min_seconds=float(min_seconds), min_runs=min_runs)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


@dataclass(frozen=True)
class RuntimeVerdict:
    passed: bool
    seconds: float
    reason: str
    median: float | None = None
    upper: float | None = None
    history_n: int = 0
    figures: tuple[tuple[str, float, float | None], ...] = ()
    """What the warehouse reported scanning or writing: (name, this run's value, its baseline median)."""


SCAN_FIGURES = ("bytes_scanned", "bytes_processed", "bytes_billed", "rows_affected", "slot_ms")
"""Numbers a dbt adapter reports in ``adapter_response`` (dbt-snowflake ``rows_affected``; dbt-bigquery
``bytes_processed``, ``bytes_billed``, ``slot_ms``; ``bytes_scanned`` where an adapter or the query history
gives it). Each is judged like the runtime, against its own baseline, with no one-second floor."""


def judge_figure(name: str, value: float, history: Sequence[float], min_runs: int = MIN_HISTORY) -> tuple[bool, str, float | None]:
    """(passed, reason, baseline median) of one scan figure against its past values (oldest first).

    >>> judge_figure("bytes_processed", 9e9, [1e9, 1.1e9, 0.9e9, 1e9, 1e9])[:2]
    (False, 'bytes_processed 9,000,000,000, 9.0x the median 1,000,000,000 of the last 5 runs')
    """
    hist = [float(h) for h in history][-HISTORY:]
    if len(hist) < min_runs:
        return True, "", None
    med = statistics.median(hist)
    mad = statistics.median(abs(h - med) for h in hist) * 1.4826
    upper = med + max(MAD_K * mad, MIN_SLOWDOWN * med)
    if value > upper and value > 0:
        ratio = f"{value / med:.1f}x" if med > 0 else "up from 0,"
        return False, f"{name} {value:,.0f}, {ratio} the median {med:,.0f} of the last {len(hist)} runs", med
    return True, "", med


def judge_run(seconds: float, figures: Mapping[str, float], history: Sequence[Mapping[str, Any]],
              policy: RuntimePolicy = RuntimePolicy()) -> RuntimeVerdict:
    """The runtime and each reported scan figure, each against its own baseline; any regression fails.

    >>> past = [{"seconds": 4.0, "bytes_processed": 1e9}] * 5
    >>> v = judge_run(4.1, {"bytes_processed": 5e9}, past)
    >>> v.passed, v.reason
    (False, '4.1s, within the baseline (median 4.0s, at most 6.0s); but bytes_processed 5,000,000,000, 5.0x the median 1,000,000,000 of the last 5 runs')
    """
    verdict = judge_runtime(seconds, [float(h["seconds"]) for h in history], policy)
    if policy.ignore:
        return verdict
    judged, failed = [], []
    for name in SCAN_FIGURES:
        if name not in figures:
            continue
        ok, why, med = judge_figure(name, float(figures[name]), [float(h[name]) for h in history if name in h],
                                    policy.min_runs)
        judged.append((name, float(figures[name]), med))
        if not ok:
            failed.append(why)
    if not failed:
        return replace(verdict, figures=tuple(judged))
    reason = f"{verdict.reason}; {'and' if not verdict.passed else 'but'} {'; '.join(failed)}"
    return replace(verdict, passed=False, reason=reason, figures=tuple(judged))


def judge_runtime(seconds: float, history: Sequence[float], policy: RuntimePolicy = RuntimePolicy()) -> RuntimeVerdict:
    """Judge one run's ``seconds`` against the model's past successful runs (oldest first).

    >>> judge_runtime(40.0, [4.0, 4.2, 3.9, 4.1, 4.0]).reason
    'regression: 40.0s, 10.0x the median 4.0s of the last 5 runs (expected at most 6.0s)'
    >>> judge_runtime(4.3, [4.0, 4.2, 3.9, 4.1, 4.0]).passed
    True
    """
    if policy.ignore:
        return RuntimeVerdict(True, seconds, "ignored (meta.agent_de.runtime.ignore)")
    if policy.max_minutes is not None and seconds > policy.max_minutes * 60:
        return RuntimeVerdict(False, seconds, f"over the limit: {seconds:.1f}s, more than max_minutes "
                              f"{policy.max_minutes:g} (meta.agent_de.runtime)", history_n=len(history))
    hist = [float(h) for h in history][-HISTORY:]
    n = len(hist)
    if n < policy.min_runs:
        return RuntimeVerdict(True, seconds, f"learning: {n} of {policy.min_runs} past runs recorded", history_n=n)
    med = statistics.median(hist)
    mad = statistics.median(abs(h - med) for h in hist) * 1.4826
    upper = med + max(MAD_K * mad, MIN_SLOWDOWN * med, policy.min_seconds)
    base: dict[str, Any] = dict(median=med, upper=upper, history_n=n)
    if seconds > upper:
        ratio = seconds / med if med > 0 else float("inf")
        return RuntimeVerdict(False, seconds, f"regression: {seconds:.1f}s, {ratio:.1f}x the median {med:.1f}s of the "
                              f"last {n} runs (expected at most {upper:.1f}s)", **base)
    return RuntimeVerdict(True, seconds, f"{seconds:.1f}s, within the baseline (median {med:.1f}s, at most {upper:.1f}s)",
                          **base)


def runtime_history(store: StateStore, model: str) -> list[dict[str, Any]]:
    """The model's past successful runs, oldest first: ``{"seconds": ..., "run_id": ...}``."""
    body = store.get_artifact(_ARTIFACT, model)
    return list(json.loads(body)) if body else []


def record_runtime(store: StateStore, model: str, seconds: float, run_id: str | None,
                   figures: Mapping[str, float] | None = None) -> list[dict[str, Any]]:
    """Append one successful run (once per run id), with the scan figures the warehouse reported, and keep
    the last :data:`HISTORY`; returns the history."""
    hist = runtime_history(store, model)
    if run_id is None or all(h.get("run_id") != run_id for h in hist):
        hist = [*hist, {"seconds": float(seconds), "run_id": run_id, **{k: float(v) for k, v in (figures or {}).items()}}]
        hist = hist[-HISTORY:]
        store.put_artifact(_ARTIFACT, model, json.dumps(hist))
    return hist


def _run_results(path: Path) -> list[dict[str, Any]]:
    """The ``results`` of a dbt ``run_results.json`` (none when the file does not exist)."""
    if not path.exists():
        return []
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ConfigError(f"{path} is not valid JSON ({e}); delete it or re-run dbt") from e
    return list(data.get("results") or [])


def read_run_results(path: Path) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    """A dbt ``run_results.json`` read once: (``unique_id -> execution seconds`` of the successful models
    and snapshots, ``unique_id -> {figure: value}`` from their ``adapter_response``, see :data:`SCAN_FIGURES`)."""
    results = [r for r in _run_results(path) if r.get("status") == "success"]
    runtimes = {r["unique_id"]: float(r["execution_time"]) for r in results
                if r.get("unique_id", "").startswith(("model.", "snapshot."))
                and isinstance(r.get("execution_time"), (int, float))}
    figures: dict[str, dict[str, float]] = {}
    for r in results:
        response = r.get("adapter_response") or {}
        found = {k: float(response[k]) for k in SCAN_FIGURES
                 if isinstance(response.get(k), (int, float)) and not isinstance(response.get(k), bool)}
        if found:
            figures[str(r.get("unique_id"))] = found
    return runtimes, figures


def runtimes_from_run_results(path: Path) -> dict[str, float]:
    """``unique_id -> execution seconds`` of the successful nodes of a dbt ``run_results.json``."""
    return read_run_results(path)[0]
