"""Everything a detector may use: manifest, audited warehouse, the failure, facts, rules."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from dagster_agent_de.adapters.warehouse import QueryResult, Warehouse
from dagster_agent_de.core.models import Evidence
from dagster_agent_de.engines.investigate.models import Failure
from dagster_agent_de.errors import AgentDEError, StatementRefusedError
from dagster_agent_de.manifest import Manifest, Node
from dagster_agent_de.sql.facts import ModelFacts
from dagster_agent_de.sql.tracer import LineageTracer

SAMPLE_ROWS = 5


@dataclass
class InvestigationContext:
    manifest: Manifest
    warehouse: Warehouse
    failure: Failure
    rules: list[Any] = field(default_factory=list)  # context rules (escalations feature)
    drift_store: Any = None  # SnapshotStore, when the state dir is known
    notes: list[str] = field(default_factory=list)
    tracer: LineageTracer | None = None  # one analysis per model, shared by every detector

    def __post_init__(self) -> None:
        if self.tracer is None:
            self.tracer = LineageTracer(self.manifest, self.warehouse.dialect)

    @property
    def dialect(self) -> str:
        return self.warehouse.dialect

    def facts(self, node: Node) -> ModelFacts:
        assert self.tracer is not None
        return self.tracer.facts(node)

    def run(self, sql: str, rationale: str) -> tuple[QueryResult | None, Evidence]:
        """Run one read-only query; a failure becomes unverified evidence, never a crash."""
        try:
            res = self.warehouse.query(sql, rationale=rationale, max_rows=1000)
        except (AgentDEError, StatementRefusedError) as e:
            return None, Evidence(statement=sql, rationale=rationale, result_summary=f"query failed: {e}")
        rows = res.dicts(SAMPLE_ROWS)
        summary = ", ".join(f"{k}={v}" for k, v in rows[0].items()) if len(rows) == 1 else f"{res.row_count} rows"
        ev = Evidence(statement=sql, rationale=rationale, result_summary=summary, row_count=res.row_count,
                      rows_sample=[{k: _jsonable(v) for k, v in r.items()} for r in rows], duration_ms=round(res.duration_ms, 2))
        return res, ev

    def relation_node(self, relation_key: str) -> Node | None:
        for node in self.manifest.nodes.values():
            if node.relation_name and node.relation_name.replace('"', "").lower() == relation_key:
                return node
        return None


def _jsonable(v: Any) -> Any:
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    return str(v)
