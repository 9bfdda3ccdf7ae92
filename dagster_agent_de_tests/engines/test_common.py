"""The engines on every adapter: the same tests, the same answers, on DuckDB and on a real PostgreSQL.

Each test takes ``engine`` (see ``dagster_agent_de_tests/warehouses.py``); where an engine differs
(a type's name), the test says how, never skips.
"""

from __future__ import annotations

import pytest

from dagster_agent_de.adapters.audit import AuditLog
from dagster_agent_de.engines.drift.diff import diff_snapshots
from dagster_agent_de.engines.drift.snapshot import snapshot_schema
from dagster_agent_de.engines.reconcile import ReconcileSpec, reconcile
from dagster_agent_de.engines.volume import row_counts
from dagster_agent_de.manifest import Manifest
from dagster_agent_de_tests.helpers import make_manifest
from dagster_agent_de_tests.warehouses import Engine

DECIMAL = {"duckdb": "DECIMAL(10,2)", "postgres": "NUMERIC(10,2)"}
TEXT20 = {"duckdb": "VARCHAR", "postgres": "CHARACTER VARYING(20)"}


def test_drift_snapshot_is_one_query_and_sees_a_rename(engine: Engine) -> None:
    engine.execute(
        "create schema a",
        "create table a.t (id integer not null, amount decimal(10,2), full_name varchar(20), paid_at timestamp)",
        "create view a.v as select id from a.t",
    )
    audit = AuditLog(None)
    db = engine.database
    rels = [(db, "a", "t"), (db, "a", "v"), (db, "a", "not_yet")]
    with engine.warehouse(audit) as wh:
        before = snapshot_schema(wh, rels)
    assert len(audit.events) == 1 and "information_schema.columns" in audit.events[0].statement
    t = before.tables[f"{db}.a.t"]
    assert [(c.name, c.data_type, c.nullable) for c in t.columns] == [
        ("id", "INTEGER", False), ("amount", DECIMAL[engine.kind], True), ("full_name", TEXT20[engine.kind], True),
        ("paid_at", "TIMESTAMP" if engine.kind == "duckdb" else "TIMESTAMP WITHOUT TIME ZONE", True),
    ]
    assert (t.table_type, before.tables[f"{db}.a.v"].table_type) == ("BASE TABLE", "VIEW")
    assert before.missing == [f"{db}.a.not_yet"] and before.dialect == engine.kind

    engine.execute("alter table a.t rename column full_name to customer_name")
    with engine.warehouse() as wh:
        after = snapshot_schema(wh, rels, previous=before)
    assert after.tables[f"{db}.a.v"] is before.tables[f"{db}.a.v"]  # unchanged: not decoded again
    changes = diff_snapshots(before, after)
    assert [(str(c.kind), c.column, c.new_column) for c in changes] == [("column_renamed", "full_name", "customer_name")]


# pipe vs truth, keyed on (region, id), as in test_reconcile.py: every class of difference once
_PIPE = [("'eu'", 1, "10.00", "'paid'"), ("'eu'", 2, "20.005", "'paid'"), ("'eu'", 3, "30.02", "'paid'"),
         ("'us'", 1, "5.00", "'paid'"), ("'us'", 3, "7.00", "'paid'"), ("'us'", 4, "1.00", "'paid'"),
         ("'us'", 4, "1.00", "'paid'"), ("null", 9, "1.00", "'paid'"), ("'us'", 5, "2.00", "null"), ("'us'", 6, "3.00", "null")]
_TRUTH = [("'eu'", 1, 1000, "'PAID'"), ("'eu'", 2, 2000, "'PAID'"), ("'eu'", 3, 3000, "'PAID'"), ("'us'", 1, 500, "'REFUNDED'"),
          ("'us'", 2, 600, "'PAID'"), ("'us'", 4, 100, "'PAID'"), ("null", 8, 100, "'PAID'"), ("'us'", 5, 200, "null"),
          ("'us'", 6, 300, "'PAID'")]


def _values(rows: list[tuple[object, ...]]) -> str:
    return ", ".join("(" + ", ".join(str(v) for v in r) + ")" for r in rows)


def load_pipe_and_truth(engine: Engine, schema: str | None = None) -> None:
    s = schema or engine.schema
    engine.execute(
        f"create table {s}.pipe (region varchar(8), id integer, amount decimal(10,3), status varchar(10))",
        f"insert into {s}.pipe values {_values(_PIPE)}",
        f"create table {s}.truth (region varchar(8), order_id integer, amount_cents integer, status varchar(10))",
        f"insert into {s}.truth values {_values(_TRUTH)}",
    )


def pipe_spec(**kw: object) -> ReconcileSpec:
    base: dict[str, object] = dict(
        name="pipe_vs_truth", model="pipe", against="truth", key=["region", "id"], key_against=["region", "order_id"],
        compare={"amount": {"against": "amount_cents / 100.0", "abs_tol": 0.01}, "status": {"against": "lower(status)"}},
        segment_by=["region"], aggregates=["sum(amount)", "count(*)"],
    )
    base.update(kw)
    return ReconcileSpec.model_validate(base)


def test_reconcile_in_one_warehouse_counts_every_class(engine: Engine) -> None:
    load_pipe_and_truth(engine)
    manifest = make_manifest({"pipe": engine.relation("pipe")})
    r = reconcile(pipe_spec(against=engine.relation("truth")), manifest, engine.warehouse())
    assert r.method == "pushdown"
    assert (r.rows_pipeline, r.rows_truth) == (10, 9)
    assert (r.null_keys_pipeline, r.null_keys_truth) == (1, 1)
    assert (r.duplicate_keys_pipeline, r.duplicate_keys_truth) == (1, 0)
    assert (r.matched, r.missing_in_pipeline, r.extra_in_pipeline, r.mismatched_rows) == (7, 1, 1, 3)
    assert {c.column: c.mismatched for c in r.columns} == {"amount": 1, "status": 2}
    assert [(s["region"], s["id"]) for s in r.samples["missing_in_pipeline"]] == [("us", 2)]
    eu = {s.metric: s for s in r.segments if s.segment == {"region": "eu"}}
    assert eu["count_rows"].delta == 0 and eu["sum_amount"].pipeline == pytest.approx(60.025)
    assert not r.passed


def test_row_counts_in_one_query(engine: Engine) -> None:
    engine.execute("create table a (x integer)", "insert into a values (1), (2), (3)", "create table b (x integer)")
    audit = AuditLog(None)
    got = row_counts(engine.warehouse(audit), {"a": engine.relation("a"), "b's": engine.relation("b")})
    assert got == {"a": 3, "b's": 0} and len(audit.events) == 1


def _people(engine: Engine) -> None:
    notes = ["null" if i % 7 == 0 else f"'note {i}'" for i in range(60)]
    rows = ", ".join(f"({i}, '+44 20 7946 {i:04d}', 'user{i % 40}@example.com', '{['open', 'pending', 'solved'][i % 3]}', "
                     f"{notes[i]})" for i in range(60))
    engine.execute("create schema crm",
                   "create table crm.people (id integer, contact varchar(40), email varchar(40), status varchar(10), note varchar(20))",
                   f"insert into crm.people values {rows}")


def test_onboarding_profile_takes_a_fixed_handful_of_queries(engine: Engine) -> None:
    from dagster_agent_de.engines.onboard import profile_table

    _people(engine)
    audit = AuditLog(None)
    prof = profile_table(engine.warehouse(audit), "crm", "people")
    assert prof.rows == 60 and [c.name for c in prof.columns] == ["id", "contact", "email", "status", "note"]
    assert len(audit.events) == 5  # schema, aggregates, exact key check, value counts, PII sample
    assert {c.name for c in prof.columns if c.exact_unique} == {"id", "contact"}
    assert prof.column("status").top_values == [("open", 20), ("pending", 20), ("solved", 20)]
    assert prof.column("note").non_null == 51
    assert (prof.column("id").min, prof.column("id").max) == (0, 59)
    assert prof.database == engine.database


def test_pii_scan_of_sources(engine: Engine) -> None:
    from dagster_agent_de.engines.onboard.pii_scan import scan_sources

    _people(engine)
    manifest = Manifest({"nodes": {}, "sources": {
        f"source.p.crm.{t}": {"name": t, "source_name": "crm", "resource_type": "source", "database": engine.database,
                              "schema": "crm", "identifier": t, "relation_name": engine.relation(t, "crm"),
                              "columns": {"email": {"name": "email", "meta": {"agent_de": {"pii": True}}}} if t == "people" else {}}
        for t in ("people", "gone")}})
    found = {r.node: r for r in scan_sources(manifest, engine.warehouse())}
    assert [(h.column, h.kind) for h in found["crm.people"].hits] == [("contact", "phone")]  # email is tagged
    assert found["crm.gone"].hits == ()  # not in the warehouse: its columns are unknown, so nothing to sample
