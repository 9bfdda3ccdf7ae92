"""The state store under load: audit appends per second and the latency of recording a finding,
on SQLite and PostgreSQL, with 1 and 8 writer processes; plus the state work of one investigation.

PostgreSQL: ``--postgres-url postgresql://...``, else a throwaway server is started when the
server binaries are installed (as the tests do), else it is skipped.

    python benchmarks/state.py [--events 4000] [--findings 400]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from dagster_agent_de.adapters.state import SqlStateStore
from dagster_agent_de.core.context import ContextRule
from dagster_agent_de.core.models import (
    AuditEvent,
    Escalation,
    EscalationKind,
    EscalationOption,
    Evidence,
    Finding,
)

CTX = mp.get_context("fork")


def _finding(i: int) -> Finding:
    return Finding(pattern="join_row_drop", model="int_orders_enriched", confidence=0.9, summary=f"finding {i}",
                   evidence=[Evidence(statement="select count(*) from x", result_summary="700 of 1000",
                                      rows_sample=[{"k": j} for j in range(5)])])


def _worker(url: str, schema: str, events: int, findings: int, start: Any, out: Any) -> None:
    store = SqlStateStore(url, schema=schema)
    start.wait()
    t0 = time.perf_counter()
    for i in range(events):
        store.append_audit(AuditEvent(actor="bench", run_id="r", rationale="bench", statement=f"select {i}", rows=i))
    append_s = time.perf_counter() - t0
    lat = []
    for i in range(findings):
        t = time.perf_counter()
        store.record_findings([_finding(i)], run_id="r", check="c")
        lat.append((time.perf_counter() - t) * 1000)
    out.put((events, append_s, lat))


def run(url: str, writers: int, events: int, findings: int) -> tuple[float, float, float]:
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    SqlStateStore(url, schema=schema).close()  # migrate once, outside the timing
    start, out = CTX.Barrier(writers), CTX.Queue()
    procs = [CTX.Process(target=_worker, args=(url, schema, events // writers, findings // writers, start, out))
             for _ in range(writers)]
    for p in procs:
        p.start()
    results = [out.get() for _ in procs]
    for p in procs:
        p.join()
    total = sum(r[0] for r in results)
    wall = max(r[1] for r in results)
    lat = sorted(x for r in results for x in r[2])
    return total / wall, statistics.median(lat), lat[min(len(lat) - 1, int(len(lat) * 0.99))]


def investigation_state_ms(url: str, repeat: int = 20) -> float:
    """The state work of one investigation: rules, baseline, ~20 audit events, 5 findings, the recent list,
    raising an escalation and reading the queue back."""
    store = SqlStateStore(url, schema=f"bench_{uuid.uuid4().hex[:8]}")
    store.put_rule(ContextRule(id="R-1", rule="x"))
    store.save_snapshot("baseline", '{"tables": {}}')
    times = []
    for n in range(repeat):
        t0 = time.perf_counter()
        store.rules()
        store.load_snapshot("baseline")
        store.get_flag("paused")
        for i in range(20):
            store.append_audit(AuditEvent(actor="op", run_id=f"r{n}", rationale="q", statement=f"select {i}"))
        store.record_findings([_finding(i) for i in range(5)], run_id=f"r{n}")
        store.recent_findings(20)
        store.raise_escalations([Escalation(id="", kind=EscalationKind.CONTEXT_GAP, decision="?", asset=f"m{n}",
                                            options=[EscalationOption(label="a")])], lambda e, items: False)
        store.escalations()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=4000, help="audit appends per run (split over the writers)")
    ap.add_argument("--findings", type=int, default=400, help="findings recorded per run (split over the writers)")
    ap.add_argument("--postgres-url", default=None)
    args = ap.parse_args()
    pg = None
    backends = []
    with tempfile.TemporaryDirectory() as tmp:
        backends.append(("SQLite (WAL)", f"sqlite:///{Path(tmp) / 'state.db'}"))
        if args.postgres_url:
            backends.append(("PostgreSQL", args.postgres_url))
        else:
            try:
                from dagster_agent_de_tests.deployment.postgres import Postgres

                pg = Postgres()
                pg.start()
                backends.append(("PostgreSQL", f"postgresql://postgres@127.0.0.1:{pg.port}/dagster"))
            except (ImportError, FileNotFoundError, RuntimeError) as e:
                print(f"PostgreSQL skipped: {e}")
        try:
            print(f"{'backend':14} {'writers':>7} {'appends/s':>10} {'finding p50 ms':>15} {'p99 ms':>8}")
            for name, url in backends:
                for writers in (1, 8):
                    rate, p50, p99 = run(url, writers, args.events, args.findings)
                    print(f"{name:14} {writers:>7} {rate:>10,.0f} {p50:>15.2f} {p99:>8.2f}")
            for name, url in backends:
                print(f"{name}: the state work of one investigation takes {investigation_state_ms(url):.1f} ms (median)")
        finally:
            if pg is not None:
                pg.stop()


if __name__ == "__main__":
    main()
