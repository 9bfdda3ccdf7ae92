"""The Python Jaro-Winkler (for engines without one) is DuckDB's, checked against DuckDB itself."""

from __future__ import annotations

import random

import duckdb

from dagster_agent_de.engines.entities.similarity import jaro_winkler


def test_python_jaro_winkler_equals_duckdb() -> None:
    rng = random.Random(7)
    words = ["Ann Lee", "Ann  Lee", "ann lee", "Maria Garcia", "Mario Garcia", "martha", "marhta", "", "a", "ab", "ba", "é"]
    words += ["".join(rng.choice("abcde é") for _ in range(rng.randint(1, 9))) for _ in range(200)]
    pairs = [(rng.choice(words), rng.choice(words)) for _ in range(2000)]
    con = duckdb.connect()
    con.execute("create table p (a varchar, b varchar)")
    con.executemany("insert into p values (?, ?)", pairs)
    for a, b, expected in con.execute("select a, b, jaro_winkler_similarity(a, b) from p").fetchall():
        assert abs(jaro_winkler(a, b) - expected) < 1e-9, (a, b)
