"""The read-only guard: decide, by parsing, whether a statement may run.

Fail closed: a statement sqlglot cannot parse is refused, every statement of a
multi-statement string is checked, and the whole tree is walked so that a write hidden
inside a CTE (``WITH x AS (DELETE ... RETURNING *) SELECT ...``) is found.
"""

from __future__ import annotations

import logging
from functools import lru_cache
from typing import Any

from dagster_agent_de.errors import StatementRefusedError

_READ_COMMANDS = ("EXPLAIN",)
_log = logging.getLogger("sqlglot")


@lru_cache(maxsize=1)
def _node_types() -> tuple[tuple[type, ...], tuple[type, ...]]:
    """(read roots, write nodes); sqlglot is imported on first use, not at code-location load."""
    from sqlglot import exp

    reads = [exp.Select, exp.SetOperation, exp.Describe, exp.Show, exp.Subquery, exp.Values]
    if hasattr(exp, "Summarize"):
        reads.append(exp.Summarize)
    writes = tuple(
        getattr(exp, name)
        for name in (
            "Insert", "Update", "Delete", "Merge", "Create", "Drop", "Alter", "Copy", "Attach",
            "Detach", "Install", "Command", "Set", "Use", "TruncateTable", "LoadData", "Pragma",
            "Grant", "Revoke", "Transaction", "Commit", "Rollback", "Cache", "Uncache", "Refresh",
            "Export", "Into",
        )
        if hasattr(exp, name)
    )
    return tuple(reads), writes


def _parse(sql: str, dialect: str) -> list[Any]:
    import sqlglot

    level = _log.level
    _log.setLevel(logging.ERROR)  # sqlglot warns when it falls back to Command
    try:
        return [e for e in sqlglot.parse(sql, read=dialect) if e is not None]
    finally:
        _log.setLevel(level)


def statement_kinds(sql: str, dialect: str) -> list[str]:
    """Return the kind of each statement in ``sql`` (for audit and error messages).

    >>> statement_kinds("select 1; drop table t", "duckdb")
    ['SELECT', 'DROP']
    """
    from sqlglot import exp

    kinds = []
    for e in _parse(sql, dialect):
        if isinstance(e, exp.Command):
            kinds.append(str(e.this).upper())
        else:
            kinds.append(e.key.upper())
    return kinds


def check_read_only(sql: str, dialect: str) -> None:
    """Raise :class:`StatementRefusedError` unless every statement in ``sql`` only reads.

    Allowed: SELECT, WITH ... SELECT, set operations, DESCRIBE, SHOW, EXPLAIN of a read.

    >>> check_read_only("with a as (select 1 as x) select * from a", "duckdb")
    >>> check_read_only("select 1; delete from t", "duckdb")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    dagster_agent_de.errors.StatementRefusedError: refused in read-only mode: statement 2 of 2 is DELETE, not a read ...
    """
    from sqlglot.errors import SqlglotError

    if not sql or not sql.strip():
        raise StatementRefusedError("refused: empty statement")
    try:
        statements = _parse(sql, dialect)
    except SqlglotError as e:
        first = str(e).splitlines()[0]
        raise StatementRefusedError(
            f"refused in read-only mode: the statement could not be parsed as {dialect} SQL, "
            f"so it cannot be shown to be read-only ({first})"
        ) from e
    if not statements:
        raise StatementRefusedError("refused: empty statement")
    total = len(statements)
    for i, statement in enumerate(statements, start=1):
        _check_one(statement, dialect, i, total)


def _refuse(what: str, i: int, total: int) -> StatementRefusedError:
    return StatementRefusedError(
        f"refused in read-only mode: statement {i} of {total} is {what}, not a read (only SELECT, WITH, "
        "DESCRIBE, SHOW and EXPLAIN run); the agent's warehouse access is read-only unless the "
        "autonomy policy allows writes"
    )


def _check_one(statement: Any, dialect: str, i: int, total: int) -> None:
    from sqlglot import exp

    read_roots, write_nodes = _node_types()
    if isinstance(statement, exp.Command):
        verb = str(statement.this).upper()
        if verb in _READ_COMMANDS:
            rest = statement.expression
            rest_sql = rest.name if isinstance(rest, exp.Literal) else str(rest or "")
            # EXPLAIN ANALYZE executes the statement: check what it would run
            rest_sql = rest_sql.strip()
            if rest_sql.upper().startswith("ANALYZE "):
                rest_sql = rest_sql[len("ANALYZE ") :]
            check_read_only(rest_sql, dialect)
            return
        raise _refuse(verb, i, total)
    if not isinstance(statement, read_roots):
        raise _refuse(statement.key.upper(), i, total)
    for node in statement.walk():
        if isinstance(node, write_nodes):
            kind = str(node.this).upper() if isinstance(node, exp.Command) else node.key.upper()
            raise _refuse(f"{kind} inside {statement.key.upper()}", i, total)
