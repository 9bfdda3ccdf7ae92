"""Volume anomalies and empty loads: a model's row count against its own recent history.

Pure logic (the history comes from wherever the caller keeps it: in Dagster, the check's own past
evaluations). One query counts every model checked in a run.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from dagster_agent_de.adapters.warehouse import Warehouse
from dagster_agent_de.core.models import CheckSeverity

MIN_HISTORY = 3
HISTORY = 14


@dataclass(frozen=True)
class VolumeVerdict:
    passed: bool
    severity: CheckSeverity
    row_count: int
    reason: str
    expected: float | None = None  # median of the history
    lower: float | None = None
    upper: float | None = None
    history_n: int = 0


def judge_volume(
    current: int, history: Sequence[int], *, expect_growth: bool = False, max_change_pct: float = 50.0, mad_k: float = 4.0,
) -> VolumeVerdict:
    """Judge ``current`` against ``history`` (most recent last).

    Empty where there were rows is an error (a run that succeeded and loaded nothing); outside
    the band ``median ± max(max_change_pct% of it, mad_k robust deviations)`` is a warning; an
    incremental model (``expect_growth``) that did not grow since the last run is a warning.
    Fewer than three past counts: it passes while learning.

    >>> judge_volume(0, [100, 104, 98]).reason
    'empty: 0 rows where the last 3 runs had a median of 100'
    >>> judge_volume(40, [100, 104, 98, 101]).passed, judge_volume(97, [100, 104, 98, 101]).passed
    (False, True)
    """
    hist = [int(h) for h in history][-HISTORY:]
    n = len(hist)
    if n < MIN_HISTORY:
        return VolumeVerdict(True, "warn", current, f"learning: {n} of {MIN_HISTORY} past runs recorded", history_n=n)
    med = statistics.median(hist)
    mad = statistics.median(abs(h - med) for h in hist) * 1.4826
    allowed = max(med * max_change_pct / 100.0, mad_k * mad)
    lower, upper = max(0.0, med - allowed), med + allowed
    base: dict[str, Any] = dict(row_count=current, expected=med, lower=lower, upper=upper, history_n=n)
    if current == 0 and med > 0:
        return VolumeVerdict(False, "error", reason=f"empty: 0 rows where the last {n} runs had a median of {med:g}", **base)
    if expect_growth and current <= hist[-1] and med > 0:
        return VolumeVerdict(False, "warn", reason=f"no new rows: {current:,} rows, {hist[-1]:,} after the previous run "
                             "(an incremental run that succeeded and loaded nothing)", **base)
    if current < lower:
        return VolumeVerdict(False, "warn", reason=f"drop: {current:,} rows, expected {lower:,.0f}..{upper:,.0f} "
                             f"(median {med:,.0f} of {n} runs)", **base)
    if current > upper:
        return VolumeVerdict(False, "warn", reason=f"spike: {current:,} rows, expected {lower:,.0f}..{upper:,.0f} "
                             f"(median {med:,.0f} of {n} runs)", **base)
    return VolumeVerdict(True, "warn", reason=f"{current:,} rows, within {lower:,.0f}..{upper:,.0f}", **base)


def row_counts(warehouse: Warehouse, relations: Mapping[str, str]) -> dict[str, int]:
    """Row count of each ``name -> relation`` in one query."""
    if not relations:
        return {}
    parts = [f"select '{name.replace(chr(39), chr(39) * 2)}' as name, count(*) as n from {rel}" for name, rel in relations.items()]
    res = warehouse.query(" union all ".join(parts), rationale=f"row counts of {len(relations)} model(s) for the volume checks")
    return {str(r[0]): int(r[1]) for r in res.rows}


__all__ = ["VolumeVerdict", "judge_volume", "row_counts"]
