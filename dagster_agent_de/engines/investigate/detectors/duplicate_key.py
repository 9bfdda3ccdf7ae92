"""duplicate_key: the grain is violated, e.g. duplicate payment ids from webhook retries.

The culprit is the first node where the duplicates appear, walking the key's lineage upstream
(through CTEs and models, sources included). Duplicates a source already holds are the loader's:
the finding says so and asks its owner (a deduplication in the first model is the stopgap).
Duplicates a model produces from unique inputs come from its SQL (a join fanning out: see
``join_fanout``), and no dedupe is proposed for them.
"""

from __future__ import annotations

import re

from dagster_agent_de.core.models import Evidence, ProposedFix
from dagster_agent_de.engines.investigate.context import InvestigationContext
from dagster_agent_de.engines.investigate.fixes import file_diff
from dagster_agent_de.engines.investigate.models import Hypothesis
from dagster_agent_de.engines.onboard.generate import LOADED_AT_NAMES
from dagster_agent_de.manifest import Node
from dagster_agent_de.sql.lineage import normalize_relation

PATTERN = "duplicate_key"


def _unique_keys(ctx: InvestigationContext, node: Node) -> list[str]:
    """Columns with a dbt ``unique`` test on this node (model or source)."""
    out = []
    for n in ctx.manifest.data.get("nodes", {}).values():
        meta = n.get("test_metadata") or {}
        if n.get("resource_type") == "test" and meta.get("name") == "unique" and node.unique_id in (n.get("depends_on") or {}).get("nodes", []):
            col = (meta.get("kwargs") or {}).get("column_name") or n.get("column_name")
            if col:
                out.append(col)
    return out


def _duplicates(ctx: InvestigationContext, node: Node, col: str, why: str) -> tuple[dict | None, Evidence]:
    sql = (f"select count(*) as duplicate_keys, coalesce(sum(n - 1), 0) as extra_rows, max(n) as max_copies "
           f"from (select {col}, count(*) as n from {node.relation_name} where {col} is not null group by {col} "
           f"having count(*) > 1) d")
    res, ev = ctx.run(sql, why)
    return (res.one() if res is not None else None), ev


def detect(ctx: InvestigationContext, node: Node) -> list[Hypothesis]:
    out: list[Hypothesis] = []
    if not node.relation_name:
        return out
    for key in _unique_keys(ctx, node):
        row, ev = _duplicates(ctx, node, key, f"duplicates of {key} in {node.display_name} (declared unique)")
        if row is None or int(row["duplicate_keys"] or 0) == 0:
            continue
        dups = int(row["duplicate_keys"] or 0)
        counts = (f"{dups:,} values of {key} appear more than once in {node.display_name} "
                  f"({int(row['extra_rows'] or 0):,} extra rows, up to {int(row['max_copies'] or 0)} copies)")
        conf = 0.9 if (ctx.failure.check or "").startswith("unique") else 0.7
        if node.is_source:
            out.append(_loader_hypothesis(ctx, node, key, counts, conf, [ev]))
            continue
        origin, origin_col, evs = _trace_origin(ctx, node, key)
        if origin is None:
            out.append(Hypothesis(
                pattern=PATTERN, model=node.name, confidence=0.6, columns=[key], evidence=[ev, *evs],
                summary=(f"{counts}: its inputs hold no duplicate {key}, so the SQL of {node.name} produces them "
                         "(a join that fans out?)."),
                proposed_fix=ProposedFix(description=f"Find the join in {node.name} that multiplies rows per {key} and fix "
                                                     "it (key, grain or pre-aggregation); a dedupe would hide it."),
            ))
            continue
        first_model = _first_model(ctx, node, origin)
        where = f"already in {origin.display_name}.{origin_col}"
        order = _order_col(ctx, first_model, origin)
        part = _column_in(ctx, first_model, origin, origin_col) or key
        window = f"partition by {part} order by {order} desc" if order else f"partition by {part}"
        stopgap = " (a stopgap until the loader is fixed)" if origin.is_source else ""
        if order:
            desc = (f"Deduplicate in {first_model.name}{stopgap}: keep one row per {part}, the latest load by "
                    f"{order}, e.g. `qualify row_number() over ({window}) = 1`")
        else:
            desc = (f"Deduplicate in {first_model.name}{stopgap}: keep one row per {part}, e.g. `qualify row_number() "
                    f"over ({window}) = 1`. Which copy it keeps is arbitrary: {origin.display_name} has no load-time "
                    f"column (loaded_at_field, _loaded_at, updated_at, ...) to keep the latest by, so the copies must "
                    f"be equal, or a rule must say which one is right")
        if origin.is_source:
            desc += f"; and have the loader of {origin.display_name} stop loading duplicates"
        table = (origin.identifier or origin.name) if origin.is_source else origin.name
        fix = file_diff(ctx.manifest, first_model, lambda t, w=window, tb=table: _add_qualify(t, w, tb), desc)
        out.append(Hypothesis(
            pattern=PATTERN, model=first_model.name, confidence=conf, columns=[key],
            summary=(f"{counts}: the duplicates are {where}"
                     + (f" (loaded twice by its loader), and {first_model.name} does not deduplicate."
                        if origin.is_source else f", and {first_model.name} does not deduplicate.")),
            evidence=[ev, *evs], proposed_fix=fix,
            needs_business_context=None if order else (
                f"{origin.display_name} holds copies of the same {origin_col} and no column says which was loaded last: "
                f"are the copies equal (keep any), or which one should {first_model.name} keep?"),
            needs_authority=(f"Ask the owner of the loader of {origin.display_name} ({origin.owner or 'unknown owner'}) "
                             f"to stop loading duplicate {origin_col} values (retries loaded twice?)")
            if origin.is_source else None,
        ))
    return out


def _loader_hypothesis(ctx: InvestigationContext, source: Node, key: str, counts: str, conf: float,
                       evs: list[Evidence]) -> Hypothesis:
    return Hypothesis(
        pattern=PATTERN, model=source.display_name, confidence=conf, columns=[key], evidence=evs,
        summary=f"{counts}: the loader of {source.display_name} loads duplicates (retries loaded twice?).",
        proposed_fix=ProposedFix(description=f"Repair the loader of {source.display_name}, and deduplicate in the first "
                                             "model that reads it meanwhile; nothing to change in dbt for the source."),
        needs_authority=(f"Ask the owner of the loader of {source.display_name} ({source.owner or 'unknown owner'}) "
                         f"to stop loading duplicate {key} values"),
    )


def _trace_origin(ctx: InvestigationContext, node: Node, key: str) -> tuple[Node | None, str | None, list[Evidence]]:
    """The furthest upstream node (source included) on the key's lineage that already holds duplicates."""
    assert ctx.tracer is not None
    evs: list[Evidence] = []
    origin: tuple[Node | None, str | None] = (None, None)
    current, col = node, key.lower()
    for _ in range(20):
        if current.is_source:
            break
        feeds = ctx.tracer.columns(current).outputs.get(col) or {
            (rel, col) for rel, c in ctx.tracer.columns(current).outputs.get("*", set()) if c == "*"}
        step = None
        for rel, c in sorted(feeds):
            parent = ctx.relation_node(rel)
            if parent is None or c == "*" or not parent.relation_name:
                continue
            row, ev = _duplicates(ctx, parent, c, f"are the duplicates of {key} already in {parent.display_name}.{c}?")
            evs.append(ev)
            if row is not None and int(row["duplicate_keys"] or 0) > 0:
                step = (parent, c)
                break
        if step is None:
            break
        origin = step
        current, col = step
    return origin[0], origin[1], evs


def _first_model(ctx: InvestigationContext, node: Node, origin: Node) -> Node:
    """Where to deduplicate: the origin itself if a model, else the model on the path that reads the source."""
    if not origin.is_source:
        return origin
    path = [node] + [ctx.manifest.nodes[u] for u in ctx.manifest.upstream(node.unique_id)]
    for n in path:
        if not n.is_source and origin.unique_id in ctx.manifest.parents(n.unique_id):
            return n
    return node


def _column_in(ctx: InvestigationContext, model: Node, origin: Node, origin_col: str | None) -> str | None:
    """The name the model gives the origin's column in its SQL as written (for the dedupe's partition)."""
    if origin_col is None or not origin.relation_name:
        return None
    assert ctx.tracer is not None
    rel = normalize_relation(origin.relation_name)
    if origin is model:
        return origin_col
    return origin_col if ctx.tracer.columns(model).reads_column(rel, origin_col) else None


# load-time columns, most telling first: the loaders' own (as onboarding looks for them), then update times;
# never a creation time (every copy of a row loaded twice has the same one)
LOAD_TIME_COLUMNS = (*(n for n in LOADED_AT_NAMES if n != "created_at"), "ingested_at", "_updated_at")


def _order_col(ctx: InvestigationContext, node: Node, origin: Node | None = None) -> str | None:
    """The load-time column to keep the latest copy by: the source's ``loaded_at_field``, else a column of
    the origin named like one (``LOAD_TIME_COLUMNS``); ``None`` when there is none (any copy is arbitrary)."""
    parents = [origin] if origin is not None else []
    parents += [ctx.manifest.nodes[u] for u in ctx.manifest.parents(node.unique_id)]
    for parent in parents:
        field = parent.loaded_at_field
        if field:
            return field
    if origin is not None:
        live = set(ctx.relation_columns(origin))
        return next((c for c in LOAD_TIME_COLUMNS if c in live), None)
    return None


def _add_qualify(text: str, window: str, table: str = "") -> str:
    if re.search(r"(?i)\bqualify\b", text):
        return text
    body = text.rstrip("\n")
    t = re.escape(table)
    m = re.search(rf"(?is)(\bfrom\s+(?:\{{\{{[^}}]*['\"]{t}['\"][^}}]*\}}\}}|[\w.\"]*{t}\"?)(?:\s+(?:as\s+)?\w+)?\s*)\)", body) \
        if table else None
    m = m or re.search(r"(?is)(\bfrom\s+(?:\{\{[^}]*\}\}|[\w.\"]+)(?:\s+(?:as\s+)?\w+)?\s*)\)", body)
    if m is not None and re.match(r"(?is)\s*with\b", body):
        # CTE style: deduplicate in the import CTE that reads the source, where the rows enter
        end = m.start(1) + len(m.group(1).rstrip())
        return body[:end] + f"\n    qualify row_number() over ({window}) = 1" + body[end:] + "\n"
    return body + f"\nqualify row_number() over ({window}) = 1\n"


__all__ = ["PATTERN", "detect", "normalize_relation"]
