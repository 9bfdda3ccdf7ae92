"""duplicate_key: the grain is violated, e.g. duplicate payment ids from webhook retries.

The culprit is the first node where the duplicates appear, walking the key's lineage upstream
(through CTEs and models, sources included). Duplicates a source already holds are the loader's:
the finding says so and asks its owner (a deduplication in the first model is the stopgap).
Duplicates a model produces from unique inputs come from its SQL (a join fanning out: see
``join_fanout``), and no dedupe is proposed for them. For a failed uniqueness test they rank first only
when the duplicated key is where the failing column comes from: duplicates in a key that only joins into
the failing model fan it out, which ``join_fanout`` reports at the join.
"""

from __future__ import annotations

import re

from dagster_agent_de.core.models import Evidence, ProposedFix
from dagster_agent_de.engines.investigate.context import InvestigationContext
from dagster_agent_de.engines.investigate.failure import failure_symptom, find_dbt_test
from dagster_agent_de.engines.investigate.fixes import file_diff
from dagster_agent_de.engines.investigate.models import Hypothesis
from dagster_agent_de.engines.onboard.generate import LOADED_AT_NAMES
from dagster_agent_de.errors import AgentDEError
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
        conf = _confidence(ctx, node, key)
        if node.is_source:
            out.append(_loader_hypothesis(ctx, node, key, counts, conf, [ev]))
            continue
        origin, origin_col, evs, inputs_unique = _trace_origin(ctx, node, key)
        if origin is None or (inputs_unique and not origin.is_source):
            maker, col = (origin, origin_col or key) if origin is not None else (node, key)
            already = f", already in {maker.name}.{col}" if maker is not node else ""
            out.append(Hypothesis(
                pattern=PATTERN, model=maker.name, confidence=min(conf, 0.6), columns=[key], evidence=[ev, *evs],
                summary=(f"{counts}{already}: the inputs of {maker.name} hold no duplicate {col}, so its SQL produces "
                         "them (a join that fans out?)."),
                proposed_fix=ProposedFix(description=f"Find the join in {maker.name} that multiplies rows per {col} and "
                                                     "fix it (key, grain or pre-aggregation); a dedupe would hide it."),
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


ORIGIN_CONFIDENCE = 0.9  # a uniqueness failure, and these duplicates are its column's origin
ELSEWHERE_CONFIDENCE = 0.5  # a uniqueness failure of another column: a join fans it out (join_fanout says where)
OTHER_CONFIDENCE = 0.7  # another failure (a reconciliation's extra rows)


def _confidence(ctx: InvestigationContext, node: Node, key: str) -> float:
    """How far duplicates of ``node.key`` explain the failure: near-certain for a failed uniqueness test when the
    duplicated key is where the failing column comes from (through the lineage of models and sources); else
    they reach the failing model only by a join that multiplies its rows, which is join_fanout's finding."""
    check = ctx.failure.check or ""
    if failure_symptom(ctx.manifest, ctx.failure) != "duplicates" and not check.startswith("unique"):
        return OTHER_CONFIDENCE
    lineage = _failing_lineage(ctx)
    if lineage is None:  # which column failed is unknown (a singular test): no claim either way
        return ORIGIN_CONFIDENCE
    return ORIGIN_CONFIDENCE if (node.unique_id, key.lower()) in lineage else ELSEWHERE_CONFIDENCE


def _failing_lineage(ctx: InvestigationContext) -> set[tuple[str, str]] | None:
    """``(node id, column)`` of the failing uniqueness test's columns and of every column upstream they are
    read from as they are (through CTEs, models and sources); ``None`` when the test's columns are unknown."""
    assert ctx.tracer is not None
    try:
        failing = ctx.manifest.find(ctx.failure.asset)
    except AgentDEError:
        return None
    test = find_dbt_test(ctx.manifest, ctx.failure.check, failing)  # the one on the failing asset (names repeat across packages)
    if test is None:
        return None
    kwargs = (test.get("test_metadata") or {}).get("kwargs") or {}
    cols = kwargs.get("combination_of_columns") or [kwargs.get("column_name") or test.get("column_name")]
    cols = [str(c).strip('"`').lower() for c in cols if c]
    attached = test.get("attached_node") or next(iter((test.get("depends_on") or {}).get("nodes") or []), None)
    if attached in ctx.manifest.nodes:
        failing = ctx.manifest.nodes[attached]
    if not cols:
        return None
    out: set[tuple[str, str]] = set()
    todo = [(failing, c) for c in cols]
    while todo and len(out) < 500:
        current, col = todo.pop()
        if (current.unique_id, col) in out:
            continue
        out.add((current.unique_id, col))
        if current.is_source:
            continue
        outputs = ctx.tracer.columns(current).outputs
        feeds = outputs.get(col) or {(rel, col) for rel, c in outputs.get("*", set()) if c == "*"}
        for rel, c in feeds:
            parent = ctx.relation_node(rel)
            if parent is not None and c != "*":
                todo.append((parent, c.lower()))
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


def _trace_origin(ctx: InvestigationContext, node: Node, key: str
                  ) -> tuple[Node | None, str | None, list[Evidence], bool]:
    """The furthest upstream node (source included) on the key's lineage that already holds duplicates, and
    whether the inputs of the last model on that path were measured and hold none (its SQL makes them)."""
    assert ctx.tracer is not None
    evs: list[Evidence] = []
    origin: tuple[Node | None, str | None] = (None, None)
    current, col = node, key.lower()
    inputs_unique = False
    for _ in range(20):
        if current.is_source:
            break
        feeds = ctx.tracer.columns(current).outputs.get(col) or {
            (rel, col) for rel, c in ctx.tracer.columns(current).outputs.get("*", set()) if c == "*"}
        step = None
        unique_inputs = 0  # inputs measured and holding no duplicate
        for rel, c in sorted(feeds):
            parent = ctx.relation_node(rel)
            if parent is None or c == "*" or not parent.relation_name:
                continue
            row, ev = _duplicates(ctx, parent, c, f"are the duplicates of {key} already in {parent.display_name}.{c}?")
            evs.append(ev)
            if row is not None and int(row["duplicate_keys"] or 0) > 0:
                step = (parent, c)
                break
            unique_inputs += row is not None
        if step is None:
            inputs_unique = unique_inputs > 0 and unique_inputs == len(feeds)
            break
        origin = step
        current, col = step
    return origin[0], origin[1], evs, inputs_unique


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
# (onboarding's LOADED_AT_NAMES holds the loaders' own only since bc73adc: the update times are named here)
LOAD_TIME_COLUMNS = tuple(dict.fromkeys((*(n for n in LOADED_AT_NAMES if n != "created_at"), "ingested_at",
                                         "_updated_at", "updated_at", "modified_at")))


def _order_col(ctx: InvestigationContext, node: Node, origin: Node | None = None) -> str | None:
    """The load-time column to keep the latest copy by: the origin's ``loaded_at_field``, else a column of the
    origin named like one (``LOAD_TIME_COLUMNS``); ``None`` when there is none (any copy is arbitrary). Another
    table the model reads (a source it joins) lends its ``loaded_at_field`` only when the origin has that column:
    the dedupe orders the origin's rows."""
    if origin is None:
        return None
    if origin.loaded_at_field:
        return origin.loaded_at_field
    live = set(ctx.relation_columns(origin))
    for parent in (ctx.manifest.nodes[u] for u in ctx.manifest.parents(node.unique_id)):
        field = parent.loaded_at_field
        if field and field.lower() in live:
            return field
    return next((c for c in LOAD_TIME_COLUMNS if c in live), None)


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
