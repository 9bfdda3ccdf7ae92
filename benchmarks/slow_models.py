"""The slow-model benchmark: performance patterns injected into models over the demo data, each investigated
from its analyzed plan down to a verified rewrite.

For each pattern: detected (y/n), the top-1 pattern, the slow model's and the rewrite's times by
EXPLAIN ANALYZE (best of ``--repeats``), the measured speed-up, whether the results are unchanged (same row
count and order-independent row hash), and the time from the start of the investigation to the finding.

    python benchmarks/slow_models.py [--scale 1000000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

# name -> (pattern it injects, materialized, the slow model as a dbt user writes it);
# `{{ ref('x') }}` compiles to app.x, `{{ this }}` to app.<name> (the incremental model's current table)
MODELS = {
    "orders_with_items": ("join_explosion", "table", """\
select distinct o.order_id, o.customer_id, o.ordered_at, o.status, o.amount_cents
from {{ ref('orders') }} o
join {{ ref('order_items') }} i on i.order_id = o.order_id
"""),
    "order_events_inc": ("incremental_filter", "incremental", """\
select order_id, customer_id, ordered_at, status, currency, amount_cents / 100.0 as amount
from {{ ref('order_events') }}
"""),
    "orders_last_month": ("non_sargable", "table", """\
select order_id, customer_id, amount_cents
from {{ ref('orders') }}
where strftime(ordered_at, '%Y-%m') = '2026-05'
"""),
    "daily_orders": ("cross_join", "table", """\
select d.day, count(*) as orders, sum(o.amount_cents) as amount_cents
from {{ ref('calendar') }} d
cross join {{ ref('orders') }} o
where o.ordered_at >= d.day and o.ordered_at < d.day + interval 1 day
group by d.day
"""),
    "payment_kpis": ("repeated_scan", "table", """\
select
  (select count(*) from {{ ref('order_payments') }} where refunded) as refunded_orders,
  (select sum(paid_cents) from {{ ref('order_payments') }} where charges = 1) as single_charge_cents,
  (select avg(paid_cents) from {{ ref('order_payments') }} where paid_cents > 10000) as avg_large_cents
"""),
    "orders_all_statuses": ("union_distinct", "table", """\
select order_id, customer_id, amount_cents, status from {{ ref('orders') }} where status = 'completed'
union
select order_id, customer_id, amount_cents, status from {{ ref('orders') }} where status = 'cancelled'
"""),
}
SETUP = (
    # what the models read besides the demo's sources, as a dbt project has them:
    # a view of payments per order (like the demo's int_order_payments), a calendar table, an
    # append-only event table landing in time order, and the incremental model's table as of yesterday
    "create or replace view app.order_payments as select metadata_order_id as order_id, sum(amount) as paid_cents, "
    "bool_or(refunded) as refunded, count(*) as charges from stripe.charges where status = 'succeeded' "
    "group by metadata_order_id",
    "create or replace table app.calendar as select distinct rate_date as day from fx.rates",
    "create or replace table app.order_events as select * from app.orders order by ordered_at",
    "create or replace table app.order_events_inc as select order_id, customer_id, ordered_at, status, currency, "
    "amount_cents / 100.0 as amount from app.order_events "
    "where ordered_at < (select max(ordered_at) - interval 1 day from app.order_events)",
)


def _timed_insert(path: Path, name: str, select: str, repeats: int) -> float:
    """Best of ``repeats`` timed ``insert into <a copy of the model's table> <select>`` (dbt-duckdb's append)."""
    import duckdb

    best = float("inf")
    with duckdb.connect() as con:  # the file is open read-only in this process: attach it read-only too
        con.execute("attach ? as bench (read_only)", [str(path)])
        con.execute("use bench")
        for _ in range(max(repeats, 1)):
            con.execute(f"create or replace temp table scratch as select * from app.{name}")
            start = time.perf_counter()
            con.execute(f"insert into scratch {select}")
            best = min(best, time.perf_counter() - start)
    return best


def _after(diff: str) -> str:
    """The new file of a whole-file unified diff (the models here are short enough for one hunk)."""
    lines = diff.splitlines(keepends=True)[3:]
    return "".join(ln[1:] for ln in lines if ln[:1] in (" ", "+"))


def compile_ref(text: str) -> str:
    import re

    return re.sub(r"\{\{\s*ref\('(\w+)'\)\s*\}\}", r"app.\1", text)


def compile_this(text: str, name: str) -> str:
    """The model as an incremental run compiles it: ``is_incremental()`` true, ``{{ this }}`` its table."""
    import re

    text = re.sub(r"\{%-?\s*(if\s+is_incremental\(\)|endif)\s*-?%\}", "", text)
    return compile_ref(text).replace("{{ this }}", f"app.{name}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=int, default=1_000_000, help="orders in the demo data")
    parser.add_argument("--repeats", type=int, default=3, help="EXPLAIN ANALYZE runs per side (best kept)")
    args = parser.parse_args()

    from dagster_agent_de.adapters.audit import AuditLog
    from dagster_agent_de.adapters.warehouse import DuckDBWarehouse
    from dagster_agent_de.demo.data import execute_sql, generate_demo_data
    from dagster_agent_de.engines.performance import investigate_sql, verify

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "warehouse.duckdb"
        summary = generate_demo_data(path, scale=args.scale)
        execute_sql(path, *SETUP)
        print(summary.describe())
        print(f"{'model':20} {'injected':18} {'found':5} {'top-1':18} {'before s':>9} {'after s':>9} {'speed-up':>8} "
              f"{'unchanged':9} {'to finding s':>12}")
        with DuckDBWarehouse(path, AuditLog(None)) as wh:
            for name, (pattern, materialized, text) in MODELS.items():
                start = time.perf_counter()
                finding = investigate_sql(wh, compile_ref(text), model=name, source=text, materialized=materialized,
                                          source_path=f"models/{name}.sql", repeats=args.repeats)
                elapsed = time.perf_counter() - start
                top = finding.top.pattern if finding.top else "-"
                found = "y" if any(h.pattern == pattern for h in finding.hypotheses) else "n"
                v = finding.verified
                unchanged = "y" if v is not None and v.unchanged else "n"
                if v is None and finding.top is not None and finding.top.diff and materialized == "incremental":
                    # an incremental run returns only the new rows by design: what must be unchanged is the
                    # table after the run, i.e. yesterday's table plus the new rows equals a full rebuild
                    before, after = compile_ref(text), compile_this(_after(finding.top.diff), name)
                    v = verify(wh, before, f"select * from app.{name} union all ({after})",
                               "is_incremental() filter (table after the run vs a full rebuild)", repeats=args.repeats)
                    unchanged = "y" if v.unchanged else "n"
                    # the cost of an incremental run is its write (EXPLAIN ANALYZE of the SELECT discards the
                    # rows): the benchmark, not the agent, times the run's INSERT on a scratch copy of the table
                    v = replace(v, seconds_before=_timed_insert(path, name, before, args.repeats),
                                seconds_after=_timed_insert(path, name, after, args.repeats))
                if v is None:
                    print(f"{name:20} {pattern:18} {found:5} {top:18} {'-':>9} {'-':>9} {'-':>8} {'-':9} {elapsed:12.2f}")
                    for r in finding.rejected:
                        print(f"    rejected: {r.summary()}")
                    continue
                print(f"{name:20} {pattern:18} {found:5} {top:18} {v.seconds_before:9.3f} {v.seconds_after:9.3f} "
                      f"{v.speedup:7.1f}x {unchanged:9} {elapsed:12.2f}")


if __name__ == "__main__":
    main()
