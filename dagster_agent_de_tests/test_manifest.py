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


def test_a_prefixed_asset_key_from_the_ui_finds_its_model() -> None:
    """`agent-de investigate --asset analytics/fct_orders`: the key the Dagster UI shows under the team's
    translator prefix finds the model by its tail; an unknown name still says what is close."""
    from dagster_agent_de.errors import ProjectError

    manifest = Manifest({"nodes": {"model.p.fct_orders": {"name": "fct_orders", "resource_type": "model"}},
                         "sources": {"source.p.shop.orders": {"name": "orders", "source_name": "shop", "resource_type": "source"}}})
    assert manifest.find("analytics/fct_orders").unique_id == "model.p.fct_orders"
    assert manifest.find("analytics/marts/fct_orders").unique_id == "model.p.fct_orders"
    assert manifest.find("analytics/shop/orders").unique_id == "source.p.shop.orders"
    with pytest.raises(ProjectError, match="no model or source named 'analytics/fct_order'"):
        manifest.find("analytics/fct_order")


def test_a_meta_agent_de_that_is_not_a_mapping_names_the_model() -> None:
    from dagster_agent_de.errors import ProjectError

    manifest = Manifest({"nodes": {"model.p.m": {"name": "m", "resource_type": "model", "meta": {"agent_de": True}}},
                         "sources": {}})
    with pytest.raises(ProjectError, match=r"m: meta.agent_de must be a mapping .* got True; fix it in the model's YAML"):
        manifest.find("m").agent_de_meta  # noqa: B018


def test_a_dbt_test_compiled_for_another_target_is_not_run_again(tmp_path) -> None:
    """The team ran `dbt build --target prod`; the agent (on dev) reads its own parse (``compiled_after`` = inf).
    The test's SQL under target/compiled reads prod's tables: measuring it again would say whether *prod* passes
    now (and silence dev's failure), so it is not read, as a model's compiled SQL is not."""
    import duckdb

    from dagster_agent_de.adapters.audit import AuditLog
    from dagster_agent_de.adapters.warehouse.duckdb import DuckDBWarehouse
    from dagster_agent_de.engines.investigate.failure import dbt_test_now

    db = tmp_path / "dev.duckdb"
    with duckdb.connect(str(db)) as con:
        con.execute("create schema prod; create table prod.m as select 1 as id; create table main.m as select 1 as id "
                    "union all select 1")
    test = {"name": "unique_m_id", "resource_type": "test", "package_name": "p", "path": "unique_m_id.sql",
            "original_file_path": "models/schema.yml", "depends_on": {"nodes": ["model.p.m"]}}
    compiled = tmp_path / "target" / "compiled" / "p" / "models" / "schema.yml" / "unique_m_id.sql"
    compiled.parent.mkdir(parents=True)
    compiled.write_text('select id from "dev"."prod"."m" group by id having count(*) > 1\n')  # prod's: passes
    data = {"nodes": {"test.p.unique_m_id": test}}
    assert Manifest(data, tmp_path).compiled_test_sql(test) == compiled.read_text()  # this target's: read
    other = Manifest(data, tmp_path, compiled_after=float("inf"))
    assert other.compiled_test_sql(test) is None
    with DuckDBWarehouse(db, AuditLog(None)) as wh:
        assert dbt_test_now(other, "unique_m_id", wh) == {}  # no claim, never "passes now" on prod's rows
        assert dbt_test_now(Manifest(data, tmp_path), "unique_m_id", wh)["passed"] is True


def test_the_last_build_is_the_newest_run_that_ran_the_model_dagster_dbt_runs_included(tmp_path) -> None:
    """dagster-dbt writes each run's results under target/<run>/: a manual `dbt build` that failed last week
    (target/run_results.json) is not the last build when Dagster built the model since."""
    import json
    import os

    def results(path, status: str, when: str, mtime: float) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"metadata": {"generated_at": when},
                                    "results": [{"unique_id": "model.p.m", "status": status}]}))
        os.utime(path, (mtime, mtime))

    results(tmp_path / "target" / "run_results.json", "error", "2026-11-30T03:00:00Z", 1_000)
    manifest = Manifest({"nodes": {}}, tmp_path)
    assert manifest.last_build("model.p.m") == ("error", "2026-11-30 03:00:00")
    results(tmp_path / "target" / "dagster-run-1" / "run_results.json", "success", "2026-12-07T03:00:00Z", 2_000)
    assert manifest.last_build("model.p.m") == ("success", "2026-12-07 03:00:00")
