"""Schema snapshots and the typed changes between two of them."""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Any, Literal

from pydantic import Field

from dagster_agent_de.core.models import Escalation, Frozen, Severity, utcnow


class ColumnSchema(Frozen):
    name: str
    position: int
    data_type: str
    nullable: bool = True


class ColumnFingerprint(Frozen):
    """What a column's values look like, without keeping any of them.

    ``values`` concatenates one fixed-width hash per sampled key (aligned with the table's
    ``keys``, or with this column's own ``keys`` when it was sampled at another time). Numbers
    are hashed from a canonical decimal form (``12.5``, ``12.50`` and ``1250 / 100`` hash equal);
    text is hashed, never stored. ``scaled`` holds the hashes of the values divided by ``10**k``
    (only for columns that appeared or changed type, at detection: a unit change shows up as a match there).
    """

    name: str
    data_type: str
    rows: int
    nulls: int
    distinct: int  # approximate (HyperLogLog)
    min: float | str | None = None  # numeric and date columns only
    max: float | str | None = None
    values: str = ""
    keys: str | None = None
    scaled: dict[int, str] = Field(default_factory=dict)

    def stats(self) -> dict[str, Any]:
        return {"column": self.name, "type": self.data_type, "rows": self.rows, "nulls": self.nulls,
                "distinct": self.distinct, "min": self.min, "max": self.max}


class TableFingerprint(Frozen):
    """Column fingerprints of one table, from one query; ``skipped`` says why there are none."""

    taken_at: datetime = Field(default_factory=utcnow)
    rows: int | None = None
    key: list[str] = Field(default_factory=list)  # the columns the sample is keyed by (empty: no key known)
    keys: str = ""  # the sampled keys' hashes, concatenated
    columns: dict[str, ColumnFingerprint] = Field(default_factory=dict)  # key: lower-cased column name
    skipped: str | None = None


class TableSchema(Frozen):
    relation: str  # database.schema.table, as the warehouse names it
    table_type: str = "BASE TABLE"
    columns: list[ColumnSchema] = Field(default_factory=list)
    signature: str = ""  # canonical encoding of the columns, computed in the warehouse: equal = unchanged
    fingerprint: TableFingerprint | None = None  # source and seed tables, when cheap (see fingerprint.py)

    def by_name(self) -> dict[str, ColumnSchema]:
        """Columns by case-folded name: a case-only difference is not drift."""
        return {c.name.lower(): c for c in self.columns}


class Snapshot(Frozen):
    taken_at: datetime = Field(default_factory=utcnow)
    dialect: str = "duckdb"
    tables: dict[str, TableSchema] = Field(default_factory=dict)  # key: lower-cased relation
    missing: list[str] = Field(default_factory=list)  # requested relations not found
    statements: list[str] = Field(default_factory=list)
    duration_ms: float = 0.0
    notes: list[str] = Field(default_factory=list)
    # baseline only: the unit changes recording it accepted (the drift check stops reporting them, an
    # investigation of a failure downstream still names them)
    accepted: list[AcceptedChange] = Field(default_factory=list)


class DriftSeverity(str, Enum):
    """Drift's own words (``breaking`` says more than ``error`` to someone reading a schema change); on the
    agent's one scale through :attr:`severity`."""

    INFO = "info"
    WARNING = "warning"
    BREAKING = "breaking"

    @property
    def rank(self) -> int:
        return ["info", "warning", "breaking"].index(self.value)

    @property
    def severity(self) -> Severity:
        """The same on the agent's one scale: info, warning, error.

        >>> [s.severity.value for s in DriftSeverity]
        ['info', 'warning', 'error']
        """
        return Severity.parse(self.value)


TypeChange = Literal["widening", "narrowing", "incompatible"]
"""What a type change can lose: nothing (widening), some values (narrowing), or the column's meaning."""

ChangeKind = Literal[
    "column_added", "column_dropped", "column_renamed", "type_changed", "nullability_changed",
    "table_added", "table_dropped", "table_missing",
]


class ImpactedModel(Frozen):
    model: str
    columns: list[str] = Field(default_factory=list)  # columns of the upstream it reads that carry the change
    hops: int = 1
    unknown: str | None = None  # why column-level impact could not be computed


RenameVerdict = Literal["same_values", "unit_change", "different_values", "inconclusive", "names_only"]


class RenameEvidence(Frozen):
    """Why a dropped and an added column are (or are not) the same column, from their values."""

    verdict: RenameVerdict
    old_column: str
    new_column: str
    match_rate: float | None = None  # over the sampled keys present in both snapshots
    keys_compared: int = 0
    scale: int | None = None  # new = old * 10**scale (unit_change)
    old_stats: dict[str, Any] = Field(default_factory=dict)
    new_stats: dict[str, Any] = Field(default_factory=dict)
    reason: str = ""

    def describe(self) -> str:
        rate = f"{self.match_rate:.0%} of {self.keys_compared} sampled keys match" if self.match_rate is not None else ""
        if self.verdict == "same_values":
            return f"same values ({rate or self.reason})"
        if self.verdict == "unit_change":
            return f"same values x 10^{self.scale} ({rate or self.reason})"
        if self.verdict == "different_values":
            return f"different values ({rate or self.reason})"
        return self.reason


class SchemaChange(Frozen):
    kind: ChangeKind
    relation: str
    column: str | None = None
    new_column: str | None = None  # renames
    old_type: str | None = None
    new_type: str | None = None
    type_change: TypeChange | None = None
    nullable_from: bool | None = None
    nullable_to: bool | None = None
    confidence: float = 1.0
    severity: DriftSeverity = DriftSeverity.INFO
    source: str | None = None  # dbt source name (source.table)
    impacted: list[ImpactedModel] = Field(default_factory=list)
    exposures: list[str] = Field(default_factory=list)
    proposed_fix: str | None = None
    evidence: list[RenameEvidence] = Field(default_factory=list)  # value comparisons behind a rename call
    unit_scale: int | None = None  # a rename or retype whose values moved units: new = old * 10**unit_scale
    escalation: Escalation | None = None  # the decision a human must make (e.g. which column replaces a dropped one)

    def describe(self) -> str:
        what = self.source or self.relation
        if self.kind == "column_renamed":
            unit = f", values x 10^{self.unit_scale}" if self.unit_scale else ""
            basis = self.evidence[0].verdict if self.evidence else "names_only"
            how = "from the values" if basis in ("same_values", "unit_change") else "from names only"
            return f"{what}: column {self.column} renamed to {self.new_column}{unit} (confidence {self.confidence:.0%}, {how})"
        if self.kind == "type_changed" and self.unit_scale:
            return (f"{what}.{self.column}: {self.old_type} -> {self.new_type}, values {unit_words(self.unit_scale)} "
                    f"({self.type_change}, from the values)")
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
            "evidence": "; ".join(f"{e.old_column}->{e.new_column}: {e.describe()}" for e in self.evidence),
            "impacted": ", ".join(f"{i.model}({','.join(i.columns)})" if not i.unknown else f"{i.model}(unknown)"
                                  for i in self.impacted),
        }


class AcceptedChange(Frozen):
    """A change a recorded baseline accepted (``agent-de drift --baseline``): kept with that baseline, because
    accepting a schema does not convert the values its readers see."""

    change: SchemaChange
    accepted_at: datetime


def unit_words(scale: int) -> str:
    """What ``new = old * 10**scale`` likely means, for a person.

    >>> unit_words(2), unit_words(-2), unit_words(3), unit_words(1)
    ('×100: dollars to cents?', '÷100: cents to dollars?', '×1000: e.g. seconds to milliseconds?', '×10')
    """
    factor = f"{'×' if scale > 0 else '÷'}{10 ** abs(scale)}"
    guess = {2: "dollars to cents", -2: "cents to dollars", 3: "e.g. seconds to milliseconds",
             -3: "e.g. milliseconds to seconds"}.get(scale)
    return f"{factor}: {guess}?" if guess else factor


class DriftReport(Frozen):
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


Snapshot.model_rebuild()
