"""stale_input: an upstream source whose latest load is old, or whose last load added no rows."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from dagster_agent_de.core.models import ProposedFix
from dagster_agent_de.engines.investigate.context import InvestigationContext
from dagster_agent_de.engines.investigate.models import Hypothesis
from dagster_agent_de.manifest import Node

PATTERN = "stale_input"
_HOURS = {"minute": 1 / 60, "hour": 1, "day": 24}


def _threshold_hours(source: Node) -> float:
    fresh = source.freshness
    for level in ("error_after", "warn_after"):
        spec = fresh.get(level) or {}
        if spec.get("count"):
            return float(spec["count"]) * _HOURS.get(spec.get("period", "hour"), 1)
    return 24.0


def detect(ctx: InvestigationContext, node: Node) -> list[Hypothesis]:
    """Runs once per upstream source of the failing asset (the engine passes sources here too)."""
    if not node.is_source:
        return []
    field = node.loaded_at_field
    if not field or not node.relation_name:
        return []
    sql = (f"select count(*) as row_count, max({field}) as latest_load, "
           f"sum(case when {field} = (select max({field}) from {node.relation_name}) then 1 else 0 end) as rows_in_latest_load "
           f"from {node.relation_name}")
    res, ev = ctx.run(sql, f"when was {node.display_name} last loaded, and did the load add rows?")
    if res is None:
        return []
    row = res.one()
    count, latest = int(row["row_count"] or 0), row["latest_load"]
    if count == 0:
        return [Hypothesis(pattern=PATTERN, model=node.display_name, confidence=0.75, evidence=[ev],
                           summary=f"{node.display_name} is empty: every model reading it loads nothing.",
                           proposed_fix=ProposedFix(description=f"Check the loader of {node.display_name}."),
                           needs_authority=_ask_loader(node))]
    if not isinstance(latest, datetime):
        return []
    now = datetime.now(timezone.utc) if latest.tzinfo else datetime.now(timezone.utc).replace(tzinfo=None)
    age_h = (now - latest) / timedelta(hours=1)
    limit = _threshold_hours(node)
    if age_h <= limit:
        return []
    return [Hypothesis(
        pattern=PATTERN, model=node.display_name, confidence=round(min(0.8, 0.5 + 0.05 * age_h / limit), 3),
        summary=f"{node.display_name} was last loaded {age_h:.1f} h ago (freshness limit {limit:g} h): downstream "
        "models ran successfully on stale data.",
        columns=[field], evidence=[ev],
        proposed_fix=ProposedFix(description=f"Re-run or repair the loader of {node.display_name}; nothing to change in dbt."),
        needs_authority=_ask_loader(node),
    )]


def _ask_loader(node: Node) -> str:
    loader = node.raw.get("loader") or "its loader"
    return (f"Ask the owner of the loader of {node.display_name} ({loader}; {node.owner or 'owner unknown'}) "
            "to re-run or repair it: nothing in dbt can fix stale input")
