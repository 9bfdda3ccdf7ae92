"""repeated_scan: the same large relation scanned several times in one model.

The plan shows several scans of one table. The rewrite covers the common shape: scalar subqueries
each aggregating the same table under its own filter become one scan with ``FILTER (WHERE ...)``
aggregates. Other shapes are reported with the scans and no diff.
"""

from __future__ import annotations

import re
from collections import Counter

import sqlglot
from sqlglot import exp

from dagster_agent_de.engines.performance.models import PerfContext, PerfHypothesis, Rewrite

PATTERN = "repeated_scan"
MIN_ROWS = 10_000
"""Scans of fewer rows than this are not worth a rewrite."""
_JINJA = re.compile(r"\{\{.*?\}\}|\{%.*?%\}", re.S)
_START = re.compile(r"(?i)\b(select|with)\b")


def _one_scan(select: exp.Select, dialect: str) -> exp.Select | None:
    """``select (select agg from t where p) as a, ...`` as ``select agg filter (where p) as a, ... from t``."""
    if select.args.get("from_") or select.args.get("from") or not select.expressions:
        return None
    table: exp.Table | None = None
    out = []
    for proj in select.expressions:
        alias = proj.alias_or_name if isinstance(proj, exp.Alias) else None
        sub = proj.this if isinstance(proj, exp.Alias) else proj
        inner = sub.this if isinstance(sub, exp.Subquery) else None
        if not alias or not isinstance(inner, exp.Select) or len(inner.expressions) != 1:
            return None
        if any(inner.args.get(a) for a in ("joins", "group", "having", "limit", "order", "with_", "with")):
            return None
        source = inner.args.get("from_") or inner.args.get("from")
        if source is None or not isinstance(source.this, exp.Table) or source.this.alias:
            return None
        if table is None:
            table = source.this
        elif source.this.sql(dialect) != table.sql(dialect):
            return None
        agg = inner.expressions[0]
        agg = agg.this if isinstance(agg, exp.Alias) else agg
        if not isinstance(agg, exp.AggFunc):
            return None
        where = inner.args.get("where")
        value = exp.Filter(this=agg.copy(), expression=exp.Where(this=where.this.copy())) if where else agg.copy()
        out.append(exp.alias_(value, alias))
    if table is None:
        return None
    return exp.select(*out).from_(table.copy())


def one_scan(text: str, dialect: str = "duckdb") -> str:
    """Rewrite the SELECT in ``text`` (jinja kept as written) when it has the scalar-subquery shape.

    >>> print(one_scan("select (select count(*) from {{ ref('o') }} where s = 'a') as a, "
    ...                "(select sum(x) from {{ ref('o') }} where s = 'b') as b"))
    select
      COUNT(*) FILTER(WHERE s = 'a') AS a,
      SUM(x) FILTER(WHERE s = 'b') AS b
    from {{ ref('o') }}
    """
    m = _START.search(_JINJA.sub(lambda j: " " * len(j.group(0)), text))
    if m is None:
        return text
    prefix, body = text[: m.start()], text[m.start():]
    blocks: list[str] = []

    def mask(j: re.Match[str]) -> str:  # the same jinja (the same ref()) gets the same placeholder
        if j.group(0) not in blocks:
            blocks.append(j.group(0))
        return f"__jinja_{blocks.index(j.group(0))}__"

    try:
        tree = sqlglot.parse_one(_JINJA.sub(mask, body), read=dialect)
    except sqlglot.errors.SqlglotError:
        return text
    if not isinstance(tree, exp.Select):
        return text
    new = _one_scan(tree, dialect)
    if new is None:
        return text
    source = new.args.get("from_") or new.args.get("from")
    assert source is not None  # _one_scan builds it with a FROM
    out = ("select\n  " + ",\n  ".join(e.sql(dialect=dialect) for e in new.expressions)
           + "\nfrom " + source.this.sql(dialect=dialect))
    for i, block in enumerate(blocks):
        out = out.replace(f"__jinja_{i}__", block)
    trailing = "\n" if body.endswith("\n") else ""
    return prefix + out + trailing


def detect(ctx: PerfContext) -> list[PerfHypothesis]:
    scans = [s for s in ctx.plan.scans() if s.info("Table")]
    counts = Counter(s.info("Table") for s in scans)
    table, n = counts.most_common(1)[0] if counts else ("", 0)
    repeated = [s for s in scans if s.info("Table") == table]
    if n < 2 or max(s.rows for s in repeated) < MIN_ROWS and sum(s.rows for s in repeated) < MIN_ROWS:
        return []
    seconds = sum(s.seconds for s in repeated)
    share = ctx.plan.share(*repeated)
    rewrites = []
    if _one_scan(ctx.tree, ctx.dialect) is not None if isinstance(ctx.tree, exp.Select) else False:
        dialect = ctx.dialect

        def edit(text: str) -> str:
            return one_scan(text, dialect)

        rewrites.append(Rewrite(f"one scan of {table} with filtered aggregates", edit))
    if n < 3 and not rewrites:
        return []  # two scans (a union of two filters, a self-join) are often the plan's best: only a rewrite says
    conf = (0.8 if n >= 3 else 0.6) if rewrites else 0.5
    return [PerfHypothesis(
        pattern=PATTERN, confidence=conf,
        summary=(f"{table} is scanned {n} times ({sum(s.rows for s in repeated):,} rows, {seconds:.3f}s, "
                 f"{share:.0%} of the operators' time): one scan would do"),
        operators=[s.evidence() for s in repeated],
        rewrites=rewrites,
    )]
