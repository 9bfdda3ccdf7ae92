"""Entity resolution at scale: N customers (default 1M), 1% re-registered with a changed-case, +tagged
e-mail, 0.5% sharing a phone in pairs (names differ: ignored), 2,000 on a placeholder e-mail. Prints time, peak RSS, and what was found.

    python benchmarks/entities.py [--rows 1000000]
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    args = ap.parse_args()
    import duckdb

    from dagster_agent_de.adapters.audit import AuditLog
    from dagster_agent_de.adapters.warehouse import DuckDBWarehouse
    from dagster_agent_de.engines.entities import EntitySpec, resolve_entities
    from dagster_agent_de.manifest import Manifest

    n = args.rows
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "wh.duckdb"
        con = duckdb.connect(str(path))
        con.execute(f"""create table customers as
            select range as customer_id, md5(range::varchar)[:12] as full_name,
                   case when range < 2000 then 'noreply@shop.test' else 'user' || range || '@mail.test' end as email,
                   case when range % 200 = 0 then '+1 555 ' || lpad((range // 400)::varchar, 7, '0') else null end as phone
            from range({n})
            union all
            select {n} + range, md5((range * 100 + 5000)::varchar)[:12],
                   upper('user' || (range * 100 + 5000) || '+again@mail.test'), null
            from range({n // 100})""")
        con.close()
        m = Manifest({"nodes": {"model.p.customers": {"name": "customers", "resource_type": "model",
                                                      "relation_name": '"wh"."main"."customers"'}}, "sources": {}})
        spec = EntitySpec(model="customers", key="customer_id", match={"email": "email", "name": "full_name", "phone": "phone"})
        start = time.perf_counter()
        with DuckDBWarehouse(path, AuditLog(None)) as wh:
            r = resolve_entities(spec, m, wh)
        took = time.perf_counter() - start
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"{r.rows:,} records: {len(r.merged):,} pairs merged into {len(set(r.entity_map.values())):,} entities, "
              f"{len(r.review):,} to review, truncated={r.truncated}")
        for note in r.notes:
            print(f"note: {note}")
        print(f"entity resolution: {took:.2f}s, peak RSS {rss:.0f} MB (the table never leaves the warehouse)")


if __name__ == "__main__":
    main()
