"""Column-level reads and lineage of a compiled model, with sqlglot.

``analyze_columns`` says which columns of each upstream relation a model reads (anywhere:
select, join, where, group by, inside any CTE or subquery; ``SELECT *`` reads all) and, for each
output column, which upstream columns feed it (through CTEs, stars and set operations; see
:mod:`.scope`). Relations are keyed ``database.schema.table`` lower-cased.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from dagster_agent_de.sql.scope import STAR, ModelAnalysis, Schema, normalize_relation, parse, table_key

__all__ = ["STAR", "ModelColumns", "Schema", "analyze_columns", "columns_of_analysis", "normalize_relation", "parse",
           "table_key"]


@dataclass
class ModelColumns:
    reads: dict[str, set[str]] = field(default_factory=dict)
    outputs: dict[str, set[tuple[str, str]]] = field(default_factory=dict)
    error: str | None = None

    def reads_column(self, relation: str, column: str) -> bool:
        cols = self.reads.get(relation, set())
        return column.lower() in cols or STAR in cols

    def outputs_from(self, relation: str, column: str) -> list[str]:
        col = column.lower()
        return sorted(o for o, srcs in self.outputs.items() if (relation, col) in srcs or (relation, STAR) in srcs)


def columns_of_analysis(analysis: ModelAnalysis) -> ModelColumns:
    """Reads and output lineage from an analysis already made (one per model, see :class:`~.tracer.LineageTracer`)."""
    if analysis.error:
        return ModelColumns(error=analysis.error)
    try:
        return ModelColumns(reads=analysis.reads(), outputs=analysis.outputs())
    except Exception as e:  # noqa: BLE001 - unknown beats wrong: callers report the impact as unknown
        return ModelColumns(error=f"sqlglot could not trace the model's columns: {type(e).__name__}: {str(e)[:200]}")


def analyze_columns(sql: str, dialect: str, schema: Schema | None = None) -> ModelColumns:
    """Reads and output lineage of one model's compiled SQL (``error`` set when unparseable)."""
    return columns_of_analysis(ModelAnalysis(sql, dialect, schema))
