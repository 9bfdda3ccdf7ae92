"""DuckDB's ``EXPLAIN (ANALYZE, FORMAT JSON)``: run through the audited warehouse and read as operators."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from dagster_agent_de.adapters.warehouse import Warehouse
from dagster_agent_de.errors import WarehouseError

EXPLAIN_PREFIX = "EXPLAIN (ANALYZE, FORMAT JSON) "
"""The only EXPLAIN form the guard lets run with ANALYZE; it executes the SELECT that follows, read-only."""


@dataclass(frozen=True)
class Operator:
    """One physical operator: its name, the rows it emitted, its own time and what DuckDB says about it."""

    name: str
    rows: int
    seconds: float
    extra: dict[str, Any]
    children: tuple[Operator, ...] = ()
    size_bytes: int = 0
    """The bytes of the rows it emitted (DuckDB's ``intermediate_size_bytes``)."""

    def walk(self) -> Iterator[Operator]:
        yield self
        for c in self.children:
            yield from c.walk()

    def info(self, key: str) -> str:
        v = self.extra.get(key, "")
        return ", ".join(map(str, v)) if isinstance(v, list) else str(v)

    def evidence(self) -> dict[str, Any]:
        """The operator as a row of the finding's operator table."""
        out: dict[str, Any] = {"operator": self.name, "rows": self.rows, "seconds": round(self.seconds, 4)}
        for key in ("Table", "Join Type", "Conditions", "Filters", "Groups"):
            if self.extra.get(key):
                out[key.lower().replace(" ", "_")] = self.info(key)
        if self.children:
            out["input_rows"] = [c.rows for c in self.children]
        return out


@dataclass(frozen=True)
class QueryPlan:
    """The analyzed plan of one SELECT: operators plus the query's totals."""

    root: Operator
    total_seconds: float
    rows_scanned: int = 0
    bytes_spilled: int = 0
    peak_temp_bytes: int = 0
    """DuckDB's ``system.peak_temp_dir_size``: the most the query held in its spill directory."""
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def operators(self) -> list[Operator]:
        return list(self.root.walk())

    def named(self, *names: str) -> list[Operator]:
        return [o for o in self.operators() if o.name in names]

    def joins(self) -> list[Operator]:
        return [o for o in self.operators() if "JOIN" in o.name or o.name in ("CROSS_PRODUCT", "NESTED_LOOP_JOIN")]

    def share(self, *ops: Operator) -> float:
        """The part of the operators' time (summed over threads, as DuckDB reports it) spent in ``ops``."""
        total = sum(o.seconds for o in self.operators())
        return sum(o.seconds for o in ops) / total if total > 0 else 0.0

    def scans(self) -> list[Operator]:
        return [o for o in self.operators() if o.name in ("SEQ_SCAN", "TABLE_SCAN", "INDEX_SCAN")]


def _operator(node: dict[str, Any]) -> Operator:
    rows = node.get("operator_cardinality", node.get("intermediate_rows", 0)) or 0
    return Operator(
        name=str(node.get("operator_type") or node.get("name") or "?").strip(),
        rows=int(rows),
        seconds=float(node.get("operator_timing", node.get("timing", 0.0)) or 0.0),
        extra=dict(node.get("extra_info") or {}),
        children=tuple(_operator(c) for c in node.get("children") or []),
        size_bytes=int(node.get("intermediate_size_bytes", 0) or 0),
    )


def parse_plan(text: str) -> QueryPlan:
    """Read the JSON DuckDB returns for ``EXPLAIN (ANALYZE, FORMAT JSON)``.

    >>> p = parse_plan('{"query": {"total_time": 0.5, "total_rows_scanned": 10}, "operator": [{"name": "SEQ_SCAN", '
    ...                '"intermediate_rows": 10, "timing": 0.1, "extra_info": {"Table": "t"}, "children": []}]}')
    >>> p.total_seconds, p.scans()[0].info("Table")
    (0.5, 't')
    """
    data = json.loads(text)
    tops = data.get("operator") or data.get("children") or []
    # skip the result collector and the EXPLAIN_ANALYZE wrapper: the plan of the SELECT itself
    ops = [_operator(t) for t in tops]
    root = ops[0] if len(ops) == 1 else Operator("ROOT", 0, 0.0, {}, tuple(ops))
    while root.name in ("RESULT_COLLECTOR", "EXPLAIN_ANALYZE", "QUERY") and len(root.children) == 1:
        root = root.children[0]
    query = data.get("query") or data
    system = data.get("system") or {}
    return QueryPlan(
        root=root,
        total_seconds=float(query.get("total_time", query.get("latency", 0.0)) or 0.0),
        rows_scanned=int(query.get("total_rows_scanned", query.get("cumulative_rows_scanned", 0)) or 0),
        bytes_spilled=int(system.get("total_bytes_spilled", 0) or 0),
        peak_temp_bytes=int(system.get("peak_temp_dir_size", 0) or 0),
        raw=data,
    )


def explain_analyze(warehouse: Warehouse, select: str, rationale: str) -> QueryPlan:
    """Run the SELECT under ``EXPLAIN (ANALYZE, FORMAT JSON)`` through the audited, guarded path.

    Raises:
        WarehouseError: the warehouse has no EXPLAIN ANALYZE with per-operator JSON (only DuckDB does).
    """
    if warehouse.dialect != "duckdb":
        raise WarehouseError(
            f"EXPLAIN (ANALYZE, FORMAT JSON) is a DuckDB statement; {warehouse.name} has no per-operator "
            "analyze: read its query history instead"
        )
    res = warehouse.query(EXPLAIN_PREFIX + select.strip().rstrip(";"), rationale=rationale)
    if not res.rows:
        raise WarehouseError(f"EXPLAIN ANALYZE returned no plan for: {select[:200]}")
    return parse_plan(str(res.rows[0][-1]))
