"""`agent-de demo --target postgres`: the demo built by dbt-postgres on a real PostgreSQL server, checked by
the agent there, and the WT-02 incident caught and investigated (one dbt build, at a small scale); then WT-04 (a
renamed source column) caught by `agent-de drift` there and proven a rename by its values."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from dagster_agent_de.cli import main
from dagster_agent_de_tests.warehouses import PgServer

SCALE = 300


def _env(tmp_path: Path, pg: PgServer | None) -> dict[str, str]:
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    drop = ("AGENT_DE_TARGET", "DBT_TARGET", "AGENT_DE_PROJECT_DIR", "AGENT_DE_STATE_DIR", "AGENT_DE_DUCKDB_PATH",
            "AGENT_DE_STATE_URL", "AGENT_DE_PG_HOST")
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env |= {"DAGSTER_HOME": str(home), "DAGSTER_DISABLE_TELEMETRY": "1", "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}
    if pg is not None:
        env |= {"AGENT_DE_PG_HOST": "127.0.0.1", "AGENT_DE_PG_PORT": str(pg.port), "AGENT_DE_PG_USER": "postgres",
                "AGENT_DE_PG_DBNAME": "shop_demo"}
    return env


def test_demo_on_postgres_catches_wt02(tmp_path: Path, pg_server: PgServer) -> None:
    pg_server.admin('create database "shop_demo"')
    try:
        # a fresh process: the demo sets the process's Dagster and agent environment, as the CLI does
        proc = subprocess.run(
            [sys.executable, "-m", "dagster_agent_de.cli", "--state-dir", str(tmp_path / "state"), "--target",
             "postgres", "demo", "--scale", str(SCALE), "--incident", "wt02_join_drop"],
            env=_env(tmp_path, pg_server), capture_output=True, text=True, timeout=900)
        tables = pg_server.admin(
            "select table_schema || '.' || table_name from information_schema.tables "
            "where table_schema in ('app', 'analytics') order by 1", dbname="shop_demo")[0]
        # WT-04 on PostgreSQL, with no dbt build: the payments team renames a column; `agent-de drift` compares
        # with the baseline the demo's run recorded, and proves the rename by the values (fingerprints sized from
        # pg_class, sampled by md5 of the key)
        pg_server.admin("alter table stripe.charges rename column amount to amount_cents", dbname="shop_demo")
        drift = subprocess.run(
            [sys.executable, "-m", "dagster_agent_de.cli", "--state-dir", str(tmp_path / "state"), "--target",
             "postgres", "drift"], env=_env(tmp_path, pg_server), capture_output=True, text=True, timeout=300)
    finally:
        pg_server.drop_database("shop_demo")
    out = proc.stdout
    assert proc.returncode == 0, out[-3000:] + proc.stderr[-3000:]
    # the sources were loaded into PostgreSQL, dbt-postgres built the models there, every check passed
    assert f"into PostgreSQL postgres@127.0.0.1:{pg_server.port}/shop_demo: app.customers=" in out
    assert f"app.orders={SCALE}," in out
    assert {("app.orders",), ("analytics.fct_orders",), ("analytics.fct_revenue",)} <= set(tables)
    assert "(success): 11 assets materialized" in out and " 0 failed" in out
    # WT-02 on PostgreSQL: the reconciliation against Stripe fails, and the investigation names the join
    assert "FAILED check fct_orders:orders_vs_stripe" in out
    assert "root cause: join_row_drop in int_orders_enriched" in out
    assert "stg_hubspot_contacts on c.email = h.email" in out
    assert drift.returncode == 1, drift.stdout[-3000:] + drift.stderr[-3000:]  # breaking drift found
    assert "amount renamed to amount_cents" in drift.stdout and "-> stg_stripe_charges" in drift.stdout
    assert "values of amount vs amount_cents: same values" in drift.stdout, drift.stdout[-3000:]


def test_demo_on_postgres_without_a_server_names_the_variables(tmp_path: Path, monkeypatch) -> None:
    for k, v in _env(tmp_path, None).items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("AGENT_DE_PG_HOST", raising=False)
    r = CliRunner().invoke(main, ["--state-dir", str(tmp_path / "state"), "--target", "postgres", "demo", "--scale", "50"])
    assert r.exit_code == 2, r.output
    assert "needs a PostgreSQL server" in r.output and "AGENT_DE_PG_HOST" in r.output


def test_demo_data_on_postgres_loads_the_sources_there(tmp_path: Path, pg_server: PgServer, monkeypatch) -> None:
    """`agent-de --target postgres demo-data` generates the sources and loads them into the demo's database (no
    dbt build), so a team can try the agent on PostgreSQL data of its own scale; without a server it says what to set."""
    for k, v in _env(tmp_path, pg_server).items():
        monkeypatch.setenv(k, v)
    pg_server.admin('create database "shop_demo"')
    try:
        r = CliRunner().invoke(main, ["--state-dir", str(tmp_path / "state"), "--target", "postgres", "demo-data",
                                      "--scale", "40"])
        (orders,) = pg_server.admin("select count(*) from app.orders", dbname="shop_demo")[0]
    finally:
        pg_server.drop_database("shop_demo")
    assert r.exit_code == 0, r.output
    assert f"into PostgreSQL postgres@127.0.0.1:{pg_server.port}/shop_demo: app.customers=" in r.output
    assert orders == (40,)
    monkeypatch.delenv("AGENT_DE_PG_HOST")
    r = CliRunner().invoke(main, ["--state-dir", str(tmp_path / "state"), "--target", "postgres", "demo-data"])
    assert r.exit_code == 2 and "AGENT_DE_PG_HOST" in r.output, r.output


def test_demo_data_never_loads_into_a_teams_postgres(tmp_path: Path, monkeypatch) -> None:
    import shutil

    from click.testing import CliRunner

    from dagster_agent_de.cli import main

    team = tmp_path / "acme"
    shutil.copytree(Path(__file__).parent / "fixtures" / "team_project", team,
                    ignore=shutil.ignore_patterns("target", "warehouse", "__pycache__"))
    profiles = team / "profiles.yml"
    profiles.write_text(profiles.read_text() + "    pg:\n      type: postgres\n      host: 127.0.0.1\n      port: 1\n"
                        "      user: loader\n      password: x\n      dbname: acme_prod\n      schema: marts\n      threads: 1\n")
    for k in ("AGENT_DE_DUCKDB_PATH", "AGENT_DE_TARGET", "DBT_TARGET", "DBT_PROFILES_DIR"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("AGENT_DE_PROJECT_DIR", str(team))  # as the team's code location sets it
    r = CliRunner().invoke(main, ["--state-dir", str(tmp_path / "state"), "--target", "pg", "demo-data", "--scale", "10"])
    assert r.exit_code == 2 and "cannot connect" not in r.output, r.output  # refused before connecting
    assert "the demo loads its sources into PostgreSQL only for the demo project" in r.output
