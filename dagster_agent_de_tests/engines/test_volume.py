"""Volume verdicts on constructed histories, and the one-query row counts."""

from __future__ import annotations

from pathlib import Path

import pytest

from dagster_agent_de.adapters.audit import AuditLog
from dagster_agent_de.adapters.warehouse import DuckDBWarehouse
from dagster_agent_de.engines.volume import judge_volume, row_counts
from dagster_agent_de_tests.helpers import duck

STEADY = [1000, 1010, 990, 1005, 998]


@pytest.mark.parametrize(("current", "history", "growth", "passed", "severity", "starts"), [
    (1002, STEADY, False, True, "warn", "1,002 rows, within"),
    (0, STEADY, False, False, "error", "empty"),
    (400, STEADY, False, False, "warn", "drop"),
    (2600, STEADY, False, False, "warn", "spike"),
    (0, [0, 0, 0], False, True, "warn", "0 rows, within"),  # always empty is not an anomaly
    (5, [10, 12], False, True, "warn", "learning: 2 of 3"),
    (1200, [1000, 1100, 1200], True, False, "warn", "no new rows"),
    (1300, [1000, 1100, 1200], True, True, "warn", "1,300 rows"),
])
def test_verdicts(current, history, growth, passed, severity, starts) -> None:
    v = judge_volume(current, history, expect_growth=growth)
    assert (v.passed, v.severity) == (passed, severity) and v.reason.startswith(starts), v


def test_noisy_history_widens_the_band() -> None:
    noisy = [200, 900, 400, 1200, 600, 1500]
    assert judge_volume(100, noisy).passed  # within 4 robust deviations of a noisy median
    assert not judge_volume(100, STEADY).passed


def test_row_counts_in_one_query(tmp_path: Path) -> None:
    path = duck(tmp_path / "wh.duckdb", "create table a as select * from range(3)", "create table b as select * from range(0)")
    audit = AuditLog(None)
    with DuckDBWarehouse(path, audit) as wh:
        assert row_counts(wh, {"a": "a", "b's": "b"}) == {"a": 3, "b's": 0}
    assert len([e for e in audit.events if e.kind == "query"]) == 1
