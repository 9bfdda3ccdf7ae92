"""duplicate_key: the grain is violated, e.g. duplicate payment ids from webhook retries."""

from __future__ import annotations

import re

from dagster_agent_de.engines.investigate.context import InvestigationContext
from dagster_agent_de.engines.investigate.fixes import file_diff
from dagster_agent_de.engines.investigate.models import Hypothesis
from dagster_agent_de.manifest import Node
from dagster_agent_de.sql.lineage import analyze_columns, normalize_relation

PATTERN = "duplicate_key"


def _unique_keys(ctx: InvestigationContext, node: Node) -> list[str]:
    """Columns with a dbt ``unique`` test on this model (and the failing test's column)."""
    out = []
    for n in ctx.manifest.data.get("nodes", {}).values():
        meta = n.get("test_metadata") or {}
        if n.get("resource_type") == "test" and meta.get("name") == "unique" and node.unique_id in (n.get("depends_on") or {}).get("nodes", []):
            col = (meta.get("kwargs") or {}).get("column_name") or n.get("column_name")
            if col:
                out.append(col)
    return out


def detect(ctx: InvestigationContext, node: Node) -> list[Hypothesis]:
    out = []
    if node.is_source or not node.relation_name:
        return out
    for key in _unique_keys(ctx, node):
        sql = (f"select count(*) as duplicate_keys, coalesce(sum(n - 1), 0) as extra_rows, max(n) as max_copies "
               f"from (select {key}, count(*) as n from {node.relation_name} where {key} is not null group by {key} having count(*) > 1) d")
        res, ev = ctx.run(sql, f"duplicates of {key} in {node.name} (declared unique)")
        if res is None:
            continue
        row = res.one()
        dups = int(row["duplicate_keys"] or 0)
        if dups == 0:
            continue
        origin, origin_col, evs = _trace_origin(ctx, node, key)
        conf = 0.9 if (ctx.failure.check or "").startswith("unique") else 0.7
        where = f"already in {origin.display_name}.{origin_col}" if origin else f"introduced in {node.name}"
        part = origin_col or key
        order = _order_col(ctx, node, origin)
        desc = (f"Deduplicate in {node.name}: keep one row per {key} (the latest load), "
                f"e.g. `qualify row_number() over (partition by {part} order by {order} desc) = 1`")
        fix = file_diff(ctx.manifest, node, lambda t, p=part, o=order: _add_qualify(t, p, o), desc)
        out.append(Hypothesis(
            pattern=PATTERN, model=node.name, confidence=conf, columns=[key],
            summary=(f"{dups:,} values of {key} appear more than once in {node.name} ({int(row['extra_rows'] or 0):,} extra rows, "
                     f"up to {int(row['max_copies'] or 0)} copies): the duplicates are {where}, and {node.name} does not deduplicate."),
            evidence=[ev, *evs], proposed_fix=fix,
        ))
    return out


def _trace_origin(ctx: InvestigationContext, node: Node, key: str):
    sql = ctx.manifest.compiled_sql(node.unique_id) or ""
    cols = analyze_columns(sql, ctx.dialect)
    evs = []
    for rel, col in sorted(cols.outputs.get(key.lower(), set())):
        parent = ctx.relation_node(rel)
        if parent is None or col == "*":
            continue
        q = (f"select count(*) as duplicate_keys from (select {col} from {parent.relation_name} "
             f"where {col} is not null group by {col} having count(*) > 1) d")
        res, ev = ctx.run(q, f"are the duplicates of {key} already in {parent.display_name}.{col}?")
        evs.append(ev)
        if res is not None and int(res.scalar() or 0) > 0:
            return parent, col, evs
    return None, None, evs


def _order_col(ctx: InvestigationContext, node: Node, origin: Node | None = None) -> str:
    """The load-time column to keep the latest copy by (the source's loaded_at_field)."""
    parents = [origin] if origin is not None else []
    parents += [ctx.manifest.nodes[u] for u in ctx.manifest.parents(node.unique_id)]
    for parent in parents:
        field = parent.loaded_at_field
        if field:
            return field
    return "1"


def _add_qualify(text: str, key: str, order: str) -> str:
    if re.search(r"(?i)\bqualify\b", text):
        return text
    body = text.rstrip("\n")
    return body + f"\nqualify row_number() over (partition by {key} order by {order} desc) = 1\n"


__all__ = ["PATTERN", "detect", "normalize_relation"]
