"""Deterministic demo data: the source systems of a small e-commerce company.

Everything is generated inside DuckDB from ``range()`` and ``hash()``, so the same
``scale`` gives the same rows on every machine and 10M orders take seconds, not minutes.
Only ``_loaded_at`` (when the connector "loaded" the rows) is the current time, so that
dbt source freshness passes.

Tables (schema.table): ``app.orders``, ``app.order_items``, ``app.customers``,
``stripe.charges``, ``fx.rates``, ``hubspot.contacts``; plus the finance team's ledger
export ``finance_revenue.csv`` next to the warehouse file.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from dagster_agent_de.errors import ConfigError

START_DATE = "2026-04-02"
DAYS = 90
FINANCE_EXPORT = "finance_revenue.csv"


@dataclass(frozen=True)
class DemoDataSummary:
    path: Path
    scale: int
    tables: dict[str, int]
    finance_export: Path
    seconds: float
    where: str | None = None
    """Where the source tables were loaded, when not (only) the DuckDB file at ``path``."""

    def describe(self) -> str:
        rows = ", ".join(f"{t}={n:,}" for t, n in self.tables.items())
        return f"generated demo data at scale {self.scale:,} in {self.seconds:.1f}s into {self.where or self.path}: {rows}"


def _statements(scale: int, loaded_at: str) -> list[str]:
    customers = max(50, scale // 4)
    h = "(hash(i, '{salt}') % 1000000000)::bigint"  # deterministic 0..999999999 per row

    def r(salt: str, var: str = "i") -> str:
        return h.replace("{salt}", salt).replace("hash(i,", f"hash({var},")

    return [
        "create schema if not exists app",
        "create schema if not exists stripe",
        "create schema if not exists fx",
        "create schema if not exists hubspot",
        "create schema if not exists support",
        f"""
        create or replace table app.customers as
        select
            i::bigint as customer_id,
            'customer' || i || '@example.com' as email,
            'Customer ' || i as full_name,
            ['US', 'DE', 'FR', 'GB', 'NL'][1 + ({r('country')} % 5)] as country,
            case when {r('tier')} % 20 = 0 then 'platinum' when {r('tier')} % 5 = 0 then 'gold' else 'standard' end as tier,
            timestamp '{START_DATE}' - interval 400 day + to_seconds({r('cat')} % (400 * 86400)) as created_at,
            timestamp '{loaded_at}' as _loaded_at
        from range(1, {customers} + 1) t(i)
        """,
        f"""
        create or replace table app.order_items as
        select
            (o.i * 10 + k.j)::bigint as order_item_id,
            o.i::bigint as order_id,
            'SKU-' || lpad(({r('sku', 'o.i * 10 + k.j')} % 500)::varchar, 4, '0') as product_sku,
            (1 + {r('qty', 'o.i * 10 + k.j')} % 3)::integer as quantity,
            (500 + {r('price', 'o.i * 10 + k.j')} % 9500)::bigint as unit_price_cents,
            timestamp '{loaded_at}' as _loaded_at
        from range(1, {scale} + 1) o(i)
        join range(1, 4) k(j) on k.j <= 1 + {r('items', 'o.i')} % 3
        """,
        f"""
        create or replace table app.orders as
        with totals as (
            select order_id, sum(quantity * unit_price_cents) as amount_cents
            from app.order_items group by order_id
        )
        select
            t.order_id,
            (1 + {r('cust', 't.order_id')} % {customers})::bigint as customer_id,
            timestamp '{START_DATE}' + to_seconds({r('ts', 't.order_id')} % ({DAYS} * 86400)) as ordered_at,
            case when {r('status', 't.order_id')} % 10 = 0 then 'cancelled' else 'completed' end as status,
            case when {r('cur', 't.order_id')} % 20 < 12 then 'USD'
                 when {r('cur', 't.order_id')} % 20 < 17 then 'EUR' else 'GBP' end as currency,
            t.amount_cents::bigint as amount_cents,
            timestamp '{loaded_at}' as _loaded_at
        from totals t
        order by t.order_id
        """,
        f"""
        create or replace table stripe.charges as
        select
            'ch_' || lpad(order_id::varchar, 10, '0') as id,
            amount_cents::bigint as amount,
            lower(currency) as currency,
            case when status = 'completed' then 'succeeded' else 'failed' end as status,
            ordered_at + interval 2 minute as created,
            order_id as metadata_order_id,
            (status = 'completed' and {r('refund', 'order_id')} % 50 = 0) as refunded,
            timestamp '{loaded_at}' as _loaded_at
        from app.orders
        order by order_id
        """,
        f"""
        create or replace table fx.rates as
        select
            (date '{START_DATE}' + d.i::integer)::date as rate_date,
            c.currency,
            case c.currency
                when 'USD' then 1.0
                when 'EUR' then 1.08 + ({r('eur', 'd.i')} % 400 - 200) / 10000.0
                else 1.27 + ({r('gbp', 'd.i')} % 400 - 200) / 10000.0
            end::double as rate_to_usd,
            timestamp '{loaded_at}' as _loaded_at
        from range(0, {DAYS}) d(i)
        cross join (values ('USD'), ('EUR'), ('GBP')) c(currency)
        """,
        f"""
        create or replace table hubspot.contacts as
        select
            1000000 + customer_id as contact_id,
            email,
            ['lead', 'marketingqualifiedlead', 'opportunity', 'customer'][1 + ({r('stage', 'customer_id')} % 4)] as lifecycle_stage,
            created_at,
            timestamp '{loaded_at}' as _loaded_at
        from app.customers
        where {r('crm', 'customer_id')} % 10 < 3
        """,
        # landed by the helpdesk connector but not modeled yet: `agent-de onboard --table support.tickets`
        f"""
        create or replace table support.tickets as
        select
            o.order_id * 10 as "TicketId",
            o.order_id,
            o.customer_id,
            ['open', 'pending', 'solved'][1 + ({r('tk', 'o.order_id')} % 3)] as status,
            c.email as requester_email,
            o.ordered_at + interval 1 day as created_at,
            timestamp '{loaded_at}' as _loaded_at
        from app.orders o join app.customers c using (customer_id)
        where {r('ticket', 'o.order_id')} % 10 = 0
        """,
    ]


def execute_sql(path: str | Path, *statements: str) -> None:
    """Run statements against the demo's DuckDB file as its source systems would (read-write)."""
    import duckdb

    con = duckdb.connect(str(path))
    try:
        for sql in statements:
            con.execute(sql)
    finally:
        con.close()


def generate_demo_data(
    path: str | Path, *, scale: int = 2_000, finance_export: Path | None = None
) -> DemoDataSummary:
    """Create (or replace) the demo source tables in the DuckDB file at ``path``.

    Args:
        path: DuckDB file; created if absent.
        scale: number of orders (customers = scale/4, items ~2 per order).
        finance_export: where to write the finance ledger CSV (default: beside ``path``).
    """
    import duckdb

    if scale < 10:
        raise ConfigError(f"--scale must be at least 10 orders (got {scale})")
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError(f"cannot create {path.parent} ({e.strerror}); choose a writable --state-dir") from e
    export = finance_export or path.parent / FINANCE_EXPORT
    loaded_at = datetime.now(timezone.utc).replace(tzinfo=None, microsecond=0).isoformat(sep=" ")
    start = time.perf_counter()
    try:
        con = duckdb.connect(str(path))
    except duckdb.Error as e:
        raise ConfigError(f"cannot open {path} for writing the demo data: {e}") from e
    try:
        for statement in _statements(scale, loaded_at):
            con.execute(statement)
        tmp = export.with_suffix(".csv.tmp")
        con.execute(
            f"""
            copy (
                select cast(o.ordered_at as date) as order_date, o.currency,
                       round(sum(o.amount_cents) / 100.0, 2) as revenue,
                       round(sum(o.amount_cents / 100.0 * r.rate_to_usd), 2) as revenue_usd
                from app.orders o
                join fx.rates r on r.rate_date = cast(o.ordered_at as date) and r.currency = o.currency
                where o.status = 'completed'
                group by 1, 2 order by 1, 2
            ) to '{tmp.as_posix()}' (header, delimiter ',')
            """
        )
        tmp.replace(export)  # atomic: a reader never sees half a file
        tables = {
            f"{s}.{t}": con.execute(f"select count(*) from {s}.{t}").fetchall()[0][0]
            for s, t in (
                ("app", "orders"), ("app", "order_items"), ("app", "customers"),
                ("stripe", "charges"), ("fx", "rates"), ("hubspot", "contacts"), ("support", "tickets"),
            )
        }
    finally:
        con.close()
    return DemoDataSummary(path, scale, tables, export, time.perf_counter() - start)


SOURCE_TABLES = (("app", "customers"), ("app", "order_items"), ("app", "orders"), ("stripe", "charges"),
                 ("fx", "rates"), ("hubspot", "contacts"), ("support", "tickets"))


def _pg_type(duckdb_type: str) -> str:
    """A DuckDB column type as PostgreSQL spells it (sqlglot transpiles the name).

    >>> _pg_type("VARCHAR"), _pg_type("DOUBLE"), _pg_type("TIMESTAMP"), _pg_type("DECIMAL(18,3)")
    ('TEXT', 'DOUBLE PRECISION', 'TIMESTAMP', 'DECIMAL(18, 3)')
    """
    from sqlglot import exp

    return exp.DataType.build(duckdb_type, dialect="duckdb").sql(dialect="postgres")


def load_into_postgres(duckdb_path: str | Path, conninfo: dict[str, Any]) -> dict[str, int]:
    """Copy the demo's source tables from its DuckDB file into a PostgreSQL database (``conninfo``: libpq
    parameters), as the source systems' connectors would land them: each table is dropped with what depends
    on it (the dbt views over it, rebuilt by ``dbt build``), recreated and filled with ``COPY ... FROM STDIN``.
    Identifiers are quoted by psycopg's ``sql.Identifier``; no value is ever spliced into SQL text.

    Returns the rows loaded per ``schema.table``.
    """
    import duckdb

    try:
        import psycopg
        from psycopg import sql
    except ImportError as e:
        raise ConfigError("loading the demo into PostgreSQL needs psycopg 3: pip install 'dagster-agent-de[postgres]'") from e
    src = duckdb.connect(str(duckdb_path), read_only=True)
    loaded: dict[str, int] = {}
    try:
        try:
            con = psycopg.connect(**conninfo, autocommit=False)
        except psycopg.Error as e:
            where = f"{conninfo.get('user')}@{conninfo.get('host')}:{conninfo.get('port')}/{conninfo.get('dbname')}"
            raise ConfigError(f"cannot connect to the demo's PostgreSQL {where} ({str(e).strip()}); check "
                              "AGENT_DE_PG_HOST, AGENT_DE_PG_PORT, AGENT_DE_PG_USER, AGENT_DE_PG_PASSWORD and "
                              "AGENT_DE_PG_DBNAME") from e
        with con, con.cursor() as cur:
            for schema, table in SOURCE_TABLES:
                rel = src.execute(f'select * from "{schema}"."{table}"')
                cols = [(d[0], _pg_type(str(d[1]))) for d in rel.description or []]
                target = sql.Identifier(schema, table)
                cur.execute(sql.SQL("create schema if not exists {}").format(sql.Identifier(schema)))
                cur.execute(sql.SQL("drop table if exists {} cascade").format(target))
                cur.execute(sql.SQL("create table {} ({})").format(target, sql.SQL(", ").join(
                    sql.SQL("{} {}").format(sql.Identifier(name), sql.SQL(typ)) for name, typ in cols)))
                names = sql.SQL(", ").join(sql.Identifier(name) for name, _ in cols)
                n = 0
                with cur.copy(sql.SQL("copy {} ({}) from stdin").format(target, names)) as copy:
                    while batch := rel.fetchmany(10_000):
                        for row in batch:
                            copy.write_row(row)
                        n += len(batch)
                loaded[f"{schema}.{table}"] = n
            cur.execute("analyze")
    finally:
        src.close()
    return loaded


def execute_postgres(conninfo: dict[str, Any], *statements: str) -> None:
    """Run statements against the demo's PostgreSQL source tables as their source systems would (read-write)."""
    import psycopg

    with psycopg.connect(**conninfo, autocommit=True) as con:
        for statement in statements:
            con.execute(statement.encode())
