"""Intents: why a column or a model matters, as a check that does not go stale (LRN-031).

Declared on a model, each with the reason it exists::

    config:
      meta:
        agent_de:
          intents:
            - {kind: not_null, column: amount, why: "summed into revenue: a NULL drops the order from it"}
            - {kind: never_negative, column: amount, why: "refunds live in their own column"}
            - {kind: no_drop, measure: "count(*)", period: order_date, grain: week, max_drop_pct: 30,
               why: "orders should not fall week over week by more than 30%"}
            - {kind: covers, of: "ref('stg_orders')", key: order_id, where: "status = 'paid'",
               why: "every paid order must reach the mart exactly once"}

Some are derived from the project itself, no threshold involved: every column summed into an additive
metric downstream gets ``not_null`` (a NULL vanishes from a SUM without an error). Each intent is one
read-only query; a violation names the intent's ``why`` and the rows (count and a few keys) that break it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from dagster_agent_de.adapters.warehouse import Warehouse
from dagster_agent_de.core.models import CheckSeverity, Evidence, validation_problems
from dagster_agent_de.errors import AgentDEError, SpecError
from dagster_agent_de.manifest import Manifest

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class _Base(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str = ""
    why: str = Field(min_length=3, description="Why this must hold: shown when it does not.")
    severity: CheckSeverity = "warn"
    derived_from: str | None = None  # set on intents the agent derived (not declared)


class NotNull(_Base):
    kind: Literal["not_null"]
    column: str


class NeverNegative(_Base):
    kind: Literal["never_negative"]
    column: str


class NoDrop(_Base):
    kind: Literal["no_drop"]
    measure: str = "count(*)"
    period: str
    grain: Literal["day", "week", "month"] = "week"
    max_drop_pct: float = Field(default=30.0, gt=0, lt=100)


class Covers(_Base):
    kind: Literal["covers"]
    of: str  # ref('x'), source('s', 't') or a relation
    key: str
    where: str | None = None


Intent = Annotated[NotNull | NeverNegative | NoDrop | Covers, Field(discriminator="kind")]
_ADAPTER: TypeAdapter[Any] = TypeAdapter(Intent)


def check_name(intent: Any) -> str:
    """A stable Dagster check name: ``intent_<kind>_<column or measure>``."""
    target = getattr(intent, "column", None) or getattr(intent, "key", None) or re.sub(r"\W+", "_", intent.measure).strip("_")
    return f"intent_{intent.kind}_{target}".lower()


INVALID_CHECK = "intents_invalid"
"""The check a model with an invalid ``meta.agent_de.intents`` entry gets: it fails with what to fix."""


@dataclass(frozen=True)
class InvalidIntents:
    """The entries of a model's ``meta.agent_de.intents`` that failed validation (its valid ones still run).

    One model's typo must not stop the code location from loading, nor hide the other intents."""

    model: str
    error: SpecError


def read_intents(manifest: Manifest) -> tuple[list[Any], list[InvalidIntents]]:
    """Every model's declared intents, and per model the entries that are invalid (one error naming each)."""
    out: list[Any] = []
    invalid: list[InvalidIntents] = []
    for node in sorted(manifest.models(), key=lambda n: n.name):
        raw = node.agent_de_meta.get("intents")
        if raw is None:
            continue
        if not isinstance(raw, list):
            invalid.append(InvalidIntents(node.name, SpecError(
                f"model {node.name}: meta.agent_de.intents must be a list, got {type(raw).__name__}")))
            continue
        problems = []
        for i, item in enumerate(raw):
            try:
                out.append(_ADAPTER.validate_python({**(item if isinstance(item, dict) else {"kind": item}), "model": node.name}))
            except ValidationError as e:
                problems.append(f"meta.agent_de.intents[{i}]: {validation_problems(e)}")
        if problems:
            invalid.append(InvalidIntents(node.name, SpecError(f"model {node.name}, " + "; ".join(problems))))
    return out, invalid


def intents_from_manifest(manifest: Manifest) -> list[Any]:
    """The declared intents; the first invalid entry is a :class:`SpecError` (the CLI's exit 2)."""
    intents, invalid = read_intents(manifest)
    if invalid:
        raise invalid[0].error
    return intents


@dataclass(frozen=True)
class SumInputs:
    """What the derived ``not_null`` intents are, and for each summing model with none, why.

    ``unreadable`` (the model's SQL could not be analysed, or its sums read a relation the project does not
    declare) makes its check fail: its sums' inputs are not
    checked, and a check must never pass on what it could not read. ``notes`` say why a readable model has
    nothing to derive (its sums read no column; every input already has a declared intent)."""

    intents: list[Any]
    notes: dict[str, str] = field(default_factory=dict)
    unreadable: dict[str, str] = field(default_factory=dict)


def sum_inputs(manifest: Manifest, dialect: str, declared: list[Any] | None = None) -> SumInputs:
    """``not_null`` on every column summed into an additive metric one hop downstream (a model's or a
    source's: a NULL drops the row from the SUM either way), unless declared already."""
    from dagster_agent_de.engines.metrics.conflicts import metric_definitions
    from dagster_agent_de.sql.tracer import LineageTracer

    have = {(i.model, getattr(i, "column", None), i.kind) for i in declared or []}
    # once per manifest (a re-parse makes a new one): every intent check's evaluation asks, and the answer
    # analyses every model's SQL
    memo: dict[tuple[str, frozenset[Any]], SumInputs] = manifest.__dict__.setdefault("_sum_inputs", {})
    key = (dialect, frozenset(have))
    if key in memo:
        return memo[key]
    tracer = LineageTracer(manifest, dialect)
    out: dict[tuple[str, str, str], Any] = {}  # (summing model, upstream, column): each summing model's check holds its own
    covered: dict[str, list[str]] = {}
    unknown: dict[str, list[str]] = {}  # summed columns of relations the project does not declare: not checkable
    summing: set[str] = set()
    kept: dict[str, list[str]] = {}  # sums whose argument replaces NULLs: nothing is dropped
    defs, _ = metric_definitions(manifest, dialect, tracer)
    unreadable = {}
    for n in manifest.models():
        if not manifest.compiled_sql(n.unique_id):
            unreadable[n.name] = "no compiled SQL (run dbt compile or dbt build)"
        elif error := tracer.analysis(n).error:
            unreadable[n.name] = f"its SQL could not be analysed ({error[:160]})"
    for d in defs:
        if d.aggregate != "SUM":
            continue
        summing.add(d.model)
        node = manifest.find(d.model)
        found = tracer.analysis(node).definition(d.column)
        if found is not None and not _sum_drops_nulls(found[1]):
            kept.setdefault(d.model, []).append(d.column)  # sum(coalesce(x, 0)): a NULL counts as 0 on purpose
            continue
        feeds = tracer.columns(node).outputs.get(d.column, set())
        for rel, col in sorted(feeds):
            upstream = tracer.by_relation.get(rel)
            if upstream is None:
                unknown.setdefault(d.model, []).append(f"{rel}.{col}")
                continue
            name = upstream.display_name  # a source's ``source.table``
            if (name, col, "not_null") in have:
                covered.setdefault(d.model, []).append(f"{name}.{col}")
                continue
            out.setdefault((d.model, name, col), NotNull(
                kind="not_null", model=name, column=col, derived_from=f"{d.model}.{d.column}",
                why=f"summed into {d.model}.{d.column}: a NULL {col} silently drops its row from {d.metric}"))
    derived_for = {i.derived_from.split(".", 1)[0] for i in out.values()}
    why_none: dict[str, str] = {}
    for model in sorted(summing - derived_for):
        if model in unknown:  # never "nothing can be NULL" about columns it could not trace to the project
            unreadable.setdefault(model, f"it sums {', '.join(sorted(set(unknown[model])))}, of a relation that is not a "
                                         "model, seed or source of the project (declare it as a source)")
            continue
        if model in covered:
            why_none[model] = (f"every column {model} sums has a declared not_null intent "
                               f"({', '.join(sorted(set(covered[model])))}), checked by its own check")
        elif model in kept:
            why_none[model] = (f"{model}'s sums ({', '.join(sorted(set(kept[model])))}) replace a NULL before summing it "
                               "(coalesce, case): no row is dropped")
        else:
            why_none[model] = f"{model}'s sums read no column: nothing can be NULL"
    memo[key] = SumInputs(list(out.values()), why_none, unreadable)
    return memo[key]


def _sum_drops_nulls(expr: Any) -> bool:
    """Whether a NULL input can vanish from the SUM(s) in ``expr``: some column of a SUM's argument reaches
    it without a ``coalesce``/``ifnull``/``nvl`` replacing NULL on the way, and not as a CASE condition (a
    NULL condition picks the ELSE; a NULL in a THEN or ELSE value is summed as NULL: dropped).

    >>> import sqlglot
    >>> _sum_drops_nulls(sqlglot.parse_one("sum(coalesce(amount, 0))"))
    False
    >>> _sum_drops_nulls(sqlglot.parse_one("sum(coalesce(amount, 0) * rate)"))
    True
    >>> _sum_drops_nulls(sqlglot.parse_one("sum(case when status = 'paid' then amount else 0 end)"))
    True
    >>> _sum_drops_nulls(sqlglot.parse_one("sum(case when amount > 0 then 1 else 0 end)"))
    False
    """
    from sqlglot import exp

    columns = 0
    for agg in expr.find_all(exp.Sum):
        for col in agg.find_all(exp.Column):
            columns += 1
            child, parent = col, col.parent
            while parent is not None and parent is not agg:
                if isinstance(parent, exp.Coalesce) or (isinstance(parent, exp.If) and child is parent.this):
                    break  # replaced, or only decides which branch: this column's NULL is not summed
                child, parent = parent, parent.parent
            if parent is agg:
                return True
    return columns == 0  # sum(1): no column, nothing replaced (the lineage says it reads none)


def derive_intents(manifest: Manifest, dialect: str, declared: list[Any] | None = None) -> list[Any]:
    """The derived ``not_null`` intents (see :func:`sum_inputs`)."""
    return sum_inputs(manifest, dialect, declared).intents


@dataclass
class IntentResult:
    intent: Any
    passed: bool
    violations: int
    message: str
    evidence: list[Evidence] = field(default_factory=list)
    numbers: dict[str, float] = field(default_factory=dict)


def _rel(manifest: Manifest, ref: str) -> str:
    m = re.fullmatch(r"\s*ref\(\s*['\"]([^'\"]+)['\"]\s*\)\s*", ref)
    if m:
        return manifest.find(m.group(1)).relation_name or ref
    m = re.fullmatch(r"\s*source\(\s*['\"]([^'\"]+)['\"]\s*,\s*['\"]([^'\"]+)['\"]\s*\)\s*", ref)
    if m:
        return manifest.source(m.group(1), m.group(2)).relation_name or ref
    return ref


def evaluate_intent(intent: Any, manifest: Manifest, warehouse: Warehouse) -> IntentResult:
    """One read-only query; raises :class:`AgentDEError` when it cannot run (the check then errors, never passes)."""
    node = manifest.find(intent.model)
    rel = node.relation_name
    if not rel:
        raise SpecError(f"model {intent.model} has no relation in the warehouse (is it ephemeral?)")
    why = f"{check_name(intent)} on {intent.model}"
    if intent.kind in ("not_null", "never_negative"):
        c = intent.column
        if not _IDENT.match(c):
            raise SpecError(f"model {intent.model}: intent column {c!r} is not a column name")
        pred = f"{c} is null" if intent.kind == "not_null" else f"{c} < 0"
        sql = f"select sum(case when {pred} then 1 else 0 end) as violations, count(*) as total from {rel}"
        row = warehouse.query(sql, rationale=why).folded().one()
        bad, total = int(row["violations"] or 0), int(row["total"] or 0)
        ev = Evidence(statement=sql, rationale=why, result_summary=f"violations={bad}, rows={total}", row_count=1)
        what = "NULL" if intent.kind == "not_null" else "negative"
        msg = (f"{bad:,} of {total:,} rows have a {what} {c}: {intent.why}" if bad else f"no {what} {c} in {total:,} rows")
        return IntentResult(intent, bad == 0, bad, msg, [ev], {"violations": bad, "rows": total})
    if intent.kind == "no_drop":
        trunc = f"date_trunc('{intent.grain}', {intent.period})"
        sql = (f"with p as (select {trunc} as period, {intent.measure} as value from {rel} where {intent.period} is not null "
               f"group by 1), ranked as (select period, value, row_number() over (order by period desc) as rn from p) "
               f"select period, value from ranked where rn between 2 and 3 order by period")
        res = warehouse.query(sql, rationale=why + " (the last two complete periods; the current one is still filling)")
        ev = Evidence(statement=sql, rationale=why, result_summary=", ".join(f"{p}: {v}" for p, v in res.rows), row_count=res.row_count)
        if res.row_count < 2:
            return IntentResult(intent, True, 0, f"not enough complete {intent.grain}s yet ({res.row_count})", [ev])
        (p0, v0), (p1, v1) = res.rows
        v0, v1 = float(v0 or 0), float(v1 or 0)
        drop = (v0 - v1) * 100.0 / v0 if v0 else 0.0
        ok = drop <= intent.max_drop_pct
        msg = (f"{intent.measure} fell {drop:.1f}% from {v0:,.2f} ({p0}) to {v1:,.2f} ({p1}), more than "
               f"{intent.max_drop_pct:g}%: {intent.why}" if not ok else
               f"{intent.measure} {v0:,.2f} -> {v1:,.2f} ({-drop:+.1f}%)")
        return IntentResult(intent, ok, 0 if ok else 1, msg, [ev], {"drop_pct": round(drop, 3), "previous": v0, "latest": v1})
    if intent.kind == "covers":
        of = _rel(manifest, intent.of)
        where = f" where {intent.where}" if intent.where else ""
        sql = (f"select count(*) as missing, min(o.{intent.key}) as first_missing, "
               f"(select count(*) from (select {intent.key} from {rel} group by 1 having count(*) > 1) d) as duplicated "
               f"from (select {intent.key} from {of}{where}) o "
               f"where not exists (select 1 from {rel} m where m.{intent.key} = o.{intent.key})")
        row = warehouse.query(sql, rationale=why).folded().one()
        missing, dup = int(row["missing"] or 0), int(row["duplicated"] or 0)
        ev = Evidence(statement=sql, rationale=why, result_summary=f"missing={missing}, duplicated={dup}, first_missing={row['first_missing']}",
                      row_count=1)
        ok = missing == 0 and dup == 0
        msg = (f"{missing:,} {intent.key}(s) of {intent.of}{where} are missing from {intent.model} and {dup:,} appear more "
               f"than once (first missing: {row['first_missing']}): {intent.why}") if not ok else f"every {intent.key} covered once"
        return IntentResult(intent, ok, missing + dup, msg, [ev], {"missing": missing, "duplicated": dup})
    raise AgentDEError(f"unknown intent kind {intent.kind!r}")
