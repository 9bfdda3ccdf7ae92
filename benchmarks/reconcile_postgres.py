"""Reconciliation on PostgreSQL: in one database, and DuckDB against PostgreSQL across connections.

Two cases, each beside reladiff on the same tables in the same run (when reladiff is installed):

1. PostgreSQL against PostgreSQL in one database (agent-de pushes one plan down; reladiff picks its
   algorithm, joindiff for one database);
2. DuckDB against PostgreSQL across connections (agent-de: checksum bisection on one canonical
   rendering; reladiff: hashdiff), the pipeline in a DuckDB file, the truth in PostgreSQL.

The pipeline side differs from the truth in 0.1% of the keys (a third missing, a third changed, a
third extra). Each tool runs in a fresh process; the time, peak RSS and rows moved are printed. Rows
moved are table rows fetched from the engines (bucket checksums are counted apart).

    python benchmarks/reconcile_postgres.py [--rows 1000000] [--cross-rows 1000000,10000000] [--pg-port PORT]

Without ``--pg-port`` a throwaway server is started with the PostgreSQL binaries (as the tests do).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve()
ROOT = HERE.parent.parent
EVERY = 3000  # one key in 3000 is missing, one changed, and rows/3000 extra keys: 0.1% of the keys differ


def _pg(port: int, dbname: str, autocommit: bool = True):
    import psycopg

    return psycopg.connect(host="127.0.0.1", port=port, user="postgres", dbname=dbname, autocommit=autocommit)


def build_pg(port: int, dbname: str, rows: int, with_pipe: bool) -> None:
    with _pg(port, "postgres") as con:
        con.execute(f'drop database if exists "{dbname}" with (force)')
        con.execute(f'create database "{dbname}"')
    with _pg(port, dbname) as con:
        con.execute(f"""create table truth as select g::bigint as id, ((g * 7 % 10000) / 100.0)::numeric(10,2) as amount,
                        (array['USD','EUR','GBP'])[1 + g % 3] as currency from generate_series(0, {rows - 1}) g""")
        con.execute("alter table truth add primary key (id)")
        if with_pipe:
            con.execute(f"""create table pipe as
                select id, case when id % {EVERY} = 2 then amount + 1 else amount end as amount, currency
                from truth where id % {EVERY} <> 1
                union all select {rows} + g, 1.0, 'USD' from generate_series(0, {rows // EVERY - 1}) g""")
            con.execute("alter table pipe add primary key (id)")
        con.execute("vacuum analyze")


def build_duckdb(path: Path, rows: int) -> None:
    import duckdb

    con = duckdb.connect(str(path))
    con.execute(f"""create table pipe as
        with truth as (select range as id, cast((range * 7 % 10000) / 100.0 as decimal(10,2)) as amount,
                       ['USD','EUR','GBP'][1 + range % 3] as currency from range({rows}))
        select id, case when id % {EVERY} = 2 then amount + 1 else amount end as amount, currency
        from truth where id % {EVERY} <> 1
        union all select {rows} + range as id, 1.0, 'USD' from range({rows // EVERY})""")
    con.close()


def _spec(connection: dict | None, against: str):
    from dagster_agent_de.engines.reconcile import ReconcileSpec

    return ReconcileSpec.model_validate(dict(name="b", model="pipe", against=against, key=["id"],
                                             compare={"amount": {}, "currency": {}}, connection=connection))


def _manifest(relation: str):
    from dagster_agent_de.manifest import Manifest

    return Manifest({"nodes": {"model.p.pipe": {"name": "pipe", "resource_type": "model", "relation_name": relation}},
                     "sources": {}})


def measure(kind: str, args: argparse.Namespace) -> dict:
    import duckdb  # noqa: F401  (imports are not timed: only the work is)
    import psycopg  # noqa: F401

    import dagster_agent_de.engines.reconcile  # noqa: F401
    from dagster_agent_de.adapters.audit import AuditLog

    try:
        import reladiff  # noqa: F401
    except ImportError:
        pass
    pg_url = f"postgresql://postgres@127.0.0.1:{args.pg_port}/{args.db}"
    start = time.perf_counter()
    out: dict = {}
    if kind in ("ours_pg", "ours_cross"):
        from dagster_agent_de.adapters.warehouse import DuckDBWarehouse
        from dagster_agent_de.adapters.warehouse.postgres import PostgresWarehouse
        from dagster_agent_de.engines.reconcile import reconcile

        if kind == "ours_pg":
            wh = PostgresWarehouse.from_profile_output(
                {"host": "127.0.0.1", "port": args.pg_port, "user": "postgres", "dbname": args.db}, AuditLog(None))
            spec, m = _spec(None, f'"{args.db}"."public"."truth"'), _manifest(f'"{args.db}"."public"."pipe"')
        else:
            wh = DuckDBWarehouse(Path(args.path), AuditLog(None))
            conn = {"type": "postgres", "host": "127.0.0.1", "port": args.pg_port, "user": "postgres", "dbname": args.db}
            spec, m = _spec(conn, "public.truth"), _manifest(f'"{Path(args.path).stem}"."main"."pipe"')
        with wh:
            r = reconcile(spec, m, wh)
        out = {"missing": r.missing_in_pipeline, "extra": r.extra_in_pipeline, "mismatched": r.mismatched_rows,
               "rows_moved": r.rows_moved, "bytes_moved": r.bytes_moved, "method": r.method,
               "notes": [n for n in r.notes if "checksummed" in n]}
    elif kind in ("reladiff_pg", "reladiff_cross"):
        import reladiff

        if kind == "reladiff_pg":
            t1 = reladiff.connect_to_table(pg_url, "pipe", "id", extra_columns=("amount", "currency"))
            algorithm = "auto"
        else:
            t1 = reladiff.connect_to_table(f"duckdb://{args.path}", "pipe", "id", extra_columns=("amount", "currency"))
            algorithm = "hashdiff"
        t2 = reladiff.connect_to_table(pg_url, "truth", "id", extra_columns=("amount", "currency"))
        diff = list(reladiff.diff_tables(t1, t2, algorithm=algorithm))
        keys = {row[1][0] for row in diff}
        out = {"differences": len(diff), "keys": len(keys), "algorithm": algorithm}
    out["seconds"] = round(time.perf_counter() - start, 3)
    out["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    return out


def run(kind: str, args: argparse.Namespace, **over: object) -> dict:
    cmd = [sys.executable, str(HERE), "--measure", kind, "--pg-port", str(args.pg_port)]
    for k, v in over.items():
        cmd += [f"--{k}", str(v)]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if proc.returncode != 0:
        return {"error": (proc.stderr.strip().splitlines() or ["failed"])[-1][:300]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _line(label: str, r: dict, rows: int) -> str:
    if "error" in r:
        return f"  {label}: not measured ({r['error']})"
    moved = r.get("rows_moved")
    moved_txt = f", rows moved {moved:,} ({moved * 100 / (2 * rows):.3f}% of both tables)" if moved is not None else ""
    found = (f"missing={r['missing']:,} extra={r['extra']:,} mismatched={r['mismatched']:,}" if "missing" in r
             else f"{r['differences']:,} diff rows over {r['keys']:,} keys ({r['algorithm']})")
    return f"  {label}: {r['seconds']:.2f}s, peak RSS {r['peak_rss_mb']} MB{moved_txt}; {found}"


def _ratio(ours: dict, other: dict) -> str:
    if "error" in ours or "error" in other:
        return "  ratio: n/a"
    return f"  -> agent-de is {other['seconds'] / ours['seconds']:.1f}x faster than reladiff"


def same_database(args: argparse.Namespace) -> None:
    """PostgreSQL against PostgreSQL in one database: agent-de's pushdown plan beside reladiff's joindiff,
    interleaved ``--same-rounds`` times (each run in a fresh process); medians, and the median of the
    per-round ratios."""
    import statistics

    t0 = time.perf_counter()
    build_pg(args.pg_port, "bench_same", args.rows, with_pipe=True)
    print(f"PostgreSQL vs PostgreSQL in one database, {args.rows:,} keyed rows per side, 0.1% of keys differ "
          f"(built in {time.perf_counter() - t0:.1f}s); {args.same_rounds} interleaved rounds, medians")
    runs: dict[str, list[dict]] = {"ours": [], "reladiff": []}
    for _ in range(args.same_rounds):
        runs["ours"].append(run("ours_pg", args, db="bench_same"))
        runs["reladiff"].append(run("reladiff_pg", args, db="bench_same"))
    for label, key in (("agent-de (checksum, then the keyed plan)", "ours"), ("reladiff joindiff", "reladiff")):
        rs = runs[key]
        failed = [r for r in rs if "error" in r]
        best = dict(failed[0] if failed else rs[-1])
        if not failed:
            best["seconds"] = statistics.median(r["seconds"] for r in rs)
            best["peak_rss_mb"] = max(r["peak_rss_mb"] for r in rs)
        print(_line(label, best, args.rows))
    if not any("error" in r for rs in runs.values() for r in rs):
        ratio = statistics.median(r["seconds"] / o["seconds"] for o, r in zip(runs["ours"], runs["reladiff"], strict=True))
        print(f"  -> agent-de is {ratio:.1f}x faster than reladiff joindiff (median of per-round ratios)")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000, help="rows of the PostgreSQL-in-one-database case")
    ap.add_argument("--cross-rows", default="1000000", help="comma-separated sizes of the DuckDB-vs-PostgreSQL case")
    ap.add_argument("--pg-port", type=int, default=0)
    ap.add_argument("--same-rounds", type=int, default=3, help="interleaved rounds of the one-database case")
    ap.add_argument("--measure")
    ap.add_argument("--path", default="")
    ap.add_argument("--db", default="")
    args = ap.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure, args)))
        return
    server = None
    if not args.pg_port:
        sys.path.insert(0, str(ROOT))
        from dagster_agent_de_tests.deployment.postgres import Postgres

        server = Postgres()
        server.start()
        args.pg_port = server.port
    try:
        with tempfile.TemporaryDirectory() as d:
            same_database(args)
            for rows in [int(x) for x in args.cross_rows.split(",") if x]:
                t0 = time.perf_counter()
                path = Path(d) / f"pipe_{rows}.duckdb"
                build_duckdb(path, rows)
                build_pg(args.pg_port, "bench_app", rows, with_pipe=False)
                print(f"DuckDB (pipeline) vs PostgreSQL (truth) across connections, {rows:,} keyed rows per side, "
                      f"0.1% of keys differ (built in {time.perf_counter() - t0:.1f}s)")
                ours = run("ours_cross", args, db="bench_app", path=path)
                print(_line("agent-de (checksum bisection)", ours, rows))
                for note in ours.get("notes", []):
                    print(f"    {note}")
                rd = run("reladiff_cross", args, db="bench_app", path=path)
                print(_line("reladiff hashdiff", rd, rows))
                print(_ratio(ours, rd) + " (goal >= 5x, with < 1% of the rows moved)")
    finally:
        if server is not None:
            server.stop()


if __name__ == "__main__":
    main()
