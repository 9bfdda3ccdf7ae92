"""WT-02 in its most frequent form: the warehouse's orders against the application's orders, across connections.

``fct_orders`` lives in the demo's DuckDB warehouse (the session's real dbt build); the application
database is a real PostgreSQL holding the orders the app wrote. The seed's WT-02 incident (an inner
join on HubSpot contacts) drops ~70% of the orders; the cross-connection reconciliation finds them,
and the investigation it triggers names the join.
"""

from __future__ import annotations

from dagster_agent_de.engines.investigate import investigate
from dagster_agent_de.engines.investigate.models import Failure
from dagster_agent_de.engines.reconcile import ReconcileSpec, reconcile
from dagster_agent_de.manifest import Manifest
from dagster_agent_de.project import DbtProjectInfo
from dagster_agent_de_tests.warehouses import PgServer

ENRICHED = "models/intermediate/int_orders_enriched.sql"


def _app_database(pg: PgServer, demo_env) -> str:
    """The application's database: its own table layout, the orders the app wrote (the demo's source rows)."""
    import psycopg

    with demo_env.warehouse() as wh:
        rows = wh.query("select order_id, customer_id, status, currency, amount_cents, ordered_at from app.orders",
                        rationale="the app's orders, to seed the test's application database").rows
    db = pg.create_database("app")
    pg.admin("create table public.orders (id bigint primary key, customer_id bigint, state text, currency char(3), "
             "total_cents bigint, created_at timestamptz)", dbname=db)
    with psycopg.connect(host="127.0.0.1", port=pg.port, user="postgres", dbname=db) as con, con.cursor() as cur:
        with cur.copy("copy public.orders from stdin") as copy:
            for r in rows:
                copy.write_row(r)
    return db


def test_wt02_warehouse_orders_against_the_app_database(demo_env, pg_server: PgServer) -> None:
    db = _app_database(pg_server, demo_env)
    spec = ReconcileSpec.model_validate(dict(
        name="orders_vs_app", model="fct_orders", against="public.orders", key=["order_id"], key_against=["id"],
        where_against="state <> 'cancelled'",
        compare={"amount": {"against": "total_cents / 100.0", "abs_tol": 0.01}, "currency": {}, "ordered_at": {"against": "created_at"}},
        connection={"type": "postgres", "host": "127.0.0.1", "port": pg_server.port, "user": "postgres", "dbname": db},
        thresholds={"missing_pct": 0.1},
    ))
    info = DbtProjectInfo.from_settings(demo_env.settings)
    try:
        with demo_env.warehouse() as wh:
            clean = reconcile(spec, Manifest.load(info.manifest_path, demo_env.project_dir), wh)
        with demo_env.incident("wt02_join_drop", rebuild="int_orders_enriched+", restore=(ENRICHED,)):
            demo_env.dbt("run", "-s", "int_orders_enriched+", "-q")
            manifest = Manifest.load(info.manifest_path, demo_env.project_dir)
            with demo_env.warehouse() as wh:
                broken = reconcile(spec, manifest, wh)
                failure = Failure(asset="fct_orders", check=spec.name, kind="reconciliation",
                                  metadata=broken.counts() | {"mismatched_columns": []})
                findings = investigate(failure, manifest, wh).findings
    finally:
        pg_server.drop_database(db)
    # before the incident the warehouse matches the app (naive ordered_at vs the app's timestamptz, as UTC)
    assert clean.passed and clean.method == "bisection" and clean.matched == clean.rows_truth > 0
    assert (clean.missing_in_pipeline, clean.extra_in_pipeline, clean.mismatched_rows) == (0, 0, 0)
    # the incident: ~70% of the app's orders are missing from fct_orders, and only they moved
    assert not broken.passed and 60 < broken.missing_pct < 80
    assert broken.missing_in_pipeline == broken.rows_truth - broken.matched and broken.mismatched_rows == 0
    assert broken.rows_moved is not None and broken.rows_moved < 3 * broken.missing_in_pipeline + 2 * 64 * 64
    assert broken.samples["missing_in_pipeline"] and any("postgres" in n for n in broken.notes)
    top = findings[0]
    assert (top.pattern, top.model) == ("join_row_drop", "int_orders_enriched")
    assert "stg_hubspot_contacts" in top.summary
