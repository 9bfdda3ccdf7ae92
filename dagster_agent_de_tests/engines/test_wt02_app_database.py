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


APP_DB = """connections:
  app_db:
    type: postgres
    host: 127.0.0.1
    port: "{{{{ env_var('APP_DB_PORT') | as_number }}}}"
    user: postgres
    password: "{{{{ env_var('APP_DB_PASSWORD', '') }}}}"
    dbname: {db}
  broken:
    type: postgres
    host: 127.0.0.1
    port: not-a-port
    user: postgres
    dbname: {db}
"""


def _named_spec(name: str) -> ReconcileSpec:
    return ReconcileSpec.model_validate(dict(
        name="orders_vs_app", model="fct_orders", against="public.orders", key=["order_id"], key_against=["id"],
        where_against="state <> 'cancelled'", connection=name, thresholds={"missing_pct": 0.1},
        compare={"amount": {"against": "total_cents / 100.0", "abs_tol": 0.01}, "currency": {}},
    ))


def test_wt02_against_a_named_connection_of_the_agent_settings(demo_env, pg_server: PgServer, tmp_path, monkeypatch) -> None:
    """`connection: app_db` names a connection of the agent's settings (AGENT_DE_CONNECTIONS), its port and
    password rendered from the environment with dbt's env_var; the same reconciliation as above."""
    import pytest

    from dagster_agent_de.errors import SpecError

    db = _app_database(pg_server, demo_env)
    settings_file = tmp_path / "connections.yml"
    settings_file.write_text(APP_DB.format(db=db))
    monkeypatch.setenv("AGENT_DE_CONNECTIONS", str(settings_file))
    monkeypatch.setenv("APP_DB_PORT", str(pg_server.port))
    info = DbtProjectInfo.from_settings(demo_env.settings)
    manifest = Manifest.load(info.manifest_path, demo_env.project_dir)
    try:
        with demo_env.warehouse() as wh:
            clean = reconcile(_named_spec("app_db"), manifest, wh)
            with pytest.raises(SpecError) as unknown:
                reconcile(_named_spec("app_dbb"), manifest, wh)
            with pytest.raises(SpecError) as broken_entry:
                reconcile(_named_spec("broken"), manifest, wh)
        with demo_env.incident("wt02_join_drop", rebuild="int_orders_enriched+", restore=(ENRICHED,)):
            demo_env.dbt("run", "-s", "int_orders_enriched+", "-q")
            with demo_env.warehouse() as wh:
                broken = reconcile(_named_spec("app_db"), Manifest.load(info.manifest_path, demo_env.project_dir), wh)
    finally:
        pg_server.drop_database(db)
    assert clean.passed and clean.method == "bisection" and clean.matched == clean.rows_truth > 0
    assert f"on postgres postgres@127.0.0.1:{pg_server.port}/{db}" in clean.against
    assert not broken.passed and 60 < broken.missing_pct < 80 and broken.mismatched_rows == 0
    # an unknown name says which names there are; a bad entry names the connection and the field
    assert "connection 'app_dbb' is not defined" in str(unknown.value) and "app_db, broken" in str(unknown.value)
    assert "orders_vs_app" in str(unknown.value)
    assert "connection 'broken'" in str(broken_entry.value) and "port" in str(broken_entry.value)


def test_named_connection_from_dbt_project_vars_and_profile_outputs(tmp_path, monkeypatch) -> None:
    """Without AGENT_DE_CONNECTIONS, names come from `vars.agent_de.connections` in dbt_project.yml, then from
    the outputs of the project's own dbt profile; a missing env_var is an error naming the variable."""
    import pytest

    from dagster_agent_de.engines.reconcile.connections import named_connection
    from dagster_agent_de.engines.reconcile.spec import DuckDBConnection, PostgresConnection
    from dagster_agent_de.errors import SpecError

    monkeypatch.delenv("AGENT_DE_CONNECTIONS", raising=False)
    monkeypatch.delenv("APP_PW", raising=False)
    (tmp_path / "dbt_project.yml").write_text(
        "name: p\nprofile: p\nvars:\n  agent_de:\n    connections:\n"
        "      app: {type: postgres, host: db, user: ro, dbname: shop, password: \"{{ env_var('APP_PW') }}\"}\n")
    (tmp_path / "profiles.yml").write_text(
        "p:\n  target: dev\n  outputs:\n"
        "    dev: {type: duckdb, path: /data/dev.duckdb, threads: 4}\n"
        "    app_replica: {type: postgres, host: replica, port: 6543, user: ro, pass: pw, database: shop, schema: public, threads: 2}\n")
    monkeypatch.setenv("DBT_PROFILES_DIR", str(tmp_path))
    with pytest.raises(SpecError, match="connection 'app'.*APP_PW"):
        named_connection("app", tmp_path)
    monkeypatch.setenv("APP_PW", "s3cret")
    app = named_connection("app", tmp_path)
    assert isinstance(app, PostgresConnection) and app.profile_output()["password"] == "s3cret"
    replica = named_connection("app_replica", tmp_path)
    assert isinstance(replica, PostgresConnection)
    assert (replica.host, replica.port, replica.dbname, replica.profile_output()["password"]) == ("replica", 6543, "shop", "pw")
    assert named_connection("dev", tmp_path) == DuckDBConnection(path="/data/dev.duckdb")
    with pytest.raises(SpecError, match=r"'nope' is not defined.*defined: app, dev \(profile output\), app_replica \(profile output\)"):
        named_connection("nope", tmp_path)
