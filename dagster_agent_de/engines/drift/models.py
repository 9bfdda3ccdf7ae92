"""Schema snapshots and the typed changes between two of them."""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from dagster_agent_de.core.models import utcnow


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True)


class ColumnSchema(_Frozen):
    name: str
    position: int
    data_type: str
    nullable: bool = True


class TableSchema(_Frozen):
    relation: str  # database.schema.table, as the warehouse names it
    table_type: str = "BASE TABLE"
    columns: list[ColumnSchema] = Field(default_factory=list)
    signature: str = ""  # canonical encoding of the columns, computed in the warehouse: equal = unchanged

    def by_name(self) -> dict[str, ColumnSchema]:
        """Columns by case-folded name: a case-only difference is not drift."""
        return {c.name.lower(): c for c in self.columns}


class Snapshot(_Frozen):
    taken_at: datetime = Field(default_factory=utcnow)
    dialect: str = "duckdb"
    tables: dict[str, TableSchema] = Field(default_factory=dict)  # key: lower-cased relation
    missing: list[str] = Field(default_factory=list)  # requested relations not found
    statements: list[str] = Field(default_factory=list)
    duration_ms: float = 0.0


class DriftSeverity(str, Enum):
    INFO = "info"
    WARNING = "warning"
    BREAKING = "breaking"

    @property
    def rank(self) -> int:
        return ["info", "warning", "breaking"].index(self.value)


ChangeKind = Literal[
    "column_added", "column_dropped", "column_renamed", "type_changed", "nullability_changed",
    "table_added", "table_dropped", "table_missing",
]


class ImpactedModel(_Frozen):
    model: str
    columns: list[str] = Field(default_factory=list)  # columns of the upstream it reads that carry the change
    hops: int = 1
    unknown: str | None = None  # why column-level impact could not be computed


class SchemaChange(_Frozen):
    kind: ChangeKind
    relation: str
    column: str | None = None
    new_column: str | None = None  # renames
    old_type: str | None = None
    new_type: str | None = None
    type_change: Literal["widening", "narrowing", "incompatible"] | None = None
    nullable_from: bool | None = None
    nullable_to: bool | None = None
    confidence: float = 1.0
    severity: DriftSeverity = DriftSeverity.INFO
    source: str | None = None  # dbt source name (source.table)
    impacted: list[ImpactedModel] = Field(default_factory=list)
    exposures: list[str] = Field(default_factory=list)
    proposed_fix: str | None = None

    def describe(self) -> str:
        what = self.source or self.relation
        if self.kind == "column_renamed":
            return f"{what}: column {self.column} renamed to {self.new_column} (confidence {self.confidence:.0%})"
        if self.kind == "type_changed":
            return f"{what}.{self.column}: type {self.old_type} -> {self.new_type} ({self.type_change})"
        if self.kind == "nullability_changed":
            return f"{what}.{self.column}: nullable {self.nullable_from} -> {self.nullable_to}"
        if self.kind in ("column_added", "column_dropped"):
            return f"{what}: column {self.column} {self.kind.split('_')[1]}"
        return f"{what}: {self.kind.replace('_', ' ')}"

    def as_row(self) -> dict[str, Any]:
        return {
            "severity": self.severity.value, "kind": self.kind, "relation": self.source or self.relation,
            "column": self.column, "new_column": self.new_column, "old_type": self.old_type,
            "new_type": self.new_type, "confidence": self.confidence,
            "impacted": ", ".join(f"{i.model}({','.join(i.columns)})" if not i.unknown else f"{i.model}(unknown)"
                                  for i in self.impacted),
        }


class DriftReport(_Frozen):
    baseline_at: datetime | None
    snapshot_at: datetime
    changes: list[SchemaChange] = Field(default_factory=list)
    baseline_created: bool = False
    notes: list[str] = Field(default_factory=list)

    @property
    def severity(self) -> DriftSeverity | None:
        if not self.changes:
            return None
        return max((c.severity for c in self.changes), key=lambda s: s.rank)

    @property
    def breaking(self) -> bool:
        return self.severity == DriftSeverity.BREAKING

    def for_relation(self, relation: str) -> list[SchemaChange]:
        return [c for c in self.changes if c.relation.lower() == relation.lower()]

    def markdown(self) -> str:
        if not self.changes:
            return "No schema drift." if not self.baseline_created else "Baseline recorded (first snapshot)."
        lines = ["| severity | change | impacted models |", "|---|---|---|"]
        for c in self.changes:
            imp = ", ".join(f"`{i.model}`" + (f" ({', '.join(i.columns)})" if i.columns else "") for i in c.impacted) or "none"
            lines.append(f"| {c.severity.value} | {c.describe()} | {imp} |")
        for c in self.changes:
            if c.proposed_fix:
                lines += ["", f"**Proposed fix for {c.describe()}:**", "", "```diff", c.proposed_fix.rstrip(), "```"]
        return "\n".join(lines)
