"""Renames proven by the values: each case a real DuckDB table, judged through ``agent-de drift --json``.

The fixture dbt project (``fixtures/drift_project``) declares one source per case, keyed by a
``unique`` test on ``id``, and one staging model reading it; it is parsed once per module.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from dagster_agent_de.adapters.audit import read_audit
from dagster_agent_de.cli import main
from dagster_agent_de.engines.drift.diff import RENAME_THRESHOLD, rename_confidence
from dagster_agent_de.engines.drift.fingerprint import MAX_ROWS_ENV
from dagster_agent_de.engines.drift.models import ColumnSchema
from dagster_agent_de_tests.helpers import duck

FIXTURE = Path(__file__).parent.parent / "fixtures" / "drift_project"


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The fixture project, parsed once against a warehouse named like every test's (``warehouse``)."""
    from dagster_agent_de.project import DbtProjectInfo

    root = tmp_path_factory.mktemp("drift_fixture")
    project = root / "project"
    shutil.copytree(FIXTURE, project, ignore=shutil.ignore_patterns("target", "logs"))
    info = DbtProjectInfo(project, project, "duckdb", project / "target")
    info.run_dbt(["parse", "--quiet"], env={"AGENT_DE_DUCKDB_PATH": str(root / "warehouse.duckdb"), "AGENT_DE_TARGET": "duckdb"})
    assert info.manifest_path.exists()
    return project


def drift(project: Path, state: Path) -> tuple[int, dict[str, Any]]:
    # each test's warehouse lives in its own state dir: named explicitly, as an override of the profile's path
    r = CliRunner().invoke(main, ["--state-dir", str(state), "--project-dir", str(project), "drift", "--json"],
                           env={"AGENT_DE_DUCKDB_PATH": str(state / "warehouse.duckdb")}, catch_exceptions=False)
    return r.exit_code, json.loads(r.output)


def case(project: Path, state: Path, before: list[str], after: list[str]) -> tuple[int, dict[str, Any]]:
    """Baseline on ``before``, apply ``after`` as the source system would, then the drift report."""
    duck(state / "warehouse.duckdb", "create schema raw", *before)
    code, first = drift(project, state)
    assert code == 0 and first["baseline_created"]
    duck(state / "warehouse.duckdb", *after)
    return drift(project, state)


def fingerprint_queries(state: Path) -> list[Any]:
    return [e for e in read_audit(_store(state), limit=None) if e.rationale.startswith("fingerprint")]


def _store(state: Path):
    """The agent's state store of a state dir (SQLite there unless the instance names PostgreSQL)."""
    from dagster_agent_de.adapters.state import open_state_store
    from dagster_agent_de.config import resolve_settings

    return open_state_store(resolve_settings(state, FIXTURE))


def changes(report: dict[str, Any], table: str) -> dict[tuple[str, str | None], dict[str, Any]]:
    return {(c["kind"], c["column"]): c for c in report["changes"] if c["relation"].endswith(table)}


def test_true_rename_at_a_new_position(project: Path, tmp_path: Path) -> None:
    code, report = case(project, tmp_path, [
        "create table raw.people as select i as id, 'Person ' || i as name, 'p' || i || '@x.io' as email, "
        "date '2024-01-01' + cast(i as integer) as signup from range(1, 501) r(i)",
    ], [
        "create table raw.people2 as select id, email, signup, name as full_name from raw.people",
        "drop table raw.people", "alter table raw.people2 rename to people",
    ])
    (c,) = changes(report, "people").values()
    assert (c["kind"], c["column"], c["new_column"]) == ("column_renamed", "name", "full_name")
    assert c["confidence"] >= 0.95
    (ev,) = c["evidence"]
    assert (ev["verdict"], ev["match_rate"], ev["keys_compared"]) == ("same_values", 1.0, 500)
    assert ev["old_stats"]["distinct"] == ev["new_stats"]["distinct"] and ev["old_stats"]["rows"] == 500
    assert "-    name,\n+    full_name as name," in c["proposed_fix"]
    assert c["severity"] == "breaking" and [i["model"] for i in c["impacted"]] == ["stg_people"] and code == 1
    stored = _store(tmp_path).load_snapshot("baseline")
    assert stored is not None
    baseline = stored.body
    assert "Person 1" not in baseline and "p1@x.io" not in baseline  # text is hashed, never stored raw


def test_rename_with_a_x100_unit_change_and_a_type_change(project: Path, tmp_path: Path) -> None:
    code, report = case(project, tmp_path, [
        "create table raw.charges as select i as id, cast((i * 137 % 10000) / 100.0 as decimal(10, 2)) as amount, "
        "'usd' as currency from range(1, 801) r(i)",
    ], [
        "alter table raw.charges add column amount_cents bigint",
        "update raw.charges set amount_cents = cast(amount * 100 as bigint)",
        "alter table raw.charges drop column amount",
    ])
    (c,) = changes(report, "charges").values()
    assert (c["kind"], c["column"], c["new_column"], c["unit_scale"]) == ("column_renamed", "amount", "amount_cents", 2)
    assert (c["old_type"], c["new_type"]) == ("DECIMAL(10,2)", "BIGINT")
    (ev,) = c["evidence"]
    assert ev["verdict"] == "unit_change" and ev["match_rate"] == 1.0 and ev["keys_compared"] == 800
    assert ev["new_stats"]["max"] == pytest.approx(ev["old_stats"]["max"] * 100)
    assert "+    amount_cents / 100.0 as amount," in c["proposed_fix"]
    assert code == 1


def test_a_different_column_under_a_similar_name_is_a_drop_and_an_add(project: Path, tmp_path: Path) -> None:
    code, report = case(project, tmp_path, [
        "create table raw.contacts as select i as id, 'First' || (i % 37) || ' Last' || i as name from range(1, 501) r(i)",
    ], [
        "alter table raw.contacts add column first_name varchar",
        "update raw.contacts set first_name = split_part(name, ' ', 1)",
        "alter table raw.contacts drop column name",
    ])
    # names alone would call it a rename
    assert rename_confidence(ColumnSchema(name="name", position=2, data_type="VARCHAR"),
                             ColumnSchema(name="first_name", position=2, data_type="VARCHAR")) >= RENAME_THRESHOLD
    got = changes(report, "contacts")
    assert set(got) == {("column_dropped", "name"), ("column_added", "first_name")}
    dropped = got[("column_dropped", "name")]
    assert dropped["severity"] == "breaking" and [i["model"] for i in dropped["impacted"]] == ["stg_contacts"]
    (ev,) = dropped["evidence"]
    assert ev["verdict"] == "different_values" and ev["match_rate"] == 0.0 and ev["keys_compared"] == 500
    assert dropped["proposed_fix"] is None  # no guess
    esc = dropped["escalation"]
    assert esc["kind"] == "context_gap" and "Which column replaces it?" in esc["decision"] and "stg_contacts" in esc["decision"]
    assert [o["label"] for o in esc["options"]] == ["first_name replaces name", "nothing replaces name: the source dropped it"]
    assert esc["owner"] == "source-team" and esc["recommendation"] is None
    assert len(report["escalations"]) == 1 and code == 1
    (stored,) = _store(tmp_path).escalations()
    assert stored.id == report["escalations"][0] and stored.asset == "raw.contacts"
    queries = len(fingerprint_queries(tmp_path))
    _, again = drift(project, tmp_path)
    assert again["escalations"] == []  # asked once, not on every run
    assert [c["evidence"] for c in again["changes"]] == [c["evidence"] for c in report["changes"]]
    assert len(fingerprint_queries(tmp_path)) == queries  # unchanged since the last run: its fingerprints stand


def test_two_renames_in_one_table_are_paired_by_their_values(project: Path, tmp_path: Path) -> None:
    cities = "['Lyon', 'Oslo', 'Rome', 'Kyiv', 'Lima', 'Pune', 'Baku']"
    code, report = case(project, tmp_path, [
        f"create table raw.addresses as select i as id, {cities}[1 + i % 7] as ship_city, "
        f"{cities}[1 + (i * 3 + 1) % 7] as bill_city from range(1, 301) r(i)",
    ], [
        # the names could pair either way: city_a holds the billing cities, city_b the shipping ones
        "alter table raw.addresses rename column bill_city to city_a",
        "alter table raw.addresses rename column ship_city to city_b",
    ])
    got = changes(report, "addresses")
    assert set(got) == {("column_renamed", "ship_city"), ("column_renamed", "bill_city")}
    assert got[("column_renamed", "ship_city")]["new_column"] == "city_b"
    assert got[("column_renamed", "bill_city")]["new_column"] == "city_a"
    assert all(c["evidence"][0]["verdict"] == "same_values" and c["confidence"] >= 0.95 for c in got.values())
    assert code == 1


def test_a_rename_plus_an_unrelated_add(project: Path, tmp_path: Path) -> None:
    code, report = case(project, tmp_path, [
        "create table raw.orders as select i as id, cast(i * 3.5 as decimal(12, 2)) as total, 'paid' as status "
        "from range(1, 401) r(i)",
    ], [
        "alter table raw.orders rename column total to order_total",
        "alter table raw.orders add column channel varchar default 'web'",
    ])
    got = changes(report, "orders")
    assert set(got) == {("column_renamed", "total"), ("column_added", "channel")}
    assert got[("column_renamed", "total")]["new_column"] == "order_total"
    assert got[("column_renamed", "total")]["evidence"][0]["verdict"] == "same_values"
    assert got[("column_added", "channel")]["severity"] == "info"
    assert code == 1


def test_a_wide_table_of_200_columns_with_one_rename(project: Path, tmp_path: Path) -> None:
    cols = ", ".join(f"(i * {k + 7}) % 1000 as c{k}" for k in range(199))
    code, report = case(project, tmp_path, [
        f"create table raw.wide as select i as id, {cols} from range(1, 1001) r(i)",
    ], [
        "alter table raw.wide add column metric_57 integer",
        "update raw.wide set metric_57 = c57",
        "alter table raw.wide drop column c57",
    ])
    (c,) = changes(report, "wide").values()
    assert (c["kind"], c["column"], c["new_column"]) == ("column_renamed", "c57", "metric_57")
    assert c["evidence"][0]["verdict"] == "same_values" and c["confidence"] >= 0.95
    assert rename_confidence(ColumnSchema(name="c57", position=58, data_type="INTEGER"),
                             ColumnSchema(name="metric_57", position=200, data_type="INTEGER")) < RENAME_THRESHOLD
    fingerprints = fingerprint_queries(tmp_path)
    assert len(fingerprints) == 2  # the baseline pass and the detection: one query per table, never per column
    assert '"c58"' in fingerprints[0].statement and '"c58"' not in fingerprints[1].statement  # only what appeared
    assert code == 1


def test_fingerprint_skipped_on_a_large_table_says_names_only(project: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv(MAX_ROWS_ENV, "100")
    code, report = case(project, tmp_path, [
        "create table raw.big as select i as id, 'Person ' || i as name from range(1, 501) r(i)",
    ], ["alter table raw.big rename column name to full_name"])
    (c,) = changes(report, "big").values()
    assert (c["kind"], c["column"], c["new_column"]) == ("column_renamed", "name", "full_name")
    (ev,) = c["evidence"]
    assert ev["verdict"] == "names_only" and "confidence from names only" in ev["reason"]
    assert "500 rows is above the fingerprint cap of 100" in ev["reason"]
    assert c["confidence"] < 0.95 and code == 1
    assert not fingerprint_queries(tmp_path)


def _snowflake_drift(state_store, created_as: str, alters: tuple[str, ...]):
    """Under fakesnow: SHOP.STRIPE.CHARGES created ``as select ...``, a drift baseline, the loader's ``alters``,
    then a detection; its report and the audit log."""
    fakesnow = pytest.importorskip("fakesnow")
    from dagster_agent_de.adapters.audit import AuditLog
    from dagster_agent_de.adapters.warehouse.snowflake import SnowflakeWarehouse
    from dagster_agent_de.engines.drift import SnapshotStore, detect_drift
    from dagster_agent_de.manifest import Manifest
    from dagster_agent_de_tests.test_snowflake import _fake_snowflake

    manifest = Manifest({"nodes": {"test.p.unique_charges_id": {
        "resource_type": "test", "unique_id": "test.p.unique_charges_id", "column_name": "ID",
        "test_metadata": {"name": "unique", "kwargs": {"column_name": "ID"}},
        "depends_on": {"nodes": ["source.p.stripe.charges"]}}},
        "sources": {"source.p.stripe.charges": {
            "name": "charges", "source_name": "stripe", "resource_type": "source", "relation_name": "SHOP.STRIPE.CHARGES",
            "database": "SHOP", "schema": "STRIPE", "identifier": "CHARGES"}}})
    audit = AuditLog(None)
    store = SnapshotStore(state_store)
    with fakesnow.patch():
        resource = _fake_snowflake("SHOP", "STRIPE", f"create or replace table SHOP.STRIPE.CHARGES as {created_as}")
        with SnowflakeWarehouse.from_resource(resource, audit) as wh:
            assert detect_drift(manifest, wh, store)[0].baseline_created
        with resource.get_connection() as con:
            cur = con.cursor()
            for sql in alters:
                cur.execute(sql)
        with SnowflakeWarehouse.from_resource(resource, audit) as wh:
            report, _ = detect_drift(manifest, wh, store)
    return report, audit


def test_the_same_query_shape_runs_on_snowflake(tmp_path: Path, state_store) -> None:
    """Under fakesnow: upper-case identifiers, NUMBER types, LISTAGG ... WITHIN GROUP; the x100 rename is proven."""
    report, audit = _snowflake_drift(state_store, "select seq4() + 1 as ID, cast(((seq4() + 1) * 137 % 10000) / 100.0 as "
                              "number(10, 2)) as AMOUNT, 'usd' as CURRENCY from table(generator(rowcount => 300))", (
        "alter table SHOP.STRIPE.CHARGES add column AMOUNT_CENTS number(38, 0)",
        "update SHOP.STRIPE.CHARGES set AMOUNT_CENTS = AMOUNT * 100",
        "alter table SHOP.STRIPE.CHARGES drop column AMOUNT"))
    (change,) = report.changes
    assert (change.kind, change.column, change.new_column, change.unit_scale) == ("column_renamed", "AMOUNT", "AMOUNT_CENTS", 2)
    (ev,) = change.evidence
    assert ev.verdict == "unit_change" and ev.keys_compared == 300 and ev.match_rate == 1.0
    queries = [e for e in audit.events if e.rationale.startswith("fingerprint")]
    assert len(queries) == 2 and all("WITHIN GROUP" in e.statement for e in queries)


def test_without_a_key_the_stats_decide(tmp_path: Path, state_store) -> None:
    """No unique test, no declared key: same rows, nulls, distinct and min/max (or x 10^k) decide."""
    from dagster_agent_de.adapters.audit import AuditLog
    from dagster_agent_de.adapters.warehouse import DuckDBWarehouse
    from dagster_agent_de.engines.drift import SnapshotStore, detect_drift
    from dagster_agent_de.manifest import Manifest

    path = duck(tmp_path / "wh.duckdb", "create schema raw",
                "create table raw.pay as select cast((i * 137 % 10000) / 100.0 as decimal(10, 2)) as amount, "
                "'First' || (i % 37) as label from range(1, 401) r(i)")
    manifest = Manifest({"nodes": {}, "sources": {"source.p.raw.pay": {
        "name": "pay", "source_name": "raw", "resource_type": "source", "relation_name": '"wh"."raw"."pay"',
        "database": "wh", "schema": "raw", "identifier": "pay"}}})
    store = SnapshotStore(state_store)
    with DuckDBWarehouse(path, AuditLog(None)) as wh:
        detect_drift(manifest, wh, store)
    duck(path, "alter table raw.pay add column amount_cents bigint", "update raw.pay set amount_cents = amount * 100",
         "alter table raw.pay add column tag varchar", "update raw.pay set tag = 'x' || (hash(label) % 5)",
         "alter table raw.pay drop column amount", "alter table raw.pay drop column label")
    with DuckDBWarehouse(path, AuditLog(None)) as wh:
        report, _ = detect_drift(manifest, wh, store)
    got = {(c.kind, c.column): c for c in report.changes}
    assert set(got) == {("column_renamed", "amount"), ("column_dropped", "label"), ("column_added", "tag")}
    rename = got[("column_renamed", "amount")]
    (ev,) = rename.evidence
    assert (rename.new_column, rename.unit_scale, ev.verdict, ev.keys_compared) == ("amount_cents", 2, "unit_change", 0)
    assert "no key" in ev.reason
    assert [e.verdict for e in got[("column_dropped", "label")].evidence] == ["different_values"]


@pytest.mark.parametrize("dialect", ["duckdb", "snowflake"])
def test_fingerprint_sql_is_one_statement_built_by_sqlglot(dialect: str) -> None:
    """Golden: identifiers quoted by sqlglot (a quote in a name stays data), stats and the keyed sample in one SELECT."""
    from dagster_agent_de.engines.drift.fingerprint import fingerprint_query
    from dagster_agent_de.engines.drift.models import TableSchema
    from dagster_agent_de.sql.guard import check_read_only
    from dagster_agent_de_tests.helpers import golden

    cols = [ColumnSchema(name="amount_cents", position=2, data_type="BIGINT"),
            ColumnSchema(name='odd "name', position=3, data_type="VARCHAR"),
            ColumnSchema(name="paid_on", position=4, data_type="DATE")]
    table = TableSchema(relation="shop.raw.charges", columns=cols)
    sql = fingerprint_query(table, cols, ["id"], dialect, scaled={"amount_cents"})
    check_read_only(sql, dialect)
    golden(f"fingerprint_{dialect}.sql", sql + "\n")


def test_the_key_comes_from_a_declared_key_a_primary_key_or_a_unique_test(monkeypatch) -> None:
    from dagster_agent_de.engines.drift.fingerprint import max_rows_from_env, table_keys
    from dagster_agent_de.errors import ConfigError
    from dagster_agent_de.manifest import Manifest

    def source(name: str, **extra: Any) -> dict[str, Any]:
        return {"name": name, "source_name": "raw", "resource_type": "source", "database": "wh", "schema": "raw",
                "identifier": name, **extra}

    manifest = Manifest({"nodes": {"test.p.unique_a_id": {
        "resource_type": "test", "column_name": "id", "test_metadata": {"name": "unique", "kwargs": {"column_name": "id"}},
        "depends_on": {"nodes": ["source.p.raw.a"]}}}, "sources": {
        "source.p.raw.a": source("a"),
        "source.p.raw.b": source("b", meta={"agent_de": {"key": ["region", "order_no"]}}),
        "source.p.raw.c": source("c", columns={"code": {"name": "code", "constraints": [{"type": "primary_key"}]}}),
        "source.p.raw.d": source("d")}})
    assert table_keys(manifest) == {"wh.raw.a": ["id"], "wh.raw.b": ["region", "order_no"], "wh.raw.c": ["code"]}
    monkeypatch.setenv(MAX_ROWS_ENV, "5_000_000")
    assert max_rows_from_env() == 5_000_000
    monkeypatch.setenv(MAX_ROWS_ENV, "lots")
    with pytest.raises(ConfigError, match=MAX_ROWS_ENV):
        max_rows_from_env()


def test_a_declared_composite_key_lines_the_values_up(tmp_path: Path, state_store) -> None:
    from dagster_agent_de.adapters.audit import AuditLog
    from dagster_agent_de.adapters.warehouse import DuckDBWarehouse
    from dagster_agent_de.engines.drift import SnapshotStore, detect_drift
    from dagster_agent_de.manifest import Manifest

    path = duck(tmp_path / "wh.duckdb", "create schema raw",
                "create table raw.lines as select i % 4 as region, i // 4 as order_no, 'sku-' || (i * 7 % 97) as sku "
                "from range(0, 600) r(i)")
    manifest = Manifest({"nodes": {}, "sources": {"source.p.raw.lines": {
        "name": "lines", "source_name": "raw", "resource_type": "source", "relation_name": '"wh"."raw"."lines"',
        "database": "wh", "schema": "raw", "identifier": "lines", "meta": {"agent_de": {"key": ["region", "order_no"]}}}}})
    store = SnapshotStore(state_store)
    with DuckDBWarehouse(path, AuditLog(None)) as wh:
        detect_drift(manifest, wh, store)
    duck(path, "alter table raw.lines rename column sku to product_code")
    with DuckDBWarehouse(path, AuditLog(None)) as wh:
        report, _ = detect_drift(manifest, wh, store)
    (change,) = report.changes
    (ev,) = change.evidence
    assert (change.kind, change.new_column, ev.verdict, ev.keys_compared) == ("column_renamed", "product_code", "same_values", 600)


def investigate_drift(project: Path, state: Path, source: str) -> dict[str, Any]:
    r = CliRunner().invoke(main, ["--state-dir", str(state), "--project-dir", str(project), "investigate", "--asset",
                                  source, "--check", "schema_drift", "--json", "--no-llm"],
                           env={"AGENT_DE_DUCKDB_PATH": str(state / "warehouse.duckdb")}, catch_exceptions=False)
    assert r.exit_code == 0, r.output
    return json.loads(r.output)


def test_the_investigation_of_the_drift_check_judges_a_rename_by_the_values_as_drift_does(
        project: Path, tmp_path: Path) -> None:
    # a different column under a similar name: names alone call it a rename (and would propose
    # `first_name as name`); drift proved it a drop plus an add, and the investigation must agree
    (tmp_path / "c").mkdir()
    (tmp_path / "p").mkdir()
    _, report = case(project, tmp_path / "c", [
        "create table raw.contacts as select i as id, 'First' || (i % 37) || ' Last' || i as name from range(1, 501) r(i)",
    ], [
        "alter table raw.contacts add column first_name varchar",
        "update raw.contacts set first_name = split_part(name, ' ', 1)",
        "alter table raw.contacts drop column name",
    ])
    assert ("column_dropped", "name") in changes(report, "contacts")
    top = investigate_drift(project, tmp_path / "c", "raw.contacts")["findings"][0]
    assert top["pattern"] == "schema_drift" and "column name dropped" in top["summary"], top["summary"]
    assert "renamed" not in top["summary"] and "first_name as name" not in (top["proposed_fix"] or {}).get("diff", "")
    # a true rename: proven by the values there too, not "from names only"
    case(project, tmp_path / "p", [
        "create table raw.people as select i as id, 'Person ' || i as name, 'p' || i || '@x.io' as email, "
        "date '2024-01-01' + cast(i as integer) as signup from range(1, 501) r(i)",
    ], [
        "create table raw.people2 as select id, email, signup, name as full_name from raw.people",
        "drop table raw.people", "alter table raw.people2 rename to people",
    ])
    top = investigate_drift(project, tmp_path / "p", "raw.people")["findings"][0]
    assert "renamed to full_name" in top["summary"] and "from the values" in top["summary"], top["summary"]


def test_a_widened_column_is_no_root_cause_of_another_checks_failure(project: Path, tmp_path: Path) -> None:
    """A warning-level change (a type widened) breaks nothing: it answers its own drift check, but does not
    outrank what explains another check's failure (it ranked 95% "root cause" of a join fan-out)."""
    code, report = case(project, tmp_path, [
        "create table raw.orders as select i as id, cast(i * 3 as integer) as total, 'ok' as status from range(1, 101) r(i)",
    ], ["alter table raw.orders alter column total type bigint"])
    (c,) = changes(report, "orders").values()
    assert (c["kind"], c["severity"], code) == ("type_changed", "warning", 0)
    own = investigate_drift(project, tmp_path, "raw.orders")["findings"][0]
    assert own["pattern"] == "schema_drift" and own["confidence"] >= 0.9
    r = CliRunner().invoke(main, ["--state-dir", str(tmp_path), "--project-dir", str(project), "investigate", "--asset",
                                  "stg_orders", "--json", "--no-llm"],
                           env={"AGENT_DE_DUCKDB_PATH": str(tmp_path / "warehouse.duckdb")}, catch_exceptions=False)
    other = next(f for f in json.loads(r.output)["findings"] if f["pattern"] == "schema_drift")
    assert other["confidence"] < 0.5 and "breaks" not in other["summary"], other


# -- a type changed in place: the same column, in other units? --------------------------------------------------
ORDERS_IN_DOLLARS = ("create table raw.orders as select i as id, cast((i * 137 % 10000) / 100.0 as double) as total, "
                     "'paid' as status from range(1, 401) r(i)")
TO_CENTS = "alter table raw.orders alter column total type bigint using cast(round(total * 100) as bigint)"


def test_a_retype_in_place_whose_values_are_x100_is_a_unit_change(project: Path, tmp_path: Path) -> None:
    """DOUBLE dollars become BIGINT cents under the same name: said as a unit change with the conversion, not as a
    narrowing with a cast that changes nothing."""
    from dagster_agent_de.engines.drift.models import Snapshot

    code, report = case(project, tmp_path, [ORDERS_IN_DOLLARS], [TO_CENTS])
    (c,) = changes(report, "orders").values()
    assert (c["kind"], c["column"], c["old_type"], c["new_type"], c["unit_scale"]) == (
        "type_changed", "total", "DOUBLE", "BIGINT", 2)
    (ev,) = c["evidence"]
    assert (ev["verdict"], ev["scale"], ev["match_rate"], ev["keys_compared"]) == ("unit_change", 2, 1.0, 400)
    assert ev["new_stats"]["max"] == pytest.approx(ev["old_stats"]["max"] * 100)
    assert c["severity"] == "breaking" and code == 1
    assert "+    total / 100.0 as total," in c["proposed_fix"] and "cast(" not in c["proposed_fix"]
    esc = c["escalation"]
    assert esc["kind"] == "context_gap" and esc["decision"].endswith("Is the unit change intended?")
    assert "from DOUBLE to BIGINT and its values are ×100: dollars to cents?" in esc["decision"]
    assert "stg_orders" in esc["decision"] and esc["owner"] == "source-team" and esc["recommendation"] is None
    assert esc["finding_pattern"] == "schema_drift:unit_change:total" and "total / 100.0" in esc["fix_diff"]
    assert len(report["escalations"]) == 1
    # only the retyped column was fingerprinted at detection, at every scale; the baseline keeps the dollars'
    first, second = fingerprint_queries(tmp_path)
    assert '"status"' in first.statement and '"status"' not in second.statement and "v0_2" in second.statement
    stored = _store(tmp_path).load_snapshot("baseline")
    assert stored is not None
    baseline = Snapshot.model_validate_json(stored.body).tables["warehouse.raw.orders"].fingerprint
    assert baseline is not None and baseline.columns["total"].data_type == "DOUBLE"
    # again: the same call from the fingerprints that stand, asked once
    _, again = drift(project, tmp_path)
    assert again["escalations"] == [] and again["changes"][0]["evidence"] == c["evidence"]
    assert len(fingerprint_queries(tmp_path)) == 2
    text = CliRunner().invoke(main, ["--state-dir", str(tmp_path), "--project-dir", str(project), "drift"],
                              env={"AGENT_DE_DUCKDB_PATH": str(tmp_path / "warehouse.duckdb")}).output
    assert "raw.orders.total: DOUBLE -> BIGINT, values ×100: dollars to cents? (narrowing, from the values)" in text


def test_a_unit_change_read_under_a_cast_is_converted_inside_it(project: Path, tmp_path: Path) -> None:
    """The new user's staging model: ``cast(amount as decimal(12, 2)) as amount``; cents in, dollars out."""
    code, report = case(project, tmp_path, [
        "create table raw.payments as select i as id, cast((i * 137 % 10000) / 100.0 as double) as amount, "
        "'card' as method from range(1, 401) r(i)",
    ], ["alter table raw.payments alter column amount type bigint using cast(round(amount * 100) as bigint)"])
    (c,) = changes(report, "payments").values()
    assert (c["unit_scale"], c["severity"], code) == (2, "breaking", 1)
    assert "+    cast((amount / 100.0) as decimal(12, 2)) as amount," in c["proposed_fix"], c["proposed_fix"]


def test_a_retype_in_place_with_other_values_proposes_no_cast_that_changes_nothing(project: Path, tmp_path: Path) -> None:
    """The values are not the old ones at any scale; the model casts the column already, so a cast of the read
    inside that cast (``cast(cast(amount as DOUBLE) as decimal(12, 2))``) would change nothing: no fix is proposed."""
    code, report = case(project, tmp_path, [
        "create table raw.payments as select i as id, cast((i * 137 % 10000) / 100.0 as double) as amount, "
        "'card' as method from range(1, 401) r(i)",
    ], ["alter table raw.payments alter column amount type bigint using cast(floor(amount) as bigint)"])
    (c,) = changes(report, "payments").values()
    assert (c["kind"], c["type_change"], c["unit_scale"], c["severity"]) == ("type_changed", "narrowing", None, "breaking")
    (ev,) = c["evidence"]
    assert ev["verdict"] == "different_values" and ev["keys_compared"] == 400
    assert c["proposed_fix"] is None and c["escalation"] is None and code == 1


def test_a_retype_in_place_with_the_same_values_casts_a_bare_read_back(project: Path, tmp_path: Path) -> None:
    """Same values, narrower type: the model passes the column through, so casting it back keeps its type as dbt
    materializes it (a real change, unlike a cast under another cast)."""
    code, report = case(project, tmp_path, [
        "create table raw.orders as select i as id, cast(i * 3 as double) as total, 'paid' as status from range(1, 401) r(i)",
    ], ["alter table raw.orders alter column total type bigint"])
    (c,) = changes(report, "orders").values()
    assert (c["kind"], c["unit_scale"], c["evidence"][0]["verdict"]) == ("type_changed", None, "same_values")
    assert "+    cast(total as DOUBLE) as total," in c["proposed_fix"] and c["escalation"] is None and code == 1


def test_without_a_key_a_retype_in_place_is_judged_by_its_stats(tmp_path: Path, state_store) -> None:
    from dagster_agent_de.adapters.audit import AuditLog
    from dagster_agent_de.adapters.warehouse import DuckDBWarehouse
    from dagster_agent_de.engines.drift import SnapshotStore, detect_drift
    from dagster_agent_de.manifest import Manifest

    path = duck(tmp_path / "wh.duckdb", "create schema raw",
                "create table raw.pay as select cast((i * 137 % 10000) / 100.0 as double) as amount from range(1, 401) r(i)")
    manifest = Manifest({"nodes": {}, "sources": {"source.p.raw.pay": {
        "name": "pay", "source_name": "raw", "resource_type": "source", "relation_name": '"wh"."raw"."pay"',
        "database": "wh", "schema": "raw", "identifier": "pay"}}})
    store = SnapshotStore(state_store)
    with DuckDBWarehouse(path, AuditLog(None)) as wh:
        detect_drift(manifest, wh, store)
    duck(path, "alter table raw.pay alter column amount type bigint using cast(round(amount * 100) as bigint)")
    with DuckDBWarehouse(path, AuditLog(None)) as wh:
        report, _ = detect_drift(manifest, wh, store)
    (change,) = report.changes
    (ev,) = change.evidence
    assert (change.kind, change.unit_scale, ev.verdict, ev.keys_compared) == ("type_changed", 2, "unit_change", 0)
    assert "no key" in ev.reason
    assert change.severity.value == "info" and change.escalation is None  # nothing reads it: nothing to ask


def investigate_reconciliation(project: Path, state: Path):  # noqa: ANN201
    """The investigation of a failed reconciliation of stg_orders (every total mismatched), as the sensor runs it."""
    from dagster_agent_de.adapters.audit import AuditLog
    from dagster_agent_de.adapters.warehouse import DuckDBWarehouse
    from dagster_agent_de.engines.drift import SnapshotStore
    from dagster_agent_de.engines.investigate.engine import investigate
    from dagster_agent_de.engines.investigate.models import Failure
    from dagster_agent_de.manifest import Manifest

    manifest = Manifest.load(project / "target" / "manifest.json", project)
    failure = Failure(asset="stg_orders", check="orders_vs_ledger", kind="reconciliation",
                      metadata={"mismatched_columns": ["total"], "mismatched_pct": 100.0})
    with DuckDBWarehouse(state / "warehouse.duckdb", AuditLog(None)) as wh:
        return investigate(failure, manifest, wh, drift_store=SnapshotStore(_store(state)))


def test_the_investigation_of_a_failed_reconciliation_names_the_unit_change(project: Path, tmp_path: Path) -> None:
    case(project, tmp_path, [ORDERS_IN_DOLLARS], [TO_CENTS])
    top = investigate_reconciliation(project, tmp_path).findings[0]
    assert top.pattern == "schema_drift" and top.confidence >= 0.9, top.summary
    assert "values ×100: dollars to cents?" in top.summary and "total" in top.columns
    assert top.proposed_fix is not None and "+    total / 100.0 as total," in top.proposed_fix.diff
    assert "cast(" not in top.proposed_fix.diff
    # the question (is the unit change intended?) is the drift check's: the finding names it, asks nothing new
    from dagster_agent_de.engines.escalate.policy import Policy
    from dagster_agent_de.engines.escalate.raising import raise_for_finding
    from dagster_agent_de.manifest import Manifest

    store = _store(tmp_path)
    raised, asked = raise_for_finding(store, top, Manifest.load(project / "target" / "manifest.json", project), Policy())
    assert raised == [] and [e.finding_pattern for e in asked] == ["schema_drift:unit_change:total"]
    assert len(store.escalations()) == 1


def test_once_the_baseline_accepts_the_unit_change_the_investigation_still_names_it(project: Path, tmp_path: Path) -> None:
    """`agent-de drift --baseline` quiets the check, not the numbers: stg_orders still reads cents as dollars."""
    case(project, tmp_path, [ORDERS_IN_DOLLARS], [TO_CENTS])
    r = CliRunner().invoke(main, ["--state-dir", str(tmp_path), "--project-dir", str(project), "drift", "--baseline"],
                           env={"AGENT_DE_DUCKDB_PATH": str(tmp_path / "warehouse.duckdb")}, catch_exceptions=False)
    assert "accepted a unit change: raw.orders.total: DOUBLE -> BIGINT, values ×100" in r.output, r.output
    code, quiet = drift(project, tmp_path)
    assert code == 0 and not quiet["changes"]  # the check is quiet about it now
    top = investigate_reconciliation(project, tmp_path).findings[0]
    assert top.pattern == "schema_drift" and top.confidence >= 0.9, top.summary
    assert "values ×100: dollars to cents?" in top.summary and "accepted into the drift baseline" in top.summary
    assert "stg_orders still reads total unconverted" in top.summary and "found mismatched (total) comes from it" in top.summary
    assert top.proposed_fix is not None and "+    total / 100.0 as total," in top.proposed_fix.diff
    # converted in the model: the accepted change is handled, nothing to name
    model = project / "models" / "stg_orders.sql"
    sql = model.read_text()
    try:
        model.write_text(sql.replace("    total,", "    total / 100.0 as total,"))
        assert all(f.pattern != "schema_drift" for f in investigate_reconciliation(project, tmp_path).findings)
    finally:
        model.write_text(sql)
    # a new baseline over an unchanged schema keeps what the old one accepted
    CliRunner().invoke(main, ["--state-dir", str(tmp_path), "--project-dir", str(project), "drift", "--baseline"],
                       env={"AGENT_DE_DUCKDB_PATH": str(tmp_path / "warehouse.duckdb")}, catch_exceptions=False)
    assert "accepted into the drift baseline" in investigate_reconciliation(project, tmp_path).findings[0].summary


def test_a_unit_change_in_place_on_snowflake(tmp_path: Path, state_store) -> None:
    """Under fakesnow: NUMBER(10,2) dollars replaced by NUMBER(38,0) cents under the same name (Snowflake cannot
    retype with USING: add, fill, drop, rename, as a loader does), proven by the values at x 10^2."""
    report, audit = _snowflake_drift(state_store, "select seq4() + 1 as ID, cast(((seq4() + 1) * 137 % 10000) / 100.0 as "
                              "number(10, 2)) as AMOUNT from table(generator(rowcount => 300))", (
        "alter table SHOP.STRIPE.CHARGES add column AMOUNT_CENTS number(38, 0)",
        "update SHOP.STRIPE.CHARGES set AMOUNT_CENTS = AMOUNT * 100",
        "alter table SHOP.STRIPE.CHARGES drop column AMOUNT",
        "alter table SHOP.STRIPE.CHARGES rename column AMOUNT_CENTS to AMOUNT"))
    (change,) = report.changes
    assert (change.kind, change.column, change.unit_scale) == ("type_changed", "AMOUNT", 2)
    (ev,) = change.evidence
    assert ev.verdict == "unit_change" and ev.keys_compared == 300 and ev.match_rate == 1.0
    assert "values ×100: dollars to cents?" in change.describe()


@pytest.mark.parametrize("line", [
    "    total,  -- total / 100.0 once the loader sends cents",  # a comment converts nothing
    "    total,\n    subtotal / 100.0 as subtotal_dollars,",  # another column whose name ends like it
    "    total,\n    total / 1000.0 as total_thousands,",  # another factor
])
def test_an_accepted_unit_change_is_named_while_the_reader_does_not_convert_it(project: Path, tmp_path: Path,
                                                                               line: str) -> None:
    """The reader's SQL holds text like the conversion but does not apply it to the column: still named (the text
    match took `-- total / 100.0`, `subtotal / 100.0` and `total / 1000.0` for the conversion)."""
    from dagster_agent_de.engines.investigate.detectors.schema_drift import sql_converts

    assert not sql_converts(line, "total / 100.0")
    assert sql_converts("select o.total / 100 as total", "total / 100.0")
    assert sql_converts('select cast("total" / 100.0 as decimal(12, 2)) as total', "total / 100.0")
    case(project, tmp_path, [ORDERS_IN_DOLLARS], [TO_CENTS])
    CliRunner().invoke(main, ["--state-dir", str(tmp_path), "--project-dir", str(project), "drift", "--baseline"],
                       env={"AGENT_DE_DUCKDB_PATH": str(tmp_path / "warehouse.duckdb")}, catch_exceptions=False)
    model = project / "models" / "stg_orders.sql"
    sql = model.read_text()
    try:
        model.write_text(sql.replace("    total,", line, 1))
        top = investigate_reconciliation(project, tmp_path).findings[0]
    finally:
        model.write_text(sql)
    assert top.pattern == "schema_drift" and "stg_orders still reads total unconverted" in top.summary, top.summary
