"""view_chain: a view (or a chain of views) recomputed by every model that reads it.

A dbt view is not stored: each reader runs its SELECT again, and a view over views runs the whole
chain. The evidence is the chain (from the manifest) and the plan's scans of the tables underneath,
paid by this model on every run and again by each other reader. The fix, materializing the view as
a table, changes how the project is built and what it costs (storage, build time, freshness): it is
proposed as a diff with an authority escalation, never applied, and cannot be verified by a read.
"""

from __future__ import annotations

import difflib

from dagster_agent_de.engines.performance.models import PerfContext, PerfHypothesis

PATTERN = "view_chain"
MIN_READERS = 3
"""A view read by this many models is recomputed this many times per build."""
MIN_DEPTH = 3
"""A chain of this many views is recomputed in full by each reader."""
MIN_SCANNED = 100_000
"""Below this many rows scanned under the model, recomputing is cheap whatever the chain."""


def materialize(text: str) -> str:
    """The model file with ``{{ config(materialized='table') }}`` first.

    >>> materialize("select 1\\n")
    "{{ config(materialized='table') }}\\n\\nselect 1\\n"
    """
    return "{{ config(materialized='table') }}\n\n" + text


def detect(ctx: PerfContext) -> list[PerfHypothesis]:
    views = ctx.upstream_views
    if not views or ctx.plan.rows_scanned < MIN_SCANNED:
        return []
    depth = max(v.depth for v in views)
    shared = [v for v in views if v.readers >= MIN_READERS]
    if not shared and depth < MIN_DEPTH:
        return []
    # materialize the view most models recompute (nearest the model on a tie): one table serves them all
    view = max(shared or views, key=lambda v: (v.readers, -v.depth))
    diff = "".join(difflib.unified_diff(view.text.splitlines(keepends=True), materialize(view.text).splitlines(keepends=True),
                                        fromfile=f"a/{view.path}", tofile=f"b/{view.path}")) if view.text else ""
    chain = " <- ".join(v.name for v in sorted(views, key=lambda v: v.depth))
    scans = sorted(ctx.plan.scans(), key=lambda s: -s.rows)[:5]
    return [PerfHypothesis(
        pattern=PATTERN, confidence=0.55,
        summary=(f"the model recomputes {len(views)} view(s) on every run ({chain}; depth {depth}): "
                 f"{ctx.plan.rows_scanned:,} rows scanned underneath; {view.name} is read by {view.readers} models, "
                 f"each recomputing it: materialize {view.name} as a table"),
        operators=[s.evidence() for s in scans],
        needs_authority=(f"Materialize {view.name} as a table? It changes how the project is built and what it costs "
                         f"(storage and build time for {view.name}; {view.readers} readers stop recomputing it)"),
        diff=diff,
    )]
