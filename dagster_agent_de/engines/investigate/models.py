"""What the investigation starts from (a failure) and what detectors return (hypotheses)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from dagster_agent_de.core.models import Evidence, ProposedFix

FailureKind = Literal["reconciliation", "dbt_test", "schema_drift", "freshness", "performance", "other"]

Symptom = Literal["duplicates", "nulls", "unaccepted_values", "orphans"]
"""What a failed check says is wrong with the rows (see ``failure.failure_symptom``): a ``unique`` test
finds duplicate keys, a ``not_null`` test NULLs, ``accepted_values`` values outside the list,
``relationships`` keys with no parent. Reconciliations and other checks have none: every pattern may
explain them, and their numbers (missing, extra, mismatched) weigh the patterns instead."""

ROW_DROPPING = frozenset({"filter_row_drop", "join_row_drop", "null_semantics"})
ROW_MULTIPLYING = frozenset({"join_fanout", "duplicate_key"})

CANNOT_CAUSE: dict[str, frozenset[str]] = {
    # a filter or join that drops rows removes keys, it never repeats one; a join that finds no row
    # makes a NULL column, not a second row
    "duplicates": ROW_DROPPING | {"unmatched_left_join"},
    # dropping or repeating rows never makes a NULL (a filter dropping NULLs removes them); an outer
    # join that finds no row, a cast that fails, a changed source do
    "nulls": ROW_DROPPING | ROW_MULTIPLYING,
    # a dropped or repeated row holds a value that was already there; NULLs are accepted by the test
    "unaccepted_values": ROW_DROPPING | ROW_MULTIPLYING | {"unmatched_left_join"},
    # a child key without a parent: the parent's rows were dropped (row-dropping patterns apply), never
    # repeated; a NULL key is not checked by the test
    "orphans": ROW_MULTIPLYING | {"unmatched_left_join"},
}
"""The compatibility table: the patterns that cannot cause a symptom. The engine never ranks them as
the cause of a failure with that symptom (they are named in the report's notes instead)."""


@dataclass
class Failure:
    """A failed check: which asset, which check, and the numbers it reported."""

    asset: str  # model name, or source as source.table / asset key path a/b
    check: str | None = None
    kind: FailureKind = "other"
    metadata: dict[str, Any] = field(default_factory=dict)
    run_id: str | None = None

    @property
    def missing_pct(self) -> float | None:
        v = self.metadata.get("missing_pct")
        return float(v) if v is not None else None

    @property
    def extra_pct(self) -> float | None:
        v = self.metadata.get("extra_pct")
        return float(v) if v is not None else None

    def mismatched_columns(self) -> list[str]:
        cols = self.metadata.get("mismatched_columns") or []
        return [str(c) for c in cols]


@dataclass(frozen=True)
class Hypothesis:
    """One candidate root cause, backed by the queries a detector ran (immutable: ``dataclasses.replace``)."""

    pattern: str
    model: str
    summary: str
    confidence: float
    columns: list[str] = field(default_factory=list)
    evidence: list[Evidence] = field(default_factory=list)
    proposed_fix: ProposedFix | None = None
    verified: bool = True
    cited_rules: list[str] = field(default_factory=list)  # rules that explain it away
    fix_decided_in: list[str] = field(default_factory=list)  # rules that decided its fix (not yet in effect)
    needs_business_context: str | None = None  # a question only a human can answer
    needs_authority: str | None = None  # a change someone must sign off


def agreement(measured: float | None, expected: float | None) -> float:
    """How well a measured share (in %) explains the failure's share (in %): 1.0 = exactly.

    >>> agreement(70.0, 70.0), agreement(10.0, 70.0) < 0.3, agreement(5.0, None)
    (1.0, True, 0.5)
    """
    if measured is None or expected is None:
        return 0.5
    if expected == 0 and measured == 0:
        return 1.0
    hi = max(abs(measured), abs(expected))
    return max(0.0, 1.0 - abs(measured - expected) / hi)
