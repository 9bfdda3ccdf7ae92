"""Golden files: the facts and output lineage of >= 40 model SQL shapes, through every scope."""

from __future__ import annotations

import os

import pytest

from dagster_agent_de_tests.sql.golden import Shape, analyze, load_shapes, write_expected

SHAPES = load_shapes()


def test_there_are_enough_shapes_in_both_dialects() -> None:
    assert len(SHAPES) >= 40
    assert {s.dialect for s in SHAPES} == {"duckdb", "snowflake"}
    assert all(s.expected for s in SHAPES), [s.name for s in SHAPES if not s.expected]


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: s.name)
def test_shape(shape: Shape) -> None:
    found = analyze(shape)
    if os.environ.get("AGENT_DE_UPDATE_GOLDEN"):
        write_expected(shape, found)
        return
    assert found == shape.expected
