"""Snowflake evidence for a slow model: its last run in QUERY_HISTORY and that query's operators from
GET_QUERY_OPERATOR_STATS, read through the real SnowflakeWarehouse adapter (guard and audit included).

fakesnow has no query history, so the driver's cursor replays recorded result rows (the documented
column names; see the fixture's comment) at the adapter boundary: everything above the DB-API cursor
is the production code path.
"""

from __future__ import annotations

import json
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import sqlglot
from sqlglot import exp

pytest.importorskip("snowflake.connector")

from dagster_agent_de.adapters.audit import AuditLog  # noqa: E402
from dagster_agent_de.adapters.warehouse.snowflake import SnowflakeWarehouse  # noqa: E402
from dagster_agent_de.engines.performance.engine import as_finding, investigate_model  # noqa: E402
from dagster_agent_de.engines.performance.snowflake import parse_operator_stats  # noqa: E402
from dagster_agent_de.manifest import Manifest  # noqa: E402

FIXTURE = json.loads((Path(__file__).parent.parent / "fixtures" / "snowflake" / "orders_with_items_history.json").read_text())
TEXT, FIXED = 2, 0  # the connector's type codes (snowflake.connector.constants.FIELD_ID_TO_NAME)


class _RecordedCursor:
    """A DB-API cursor answering the two statements the investigation sends with the recorded rows."""

    def __init__(self, sent: list[str]) -> None:
        self.sent, self.description, self._rows = sent, None, []

    def execute(self, sql: str) -> None:
        self.sent.append(sql)
        upper = sql.upper()
        if "INFORMATION_SCHEMA.QUERY_HISTORY" in upper:
            node_id = sql.split('"node_id": "')[1].split('"')[0]
            rows = [r for r in FIXTURE["query_history"] if f'"node_id": "{node_id}"' in r["QUERY_TEXT"]]
        elif "GET_QUERY_OPERATOR_STATS" in upper:
            query_id = sql.split("GET_QUERY_OPERATOR_STATS('")[1].split("'")[0]
            rows = [r for r in FIXTURE["operator_stats"] if r["QUERY_ID"] == query_id]
        else:
            raise AssertionError(f"unexpected statement: {sql}")
        cols = list((FIXTURE["query_history"] if "QUERY_HISTORY" in upper else FIXTURE["operator_stats"])[0])
        self.description = [(c, FIXED if c in ("TOTAL_ELAPSED_TIME", "STEP_ID", "OPERATOR_ID") else TEXT) for c in cols]
        self._rows = [tuple(r[c] for c in cols) for r in rows]

    def fetchall(self) -> list[tuple[Any, ...]]:
        return self._rows

    def fetchmany(self, n: int) -> list[tuple[Any, ...]]:
        return self._rows[:n]

    def close(self) -> None:
        pass


def _warehouse(sent: list[str]) -> SnowflakeWarehouse:
    class Connection:
        def cursor(self) -> _RecordedCursor:
            return _RecordedCursor(sent)

    @contextmanager
    def connect():
        yield Connection()

    return SnowflakeWarehouse(connect, AuditLog(None))


def _manifest(tmp_path: Path) -> Manifest:
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "orders_with_items.sql").write_text(
        "select distinct o.order_id, o.customer_id, o.amount\nfrom {{ ref('orders') }} o\n"
        "join {{ ref('order_items') }} i on i.order_id = o.order_id\n")

    def node(name: str, deps: tuple[str, ...] = (), **config: Any) -> dict[str, Any]:
        return {"name": name, "resource_type": "model", "relation_name": f"ANALYTICS.RAW.{name.upper()}",
                "database": "ANALYTICS", "schema": "RAW", "package_name": "shop",
                "original_file_path": f"models/{name}.sql", "depends_on": {"nodes": list(deps)},
                "config": {"materialized": "table", **config}}

    return Manifest({"nodes": {
        "model.shop.orders": node("orders"), "model.shop.order_items": node("order_items"),
        "model.shop.orders_with_items": node("orders_with_items", ("model.shop.orders", "model.shop.order_items"),
                                             query_tag="dbt_nightly"),
    }}, tmp_path)


def test_the_last_run_and_its_operators_read_as_a_plan_the_library_explains(tmp_path: Path) -> None:
    sent: list[str] = []
    manifest = _manifest(tmp_path)
    with _warehouse(sent) as wh:
        finding = investigate_model(wh, manifest, manifest.find("orders_with_items"))
    # two reads: the model's last runs (by its dbt node id and query tag), then the newest run's operators
    assert len(sent) == 2 and "query_tag = 'dbt_nightly'" in sent[0] and "model.shop.orders_with_items" in sent[0]
    assert "GET_QUERY_OPERATOR_STATS('01b8e2c4-0001-7a3d-0000-4d2100d1a2f6')" in sent[1]
    plan = finding.plan
    assert plan.total_seconds == pytest.approx(184.23) and plan.bytes_spilled == 3221225472
    top = finding.top
    assert top is not None and top.pattern == "join_explosion", finding.summary()
    join = [o for o in top.operators if o["operator"] == "HASH_JOIN"][0]
    assert join["rows"] == 59880412 and join["input_rows"] == [12000000, 59880412]
    assert join["conditions"] == "(I.ORDER_ID = O.ORDER_ID)"
    assert join["seconds"] == pytest.approx(0.463 * 184.23, rel=1e-3)  # its share of the run's elapsed time
    assert "spill" in [h.pattern for h in finding.hypotheses]
    # no EXPLAIN ANALYZE on Snowflake: nothing is verified, so no diff is proposed (only on request: not built)
    assert finding.verified is None and finding.diff == "" and any("QUERY_HISTORY" in n for n in finding.notes)
    out = as_finding(finding, manifest.compiled_sql("model.shop.orders_with_items") or "")
    assert out.evidence[0].statement.startswith("SELECT query_id") and out.proposed_fix is None
    assert {r["table"] for r in out.evidence[0].rows_sample if "table" in r} <= {"ANALYTICS.RAW.ORDERS", "ANALYTICS.RAW.ORDER_ITEMS"}


def test_a_model_with_no_run_in_the_history_is_a_clear_error(tmp_path: Path) -> None:
    from dagster_agent_de.errors import WarehouseError

    manifest = _manifest(tmp_path)
    (tmp_path / "models" / "orders.sql").write_text("select 1 as order_id\n")
    with _warehouse([]) as wh, pytest.raises(WarehouseError, match="no successful query of model.shop.orders"):
        investigate_model(wh, manifest, manifest.find("orders"))


def test_operator_rows_with_a_single_parent_id_and_lower_case_columns_parse_alike() -> None:
    """Older accounts (before bundle 2023_05) return PARENT_OPERATOR_ID, a number; dict rows may be lower-case."""
    rows = [{k.lower(): v for k, v in r.items()} for r in FIXTURE["operator_stats"]]
    for r in rows:
        parents = json.loads(r.pop("parent_operators") or "null")
        r["parent_operators"] = parents[0] if parents else None
    plan = parse_operator_stats(rows, FIXTURE["query_history"][0])
    assert [o.name for o in plan.operators()] == ["PROJECTION", "HASH_GROUP_BY", "HASH_JOIN", "SEQ_SCAN", "SEQ_SCAN"]
    assert plan.scans()[1].extra["Table"] == "ANALYTICS.RAW.ORDER_ITEMS" and plan.scans()[1].size_bytes == 7010254784


def test_the_guard_reads_the_query_history_and_still_refuses_other_qualified_functions() -> None:
    from dagster_agent_de.engines.performance.snowflake import history_sql, operator_stats_sql
    from dagster_agent_de.errors import StatementRefusedError
    from dagster_agent_de.sql.guard import check_read_only

    check_read_only(history_sql("model.shop.x", "tag"), "snowflake")
    check_read_only(operator_stats_sql("01b8"), "snowflake")
    for sql in ("select * from table(analytics.udfs.exfiltrate('x'))",
                "select * from table(other.query_history(result_limit => 1))"):
        with pytest.raises(StatementRefusedError, match="schema-qualified function"):
            check_read_only(sql, "snowflake")


# -- verification on request: the model's SELECT and the rewrite, each run in full on the warehouse --------------
# fakesnow runs the SELECTs (real SQL over real rows); it has no query history (recorded rows answer those two
# reads, as above) and does not implement ALTER SESSION, so those statements are recorded as sent and succeed.

class _FakesnowWithHistory:
    """A DB-API connection: the query history from the recording, ALTER SESSION recorded, the rest on fakesnow."""

    def __init__(self, con: Any, sent: list[str], timeout_after: int | None = None) -> None:
        self.con, self.sent, self.timeout_after = con, sent, timeout_after

    def cursor(self) -> Any:
        outer = self

        class Cursor(_RecordedCursor):
            def __init__(self) -> None:
                super().__init__(outer.sent)
                self._real: Any = None

            def execute(self, sql: str) -> None:
                upper = sql.upper()
                if "QUERY_HISTORY" in upper or "GET_QUERY_OPERATOR_STATS" in upper:
                    return super().execute(sql)
                self.sent.append(sql)
                if upper.startswith("ALTER SESSION"):
                    self.description, self._rows = [("status", TEXT)], [("Statement executed successfully.",)]
                    return None
                runs = sum(1 for s in self.sent if "ROW_HASH" in s.upper())
                if outer.timeout_after is not None and "ROW_HASH" in upper and runs > outer.timeout_after:
                    from snowflake.connector.errors import ProgrammingError

                    raise ProgrammingError("Statement reached its statement or warehouse timeout of 1 second(s) and "
                                           "was canceled.", errno=630)
                self._real = outer.con.cursor()
                self._real.execute(sql)
                self.description = self._real.description
                self._rows = self._real.fetchall()
                return None

        return Cursor()


@pytest.fixture
def fakesnow_shop():
    """ANALYTICS.RAW.ORDERS (12 orders) and ORDER_ITEMS (1-3 items each) on fakesnow."""
    fakesnow = pytest.importorskip("fakesnow")
    with fakesnow.patch():
        import snowflake.connector

        con = snowflake.connector.connect(database="ANALYTICS", schema="RAW")
        cur = con.cursor()
        for sql in ("create database if not exists ANALYTICS", "create schema if not exists ANALYTICS.RAW",
                    "create or replace table ANALYTICS.RAW.ORDERS (order_id int, customer_id int, amount float)",
                    "insert into ANALYTICS.RAW.ORDERS select i, i % 5, i * 1.1 from range(1, 13) t(i)",
                    "create or replace table ANALYTICS.RAW.ORDER_ITEMS (order_item_id int, order_id int)",
                    "insert into ANALYTICS.RAW.ORDER_ITEMS select o * 10 + k, o from range(1, 13) a(o), range(0, 3) b(k) "
                    "where k <= o % 3"):
            cur.execute(sql)
        yield con
        con.close()


def _fakesnow_warehouse(con: Any, sent: list[str], audit: AuditLog, timeout_after: int | None = None) -> SnowflakeWarehouse:
    @contextmanager
    def connect():
        yield _FakesnowWithHistory(con, sent, timeout_after)

    return SnowflakeWarehouse(connect, audit)


def test_without_verify_no_rewrite_runs_and_the_finding_says_how_to_ask(tmp_path: Path, fakesnow_shop) -> None:
    audit, sent = AuditLog(None), []
    manifest = _manifest(tmp_path)
    with _fakesnow_warehouse(fakesnow_shop, sent, audit) as wh:
        finding = investigate_model(wh, manifest, manifest.find("orders_with_items"))
    # the audit log: the two history reads, nothing else (no session change, no run of the model's SELECT)
    assert [e.kind for e in audit.events] == ["query", "query"] and len(sent) == 2
    assert "QUERY_HISTORY" in audit.events[0].statement and "GET_QUERY_OPERATOR_STATS" in audit.events[1].statement
    assert finding.verified is None and not finding.rejected and finding.diff == ""
    assert "verification was not run" in finding.summary()
    assert "agent-de investigate --asset orders_with_items --check model_runtime --verify" in finding.summary()
    assert "verify_on_warehouse: true" in finding.summary()


def test_with_verify_both_selects_run_under_a_statement_timeout_and_the_figures_are_reported(
        tmp_path: Path, fakesnow_shop) -> None:
    audit, sent = AuditLog(None), []
    manifest = _manifest(tmp_path)
    node = manifest.find("orders_with_items")
    with _fakesnow_warehouse(fakesnow_shop, sent, audit) as wh:
        # min_speedup 0: a dozen rows on fakesnow time nothing worth comparing; this test is about what runs
        finding = investigate_model(wh, manifest, node, verify_on_warehouse=True, verify_timeout_s=120, min_speedup=0)
    kinds = [(e.kind, e.outcome) for e in audit.events]
    assert kinds[0] == kinds[1] == ("query", "ok")  # the history reads
    setup = [e.statement for e in audit.events if e.kind == "session_setup"]
    assert setup[0] == "ALTER SESSION SET STATEMENT_TIMEOUT_IN_SECONDS = 120"
    assert setup[-1] == "ALTER SESSION UNSET STATEMENT_TIMEOUT_IN_SECONDS"
    runs = [e for e in audit.events if e.kind == "query" and "row_hash" in e.statement.lower()]
    # two full runs: the model's SELECT, then the first rewrite (accepted, so no other runs)
    assert len(runs) == 2 and all(e.outcome == "ok" and e.rows == 1 for e in runs)
    # each run is a whole SELECT under a count and a row hash, between the SET and the UNSET of the timeout
    sql = manifest.compiled_sql(node.unique_id) or ""
    assert sqlglot.parse_one(runs[0].statement, read="snowflake").find(exp.Subquery).this == sqlglot.parse_one(
        sql, read="snowflake")  # the model's SELECT, whole, under the count and the hash
    assert "SELECT DISTINCT order_id FROM ANALYTICS.RAW.ORDER_ITEMS" in runs[1].statement
    order = [e.statement for e in audit.events]
    assert order.index(setup[0]) < order.index(runs[0].statement) < order.index(runs[1].statement) < order.index(setup[-1])
    assert len(setup) == 2
    v = finding.verified
    assert v is not None, finding.summary()
    assert v.rows_before == v.rows_after == 12 and v.same_hash and v.seconds_before > 0 and v.seconds_after > 0
    assert v.measured_by == "two full runs on snowflake" and finding.diff.startswith("--- a/models/orders_with_items.sql")
    assert f"{v.seconds_before:.3f}s -> {v.seconds_after:.3f}s" in finding.summary()
    assert "verified as requested" in finding.summary() and "STATEMENT_TIMEOUT_IN_SECONDS=120" in finding.summary()
    out = as_finding(finding, sql)
    measured = out.evidence[-1]
    assert measured.statement == v.statement_after and "ROW_HASH" in measured.statement.upper()
    assert measured.rows_sample[0]["rows_before"] == measured.rows_sample[0]["rows_after"] == 12
    assert out.verified and out.proposed_fix is not None and out.proposed_fix.diff == finding.diff


def test_a_rewrite_that_changes_the_rows_is_rejected_and_said_so(fakesnow_shop) -> None:
    from dagster_agent_de.engines.performance.verify import verify_by_running

    before = "select o.order_id, o.amount from ANALYTICS.RAW.ORDERS o"
    audit = AuditLog(None)
    with _fakesnow_warehouse(fakesnow_shop, [], audit) as wh:
        fewer = verify_by_running(wh, before, before + " where o.amount > 5", "drop small orders", timeout_s=60)
        other = verify_by_running(wh, before, "select o.order_id, o.amount + 1 as amount from ANALYTICS.RAW.ORDERS o",
                                  "add one", timeout_s=60)
        same = verify_by_running(wh, before, "select o.order_id, o.amount from ANALYTICS.RAW.ORDERS o order by 1",
                                 "ordered", timeout_s=60)
    assert (fewer.rows_before, fewer.rows_after, fewer.accepted) == (12, 8, False)
    assert "REJECTED: results change (12 -> 8 rows" in fewer.summary()
    assert other.rows_before == other.rows_after == 12 and not other.same_hash and not other.accepted
    assert "different row hash" in other.summary()
    assert same.unchanged  # the order of the rows does not count
    assert sum(1 for e in audit.events if e.kind == "session_setup") == 6  # SET and UNSET around each


def test_a_run_cancelled_at_the_timeout_is_a_note_not_a_proposal(tmp_path: Path, fakesnow_shop) -> None:
    """The warehouse cancels every run after the model's own (the replayed error is Snowflake's, errno 630)."""
    audit = AuditLog(None)
    manifest = _manifest(tmp_path)
    with _fakesnow_warehouse(fakesnow_shop, [], audit, timeout_after=1) as wh:
        finding = investigate_model(wh, manifest, manifest.find("orders_with_items"), verify_on_warehouse=True,
                                    verify_timeout_s=1)
    assert finding.verified is None and finding.diff == ""
    assert "did not finish within the statement timeout of 1s" in finding.summary()
    assert audit.events[-1].statement == "ALTER SESSION UNSET STATEMENT_TIMEOUT_IN_SECONDS"  # unset even then
    assert any(e.outcome == "error" and "timeout" in (e.error or "") for e in audit.events)
