"""Everything a detector may use: manifest, audited warehouse, the failure, facts, rules."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from dagster_agent_de.adapters.warehouse import QueryResult, Warehouse
from dagster_agent_de.core.models import Evidence
from dagster_agent_de.engines.investigate.models import Failure
from dagster_agent_de.engines.pii_lineage import pii_index
from dagster_agent_de.errors import AgentDEError, StatementRefusedError
from dagster_agent_de.manifest import Manifest, Node
from dagster_agent_de.sql.facts import ModelFacts, extract_facts

SAMPLE_ROWS = 5


@dataclass
class InvestigationContext:
    manifest: Manifest
    warehouse: Warehouse
    failure: Failure
    rules: list[Any] = field(default_factory=list)  # context rules (escalations feature)
    drift_store: Any = None  # SnapshotStore, when the state dir is known
    notes: list[str] = field(default_factory=list)
    _facts: dict[str, ModelFacts] = field(default_factory=dict)

    @property
    def dialect(self) -> str:
        return self.warehouse.dialect

    def facts(self, node: Node) -> ModelFacts:
        if node.unique_id not in self._facts:
            sql = self.manifest.compiled_sql(node.unique_id)
            if sql is None:
                self._facts[node.unique_id] = ModelFacts(sql="", error="no compiled SQL found")
            else:
                self._facts[node.unique_id] = extract_facts(sql, self.dialect)
        return self._facts[node.unique_id]

    def run(self, sql: str, rationale: str) -> tuple[QueryResult | None, Evidence]:
        """Run one read-only query; a failure becomes unverified evidence, never a crash."""
        try:
            res = self.warehouse.query(sql, rationale=rationale, max_rows=1000)
        except (AgentDEError, StatementRefusedError) as e:
            return None, Evidence(statement=sql, rationale=rationale, result_summary=f"query failed: {e}")
        # PII (tagged or derived by lineage) is masked before any detector, finding or LLM sees it
        res = replace(res, rows=pii_index(self.manifest, self.dialect).mask_rows(sql, res.columns, res.rows))
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
