"""incremental_filter: an incremental model with no ``is_incremental()`` filter, or one that cannot prune.

Without the filter every run reads the whole source and merges all of it again: the plan's scans
read every row, run after run, and the runtime grows with the table. With a filter that wraps the
column in a function (``date(ordered_at) > ...``), the scan still reads everything. The fix for the
first shape adds the filter on the model's timestamp column; it changes what each run loads, so it
is proposed with an authority escalation (and it cannot be verified as "results unchanged": an
incremental run returns only the new rows by design). The second shape is named, with its filter.
"""

from __future__ import annotations

import difflib
import re

from sqlglot import exp

from dagster_agent_de.engines.performance.models import PerfContext, PerfHypothesis

PATTERN = "incremental_filter"
MIN_ROWS = 10_000
_TS = re.compile(r"(?i)(_at|_ts|_date|_time|timestamp|loaded)$")
_BLOCK = re.compile(r"(?is)\{%-?\s*if\s+is_incremental\(\)\s*-?%\}(?P<body>.*?)\{%-?\s*endif\s*-?%\}")
_WRAPPED = re.compile(r"(?i)\b(date|cast|date_trunc|strftime|to_date|year|month)\s*\(\s*[\w.\"]+")


def _timestamp(select: exp.Select) -> tuple[str, str] | None:
    """(the expression as written, its output name) of the select's timestamp column (``_loaded_at`` first)."""
    found = []
    for proj in select.expressions:
        name = proj.alias_or_name
        inner = proj.this if isinstance(proj, exp.Alias) else proj
        if isinstance(inner, exp.Column) and _TS.search(name or ""):
            found.append((inner.sql(), name))
    found.sort(key=lambda f: (not f[1].lower().endswith("loaded_at"), not f[1].lower().startswith("updated")))
    return found[0] if found else None


def with_filter(text: str, column: str, name: str) -> str:
    """The model text with an ``is_incremental()`` filter on ``column`` appended (an ``and`` when it has a WHERE).

    >>> print(with_filter("select id, updated_at from {{ ref('o') }}\\n", "updated_at", "updated_at"))
    select id, updated_at from {{ ref('o') }}
    {% if is_incremental() %}
    where updated_at > (select max(updated_at) from {{ this }})
    {% endif %}
    <BLANKLINE>
    """
    body = text.rstrip()
    keyword = "and" if re.search(r"(?i)\bwhere\b", re.sub(r"\{\{.*?\}\}", "", body)) else "where"
    return (f"{body}\n{{% if is_incremental() %}}\n{keyword} {column} > (select max({name}) from {{{{ this }}}})\n"
            "{% endif %}\n")


def detect(ctx: PerfContext) -> list[PerfHypothesis]:
    if ctx.materialized != "incremental" or ctx.source is None:
        return []
    scans = sorted(ctx.plan.scans(), key=lambda s: -s.rows)
    if not scans or scans[0].rows < MIN_ROWS:
        return []
    scan = scans[0]
    block = _BLOCK.search(ctx.source)
    if block is not None:
        wrapped = _WRAPPED.search(block.group("body"))
        if wrapped is None:
            return []
        return [PerfHypothesis(
            pattern=PATTERN, confidence=0.6,
            summary=(f"the is_incremental() filter wraps its column ({wrapped.group(0)}...): it cannot prune, so the "
                     f"scan of {scan.info('Table') or '?'} reads {scan.rows:,} rows each run; compare the bare column"),
            operators=[scan.evidence()],
        )]
    select = ctx.tree if isinstance(ctx.tree, exp.Select) else None
    simple = select is not None and not any(select.args.get(a) for a in ("group", "having", "qualify", "order", "limit"))
    ts = _timestamp(select) if select is not None and simple else None
    diff = ""
    if ts is not None:
        diff = "".join(difflib.unified_diff(ctx.source.splitlines(keepends=True),
                                            with_filter(ctx.source, *ts).splitlines(keepends=True),
                                            fromfile=f"a/{ctx.source_path}", tofile=f"b/{ctx.source_path}"))
    return [PerfHypothesis(
        pattern=PATTERN, confidence=0.8,
        summary=(f"the model is incremental but has no is_incremental() filter: each run scans all {scan.rows:,} rows "
                 f"of {scan.info('Table') or '?'} ({ctx.plan.share(scan):.0%} of the operators' time) and loads them "
                 f"again; filter on {ts[1] if ts else 'its timestamp column'} when incremental"),
        operators=[scan.evidence()],
        needs_authority=(f"Add an is_incremental() filter to {ctx.source_path}? It changes what each run loads "
                         f"(only rows newer than the table's max {ts[1] if ts else 'timestamp'})"),
        diff=diff,
    )]
