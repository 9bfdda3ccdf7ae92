"""spill: the query spilled to disk under memory pressure.

DuckDB's ``EXPLAIN (ANALYZE, FORMAT JSON)`` reports it in ``system``: ``total_bytes_spilled`` and
``peak_temp_dir_size`` (checked on DuckDB 1.4: both present, 0 when nothing spilled). No operator
carries its own spill figure, so the evidence is the query's totals plus the operators holding the
most state (their ``intermediate_size_bytes``): the hash join, aggregate or sort that did not fit.
The fix is less state (fewer or narrower columns through the join, aggregating before joining) or
more memory: neither is a rewrite that can be proven equivalent, so none is proposed.
"""

from __future__ import annotations

from dagster_agent_de.engines.performance.models import PerfContext, PerfHypothesis

PATTERN = "spill"
_STATEFUL = ("HASH_JOIN", "HASH_GROUP_BY", "PERFECT_HASH_GROUP_BY", "ORDER_BY", "WINDOW", "TOP_N", "PIECEWISE_MERGE_JOIN")


def detect(ctx: PerfContext) -> list[PerfHypothesis]:
    spilled = max(ctx.plan.bytes_spilled, ctx.plan.peak_temp_bytes)
    if spilled <= 0:
        return []
    stateful = sorted((o for o in ctx.plan.operators() if o.name in _STATEFUL), key=lambda o: -o.size_bytes)[:3]
    top = stateful[0] if stateful else ctx.plan.root
    memory = (ctx.plan.raw.get("system") or {}).get("peak_buffer_memory")
    return [PerfHypothesis(
        pattern=PATTERN, confidence=0.7,
        summary=(f"the query spilled {ctx.plan.bytes_spilled:,} bytes to disk (peak {ctx.plan.peak_temp_bytes:,} bytes in "
                 f"the temp directory{f', peak buffer memory {int(memory):,} bytes' if memory else ''}); the largest "
                 f"state is {top.name} ({top.size_bytes:,} bytes over {top.rows:,} rows): carry fewer columns through "
                 "it or aggregate first, or give the warehouse more memory"),
        operators=[{**o.evidence(), "size_bytes": o.size_bytes} for o in stateful],
    )]
