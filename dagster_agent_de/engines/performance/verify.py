"""Verify a rewrite before proposing it: measured times, and results proven unchanged by a read.

DuckDB: both SELECTs under ``EXPLAIN ANALYZE``, then one read compares their row counts and row hashes.
Snowflake has no EXPLAIN ANALYZE: :func:`verify_by_running` runs each SELECT in full (on request only:
it costs two warehouse runs) under a statement timeout, and the same statement returns its row count
and row hash, so the timed run is the compared run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import sqlglot
from sqlglot import exp

from dagster_agent_de.adapters.warehouse import Warehouse
from dagster_agent_de.engines.performance.models import Verification
from dagster_agent_de.engines.performance.plan import QueryPlan, explain_analyze
from dagster_agent_de.errors import WarehouseError

_FLOAT_TYPES = ("DOUBLE", "FLOAT", "REAL", "FLOAT4", "FLOAT8")
FLOAT_DECIMALS = 6
"""Floating-point columns are compared rounded to this many decimals: a sum of doubles depends on the order
in which threads add them up, so the same query can differ in its last bits from one run to the next."""


def _rounded(side: exp.Expr, columns: list[str], floats: set[str]) -> exp.Expr:
    """``select a, round(x, 6) as x from (side)``: the side with its floating-point columns rounded."""
    if not floats:
        return side
    cols = [exp.alias_(exp.func("round", exp.column(c, quoted=True), exp.Literal.number(FLOAT_DECIMALS)), c, quoted=True)
            if c in floats else exp.column(c, quoted=True) for c in columns]
    return exp.select(*cols).from_(exp.Subquery(this=side, alias=exp.TableAlias(this=exp.to_identifier("s"))))


def fingerprint_sql(before: str, after: str, dialect: str, columns: list[str] | None = None,
                    float_columns: set[str] | frozenset[str] = frozenset()) -> str:
    """One read returning the row count and an order-independent hash of the rows of both SELECTs.

    The hash is the sum of a per-row hash (a multiset: duplicates count, order does not).
    ``float_columns`` (of ``columns``, the SELECT's output) are rounded to :data:`FLOAT_DECIMALS` first.

    >>> print(fingerprint_sql("select 1 as a", "select 1 as a", "duckdb"))  # doctest: +NORMALIZE_WHITESPACE
    SELECT (SELECT COUNT(*) FROM (SELECT 1 AS a) AS b) AS rows_before, (SELECT COUNT(*) FROM (SELECT 1 AS a) AS a)
    AS rows_after, (SELECT SUM(CAST(HASH(b) AS INT128)) FROM (SELECT 1 AS a) AS b) AS hash_before,
    (SELECT SUM(CAST(HASH(a) AS INT128)) FROM (SELECT 1 AS a) AS a) AS hash_after
    """
    if dialect != "duckdb":
        raise WarehouseError(f"the row-hash comparison is written for DuckDB, not {dialect}")
    sides = {k: _rounded(sqlglot.parse_one(sql, read=dialect), columns or [], set(float_columns))
             for k, sql in (("b", before), ("a", after))}

    def scalar(expr: str, alias: str) -> exp.Expression:
        inner = exp.select(expr).from_(exp.Subquery(this=sides[alias].copy(), alias=exp.TableAlias(
            this=exp.to_identifier(alias))))
        return exp.Subquery(this=inner)

    row_hash = "sum(cast(hash({0}) as hugeint))"
    return exp.select(
        exp.alias_(scalar("count(*)", "b"), "rows_before"), exp.alias_(scalar("count(*)", "a"), "rows_after"),
        exp.alias_(scalar(row_hash.format("b"), "b"), "hash_before"),
        exp.alias_(scalar(row_hash.format("a"), "a"), "hash_after"),
    ).sql(dialect=dialect)


def _best(warehouse: Warehouse, sql: str, rationale: str, repeats: int) -> QueryPlan:
    plans = [explain_analyze(warehouse, sql, rationale) for _ in range(max(repeats, 1))]
    return min(plans, key=lambda p: p.total_seconds)


def verify(warehouse: Warehouse, before: str, after: str, description: str, *, repeats: int = 1,
           plan_before: QueryPlan | None = None, min_speedup: float = 1.0) -> Verification:
    """Run both SELECTs under EXPLAIN ANALYZE (best of ``repeats``) and compare their rows."""
    pb = plan_before if plan_before is not None and repeats <= 1 else _best(
        warehouse, before, "time the model's SELECT (performance investigation)", repeats)
    pa = _best(warehouse, after, f"time the rewritten SELECT ({description})", repeats)
    shape = warehouse.query(exp.select("*").from_(exp.Subquery(
        this=sqlglot.parse_one(before, read=warehouse.dialect), alias=exp.TableAlias(this=exp.to_identifier("s")))).limit(0)
        .sql(dialect=warehouse.dialect), rationale=f"the output columns and their types ({description})")
    floats = {c for c, t in zip(shape.columns, shape.types, strict=False) if str(t).upper() in _FLOAT_TYPES}
    row = warehouse.query(fingerprint_sql(before, after, warehouse.dialect, shape.columns, floats),
                          rationale=f"prove the rewrite leaves the rows unchanged ({description})").one()
    return Verification(
        description=description, seconds_before=pb.total_seconds, seconds_after=pa.total_seconds,
        rows_before=int(row["rows_before"]), rows_after=int(row["rows_after"]),
        same_hash=row["hash_before"] == row["hash_after"], sql_after=after, min_speedup=min_speedup,
    )


ROW_HASH_MODULUS = 4294967296
"""Each row's hash is taken modulo 2^32 before summing, so the sum is exact in any numeric type (a
FLOAT sum of 64-bit hashes would lose bits, differently in each order); with the row count beside it,
a changed result goes unseen with odds of about one in four billion."""


def run_fingerprint_sql(select: str, dialect: str, columns: list[str],
                        float_columns: set[str] | frozenset[str] = frozenset()) -> str:
    """``select count(*), sum(hash(cols) % 2^32) from (select)``: one statement that runs the whole SELECT
    and returns its row count and an order-independent row hash (a multiset: duplicates count).

    >>> print(run_fingerprint_sql("select a, x from t", "snowflake", ["A", "X"], {"X"}))
    SELECT COUNT(*) AS row_count, SUM(HASH("A", ROUND("X", 6)) % 4294967296) AS row_hash FROM (SELECT a, x FROM t) AS s
    """
    if not columns:
        raise WarehouseError("the SELECT returns no columns to compare")
    values = [exp.func("round", exp.column(c, quoted=True), exp.Literal.number(FLOAT_DECIMALS))
              if c in float_columns else exp.column(c, quoted=True) for c in columns]
    row_hash = exp.Mod(this=exp.func("hash", *values), expression=exp.Literal.number(ROW_HASH_MODULUS))
    return exp.select(exp.alias_(exp.func("count", exp.Star()), "row_count"),
                      exp.alias_(exp.func("sum", row_hash), "row_hash")).from_(
        exp.Subquery(this=sqlglot.parse_one(select, read=dialect), alias=exp.TableAlias(this=exp.to_identifier("s")))
    ).sql(dialect=dialect)


@dataclass
class WarehouseRuns:
    """Verification by full runs (Snowflake, on request): the model's SELECT runs once, timed, however many
    rewrites are tried; each rewrite runs once. Every run is read-only, through the audited path, under a
    statement timeout of ``timeout_s``, and returns its row count and row hash (:func:`run_fingerprint_sql`)."""

    warehouse: Warehouse
    before: str
    timeout_s: int
    _columns: list[str] = field(default_factory=list)
    _floats: set[str] = field(default_factory=set)
    _before: tuple[float, dict[str, Any]] | None = None

    def verify(self, after: str, description: str, *, min_speedup: float = 1.0) -> Verification:
        """Time ``after`` against the model's SELECT and compare their rows; a cancelled run raises
        :class:`WarehouseError` naming the timeout."""
        wh = self.warehouse
        with wh.statement_timeout(self.timeout_s, rationale=f"bound the verification runs ({description})"):
            if self._before is None:
                shape = wh.query(exp.select("*").from_(exp.Subquery(
                    this=sqlglot.parse_one(self.before, read=wh.dialect), alias=exp.TableAlias(this=exp.to_identifier("s"))))
                    .limit(0).sql(dialect=wh.dialect), rationale=f"the output columns and their types ({description})")
                self._columns = list(shape.columns)
                self._floats = {c for c, t in zip(shape.columns, shape.types, strict=False)
                                if str(t).upper() in _FLOAT_TYPES}
                _, seconds, row = self._run(self.before, "run the model's SELECT in full, timed (verification requested)")
                self._before = (seconds, row)
            statement, sec_after, a = self._run(after, f"run the rewritten SELECT in full, timed ({description})")
        sec_before, b = self._before
        return Verification(
            description=description, seconds_before=sec_before, seconds_after=sec_after,
            rows_before=int(b["row_count"]), rows_after=int(a["row_count"]), same_hash=b["row_hash"] == a["row_hash"],
            sql_after=after, min_speedup=min_speedup, measured_by=f"two full runs on {wh.name}",
            statement_after=statement,
        )

    def _run(self, sql: str, rationale: str) -> tuple[str, float, dict[str, Any]]:
        statement = run_fingerprint_sql(sql, self.warehouse.dialect, self._columns, self._floats)
        try:
            result = self.warehouse.query(statement, rationale=rationale)
        except WarehouseError as e:
            if "timeout" in str(e).lower():
                raise WarehouseError(f"the run did not finish within the statement timeout of {self.timeout_s}s "
                                     f"({str(e).splitlines()[0][:200]}); raise it to verify this rewrite") from e
            raise
        return statement, result.duration_ms / 1000, result.folded().one()


def verify_by_running(warehouse: Warehouse, before: str, after: str, description: str, *, timeout_s: int,
                      min_speedup: float = 1.0) -> Verification:
    """One rewrite verified by :class:`WarehouseRuns`: two full runs, each under the statement timeout."""
    return WarehouseRuns(warehouse, before, timeout_s).verify(after, description, min_speedup=min_speedup)
