"""window_unpartitioned: a window function with no ``partition by`` over a large input.

Without a partition the window is one group: every row goes through one sort (or one frame) that no
thread can share, and DuckDB's plan shows a ``WINDOW`` operator whose projection has ``OVER (ORDER BY
...)`` with no ``PARTITION BY``. The fix depends on what the window means (a per-customer sequence
wants ``partition by customer_id``; a global row number may not be needed at all), so the results
would change: the finding names the window and its numbers, and proposes no diff.
"""

from __future__ import annotations

from sqlglot import exp

from dagster_agent_de.engines.performance.models import PerfContext, PerfHypothesis

PATTERN = "window_unpartitioned"
MIN_ROWS = 100_000
"""A window over fewer rows than this is not the problem, partitioned or not."""
MIN_SHARE = 0.2
"""Nor one that takes less than this part of the operators' time."""


def detect(ctx: PerfContext) -> list[PerfHypothesis]:
    written = [w for w in ctx.tree.find_all(exp.Window) if not w.args.get("partition_by")]
    if not written:
        return []
    windows = [o for o in ctx.plan.named("WINDOW") if o.rows >= MIN_ROWS and "OVER (" in o.info("Projections")
               and "PARTITION BY" not in o.info("Projections").upper()]
    if not windows:
        return []
    op = max(windows, key=lambda o: o.seconds)
    share = ctx.plan.share(op)
    if share < MIN_SHARE:
        return []
    return [PerfHypothesis(
        pattern=PATTERN, confidence=round(0.5 + 0.3 * min(share, 1.0), 2),
        summary=(f"{written[0].sql(ctx.dialect)} has no partition: one {op.rows:,}-row window "
                 f"({op.seconds:.3f}s, {share:.0%} of the operators' time) that no thread can share; partition it "
                 "by the key it is meant per (results change, so no diff is proposed)"),
        operators=[{**op.evidence(), "window": op.info("Projections")}],
    )]
