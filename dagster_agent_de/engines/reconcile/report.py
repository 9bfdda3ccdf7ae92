"""What a reconciliation found: counts, per-column mismatches, segment deltas, samples."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from dagster_agent_de.core.models import (
    CheckSeverity,
    Evidence,
    Finding,
    ProposedFix,
    ReconciliationFinding,
    Severity,
)


class ColumnMismatch(BaseModel):
    model_config = ConfigDict(frozen=True)
    column: str
    mismatched: int
    pct: float


class SegmentDelta(BaseModel):
    model_config = ConfigDict(frozen=True)
    segment: dict[str, Any]
    metric: str
    pipeline: float | None
    truth: float | None
    delta: float
    pct: float


class ReconcileReport(BaseModel):
    """The outcome of one reconciliation. ``passed`` is False when any threshold is breached."""

    model_config = ConfigDict(frozen=True)

    spec_name: str
    model: str
    against: str
    method: Literal["pushdown", "checksum", "bisection"] = "pushdown"
    """``checksum``: the sides were proven identical by their checksums alone (no keyed comparison ran)."""
    rows_pipeline: int = 0
    rows_truth: int = 0
    matched: int = 0
    missing_in_pipeline: int = 0
    extra_in_pipeline: int = 0
    mismatched_rows: int = 0
    null_keys_pipeline: int = 0
    null_keys_truth: int = 0
    duplicate_keys_pipeline: int = 0
    duplicate_keys_truth: int = 0
    columns: list[ColumnMismatch] = Field(default_factory=list)
    segments: list[SegmentDelta] = Field(default_factory=list)
    samples: dict[str, list[dict[str, Any]]] = Field(default_factory=dict)
    breaches: list[str] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)
    statements: list[str] = Field(default_factory=list)
    duration_ms: float = 0.0
    rows_moved: int | None = None
    bytes_moved: int | None = None
    severity: CheckSeverity = "error"

    @property
    def passed(self) -> bool:
        return not self.breaches

    @property
    def missing_pct(self) -> float:
        return _pct(self.missing_in_pipeline, self.matched + self.missing_in_pipeline)

    @property
    def extra_pct(self) -> float:
        return _pct(self.extra_in_pipeline, self.matched + self.extra_in_pipeline)

    @property
    def mismatched_pct(self) -> float:
        return _pct(self.mismatched_rows, self.matched)

    def counts(self) -> dict[str, Any]:
        """Numbers for metadata and JSON (stable names)."""
        return {
            "rows_pipeline": self.rows_pipeline,
            "rows_truth": self.rows_truth,
            "matched": self.matched,
            "missing_in_pipeline": self.missing_in_pipeline,
            "extra_in_pipeline": self.extra_in_pipeline,
            "mismatched_rows": self.mismatched_rows,
            "missing_pct": round(self.missing_pct, 4),
            "extra_pct": round(self.extra_pct, 4),
            "mismatched_pct": round(self.mismatched_pct, 4),
            "null_keys_pipeline": self.null_keys_pipeline,
            "null_keys_truth": self.null_keys_truth,
            "duplicate_keys_pipeline": self.duplicate_keys_pipeline,
            "duplicate_keys_truth": self.duplicate_keys_truth,
        }

    def summary(self) -> str:
        head = "PASS" if self.passed else "FAIL"
        same = "identical (checksum): " if self.method == "checksum" else ""
        text = (
            f"{head} {self.model}.{self.spec_name} vs {self.against}: {same}{self.matched:,} matched, "
            f"{self.missing_in_pipeline:,} missing in pipeline ({self.missing_pct:.2f}%), "
            f"{self.extra_in_pipeline:,} extra ({self.extra_pct:.2f}%), "
            f"{self.mismatched_rows:,} mismatched ({self.mismatched_pct:.2f}%)"
        )
        if self.breaches:
            text += "; " + "; ".join(self.breaches)
        return text

    def markdown(self) -> str:
        lines = [f"**{self.summary()}**", "", "| measure | value |", "|---|---|"]
        lines += [f"| {k} | {v:,} |" if isinstance(v, int) else f"| {k} | {v} |" for k, v in self.counts().items()]
        if self.columns:
            lines += ["", "| column | mismatched | % of matched |", "|---|---|---|"]
            lines += [f"| {c.column} | {c.mismatched:,} | {c.pct:.3f} |" for c in self.columns]
        if self.segments:
            lines += ["", "| segment | metric | pipeline | source of truth | delta | % |", "|---|---|---|---|---|---|"]
            for s in self.segments:
                seg = ", ".join(f"{k}={v}" for k, v in s.segment.items()) or "(all)"
                lines.append(f"| {seg} | {s.metric} | {s.pipeline} | {s.truth} | {s.delta:.4g} | {s.pct:.3f} |")
        for cls, rows in self.samples.items():
            if rows:
                lines += ["", f"Sample {cls}: `{rows[:5]}`"]
        for note in self.notes:
            lines += ["", f"_Note:_ {note}"]
        return "\n".join(lines)

    def to_findings(self) -> list[Finding]:
        """A finding per problem: the breach itself, and duplicate keys as their own."""
        evidence = [Evidence(statement=s, rationale="reconciliation", result_summary=self.summary()) for s in self.statements[:3]]
        severity = Severity.ERROR if self.severity == "error" else Severity.WARNING
        out: list[Finding] = []
        if self.duplicate_keys_pipeline or self.duplicate_keys_truth:
            out.append(ReconciliationFinding(
                kind="reconciliation", pattern="duplicate_key", model=self.model, severity=severity,
                confidence=1.0, evidence=evidence,
                summary=(f"duplicate keys: {self.duplicate_keys_pipeline:,} in {self.model}, "
                         f"{self.duplicate_keys_truth:,} in {self.against}"),
                proposed_fix=ProposedFix(description="Deduplicate on the key (e.g. keep the latest row per key) or fix the key in the spec."),
            ))
        if self.breaches:
            out.append(ReconciliationFinding(
                kind="reconciliation", pattern="reconciliation_breach", model=self.model, severity=severity,
                confidence=1.0, summary=self.summary(), evidence=evidence,
                columns=[c.column for c in self.columns if c.mismatched],
            ))
        return out


def _pct(part: int, whole: int) -> float:
    if whole == 0:
        return 100.0 if part else 0.0
    return part * 100.0 / whole
