"""Snowflake evidence: the model's last queries in ``QUERY_HISTORY`` and their operators.

Snowflake has no ``EXPLAIN ANALYZE``; what it ran is in the query history. The model's queries are
found by the dbt model id in the query comment dbt-snowflake prepends (``"node_id": "model.p.x"``)
and, when the model sets one, its ``query_tag``; their operators come from
``GET_QUERY_OPERATOR_STATS(query_id)`` and are read into the same :class:`QueryPlan` the DuckDB path
builds, so the same pattern library reads them.

Column names, as Snowflake documents them (verified 2026-11 against docs.snowflake.com):

- ``INFORMATION_SCHEMA.QUERY_HISTORY()`` (sql-reference/functions/query_history; the columns are those of
  the ACCOUNT_USAGE view, sql-reference/account-usage/query_history): ``QUERY_ID``, ``QUERY_TEXT``,
  ``QUERY_TAG``, ``EXECUTION_STATUS``, ``START_TIME``, ``TOTAL_ELAPSED_TIME`` (milliseconds),
  ``BYTES_SCANNED``, ``ROWS_PRODUCED``, ``PARTITIONS_SCANNED``, ``PARTITIONS_TOTAL``,
  ``BYTES_SPILLED_TO_LOCAL_STORAGE``, ``BYTES_SPILLED_TO_REMOTE_STORAGE``.
- ``GET_QUERY_OPERATOR_STATS(query_id)`` (sql-reference/functions/get_query_operator_stats): ``QUERY_ID``,
  ``STEP_ID``, ``OPERATOR_ID``, ``PARENT_OPERATORS`` (an array since bundle 2023_05, release-notes
  bcr-1175; it was ``PARENT_OPERATOR_ID``), ``OPERATOR_TYPE`` (``TableScan``, ``Join``, ``CartesianJoin``,
  ``Aggregate``, ``Filter``, ``Sort``, ``WindowFunction``, ``UnionAll``, ``Result``, ...),
  ``OPERATOR_STATISTICS`` (``input_rows``, ``output_rows``, ``io.bytes_scanned``, ``pruning``,
  ``spilling.bytes_spilled_local_storage``/``bytes_spilled_remote_storage``), ``EXECUTION_TIME_BREAKDOWN``
  (``overall_percentage``, ...) and ``OPERATOR_ATTRIBUTES`` (``table_name``, ``equality_join_condition``,
  ``additional_join_condition``, ``join_type``, ``filter_condition``, ``grouping_keys``, ...).

Both are reads through the audited warehouse (the guard accepts them as such).
"""

from __future__ import annotations

import json
from typing import Any

from sqlglot import exp

from dagster_agent_de.adapters.warehouse import Warehouse
from dagster_agent_de.engines.performance.plan import Operator, QueryPlan
from dagster_agent_de.errors import WarehouseError

HISTORY_LIMIT = 10_000
"""Rows of the query history the table function is asked for (its maximum); the model's are filtered from them."""

# Snowflake's operator types under the names the pattern library reads (DuckDB's physical operators)
_NAMES = {"TableScan": "SEQ_SCAN", "Join": "HASH_JOIN", "CartesianJoin": "CROSS_PRODUCT", "Aggregate": "HASH_GROUP_BY",
          "Filter": "FILTER", "Sort": "ORDER_BY", "SortWithLimit": "TOP_N", "WindowFunction": "WINDOW",
          "UnionAll": "UNION", "Result": "PROJECTION", "Projection": "PROJECTION"}


def history_sql(node_id: str, query_tag: str | None = None, limit: int = 5) -> str:
    """The model's last successful queries, newest first (literals quoted by sqlglot).

    >>> print(history_sql("model.p.fct_orders", limit=2))  # doctest: +NORMALIZE_WHITESPACE
    SELECT query_id, query_text, query_tag, start_time, total_elapsed_time, bytes_scanned, rows_produced,
    partitions_scanned, partitions_total, bytes_spilled_to_local_storage, bytes_spilled_to_remote_storage
    FROM TABLE(INFORMATION_SCHEMA.QUERY_HISTORY(RESULT_LIMIT => 10000)) WHERE execution_status = 'SUCCESS'
    AND CONTAINS(query_text, '"node_id": "model.p.fct_orders"') ORDER BY start_time DESC NULLS LAST LIMIT 2
    """
    cols = ["query_id", "query_text", "query_tag", "start_time", "total_elapsed_time", "bytes_scanned", "rows_produced",
            "partitions_scanned", "partitions_total", "bytes_spilled_to_local_storage", "bytes_spilled_to_remote_storage"]
    source = exp.Table(this=exp.Anonymous(this="TABLE", expressions=[exp.Anonymous(
        this="INFORMATION_SCHEMA.QUERY_HISTORY",
        expressions=[exp.Kwarg(this=exp.var("RESULT_LIMIT"), expression=exp.Literal.number(HISTORY_LIMIT))])]))
    where: exp.Expr = exp.and_(
        exp.column("execution_status").eq(exp.Literal.string("SUCCESS")),
        exp.func("CONTAINS", exp.column("query_text"), exp.Literal.string(f'"node_id": "{node_id}"')))
    if query_tag:
        where = exp.and_(where, exp.column("query_tag").eq(exp.Literal.string(query_tag)))
    return (exp.select(*cols).from_(source).where(where).order_by(exp.Ordered(this=exp.column("start_time"), desc=True))
            .limit(limit).sql(dialect="snowflake"))


def operator_stats_sql(query_id: str) -> str:
    """``GET_QUERY_OPERATOR_STATS`` of one query (the id quoted by sqlglot).

    >>> operator_stats_sql("01b2-x")
    "SELECT * FROM TABLE(GET_QUERY_OPERATOR_STATS('01b2-x'))"
    """
    source = exp.Table(this=exp.Anonymous(this="TABLE", expressions=[
        exp.Anonymous(this="GET_QUERY_OPERATOR_STATS", expressions=[exp.Literal.string(query_id)])]))
    return exp.select("*").from_(source).sql(dialect="snowflake")


def _json(value: Any) -> Any:
    """The connector returns VARIANT/ARRAY columns as JSON text."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value if value is not None else {}


def _text(value: Any) -> str:
    return ", ".join(map(str, value)) if isinstance(value, list) else str(value or "")


def parse_operator_stats(rows: list[dict[str, Any]], history: dict[str, Any]) -> QueryPlan:
    """``GET_QUERY_OPERATOR_STATS`` rows (column names upper- or lower-case) and the query's history row as a plan."""
    rows = [{k.lower(): v for k, v in r.items()} for r in rows]
    history = {k.lower(): v for k, v in history.items()}
    if not rows:
        raise WarehouseError(f"GET_QUERY_OPERATOR_STATS returned no operators for query {history.get('query_id')}")
    total = float(history.get("total_elapsed_time") or 0) / 1000.0
    nodes: dict[tuple[Any, Any], dict[str, Any]] = {}
    for r in rows:
        stats, attrs, breakdown = _json(r.get("operator_statistics")), _json(r.get("operator_attributes")), _json(
            r.get("execution_time_breakdown"))
        kind = str(r.get("operator_type") or "?")
        extra: dict[str, Any] = {"Snowflake Operator": kind}
        cond = [c for c in (_text(attrs.get("equality_join_condition")), _text(attrs.get("additional_join_condition"))) if c]
        for key, value in (("Table", attrs.get("table_name")), ("Join Type", attrs.get("join_type")),
                           ("Conditions", ", ".join(cond)), ("Filters", attrs.get("filter_condition")),
                           ("Groups", attrs.get("grouping_keys"))):
            if value:
                extra[key] = _text(value)
        spill = stats.get("spilling") or {}
        if spill:
            extra["Spilled Bytes"] = int(spill.get("bytes_spilled_local_storage", 0) or 0) + int(
                spill.get("bytes_spilled_remote_storage", 0) or 0)
        parents = _json(r.get("parent_operators"))
        parents = parents if isinstance(parents, list) else ([parents] if parents not in (None, "", {}) else [])
        nodes[(r.get("step_id"), r.get("operator_id"))] = {
            "name": _NAMES.get(kind, kind.upper()), "rows": int(stats.get("output_rows", 0) or 0),
            "share": float(breakdown.get("overall_percentage", 0) or 0), "extra": extra,
            "parents": [(r.get("step_id"), p) for p in parents], "children": [],
            "bytes": int((stats.get("io") or {}).get("bytes_scanned", 0) or 0),
        }
    # overall_percentage: the documented examples show fractions (0.412); a sum over the operators above 1.5
    # can only be percents (41.2), so both forms read alike
    scale = 100.0 if sum(n["share"] for n in nodes.values()) > 1.5 else 1.0
    for op_key, node in nodes.items():
        node["seconds"] = node["share"] / scale * total
        for parent in node["parents"]:
            if parent in nodes:
                nodes[parent]["children"].append(op_key)

    def build(key: tuple[Any, Any]) -> Operator:
        n = nodes[key]
        return Operator(n["name"], n["rows"], n["seconds"], n["extra"],
                        tuple(build(c) for c in sorted(n["children"], key=str)), n["bytes"])

    roots = [build(k) for k, n in nodes.items() if not [p for p in n["parents"] if p in nodes]]
    root = roots[0] if len(roots) == 1 else Operator("ROOT", 0, 0.0, {}, tuple(roots))
    return QueryPlan(
        root=root, total_seconds=total,
        rows_scanned=sum(o.rows for o in root.walk() if o.name == "SEQ_SCAN"),
        bytes_spilled=int(history.get("bytes_spilled_to_local_storage") or 0)
        + int(history.get("bytes_spilled_to_remote_storage") or 0),
        raw={"query_history": {k: str(v) for k, v in history.items() if k != "query_text"}, "operators": rows},
    )


def last_query_plan(warehouse: Warehouse, node_id: str, query_tag: str | None = None) -> tuple[QueryPlan, str]:
    """The plan of the model's last successful query in ``QUERY_HISTORY`` and that query's text.

    Raises:
        WarehouseError: no query of the model in the history the role can see (the last 7 days).
    """
    res = warehouse.query(history_sql(node_id, query_tag), rationale=f"the last runs of {node_id} (query history)").folded()
    runs = res.dicts()
    if not runs:
        raise WarehouseError(
            f"no successful query of {node_id} in INFORMATION_SCHEMA.QUERY_HISTORY (the last 7 days, queries the role "
            "can see): run the model once, or check that dbt's query comment (node_id) is not disabled")
    last = runs[0]
    ops = warehouse.query(operator_stats_sql(str(last["query_id"])),
                          rationale=f"the operators of {node_id}'s last run").folded().dicts()
    return parse_operator_stats(ops, last), str(last.get("query_text") or "")
