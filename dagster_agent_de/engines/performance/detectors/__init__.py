"""The performance pattern library: one detector per module, ``detect(ctx) -> list[PerfHypothesis]``.

Each reads the model's compiled SQL (sqlglot) and its analyzed plan (``EXPLAIN (ANALYZE, FORMAT JSON)``),
returns nothing when its pattern is absent, and offers rewrites as text edits that apply alike to the
compiled SQL (verified by :func:`~dagster_agent_de.engines.performance.verify.verify`) and the model file.
"""

from __future__ import annotations

from dagster_agent_de.engines.performance.detectors import (
    cross_join,
    incremental_filter,
    join_explosion,
    non_sargable,
    order_by,
    repeated_scan,
    spill,
    union_distinct,
    view_chain,
    window_unpartitioned,
)

DETECTORS = (join_explosion, union_distinct, non_sargable, repeated_scan, cross_join, order_by, incremental_filter,
             window_unpartitioned, view_chain, spill)

__all__ = ["DETECTORS"]
