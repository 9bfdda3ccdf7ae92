"""join_explosion: a join emits far more rows than its inputs and a later ``distinct`` (or ``qualify``) hides it.

The plan shows a join whose output is several times its larger input, feeding a hash aggregate
(the ``distinct``) that brings the rows back down. When the select uses no column of the joined
side beyond the join keys, the join is only a filter: join the distinct keys instead, and drop the
``distinct`` when the results prove it was only there to undo the fan-out.

The "latest row as of" shape is the same explosion: a range join (``r.rate_date <= o.order_date``)
pairs each row with every earlier row of the other side, and ``qualify row_number() over (partition
by ... order by r.rate_date desc) = 1`` keeps one. DuckDB plans the qualify as a hash aggregate
(``arg_max``) or a window and a filter above the join. The rewrite is an ``asof`` join, which finds the
one matching row without producing the others; verification proves the rows are the same.
"""

from __future__ import annotations

import re

from sqlglot import exp

from dagster_agent_de.engines.investigate.fixes import rewrite_join
from dagster_agent_de.engines.performance.models import PerfContext, PerfHypothesis, Rewrite
from dagster_agent_de.engines.performance.plan import Operator

PATTERN = "join_explosion"
FANOUT = 1.5
"""A join emitting this many times the rows of its smaller input, and of the distinct above it, explodes."""
_DISTINCT = re.compile(r"(?i)\bselect(\s+)distinct\s+(?!on\b)")


def drop_distinct(text: str) -> str:
    """The first ``select distinct`` as ``select``.

    >>> drop_distinct("select distinct o.id from o")
    'select o.id from o'
    """
    return _DISTINCT.sub(r"select\1", text, count=1)


_LATEST = re.compile(
    r"(?is)\s*qualify\s+(?:row_number|rank|dense_rank)\(\)\s+over\s*\(\s*partition\s+by\s+[^()]*?\s+order\s+by\s+"
    r"(?P<alias>\w+)\.(?P<col>\w+)\s+desc(?:\s+nulls\s+last)?\s*\)\s*=\s*1\b")


def as_of_join(text: str) -> str:
    """A range join cut back to one row by ``qualify row_number() ... = 1`` (or ``rank()``/``dense_rank()``,
    the same row when the ordered column is unique per partition; the rewrite is verified on the results
    before it is proposed) as an ``asof`` join.

    Applies only to the shape it recognises (one such qualify, one join to its alias, one range condition
    on the ordered column); any other text is returned unchanged.

    >>> as_of_join("select o.id, r.rate from o left join rates as r on r.cur = o.cur and r.day <= o.day "
    ...            "qualify row_number() over (partition by o.id order by r.day desc) = 1")
    'select o.id, r.rate from o asof left join rates as r on r.cur = o.cur and o.day >= r.day'
    """
    found = list(_LATEST.finditer(text))
    if len(found) != 1:
        return text
    q = found[0]
    alias, col = re.escape(q.group("alias")), re.escape(q.group("col"))
    joins = list(re.finditer(rf"(?is)\b(?:(?P<left>left\s+(?:outer\s+)?)|inner\s+)?join(?P<rel>\s+(?:\{{\{{.*?\}}\}}|[^\s()]+)(?:\s+as)?\s+{alias}\s+on\b)",
                             text[: q.start()]))
    if len(joins) != 1:
        return text
    j = joins[0]
    other = r"(?P<x>\w+\.\w+)"
    shapes = [(rf"(?i)\b{alias}\.{col}\s*(?P<op><=|<)\s*{other}", {"<=": ">=", "<": ">"}),
              (rf"(?i){other}\s*(?P<op>>=|>)\s*{alias}\.{col}\b", {">=": ">=", ">": ">"})]
    cond_text = text[j.end(): q.start()]
    hits = [(m, flip) for pattern, flip in shapes for m in re.finditer(pattern, cond_text)]
    if len(hits) != 1:
        return text
    m, flip = hits[0]
    cond = cond_text[: m.start()] + f"{m.group('x')} {flip[m.group('op')]} {q.group('alias')}.{q.group('col')}" + cond_text[m.end():]
    kind = "asof left join" if j.group("left") else "asof join"
    return text[: j.start()] + kind + j.group("rel") + cond + text[q.end():]


def _is_join(op: Operator) -> bool:
    return ("JOIN" in op.name or op.name == "CROSS_PRODUCT") and len(op.children) >= 2


def _path(node: Operator, join: Operator) -> list[Operator] | None:
    """The operators from ``node`` down to ``join``, both included (None when ``join`` is not below it)."""
    if node is join:
        return [node]
    for c in node.children:
        p = _path(c, join)
        if p is not None:
            return [node, *p]
    return None


def _under_aggregate(root: Operator, join: Operator) -> Operator | None:
    """The nearest grouping above ``join`` that reduces its rows (the ``distinct``, the qualify's filter)."""
    for op in reversed((_path(root, join) or [])[:-1]):
        if op.name in ("HASH_GROUP_BY", "PERFECT_HASH_GROUP_BY", "FILTER") and op.rows < join.rows:
            return op
    return None


def _semi_join_keys(select: exp.Select, join: exp.Join) -> list[str] | None:
    """The joined side's key columns when the select reads nothing else of it (the join only filters)."""
    alias = join.alias_or_name
    on = join.args.get("on")
    if not alias or on is None or not isinstance(join.this, exp.Table):
        return None
    keys = sorted({c.name for c in on.find_all(exp.Column) if c.table == alias})
    if not keys:
        return None
    for part in [*select.expressions, *(select.args.get(a) for a in ("where", "group", "having", "order"))]:
        if part is None:
            continue
        for node in part.walk():
            if isinstance(node, exp.Star) and not isinstance(node.parent, exp.Column):
                return None  # select *: every column of the joined side is read
            if isinstance(node, exp.Column) and node.table in (alias, ""):
                return None  # reads the joined side (or cannot tell which side: unqualified)
    return keys


def detect(ctx: PerfContext) -> list[PerfHypothesis]:
    selects = [s for s in ctx.tree.find_all(exp.Select)
               if (s.args.get("distinct") or s.args.get("qualify")) and s.args.get("joins")]
    found = []
    for op in ctx.plan.operators():
        agg = _under_aggregate(ctx.plan.root, op) if _is_join(op) else None
        # the join multiplies the rows of its smaller side, and the distinct above brings them back down
        if agg is not None and op.rows >= FANOUT * min(c.rows for c in op.children) and op.rows >= FANOUT * agg.rows:
            found.append((op, agg, op.rows / max(agg.rows, 1)))
    if not found or not selects:
        return []
    join_op, agg, ratio = max(found, key=lambda e: e[0].rows)
    select = selects[0]
    rewrites: list[Rewrite] = []
    cond = join_op.info("Conditions")
    latest = select.args.get("qualify") is not None and not select.args.get("distinct")
    if latest:
        rewrites.append(Rewrite("an asof join instead of the range join and its qualify", as_of_join))
    for join in [] if latest else select.args.get("joins") or []:
        keys = _semi_join_keys(select, join)
        if keys is None or not isinstance(join.this, exp.Table):
            continue
        table: exp.Table = join.this
        names = [table.name, exp.table_(table.name, table.args.get("db"), table.args.get("catalog"),
                                        quoted=None).sql(ctx.dialect), table.sql(ctx.dialect)]
        target = "(select distinct " + ", ".join(keys) + " from {target})"

        def pre_dedupe(text: str, n: list[str] = names, t: str = target) -> str:
            return rewrite_join(text, n, target=t)

        def both(text: str, f=pre_dedupe) -> str:
            # only when the text has one `select distinct` (the one above the join): never guess which
            joined = f(text)
            return drop_distinct(joined) if joined != text and len(_DISTINCT.findall(text)) == 1 else text

        what = f"join the distinct {', '.join(keys)} of {table.name}"
        rewrites += [Rewrite(f"{what} and drop the distinct", both), Rewrite(what, pre_dedupe)]
        if any(k in cond for k in keys):
            break
    # the join, what brings its rows back down, and everything between (the qualify's window)
    share = ctx.plan.share(*(_path(agg, join_op) or [join_op, agg]))
    conf = min(0.95, 0.6 + 0.1 * min(ratio, 3.0)) if rewrites else 0.6
    return [PerfHypothesis(
        pattern=PATTERN, confidence=round(conf, 2),
        summary=(f"the join on {cond or '?'} emits {join_op.rows:,} rows from inputs of "
                 f"{', '.join(f'{c.rows:,}' for c in join_op.children)} ({ratio:.1f}x), and the "
                 f"{'qualify' if latest else 'distinct'} "
                 f"brings them back to {agg.rows:,}: {share:.0%} of the operators' time"),
        operators=[agg.evidence(), join_op.evidence()],
        rewrites=rewrites,
    )]
