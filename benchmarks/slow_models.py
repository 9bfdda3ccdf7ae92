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
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

# name -> (pattern it injects, the slow model as a dbt user writes it); `{{ ref('x') }}` compiles to app.x
MODELS = {
    "orders_with_items": ("join_explosion", """\
select distinct o.order_id, o.customer_id, o.ordered_at, o.status, o.amount_cents
from {{ ref('orders') }} o
join {{ ref('order_items') }} i on i.order_id = o.order_id
"""),
    "orders_all_statuses": ("union_distinct", """\
select order_id, customer_id, amount_cents, status from {{ ref('orders') }} where status = 'completed'
union
select order_id, customer_id, amount_cents, status from {{ ref('orders') }} where status = 'cancelled'
"""),
    "orders_last_month": ("non_sargable", """\
select order_id, customer_id, amount_cents
from {{ ref('orders') }}
where strftime(ordered_at, '%Y-%m') = '2026-05'
"""),
    "order_kpis": ("repeated_scan", """\
select
  (select count(*) from {{ ref('orders') }} where status = 'completed') as completed_orders,
  (select count(*) from {{ ref('orders') }} where status = 'cancelled') as cancelled_orders,
  (select sum(amount_cents) from {{ ref('orders') }} where currency = 'EUR') as eur_cents
"""),
    "orders_by_currency": ("cross_join", """\
select o.order_id, o.amount_cents, c.currency
from {{ ref('orders') }} o
cross join (select distinct currency from {{ ref('orders') }}) c
"""),
}
NOT_COVERED = ("incremental_without_filter",)


def compile_ref(text: str) -> str:
    import re

    return re.sub(r"\{\{\s*ref\('(\w+)'\)\s*\}\}", r"app.\1", text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=int, default=1_000_000, help="orders in the demo data")
    parser.add_argument("--repeats", type=int, default=3, help="EXPLAIN ANALYZE runs per side (best kept)")
    args = parser.parse_args()

    from dagster_agent_de.adapters.audit import AuditLog
    from dagster_agent_de.adapters.warehouse import DuckDBWarehouse
    from dagster_agent_de.demo.data import generate_demo_data
    from dagster_agent_de.engines.performance import investigate_sql

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "warehouse.duckdb"
        summary = generate_demo_data(path, scale=args.scale)
        print(summary.describe())
        print(f"{'model':22} {'injected':15} {'found':5} {'top-1':15} {'before s':>9} {'after s':>9} {'speed-up':>8} "
              f"{'unchanged':9} {'to finding s':>12}")
        with DuckDBWarehouse(path, AuditLog(None)) as wh:
            for name, (pattern, text) in MODELS.items():
                start = time.perf_counter()
                finding = investigate_sql(wh, compile_ref(text), model=name, source=text,
                                          source_path=f"models/{name}.sql", repeats=args.repeats)
                elapsed = time.perf_counter() - start
                top = finding.top.pattern if finding.top else "-"
                v = finding.verified
                found = "y" if any(h.pattern == pattern for h in finding.hypotheses) else "n"
                if v is None:
                    print(f"{name:22} {pattern:15} {found:5} {top:15} {'-':>9} {'-':>9} {'-':>8} {'-':9} {elapsed:12.2f}")
                    for r in finding.rejected:
                        print(f"    rejected: {r.summary()}")
                    continue
                print(f"{name:22} {pattern:15} {found:5} {top:15} {v.seconds_before:9.3f} {v.seconds_after:9.3f} "
                      f"{v.speedup:7.1f}x {'y' if v.unchanged else 'n':9} {elapsed:12.2f}")
        print(f"not covered yet: {', '.join(NOT_COVERED)}")


if __name__ == "__main__":
    main()
