"""The bug-pattern library: one detector per module, one signature, a registry tuple.

``detect(ctx: InvestigationContext, node: Node) -> list[Hypothesis]`` is called for the
failing asset and every upstream node (models and sources), nearest first. A detector
runs only read-only queries through ``ctx.run`` and returns nothing when its pattern is
absent (each has a negative test).
"""

from __future__ import annotations

from dagster_agent_de.engines.investigate.detectors import (
    currency_mixing,
    duplicate_key,
    filter_row_drop,
    join_fanout,
    join_row_drop,
    null_semantics,
    schema_drift,
    stale_input,
    type_coercion,
    unmatched_left_join,
)

DETECTORS = (
    schema_drift,
    join_row_drop,
    join_fanout,
    null_semantics,
    unmatched_left_join,
    duplicate_key,
    currency_mixing,
    type_coercion,
    stale_input,
    filter_row_drop,
)

__all__ = ["DETECTORS"]
