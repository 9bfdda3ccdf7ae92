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
