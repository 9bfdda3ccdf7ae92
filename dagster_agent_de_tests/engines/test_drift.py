"""Schema drift: typed diff, rename detection, column-level impact, one information_schema read."""

from __future__ import annotations

from pathlib import Path

import pytest

from dagster_agent_de.adapters.audit import AuditLog
from dagster_agent_de.adapters.warehouse import DuckDBWarehouse
from dagster_agent_de.engines.drift import (
    SnapshotStore,
    classify_type_change,
    compare,
    detect_drift,
    diff_snapshots,
    snapshot_schema,
    take_snapshot,
)
from dagster_agent_de.engines.drift.models import ColumnSchema, Snapshot, TableSchema
from dagster_agent_de.manifest import Manifest
from dagster_agent_de.project import DbtProjectInfo
from dagster_agent_de_tests.helpers import duck


def snap(*tables: tuple[str, list[tuple[str, str]]], nullable: dict[str, bool] | None = None, missing=()) -> Snapshot:
    out = {}
    for rel, cols in tables:
        out[rel] = TableSchema(relation=rel, columns=[
            ColumnSchema(name=n, position=i + 1, data_type=t, nullable=(nullable or {}).get(n, True))
            for i, (n, t) in enumerate(cols)
        ])
    return Snapshot(tables=out, missing=list(missing))


BASE = [("id", "VARCHAR"), ("amount", "BIGINT"), ("currency", "VARCHAR"), ("created", "TIMESTAMP")]


def kinds(old: Snapshot, new: Snapshot) -> list[tuple]:
    return [(c.kind, c.column, c.new_column) for c in diff_snapshots(old, new)]


def test_each_change_kind_is_detected_with_its_type() -> None:
    old = snap(("db.s.t", BASE), ("db.s.gone", [("a", "INTEGER")]))
    new = snap(("db.s.t", [("id", "VARCHAR"), ("amount", "DOUBLE"), ("created", "TIMESTAMP"), ("fee", "BIGINT")]),
               ("db.s.new", [("a", "INTEGER")]))
    got = kinds(old, new)
    assert ("column_dropped", "currency", None) in got
    assert ("column_added", "fee", None) in got
    assert ("type_changed", "amount", None) in got
    assert ("table_dropped", None, None) in got and ("table_added", None, None) in got
    retype = next(c for c in diff_snapshots(old, new) if c.kind == "type_changed")
    assert (retype.old_type, retype.new_type, retype.type_change) == ("BIGINT", "DOUBLE", "widening")


def test_rename_is_one_change_with_confidence() -> None:
    old = snap(("db.s.t", BASE))
    new = snap(("db.s.t", [("id", "VARCHAR"), ("amount_cents", "BIGINT"), ("currency", "VARCHAR"), ("created", "TIMESTAMP")]))
    (change,) = diff_snapshots(old, new)
    assert (change.kind, change.column, change.new_column) == ("column_renamed", "amount", "amount_cents")
    assert 0.8 < change.confidence <= 1.0


def test_unrelated_drop_and_add_stay_apart() -> None:
    old = snap(("db.s.t", BASE))
    new = snap(("db.s.t", [("id", "VARCHAR"), ("amount", "BIGINT"), ("created", "TIMESTAMP"), ("is_test_mode", "BOOLEAN")]))
    assert sorted(kinds(old, new)) == [("column_added", "is_test_mode", None), ("column_dropped", "currency", None)]


def test_reordering_and_case_are_not_drift() -> None:
    old = snap(("db.s.t", BASE))
    new = snap(("db.s.t", [("CREATED", "TIMESTAMP"), ("Currency", "VARCHAR"), ("id", "VARCHAR"), ("AMOUNT", "BIGINT")]))
    assert diff_snapshots(old, new) == []


def test_nullability_and_missing_table() -> None:
    old = snap(("db.s.t", BASE), nullable={"id": False})
    new = snap(("db.s.t", BASE), missing=["db.s.u"])
    (c,) = diff_snapshots(old, new)
    assert (c.kind, c.nullable_from, c.nullable_to) == ("nullability_changed", False, True)
    old2 = snap(("db.s.t", BASE))
    new2 = snap(missing=["db.s.t"])
    assert [c.kind for c in diff_snapshots(old2, new2)] == ["table_missing"]  # not four dropped columns


@pytest.mark.parametrize("old, new, expected", [
    ("INTEGER", "BIGINT", "widening"), ("BIGINT", "INTEGER", "narrowing"), ("DECIMAL(10,2)", "DECIMAL(18,2)", "widening"),
    ("DECIMAL(10,2)", "DECIMAL(10,0)", "narrowing"), ("VARCHAR(10)", "VARCHAR(20)", "widening"), ("VARCHAR(20)", "VARCHAR(10)", "narrowing"),
    ("BIGINT", "VARCHAR", "incompatible"), ("VARCHAR", "BIGINT", "incompatible"), ("DATE", "TIMESTAMP", "widening"),
    ("NUMBER(38,0)", "NUMBER(10,0)", "narrowing"), ("DOUBLE", "BIGINT", "narrowing"), ("INTEGER", "DOUBLE", "widening"),
])
def test_type_change_classification(old: str, new: str, expected: str) -> None:
    assert classify_type_change(old, new) == expected


def test_snapshot_is_one_information_schema_query_per_database(tmp_path: Path) -> None:
    path = duck(tmp_path / "wh.duckdb", "create schema a", "create schema b",
                *[f"create table a.t{i} (id integer, v varchar)" for i in range(30)], "create view b.v as select 1 as x")
    audit = AuditLog(None)
    with DuckDBWarehouse(path, audit) as wh:
        s = snapshot_schema(wh, [("wh", "a", f"t{i}") for i in range(30)] + [("wh", "b", "v"), ("wh", "a", "not_yet")])
    queries = [e for e in audit.events if e.kind == "query"]
    assert len(queries) == 1 and "information_schema.columns" in queries[0].statement
    assert len(s.tables) == 31 and s.missing == ["wh.a.not_yet"]
    assert s.tables["wh.b.v"].table_type == "VIEW"
    assert [c.name for c in s.tables["wh.a.t0"].columns] == ["id", "v"]


@pytest.fixture
def demo_manifest(demo_env) -> Manifest:
    info = DbtProjectInfo.from_settings(demo_env.settings)
    return Manifest.load(info.manifest_path, demo_env.project_dir)


def test_rename_on_the_demo_is_breaking_with_column_level_impact(demo_env, demo_manifest, tmp_path: Path, state_store) -> None:
    store = SnapshotStore(state_store)
    with demo_env.warehouse() as wh:
        first, _ = detect_drift(demo_manifest, wh, store)
        assert first.baseline_created and not first.changes  # first snapshot = baseline, never an alert
        again, _ = detect_drift(demo_manifest, wh, store)
        assert again.changes == []  # unchanged: no alert
    demo_env.write("alter table stripe.charges rename column amount to amount_cents")
    try:
        with demo_env.warehouse() as wh:
            report, _ = detect_drift(demo_manifest, wh, store)
    finally:
        demo_env.write("alter table stripe.charges rename column amount_cents to amount")
    (change,) = report.changes
    assert (change.kind, change.column, change.new_column, change.source) == ("column_renamed", "amount", "amount_cents", "stripe.charges")
    assert change.severity.value == "breaking" and report.breaking
    impacted = {i.model: i for i in change.impacted}
    assert {"stg_stripe_charges", "int_order_payments", "int_orders_enriched", "fct_orders"} <= set(impacted)
    assert impacted["stg_stripe_charges"].columns == ["amount"] and impacted["stg_stripe_charges"].hops == 1
    assert "dim_customers" not in impacted  # does not read payments
    assert "amount_cents / 100.0 as amount" in (change.proposed_fix or "")
    assert "+          - name: amount_cents" in (change.proposed_fix or "")


def test_unread_column_drop_is_info_and_added_column_is_info(demo_env, demo_manifest, tmp_path: Path, state_store) -> None:
    store = SnapshotStore(state_store)
    with demo_env.warehouse() as wh:
        baseline = take_snapshot(demo_manifest, wh)
    demo_env.write("alter table hubspot.contacts add column phone varchar")
    demo_env.write("alter table hubspot.contacts drop column created_at")
    try:
        with demo_env.warehouse() as wh:
            report = compare(baseline, take_snapshot(demo_manifest, wh), demo_manifest)
    finally:
        demo_env.write("alter table hubspot.contacts drop column phone")
        demo_env.write("alter table hubspot.contacts add column created_at timestamp")
    sev = {(c.kind, c.column): c.severity.value for c in report.changes}
    assert sev[("column_added", "phone")] == "info"
    # stg_hubspot_contacts selects created_at: dropping it is breaking
    assert sev[("column_dropped", "created_at")] == "breaking"
    assert not any(c.kind == "column_renamed" for c in report.changes)
    del store


def test_unparseable_model_reports_unknown_impact(demo_env, demo_manifest, tmp_path: Path) -> None:
    from dagster_agent_de.engines.drift.impact import ImpactAnalyzer, assess
    from dagster_agent_de.engines.drift.models import SchemaChange

    analyzer = ImpactAnalyzer(demo_manifest, "duckdb")
    uid = demo_manifest.find("stg_stripe_charges").unique_id
    from dagster_agent_de.sql.lineage import ModelColumns

    analyzer._cache[uid] = ModelColumns(error="sqlglot could not parse the model: boom")
    change = assess(SchemaChange(kind="column_dropped", relation="warehouse.stripe.charges", column="amount"), analyzer)
    (imp,) = [i for i in change.impacted if i.model == "stg_stripe_charges"]
    assert imp.unknown and "boom" in imp.unknown
    assert change.severity.value == "warning"  # unknown is never reported as safe


def test_two_sources_on_one_table_and_a_source_not_created_yet(tmp_path: Path, state_store) -> None:
    path = duck(tmp_path / "wh.duckdb", "create schema raw", "create table raw.t (id integer, amount integer)")
    manifest = Manifest({"nodes": {}, "sources": {
        f"source.p.{s}.t": {"name": "t", "source_name": s, "resource_type": "source", "relation_name": '"wh"."raw"."t"',
                             "database": "wh", "schema": "raw", "identifier": "t"} for s in ("a", "b")
    } | {"source.p.c.later": {"name": "later", "source_name": "c", "resource_type": "source",
                               "relation_name": '"wh"."raw"."later"', "database": "wh", "schema": "raw", "identifier": "later"}}})
    store = SnapshotStore(state_store)
    with DuckDBWarehouse(path, AuditLog(None)) as wh:
        detect_drift(manifest, wh, store)
    duck(path, "alter table raw.t rename column amount to amount_usd")
    with DuckDBWarehouse(path, AuditLog(None)) as wh:
        report, _ = detect_drift(manifest, wh, store)
    assert [c.kind for c in report.changes] == ["column_renamed"]  # once, not once per source
    assert any("do not exist yet" in n and "wh.raw.later" in n for n in report.notes)


def test_a_baseline_of_nothing_is_refused_naming_the_missing_sources(tmp_path: Path, state_store) -> None:
    """Sources the manifest names that the warehouse has none of (another target's database): no empty baseline,
    which would pass every later run ('no schema drift, 0 relations checked'), but an error saying what to check."""
    from dagster_agent_de.errors import ConfigError

    path = duck(tmp_path / "wh.duckdb", "create schema raw")
    manifest = Manifest({"nodes": {}, "sources": {
        f"source.p.shop.{t}": {"name": t, "source_name": "shop", "resource_type": "source", "database": "prod",
                               "relation_name": f'"prod"."raw"."{t}"', "schema": "raw", "identifier": t}
        for t in ("orders", "customers", "payments", "refunds")}})
    store = SnapshotStore(state_store)
    with DuckDBWarehouse(path, AuditLog(None)) as wh, pytest.raises(ConfigError) as err:
        detect_drift(manifest, wh, store, record_baseline=True)
    assert str(err.value).startswith("none of the 4 source tables of the manifest exist in the warehouse (prod.raw.")
    assert "and 1 more): check the target (--target, DBT_TARGET)" in str(err.value)
    assert store.baseline() is None
