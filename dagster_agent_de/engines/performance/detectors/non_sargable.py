"""non_sargable: a function or cast wrapped around a date column in WHERE.

The scan then evaluates the function on every row and cannot prune on the column's min/max
(zone maps, micro-partitions, partitions). The plan shows the wrapped column in the scan's filter.
The rewrite states the same condition as a range on the bare column.
"""

from __future__ import annotations

import calendar
import re
from datetime import date
from typing import Any

from sqlglot import exp

from dagster_agent_de.engines.performance.models import PerfContext, PerfHypothesis, Rewrite

PATTERN = "non_sargable"
_COL = r"(?P<col>[A-Za-z_][\w.\"]*)"
_DATE_NAME = re.compile(r"(?i)(date|_at$|_on$|time|_ts$|^ts$|day|month|year)")
_DATE_FUNCS = (exp.Year, exp.Month, exp.Day, exp.DateTrunc, exp.TimestampTrunc, exp.TimeToStr, exp.Cast,
               exp.TryCast, exp.Extract, exp.Date, exp.TsOrDsToDate)


def _next(d: date, unit: str) -> date:
    if unit == "year":
        return date(d.year + 1, 1, 1)
    if unit == "month":
        return date(d.year + (d.month == 12), d.month % 12 + 1, 1)
    return date.fromordinal(d.toordinal() + 1)


def _range(col: str, start: date, unit: str) -> str:
    return f"{col} >= date '{start.isoformat()}' and {col} < date '{_next(start, unit).isoformat()}'"


_SHAPES: list[tuple[re.Pattern[str], str]] = [
    (re.compile(rf"(?i)\bstrftime\(\s*{_COL}\s*,\s*'%Y-%m'\s*\)\s*=\s*'(?P<y>\d{{4}})-(?P<m>\d{{2}})'"), "month"),
    (re.compile(rf"(?i)\bstrftime\(\s*{_COL}\s*,\s*'%Y-%m-%d'\s*\)\s*=\s*'(?P<y>\d{{4}})-(?P<m>\d{{2}})-(?P<d>\d{{2}})'"), "day"),
    (re.compile(rf"(?i)\bstrftime\(\s*{_COL}\s*,\s*'%Y'\s*\)\s*=\s*'(?P<y>\d{{4}})'"), "year"),
    (re.compile(rf"(?i)\byear\(\s*{_COL}\s*\)\s*=\s*(?P<y>\d{{4}})\b"), "year"),
    (re.compile(rf"(?i)\bcast\(\s*{_COL}\s+as\s+date\s*\)\s*=\s*(?:date\s*)?'(?P<y>\d{{4}})-(?P<m>\d{{2}})-(?P<d>\d{{2}})'"), "day"),
    (re.compile(rf"(?i){_COL}::date\s*=\s*(?:date\s*)?'(?P<y>\d{{4}})-(?P<m>\d{{2}})-(?P<d>\d{{2}})'"), "day"),
    (re.compile(rf"(?i)\bdate_trunc\(\s*'(?P<unit>year|month|day)'\s*,\s*{_COL}\s*\)\s*=\s*(?:date\s*)?"
                r"'(?P<y>\d{4})-(?P<m>\d{2})-(?P<d>\d{2})'"), ""),
]


def as_range(text: str) -> str:
    """Each recognised function-wrapped date comparison as a range on the bare column.

    >>> as_range("where strftime(o.ordered_at, '%Y-%m') = '2024-12' and x = 1")
    "where o.ordered_at >= date '2024-12-01' and o.ordered_at < date '2025-01-01' and x = 1"
    >>> as_range("where cast(ordered_at as date) = '2024-03-01'")
    "where ordered_at >= date '2024-03-01' and ordered_at < date '2024-03-02'"
    """
    for pattern, unit in _SHAPES:
        def repl(m: re.Match[str], unit: str = unit) -> str:
            u = unit or m.group("unit").lower()
            g = m.groupdict()
            y, mo, d = int(g["y"]), int(g.get("m") or 1), int(g.get("d") or 1)
            if mo < 1 or mo > 12 or d < 1 or d > calendar.monthrange(y, mo)[1]:
                return m.group(0)
            return _range(m.group("col"), date(y, mo, d), u)
        text = pattern.sub(repl, text)
    return text


def _wrapped_date_columns(tree: exp.Expr) -> list[tuple[Any, exp.Column]]:
    out: list[tuple[Any, exp.Column]] = []  # (the function, the column it wraps)
    for where in tree.find_all(exp.Where):
        for cmp in where.find_all(exp.EQ, exp.GT, exp.GTE, exp.LT, exp.LTE, exp.In, exp.Between):
            for side in (cmp.this, cmp.args.get("expression")):
                if not isinstance(side, exp.Func) or isinstance(side, exp.AggFunc):
                    continue
                cols = list(side.find_all(exp.Column))
                if len(cols) == 1 and (isinstance(side, _DATE_FUNCS) or _DATE_NAME.search(cols[0].name)):
                    out.append((side, cols[0]))
    return out


def detect(ctx: PerfContext) -> list[PerfHypothesis]:
    wrapped = _wrapped_date_columns(ctx.tree)
    if not wrapped:
        return []
    func, col = wrapped[0]
    scans = [s for s in ctx.plan.scans() if col.name.lower() in s.info("Filters").lower()]
    in_filter = [s for s in scans if re.search(rf"\w+\([^)]*{re.escape(col.name)}", s.info("Filters"), re.I)]
    if scans and not in_filter:
        # the optimizer already turned it into a range on the column (DuckDB does for year() = N)
        return []
    scan = (in_filter or ctx.plan.scans() or [ctx.plan.root])[0]
    share = ctx.plan.share(scan)
    conf = 0.85 if in_filter else 0.5
    return [PerfHypothesis(
        pattern=PATTERN, confidence=conf,
        summary=(f"the filter wraps {col.sql()} in {func.sql(ctx.dialect)}: the scan of {scan.info('Table') or '?'} "
                 f"evaluates it on every row and cannot prune ({scan.seconds:.3f}s, {share:.0%} of the operators' time)"),
        operators=[scan.evidence()],
        rewrites=[Rewrite(f"compare the bare {col.name} to a date range", as_range)],
    )]
