"""Volume checks: every dbt model's row count against its own recent history (non-blocking).

One ``row_volume`` check per model, evaluated together in one step with one count query; the
history is the check's own past evaluations in the Dagster instance (``row_count`` metadata,
which the UI plots), so nothing else has to be stored. A failed check is picked up by the
failed-check sensor like any other.
"""

# No `from __future__ import annotations` here: Dagster reads these decorated functions' annotations when they
# are defined (a string `context` annotation or `Config` class is refused; verified on Dagster 1.13).

from collections.abc import Mapping

from dagster import (
    AssetCheckExecutionContext,
    AssetCheckKey,
    AssetCheckSpec,
    AssetKey,
    multi_asset_check,
)

from dagster_agent_de.dagster.resources import AgentWarehouseResource
from dagster_agent_de.dagster.translator import AgentDETranslator
from dagster_agent_de.errors import AgentDEError

VOLUME_CHECK = "row_volume"


def past_row_counts(instance, check_key: AssetCheckKey, current_run: str, limit: int = 14) -> list[int]:
    """``row_count`` of this check's earlier evaluations, oldest first (from the per-check index)."""
    counts = []
    for record in instance.event_log_storage.get_asset_check_execution_history(check_key, limit=limit + 2):
        if record.run_id == current_run or record.event is None or record.event.dagster_event is None:
            continue
        md = getattr(record.event.dagster_event.event_specific_data, "metadata", None) or {}
        value = getattr(md.get("row_count"), "value", None)
        if isinstance(value, int):
            counts.append(value)
    return counts[:limit][::-1]


def build_volume_checks(models: Mapping[str, tuple[AssetKey, str, bool]], translator: AgentDETranslator | None = None):
    """``models``: name -> (asset key, relation, expect growth). Opt out with ``meta.agent_de.volume: false``."""
    from dagster_agent_de.engines.volume import judge_volume, row_counts

    translator = translator or AgentDETranslator()
    by_key = {key: (name, rel, growth) for name, (key, rel, growth) in models.items()}
    specs = [AssetCheckSpec(VOLUME_CHECK, asset=key, description="Row count vs the model's recent history: empty loads, "
                            "drops and spikes" + (" and runs that add nothing (incremental)" if growth else ""),
                            metadata={"agent_de/kind": "volume"}) for key, (_, _, growth) in by_key.items()]

    @multi_asset_check(specs=specs, name="volume_checks", can_subset=True)
    def volume_checks(context: AssetCheckExecutionContext, agent_warehouse: AgentWarehouseResource):
        selected = sorted(context.selected_asset_check_keys, key=lambda k: k.asset_key.to_user_string())
        wanted = {by_key[k.asset_key][0]: by_key[k.asset_key][1] for k in selected if k.asset_key in by_key}
        try:
            with agent_warehouse.get_warehouse(context) as wh:
                counts = row_counts(wh, wanted)
        except AgentDEError as e:
            context.log.error(f"volume checks could not run: {e}")
            for k in selected:
                yield translator.error_check_result(e, "warn", "volume check", k.asset_key, VOLUME_CHECK)
            return
        for k in selected:
            name, _, growth = by_key[k.asset_key]
            verdict = judge_volume(counts[name], past_row_counts(context.instance, k, context.op_execution_context.run_id), expect_growth=growth)
            yield translator.volume_check_result(k.asset_key, VOLUME_CHECK, verdict)

    return volume_checks
