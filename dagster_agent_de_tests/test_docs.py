"""Docstrings that run: every example in the public modules is executed."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "dagster_agent_de.sql.guard",
    "dagster_agent_de.core.redact",
    "dagster_agent_de.engines.drift.diff",
    "dagster_agent_de.engines.investigate.models",
    "dagster_agent_de.adapters.warehouse.postgres",
    "dagster_agent_de.engines.entities.similarity",
    "dagster_agent_de.engines.reconcile.canonical",
    "dagster_agent_de.engines.reconcile.bisect",
    "dagster_agent_de.sql.scope",
    "dagster_agent_de.sql.facts",
    "dagster_agent_de.engines.performance.plan",
    "dagster_agent_de.engines.performance.verify",
    "dagster_agent_de.engines.performance.runtime",
    "dagster_agent_de.engines.performance.detectors.union_distinct",
    "dagster_agent_de.engines.performance.detectors.join_explosion",
    "dagster_agent_de.engines.performance.detectors.non_sargable",
    "dagster_agent_de.engines.performance.detectors.repeated_scan",
    "dagster_agent_de.engines.performance.detectors.order_by",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
