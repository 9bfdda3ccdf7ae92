"""The Snowflake path: the same audited query through dagster-snowflake's SnowflakeResource, under fakesnow."""

from __future__ import annotations

import pytest

from dagster_agent_de.adapters.audit import AuditLog, read_audit
from dagster_agent_de.errors import StatementRefusedError
from dagster_agent_de_tests.helpers import stored_audit_text

fakesnow = pytest.importorskip("fakesnow")


def _fake_snowflake(database: str, schema: str, *statements: str):
    """A SnowflakeResource on a fakesnow database/schema, after running ``statements`` (call inside ``fakesnow.patch()``)."""
    from dagster_snowflake import SnowflakeResource

    resource = SnowflakeResource(account="acct", user="agent", password="pw", database=database, schema=schema)
    with resource.get_connection() as con:
        cur = con.cursor()
        for sql in (f"create database if not exists {database}", f"create schema if not exists {database}.{schema}", *statements):
            cur.execute(sql)
    return resource


def test_audited_query_through_snowflake_resource(tmp_path, monkeypatch, state_store) -> None:
    from dagster_agent_de.adapters.warehouse import open_warehouse
    from dagster_agent_de.config import resolve_settings

    for k, v in {
        "SNOWFLAKE_ACCOUNT": "acct", "SNOWFLAKE_USER": "agent", "SNOWFLAKE_PASSWORD": "s3cr3t-pw",
        "SNOWFLAKE_DATABASE": "SHOP", "SNOWFLAKE_SCHEMA": "APP",
    }.items():
        monkeypatch.setenv(k, v)
    audit = AuditLog(state_store, actor="test")
    with fakesnow.patch():
        from dagster_snowflake import SnowflakeResource

        with SnowflakeResource(account="acct", user="loader", password="x").get_connection() as con:
            cur = con.cursor()
            cur.execute("create database if not exists SHOP")
            cur.execute("create schema if not exists SHOP.APP")
            cur.execute("create or replace table SHOP.APP.ORDERS (order_id int, amount number(10,2))")
            cur.execute("insert into SHOP.APP.ORDERS values (1, 10.5), (2, 3.25)")
        settings = resolve_settings(tmp_path, None, "snowflake")
        with open_warehouse(settings, audit) as wh:
            assert type(wh).__name__ == "SnowflakeWarehouse"
            res = wh.query("select count(*) as n, sum(amount) as total from SHOP.APP.ORDERS", rationale="row count")
            assert res.one()["N"] == 2
            with pytest.raises(StatementRefusedError):
                wh.query("delete from SHOP.APP.ORDERS", rationale="must not run")
            assert wh.query("select count(*) from SHOP.APP.ORDERS", rationale="still 2").scalar() == 2
    events = read_audit(state_store)
    assert [(e.dialect, e.outcome) for e in events] == [("snowflake", "ok"), ("snowflake", "refused"), ("snowflake", "ok")]
    assert "s3cr3t-pw" not in stored_audit_text(state_store)


def test_snowflake_target_without_credentials_names_the_env_vars(tmp_path, monkeypatch) -> None:
    from dagster_agent_de.adapters.warehouse import open_warehouse
    from dagster_agent_de.config import resolve_settings
    from dagster_agent_de.errors import ConfigError

    monkeypatch.delenv("SNOWFLAKE_ACCOUNT", raising=False)
    monkeypatch.delenv("SNOWFLAKE_USER", raising=False)
    with pytest.raises(ConfigError, match="SNOWFLAKE_ACCOUNT"):
        open_warehouse(resolve_settings(tmp_path, None, "snowflake"), AuditLog(None))


def test_drift_through_snowflake_adapter(tmp_path, state_store) -> None:
    """Upper-case identifiers and NUMBER types, read with metadata commands (no running warehouse), rename detected."""
    from dagster_agent_de.adapters.warehouse.snowflake import SnowflakeWarehouse
    from dagster_agent_de.engines.drift import SnapshotStore, detect_drift
    from dagster_agent_de.manifest import Manifest

    manifest = Manifest({"nodes": {
        "model.p.stg_charges": {
            "name": "stg_charges", "resource_type": "model", "relation_name": "SHOP.ANALYTICS.STG_CHARGES",
            "database": "SHOP", "schema": "ANALYTICS", "alias": "STG_CHARGES", "package_name": "p",
            "original_file_path": "models/stg_charges.sql", "compiled_code": "select id, amount / 100 as amount from SHOP.STRIPE.CHARGES",
            "depends_on": {"nodes": ["source.p.stripe.charges"]},
        }}, "sources": {"source.p.stripe.charges": {
            "name": "charges", "source_name": "stripe", "resource_type": "source", "relation_name": "SHOP.STRIPE.CHARGES",
            "database": "SHOP", "schema": "STRIPE", "identifier": "CHARGES"}}})
    audit = AuditLog(None)
    store = SnapshotStore(state_store)
    with fakesnow.patch():
        from dagster_snowflake import SnowflakeResource

        resource = SnowflakeResource(account="acct", user="agent", password="pw")
        with resource.get_connection() as con:
            cur = con.cursor()
            cur.execute("create database if not exists SHOP")
            cur.execute("create schema if not exists SHOP.STRIPE")
            cur.execute("create schema if not exists SHOP.ANALYTICS")
            cur.execute("create or replace table SHOP.STRIPE.CHARGES (id varchar, amount number(38,0), currency varchar)")
        with SnowflakeWarehouse.from_resource(resource, audit) as wh:
            first, snap = detect_drift(manifest, wh, store)
            assert first.baseline_created
            table = snap.tables["shop.stripe.charges"]
            assert [c.name for c in table.columns] == ["ID", "AMOUNT", "CURRENCY"]
            assert table.columns[1].data_type.startswith("NUMBER")
        with resource.get_connection() as con:
            con.cursor().execute("alter table SHOP.STRIPE.CHARGES rename column AMOUNT to AMOUNT_CENTS")
        with SnowflakeWarehouse.from_resource(resource, audit) as wh:
            report, _ = detect_drift(manifest, wh, store)
    show = [e.statement for e in audit.events if e.kind == "query" and e.statement.startswith("SHOW")]
    per_snapshot = {f'SHOW {what} IN SCHEMA "SHOP"."{schema}"' for what in ("TERSE OBJECTS", "COLUMNS")
                    for schema in ("STRIPE", "ANALYTICS")}
    assert set(show) == per_snapshot and len(show) == 2 * len(per_snapshot)  # one command per schema, never per table
    # schemas are never read from information_schema.columns, which needs a running warehouse (only a change
    # found this way is fingerprinted, with a query that does)
    assert not [e for e in audit.events if "information_schema.columns" in e.statement.lower()]
    (change,) = report.changes
    assert (change.kind, change.column, change.new_column) == ("column_renamed", "AMOUNT", "AMOUNT_CENTS")
    assert change.severity.value == "breaking"
    assert [i.model for i in change.impacted] == ["stg_charges"]


def test_reconcile_through_snowflake_adapter(tmp_path) -> None:
    """The portable plan (pre-check, join, sample query) on Snowflake gives the DuckDB fast plan's report."""
    from dagster_agent_de.adapters.warehouse import DuckDBWarehouse
    from dagster_agent_de.adapters.warehouse.snowflake import SnowflakeWarehouse
    from dagster_agent_de.engines.reconcile import ReconcileSpec, reconcile
    from dagster_agent_de_tests.helpers import duck, make_manifest

    rows_pipe = "(1, 'eu', 10.00, 'paid'), (2, 'eu', 20.00, 'paid'), (3, 'us', 30.50, 'paid'), (4, 'us', 5.00, null), (6, 'us', 1.00, 'paid')"
    rows_truth = "(1, 'eu', 1000, 'paid'), (2, 'eu', 2000, 'refunded'), (3, 'us', 3000, 'paid'), (4, 'us', 500, null), (5, 'eu', 700, 'paid')"
    spec = ReconcileSpec.model_validate(dict(
        name="orders_vs_charges", model="orders", against="charges", key=["order_id"], key_against=["id"],
        compare={"amount": {"against": "amount_cents / 100.0", "abs_tol": 0.01}, "status": {}},
        segment_by=["region"], aggregates=["sum(amount)", "count(*)"]))
    audit = AuditLog(None)
    with fakesnow.patch():
        resource = _fake_snowflake(
            "SHOP", "APP",
            "create or replace table SHOP.APP.ORDERS (order_id int, region varchar, amount number(10,2), status varchar)",
            f"insert into SHOP.APP.ORDERS values {rows_pipe}",
            "create or replace table SHOP.APP.CHARGES (id int, region varchar, amount_cents number(12,0), status varchar)",
            f"insert into SHOP.APP.CHARGES values {rows_truth}")
        with SnowflakeWarehouse.from_resource(resource, audit) as wh:
            snow = reconcile(spec, make_manifest({"orders": "SHOP.APP.ORDERS"}), wh)
    path = duck(tmp_path / "wh.duckdb",
                f"create table orders as select * from (values {rows_pipe}) t(order_id, region, amount, status)",
                f"create table charges as select * from (values {rows_truth}) t(id, region, amount_cents, status)")
    with DuckDBWarehouse(path, AuditLog(None)) as wh:
        local = reconcile(spec, make_manifest({"orders": '"wh"."main"."orders"'}), wh)
    assert (snow.matched, snow.missing_in_pipeline, snow.extra_in_pipeline, snow.mismatched_rows) == (4, 1, 1, 2)
    keep = {"duration_ms", "statements"}
    assert snow.model_dump(exclude=keep) == local.model_dump(exclude=keep)
    assert all(e.dialect == "snowflake" for e in audit.events)



def test_identical_sides_pass_on_the_checksum_in_snowflake_sql(tmp_path) -> None:
    """The checksum statement in Snowflake's dialect (HASH, rendered by sqlglot): one scan of each side."""
    from dagster_agent_de.adapters.warehouse.snowflake import SnowflakeWarehouse
    from dagster_agent_de.engines.reconcile import ReconcileSpec, reconcile
    from dagster_agent_de_tests.helpers import make_manifest

    rows = "(1, 'eu', 10.00, 'paid'), (2, 'eu', 20.00, null), (3, 'us', 30.50, 'paid')"
    spec = ReconcileSpec.model_validate(dict(
        name="orders_vs_copy", model="orders", against="SHOP.APP.ORDERS_COPY", key=["order_id"],
        compare={"amount": {"abs_tol": 0.01}, "status": {}, "region": {}}, segment_by=["region"], aggregates=["sum(amount)"]))
    audit = AuditLog(None)
    with fakesnow.patch():
        resource = _fake_snowflake(
            "SHOP", "APP",
            "create or replace table SHOP.APP.ORDERS (order_id int, region varchar, amount number(10,2), status varchar)",
            f"insert into SHOP.APP.ORDERS values {rows}",
            "create or replace table SHOP.APP.ORDERS_COPY as select * from SHOP.APP.ORDERS")
        with SnowflakeWarehouse.from_resource(resource, audit) as wh:
            r = reconcile(spec, make_manifest({"orders": "SHOP.APP.ORDERS"}), wh)
    assert r.method == "checksum" and r.passed and (r.rows_pipeline, r.matched) == (3, 3)
    assert [(s.segment, s.pipeline, s.truth) for s in r.segments] == [({"region": "eu"}, 30.0, 30.0), ({"region": "us"}, 30.5, 30.5)]
    (checksum,) = r.statements
    assert "sum(hash(" in checksum and all(e.dialect == "snowflake" for e in audit.events)

def test_truth_segments_derived_from_the_differing_rows_in_snowflake_sql(tmp_path) -> None:
    """The checksum differs; the keyed plan (Snowflake SQL) returns what the differing rows add per segment,
    and the truth side's aggregates follow without a pass over it: a row moved between segments, a
    changed amount, a segment only the source of truth has."""
    from dagster_agent_de.adapters.warehouse.snowflake import SnowflakeWarehouse
    from dagster_agent_de.engines.reconcile import ReconcileSpec, reconcile
    from dagster_agent_de_tests.helpers import make_manifest

    rows = "(1, 'eu', 10.00, 'paid'), (2, 'eu', 20.00, null), (3, 'us', 30.50, 'paid'), (4, 'us', 5.00, 'paid')"
    spec = ReconcileSpec.model_validate(dict(
        name="orders_vs_copy", model="orders", against="SHOP.APP.ORDERS_COPY", key=["order_id"],
        compare={"amount": {"abs_tol": 0.01}, "status": {}, "region": {}}, segment_by=["region"],
        aggregates=["sum(amount)", "count(*)"]))
    with fakesnow.patch():
        resource = _fake_snowflake(
            "SHOP", "APP",
            "create or replace table SHOP.APP.ORDERS (order_id int, region varchar, amount number(10,2), status varchar)",
            f"insert into SHOP.APP.ORDERS values {rows}",
            "create or replace table SHOP.APP.ORDERS_COPY as select * from SHOP.APP.ORDERS",
            "update SHOP.APP.ORDERS_COPY set region = 'us' where order_id = 2",
            "update SHOP.APP.ORDERS_COPY set amount = 6.00 where order_id = 4",
            "insert into SHOP.APP.ORDERS_COPY values (5, 'apac', 1.00, 'paid')")
        with SnowflakeWarehouse.from_resource(resource, AuditLog(None)) as wh:
            r = reconcile(spec, make_manifest({"orders": "SHOP.APP.ORDERS"}), wh)
    assert r.method == "pushdown" and (r.missing_in_pipeline, r.mismatched_rows) == (1, 2)
    assert len(r.statements) == 2  # the checksum and the keyed plan: no pass over the truth side alone
    got = [(s.segment["region"], s.metric, s.pipeline, s.truth) for s in r.segments]
    assert got == [("apac", "sum_amount", None, 1.0), ("apac", "count_rows", None, 1.0),
                   ("eu", "sum_amount", 30.0, 10.0), ("eu", "count_rows", 2.0, 1.0),
                   ("us", "sum_amount", 35.5, 56.5), ("us", "count_rows", 2.0, 3.0)]


def test_onboarding_profile_and_volume_through_snowflake_adapter(tmp_path) -> None:
    """Onboarding's profile queries and the volume count in Snowflake's dialect (upper-case names, NUMBER)."""
    from dagster_agent_de.adapters.warehouse.snowflake import SnowflakeWarehouse
    from dagster_agent_de.engines.onboard import profile_table, propose
    from dagster_agent_de.engines.volume import row_counts
    from dagster_agent_de.manifest import Manifest

    with fakesnow.patch():
        resource = _fake_snowflake(
            "RAW", "ZENDESK",
            "create or replace table RAW.ZENDESK.TICKETS (TICKET_ID number(38,0), STATUS varchar, REQUESTER varchar, "
            "FEE_CENTS number(38,0))",
            "insert into RAW.ZENDESK.TICKETS select seq4(), case when seq4() % 2 = 0 then 'open' else 'solved' end, "
            "'user' || seq4() || '@example.com', seq4() * 10 from table(generator(rowcount => 40))")
        with SnowflakeWarehouse.from_resource(resource, AuditLog(None)) as wh:
            prof = profile_table(wh, "ZENDESK", "TICKETS", "RAW")
            counts = row_counts(wh, {"tickets": "RAW.ZENDESK.TICKETS"})
    assert prof.rows == 40 and counts == {"tickets": 40}
    assert [c.name for c in prof.columns] == ["TICKET_ID", "STATUS", "REQUESTER", "FEE_CENTS"]
    assert prof.column("TICKET_ID").exact_unique and prof.column("STATUS").top_values == [("open", 20), ("solved", 20)]
    p = propose(prof, Manifest({"nodes": {}, "sources": {}}))
    assert p.model_name == "stg_zendesk__tickets" and [h["column"] for h in p.pii] == ["REQUESTER"]
    sql = p.files["models/staging/zendesk/stg_zendesk__tickets.sql"]
    assert '"FEE_CENTS" / 100.0 as fee' in sql and '"TICKET_ID" as ticket_id' in sql  # quoted as stored: valid Snowflake


def test_a_show_result_at_the_row_cap_is_never_read_as_dropped_columns(monkeypatch) -> None:
    """SHOW output stops at 10,000 rows: a schema that big keeps its previous snapshot, with a note."""
    from dagster_agent_de.adapters.warehouse.snowflake import SnowflakeWarehouse
    from dagster_agent_de.engines.drift import snapshot as snap_mod
    from dagster_agent_de.engines.drift.snapshot import snapshot_schema

    rels = [("SHOP", "STRIPE", "CHARGES")]
    with fakesnow.patch():
        from dagster_snowflake import SnowflakeResource

        resource = SnowflakeResource(account="acct", user="agent", password="pw")
        with resource.get_connection() as con:
            cur = con.cursor()
            cur.execute("create database if not exists SHOP")
            cur.execute("create schema if not exists SHOP.STRIPE")
            cur.execute("create or replace table SHOP.STRIPE.CHARGES (id varchar, amount number(38,0), currency varchar)")
        with SnowflakeWarehouse.from_resource(resource, AuditLog(None)) as wh:
            first = snapshot_schema(wh, rels)
            assert [c.name for c in first.tables["shop.stripe.charges"].columns] == ["ID", "AMOUNT", "CURRENCY"]
            monkeypatch.setattr(snap_mod, "SHOW_ROW_CAP", 3)  # this schema's 3 columns now look like a cut list
            capped = snapshot_schema(wh, rels, first)
    assert capped.tables == first.tables and capped.missing == []
    assert "may be cut" in capped.notes[0]


def test_snowflake_row_counts_name_the_database_as_snowflake_stores_it() -> None:
    """The catalog query quotes the database: it must be the name as the warehouse stores it (SHOP), not the
    lower-cased relation key ("shop" is another database on Snowflake, where quoted names are case-sensitive)."""
    fakesnow = pytest.importorskip("fakesnow")
    from dagster_agent_de.adapters.warehouse.snowflake import SnowflakeWarehouse
    from dagster_agent_de.engines.drift.fingerprint import table_sizes
    from dagster_agent_de.engines.drift.snapshot import snapshot_schema
    from dagster_agent_de_tests.test_snowflake import _fake_snowflake

    audit = AuditLog(None)
    with fakesnow.patch():
        resource = _fake_snowflake("SHOP", "STRIPE", "create or replace table SHOP.STRIPE.CHARGES (ID int, AMOUNT number(10, 2))",
                                   "insert into SHOP.STRIPE.CHARGES values (1, 2.5), (2, 3.5)")
        with SnowflakeWarehouse.from_resource(resource, audit) as wh:
            table = snapshot_schema(wh, [("SHOP", "STRIPE", "CHARGES")]).tables["shop.stripe.charges"]
            table_sizes(wh, [table])
    (sizes,) = [e for e in audit.events if e.rationale.startswith("row counts of")]
    assert '"SHOP".information_schema' in sizes.statement.replace("INFORMATION_SCHEMA", "information_schema"), sizes.statement
