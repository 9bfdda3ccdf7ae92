"""The CTE-style fixture project, built once per test session (real dbt-duckdb build)."""

from __future__ import annotations

import pytest

from dagster_agent_de_tests.cte.replay import CteEnv


@pytest.fixture(scope="session")
def cte_env(tmp_path_factory: pytest.TempPathFactory) -> CteEnv:
    return CteEnv.build(tmp_path_factory.mktemp("cte"))
