"""What performance detectors return and what an investigation finds."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlglot import exp

from dagster_agent_de.engines.performance.plan import QueryPlan

Edit = Callable[[str], str]
"""A text edit applied alike to the model's compiled SQL (to verify it) and its ``.sql`` file (the diff)."""


@dataclass(frozen=True)
class Rewrite:
    """One candidate fix: an edit and what it does."""

    description: str
    edit: Edit


@dataclass(frozen=True)
class UpstreamView:
    """A view the model reads (directly or through other views): each reader recomputes it."""

    name: str
    depth: int
    """1 for a view the model reads directly, 2 for a view that view reads, ..."""
    readers: int
    """Models that read it directly (each recomputes it on every run)."""
    path: str = ""
    """Its file in the project (for the diff)."""
    text: str = ""


@dataclass
class PerfContext:
    """Everything a performance detector reads: the compiled SELECT, its parse and its analyzed plan,
    and what the manifest says of the model (empty when the SQL was given alone)."""

    sql: str
    dialect: str
    tree: exp.Expr
    plan: QueryPlan
    materialized: str = ""
    source: str | None = None
    """The model file as written (jinja kept)."""
    source_path: str = ""
    upstream_views: list[UpstreamView] = field(default_factory=list)


@dataclass
class PerfHypothesis:
    """One candidate cause of a slow model, with the plan's numbers behind it and candidate rewrites
    (tried in order: the first that leaves the results unchanged is proposed)."""

    pattern: str
    confidence: float
    summary: str
    operators: list[dict[str, Any]] = field(default_factory=list)
    rewrites: list[Rewrite] = field(default_factory=list)
    needs_authority: str = ""
    """The fix changes materialization or cost policy (not a query rewrite): a human decides."""
    diff: str = ""
    """A proposed change that cannot be verified read-only (e.g. materializing a view), shown unverified."""


@dataclass(frozen=True)
class Verification:
    """A rewrite measured against the original: times from EXPLAIN ANALYZE, results compared by a read."""

    description: str
    seconds_before: float
    seconds_after: float
    rows_before: int
    rows_after: int
    same_hash: bool
    sql_after: str
    min_speedup: float = 1.0
    measured_by: str = "EXPLAIN ANALYZE"
    """How the times were measured (on Snowflake: both SELECTs run in full, on request)."""
    statement_after: str = ""
    """The statement that timed the rewrite, when it was not ``EXPLAIN ANALYZE`` of ``sql_after``."""

    @property
    def unchanged(self) -> bool:
        return self.rows_before == self.rows_after and self.same_hash

    @property
    def speedup(self) -> float:
        return self.seconds_before / self.seconds_after if self.seconds_after > 0 else float("inf")

    @property
    def accepted(self) -> bool:
        """Same results and at least ``min_speedup`` times faster."""
        return self.unchanged and self.speedup >= self.min_speedup

    def summary(self) -> str:
        if not self.unchanged:
            verdict = (f"REJECTED: results change ({self.rows_before:,} -> {self.rows_after:,} rows"
                       f"{'' if self.same_hash else ', different row hash'})")
        elif not self.accepted:
            verdict = f"results unchanged, REJECTED: not faster (needs {self.min_speedup:g}x)"
        else:
            verdict = "results unchanged"
        return (f"{self.description}: {self.seconds_before:.3f}s -> {self.seconds_after:.3f}s "
                f"({self.speedup:.1f}x, measured by {self.measured_by}), {verdict}")


@dataclass
class PerfFinding:
    """The investigation of one slow model: ranked hypotheses, the verified rewrite and its diff."""

    model: str
    plan: QueryPlan
    hypotheses: list[PerfHypothesis]
    verified: Verification | None = None
    rejected: list[Verification] = field(default_factory=list)
    diff: str = ""
    notes: list[str] = field(default_factory=list)
    seconds_to_finding: float = 0.0
    plan_statement: str = ""
    """The statement that read the plan (EXPLAIN ANALYZE on DuckDB, the query history on Snowflake)."""

    @property
    def top(self) -> PerfHypothesis | None:
        return self.hypotheses[0] if self.hypotheses else None

    def summary(self) -> str:
        if self.top is None:
            return f"{self.model}: no known slow pattern in its plan ({self.plan.total_seconds:.3f}s)."
        lines = [f"{self.model}: {self.top.summary} (confidence {self.top.confidence:.2f})"]
        lines += [f"rejected: {r.summary()}" for r in self.rejected]
        if self.verified is not None:
            lines.append(f"verified: {self.verified.summary()}")
        lines += self.notes
        return "\n".join(lines)
