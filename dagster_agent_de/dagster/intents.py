"""Intent checks in Dagster: one check per declared intent on its model, and on every model that sums
a column, ``intent_summed_inputs_not_null`` (its inputs derived from lineage when it runs). Non-blocking;
a failure says the intent's *why* and is investigated like any other failed check."""

# No `from __future__ import annotations` here: Dagster reads these decorated functions' annotations when they
# are defined (a string `context` annotation or `Config` class is refused; verified on Dagster 1.13).

import re
from collections.abc import Sequence
from typing import Any

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

DERIVED_CHECK = "intent_summed_inputs_not_null"
_SUM = re.compile(r"\bsum\s*\(", re.I)


def models_that_sum(manifest: Any) -> list[str]:
    """Models whose SQL sums something (cheap, at load: no parsing)."""
    return sorted(n.name for n in manifest.models() if _SUM.search(n.raw.get("raw_code") or n.raw.get("compiled_code") or ""))


def build_intent_checks(declared: Sequence[Any], summing: Sequence[str], key_for: dict[str, AssetKey],
                        translator: AgentDETranslator | None = None, invalid: Sequence[Any] = ()):
    """``invalid``: the :class:`InvalidIntents` of models whose meta has a bad entry; each gets an
    ``intents_invalid`` check that fails with what to fix (the location loads, the valid intents run)."""
    from dagster_agent_de.engines.intents.intents import INVALID_CHECK, check_name

    translator = translator or AgentDETranslator()
    by_check: dict[AssetCheckKey, Any] = {}
    specs = []
    for bad in invalid:
        key = AssetCheckKey(key_for.get(bad.model, AssetKey([bad.model])), INVALID_CHECK)
        by_check[key] = bad
        specs.append(AssetCheckSpec(INVALID_CHECK, asset=key.asset_key, description=f"Invalid intents: {bad.error}"[:1000],
                                    metadata={"agent_de/kind": "intent", "agent_de/invalid_spec": str(bad.error)[:1000]}))
    for intent in declared:
        key = AssetCheckKey(key_for.get(intent.model, AssetKey([intent.model])), check_name(intent))
        if key in by_check:
            continue
        by_check[key] = intent
        specs.append(AssetCheckSpec(key.name, asset=key.asset_key, description=f"Intent: {intent.why}",
                                    metadata={"agent_de/kind": "intent", "agent_de/intent": intent.kind}))
    for model in summing:
        key = AssetCheckKey(key_for.get(model, AssetKey([model])), DERIVED_CHECK)
        by_check[key] = model
        specs.append(AssetCheckSpec(DERIVED_CHECK, asset=key.asset_key, metadata={"agent_de/kind": "intent", "agent_de/intent": "derived"},
                                    description="Every column summed into this model's metrics is never NULL upstream "
                                                "(a NULL vanishes from a SUM without an error)."))
    if not specs:
        return None

    @multi_asset_check(specs=specs, name="intent_checks", can_subset=True)
    def intent_checks(context: AssetCheckExecutionContext, agent_warehouse: AgentWarehouseResource):
        from dagster_agent_de.engines.intents import evaluate_intent, sum_inputs

        selected = sorted(context.selected_asset_check_keys, key=lambda k: (k.asset_key.to_user_string(), k.name))
        done: set[AssetCheckKey] = set()
        for key in [k for k in selected if k.name == INVALID_CHECK]:
            context.log.error(f"meta.agent_de.intents is invalid: {by_check[key].error}")
            done.add(key)
            yield translator.error_check_result(by_check[key].error, "error", "intent check", key.asset_key, key.name)
        selected = [k for k in selected if k not in done]
        try:
            manifest = agent_warehouse.manifest()
            with agent_warehouse.get_warehouse(context) as wh:
                inputs = sum_inputs(manifest, wh.dialect, list(declared)) if any(k.name == DERIVED_CHECK for k in selected) else None
                for key in selected:
                    target = by_check[key]
                    if isinstance(target, str) and inputs is not None:  # derived: the inputs of this model's sums
                        results = [evaluate_intent(i, manifest, wh) for i in inputs.intents
                                   if (i.derived_from or "").startswith(f"{target}.")]
                        if not results:  # say why nothing was checked; never pass on what could not be read
                            done.add(key)
                            yield translator.summed_inputs_unchecked(key, target, inputs.unreadable.get(target),
                                                                     inputs.notes.get(target))
                            continue
                    else:
                        results = [evaluate_intent(target, manifest, wh)]
                    done.add(key)  # only once it has a result: a key whose query raised gets its error below
                    yield translator.intent_check_result(key, results)
        except AgentDEError as e:
            context.log.error(f"intent checks could not run: {e}")
            for key in selected:
                if key not in done:
                    yield translator.error_check_result(e, "warn", "intent check", key.asset_key, key.name)

    return intent_checks
