"""Node reads ``meta``, ``freshness`` and ``loaded_at_field`` where dbt 1.10+ wants them (under ``config:``)
and where older projects have them (top-level properties)."""

from __future__ import annotations

from typing import Any

import pytest

from dagster_agent_de.manifest import Manifest, column_meta

FRESHNESS = {"warn_after": {"count": 2, "period": "day"}}


def _placed(placement: str, props: dict[str, Any]) -> dict[str, Any]:
    return {"config": props} if placement == "config" else props


@pytest.mark.parametrize("placement", ["config", "property"])
def test_node_reads_both_placements(placement: str) -> None:
    email = {"name": "email", **_placed(placement, {"meta": {"agent_de": {"pii": True, "metric": "m"}}})}
    manifest = Manifest({
        "nodes": {"model.p.m": {"name": "m", "resource_type": "model", "columns": {"email": email, "id": {"name": "id"}},
                                **_placed(placement, {"meta": {"owner": "finance", "agent_de": {"finance": True}}})}},
        "sources": {"source.p.raw.t": {"name": "t", "source_name": "raw", "resource_type": "source",
                                       **_placed(placement, {"loaded_at_field": "_loaded_at", "freshness": FRESHNESS})}},
    })
    model, source = manifest.find("m"), manifest.find("raw.t")
    assert (model.owner, model.agent_de_meta) == ("finance", {"finance": True})
    assert model.pii_columns() == {"email"}
    assert column_meta(model.columns["email"])["agent_de"]["metric"] == "m" and column_meta(model.columns["id"]) == {}
    assert (source.loaded_at_field, source.freshness) == ("_loaded_at", FRESHNESS)
    assert (model.loaded_at_field, model.freshness) == (None, {})


def test_config_wins_over_the_old_property() -> None:
    raw = {"name": "t", "source_name": "raw", "resource_type": "source", "loaded_at_field": "old_col",
           "meta": {"owner": "a"}, "config": {"loaded_at_field": "new_col", "meta": {"owner": "b"}}}
    source = Manifest({"nodes": {}, "sources": {"source.p.raw.t": raw}}).find("raw.t")
    assert (source.loaded_at_field, source.owner) == ("new_col", "b")
