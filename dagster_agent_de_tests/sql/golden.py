"""The one loader of the SQL golden files (sqlglot's fixture style).

Each ``fixtures/sql_shapes/*.sql`` file is a compiled model: a ``-- dialect:`` line, ``-- expect:``
lines (the facts and output lineage the analysis must find, one per line) and the SQL. After a
deliberate change to the analysis, ``AGENT_DE_UPDATE_GOLDEN=1`` rewrites the expect lines; review
the diff like any other change.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from dagster_agent_de.sql.facts import describe, extract_facts

SHAPES = Path(__file__).resolve().parent.parent / "fixtures" / "sql_shapes"


@dataclass(frozen=True)
class Shape:
    path: Path
    dialect: str
    sql: str
    expected: list[str]

    @property
    def name(self) -> str:
        return self.path.stem


def load_shapes(directory: Path = SHAPES) -> list[Shape]:
    out = []
    for path in sorted(directory.glob("*.sql")):
        dialect, expected, body = "duckdb", [], []
        for line in path.read_text().splitlines():
            if line.startswith("-- dialect:"):
                dialect = line.split(":", 1)[1].strip()
            elif line.startswith("-- expect:"):
                expected.append(line.split(":", 1)[1].strip())
            else:
                body.append(line)
        out.append(Shape(path, dialect, "\n".join(body).strip() + "\n", expected))
    return out


def analyze(shape: Shape) -> list[str]:
    """What the analysis finds in a shape: its facts, then each output column's base columns."""
    facts = extract_facts(shape.sql, shape.dialect)
    lines = describe(facts)
    if facts.analysis is not None and not facts.error:
        for name, sources in facts.analysis.outputs().items():
            lines.append(f"output {name} <- {', '.join(sorted(f'{r}.{c}' for r, c in sources)) or 'no column'}")
    return lines


def write_expected(shape: Shape, lines: list[str]) -> None:
    text = f"-- dialect: {shape.dialect}\n" + "".join(f"-- expect: {ln}\n" for ln in lines) + shape.sql
    shape.path.write_text(text)
