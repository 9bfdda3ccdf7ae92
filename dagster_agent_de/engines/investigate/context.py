"""Everything a detector may use: manifest, audited warehouse, the failure, facts, rules."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from dagster_agent_de.adapters.warehouse import QueryResult, Warehouse
from dagster_agent_de.core.masking import masker
from dagster_agent_de.core.models import Evidence
from dagster_agent_de.engines.investigate.models import Failure
from dagster_agent_de.engines.pii_lineage import pii_index
from dagster_agent_de.errors import AgentDEError, StatementRefusedError
from dagster_agent_de.manifest import Manifest, Node
from dagster_agent_de.sql.facts import ModelFacts
from dagster_agent_de.sql.tracer import LineageTracer

SAMPLE_ROWS = 5


@dataclass
class InvestigationContext:
    manifest: Manifest
    warehouse: Warehouse
    failure: Failure
    rules: list[Any] = field(default_factory=list)  # context rules (escalations feature)
    drift_store: Any = None  # SnapshotStore, when the state dir is known
    notes: list[str] = field(default_factory=list)
    tracer: LineageTracer | None = None  # one analysis per model, shared by every detector
    queries: int = 0  # queries run so far (a detector that ran none did not apply)
    query_failures: list[str] = field(default_factory=list)  # our own queries that failed: defects, said in notes
    _columns: dict[str, list[str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.tracer is None:
            self.tracer = LineageTracer(self.manifest, self.warehouse.dialect)

    @property
    def dialect(self) -> str:
        return self.warehouse.dialect

    def facts(self, node: Node) -> ModelFacts:
        assert self.tracer is not None
        return self.tracer.facts(node)

    def run(self, sql: str, rationale: str, mask: Iterable[str] = ()) -> tuple[QueryResult | None, Evidence]:
        """Run one read-only query; a failure becomes unverified evidence, never a crash. ``mask``: result
        columns the detector knows hold PII beyond what the query's lineage says (masked too)."""
        self.queries += 1
        try:
            res = self.warehouse.query(sql, rationale=rationale, max_rows=1000)
        except (AgentDEError, StatementRefusedError) as e:
            self.query_failures.append(f"{rationale}: {str(e).splitlines()[0][:200] if str(e) else type(e).__name__}")
            return None, Evidence(statement=sql, rationale=rationale, result_summary=f"query failed: {e}")
        # PII (tagged or derived by lineage) is masked before any detector, finding or LLM sees it
        res = replace(res, rows=pii_index(self.manifest, self.dialect).mask_rows(sql, res.columns, res.rows))
        extra = {c.lower() for c in mask}
        if extra:
            m, idx = masker(), {i for i, c in enumerate(res.columns) if c.lower() in extra}
            res = replace(res, rows=[tuple(m.mask(v) if i in idx else v for i, v in enumerate(r)) for r in res.rows])
        rows = res.dicts(SAMPLE_ROWS)
        summary = ", ".join(f"{k}={v}" for k, v in rows[0].items()) if len(rows) == 1 else f"{res.row_count} rows"
        ev = Evidence(statement=sql, rationale=rationale, result_summary=summary, row_count=res.row_count,
                      rows_sample=[{k: _jsonable(v) for k, v in r.items()} for r in rows], duration_ms=round(res.duration_ms, 2))
        return res, ev

    def relation_node(self, relation_key: str | None) -> Node | None:
        """The manifest node (model or source) of a base relation key."""
        assert self.tracer is not None
        return self.tracer.by_relation.get(relation_key or "")

    def incremental_fed(self, node: Node) -> list[Node]:
        """The incremental models from ``node`` to the failing asset, both included: rows a filter or join in
        ``node`` dropped stay out of them after the fix (an incremental run adds new rows only)."""
        try:
            failing = self.manifest.find(self.failure.asset)
        except AgentDEError:
            return []
        on_path = {failing.unique_id, *self.manifest.upstream(failing.unique_id)}
        fed = [self.manifest.nodes[u] for u in [node.unique_id, *self.manifest.downstream(node.unique_id)]
               if u in on_path and u in self.manifest.nodes]
        return [n for n in fed if not n.is_source and n.materialized == "incremental"]

    def refill(self, node: Node, what: str = "filter") -> tuple[str, str]:
        """For a row-dropping finding in ``node``: (what its count covers, what its fix also needs), when an
        incremental model is fed by it; ``("", "")`` when none is."""
        fed = self.incremental_fed(node)
        if not fed:
            return "", ""
        names = ", ".join(n.name for n in fed)
        verb = "is" if len(fed) == 1 else "are"
        count = (f" {names} {verb} incremental: the count is over every row entering the {what} now, not only the "
                 "batch the failing check saw, and the rows dropped before stay out of it until rebuilt.")
        fix = (f". Then rebuild {names} (incremental: an incremental run adds new rows only, so the rows already "
               f"excluded come back only with `dbt build --full-refresh -s {' '.join(n.name for n in fed)}` "
               "or a backfill of the affected range)")
        return count, fix

    def relation_columns(self, node: Node) -> list[str]:
        """The live columns of a model or source (lower-cased), from a ``limit 0`` query; cached."""
        if node.unique_id not in self._columns:
            cols: list[str] = []
            if node.relation_name:
                queries = self.queries
                res, _ = self.run(f"select * from {node.relation_name} limit 0", f"columns of {node.display_name}")
                self.queries = queries  # a look-up, not a measurement: alone it does not make a detector apply
                cols = [c.lower() for c in res.columns] if res is not None else []
            self._columns[node.unique_id] = cols
        return self._columns[node.unique_id]

    def scope_sql(self, select: Any, expressions: list[str]) -> str:
        """One SELECT of the model with new projections, over the rows that enter it (joins kept;
        WHERE, GROUP BY and the rest dropped), with the model's CTEs: e.g. NULL counts of a CTE column."""
        import sqlglot

        from dagster_agent_de.sql.facts import with_ctes

        q = with_ctes(select)
        for arg in ("where", "group", "having", "order", "limit", "qualify", "distinct"):
            q.set(arg, None)
        q.set("expressions", [sqlglot.parse_one(e, read=self.dialect) for e in expressions])
        return q.sql(dialect=self.dialect)


    def counts_sql(self, select: Any, counts: dict[str, Any]) -> str:
        """Row counts over the rows that enter a SELECT of the model (as :meth:`scope_sql`): for each name, the
        rows where its predicate holds (``None``: every row). Plain predicates are summed in one scan; a
        predicate holding a subquery or an aggregate (an incremental cut-off, ``d > (select max(d) from
        {{ this }})``) is never put inside an aggregate: each count is then its own ``count(*) ... where``.

        >>> import sqlglot
        >>> ctx = InvestigationContext.__new__(InvestigationContext)
        >>> ctx.warehouse = type("W", (), {"dialect": "duckdb"})()
        >>> q = sqlglot.parse_one("select a from t where a > (select max(a) from m)")
        >>> ctx.counts_sql(q, {"rows_in": None, "rows_kept": q.args["where"].this})
        'SELECT (SELECT COUNT(*) FROM t) AS rows_in, (SELECT COUNT(*) FROM t WHERE a > (SELECT MAX(a) FROM m)) AS rows_kept'
        """
        from sqlglot import exp

        from dagster_agent_de.sql.facts import with_ctes

        preds = {n: (p if p is None or isinstance(p, exp.Expr) else exp.maybe_parse(p, dialect=self.dialect))
                 for n, p in counts.items()}
        if not any(p is not None and p.find(exp.Query, exp.AggFunc) for p in preds.values()):
            return self.scope_sql(select, [
                f"count(*) as {n}" if p is None else f"sum(case when ({p.sql(dialect=self.dialect)}) then 1 else 0 end) as {n}"
                for n, p in preds.items()])
        q = with_ctes(select)
        for arg in ("where", "group", "having", "order", "limit", "qualify", "distinct"):
            q.set(arg, None)
        key = "with_" if "with_" in exp.Select.arg_types else "with"
        with_ = q.args.get(key)
        q.set(key, None)
        q.set("expressions", [exp.Count(this=exp.Star())])
        parts = []
        for n, p in preds.items():
            one = q.copy()
            if p is not None:
                one.set("where", exp.Where(this=p.copy()))
            parts.append(exp.alias_(exp.Subquery(this=one), n))
        out = exp.select(*parts)
        out.set(key, with_)
        return out.sql(dialect=self.dialect)


def _jsonable(v: Any) -> Any:
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    return str(v)
