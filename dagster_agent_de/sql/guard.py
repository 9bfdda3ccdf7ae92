"""The read-only guard: decide, by parsing, whether a statement may run.

Fail closed: a statement longer than :data:`MAX_STATEMENT_CHARS` is refused before it is
parsed, a statement sqlglot cannot parse is refused, every statement of a multi-statement
string is checked, and the whole tree is walked so that a write hidden inside a CTE
(``WITH x AS (DELETE ... RETURNING *) SELECT ...``) is found. A read must also stay inside the
warehouse: functions that read files, URLs or the environment (DuckDB's ``read_csv``,
``read_blob``, ``glob``, ...), a path in ``FROM`` (``select * from 'x.parquet'``), Snowflake
stages (``@stage``), ``system$`` functions and schema-qualified function calls (how external
functions are called) are refused for each dialect.

Each refusal carries a :attr:`~dagster_agent_de.errors.StatementRefusedError.reason`:
``empty``, ``too_large``, ``unparsable``, ``write`` (a statement that is not a read, session
statements such as ATTACH, SET, INSTALL included) or ``external`` (a file, network, stage or
system access inside a read).
"""

from __future__ import annotations

import logging
import re
from functools import lru_cache
from typing import Any

from dagster_agent_de.errors import StatementRefusedError

_READ_COMMANDS = ("EXPLAIN",)
_log = logging.getLogger("sqlglot")

MAX_STATEMENT_CHARS = 500_000
"""Longer SQL is refused before parsing (sqlglot takes seconds per megabyte); the agent's own
statements, compiled models included, are far smaller."""

_DENIED_FUNCTIONS: dict[str, frozenset[str]] = {
    "duckdb": frozenset({
        # table functions reading paths or URLs
        "read_csv", "read_csv_auto", "read_parquet", "parquet_scan", "read_json", "read_json_auto",
        "read_json_objects", "read_json_objects_auto", "read_ndjson", "read_ndjson_auto",
        "read_ndjson_objects", "read_text", "read_blob", "read_xlsx", "read_avro", "read_duckdb",
        "glob", "sniff_csv", "st_read", "st_read_meta", "st_readosm", "st_readshp",
        "iceberg_scan", "iceberg_metadata", "iceberg_snapshots", "delta_scan",
        "sqlite_scan", "sqlite_attach", "postgres_scan", "postgres_scan_pushdown", "postgres_attach",
        "postgres_query", "postgres_execute", "mysql_query", "mysql_execute", "mysql_attach",
        "http_get", "http_post", "http_head", "load_aws_credentials", "arrow_scan", "arrow_scan_dumb",
        # strings run as SQL (they would escape this guard's parse), secrets, state changes
        "query", "query_table", "json_execute_serialized_sql", "duckdb_secrets", "which_secret",
        "getenv", "checkpoint", "force_checkpoint", "enable_logging", "disable_logging", "truncate_duckdb_logs",
        "install_extension", "load_extension",
    }),
    "snowflake": frozenset({
        "get_presigned_url", "build_scoped_file_url", "build_stage_file_url", "get_stage_location",
        "get_relative_path", "get_absolute_path", "infer_schema", "validate", "external_table_files",
        "external_table_file_registration_history",
    }),
}
_DENIED_PREFIXES: dict[str, tuple[str, ...]] = {
    "duckdb": ("read_", "parquet_", "iceberg_", "delta_", "ducklake_", "postgres_", "mysql_", "sqlite_", "http_",
               "st_read", "azure_", "s3_", "gcs_"),
    "snowflake": ("system$",),
}
_FILE_EXTENSIONS = (".csv", ".tsv", ".txt", ".parquet", ".pq", ".json", ".jsonl", ".ndjson", ".gz", ".zst",
                    ".xlsx", ".avro", ".arrow", ".duckdb", ".db", ".sqlite")


@lru_cache(maxsize=1)
def _node_types() -> tuple[tuple[type[Any], ...], tuple[type[Any], ...]]:
    # type[Any], not type: sqlglot's node classes (``Expression``; ``Expr`` in newer releases) keep their attributes
    # after ``isinstance`` narrowing
    """(read roots, write nodes); sqlglot is imported on first use, not at code-location load."""
    from sqlglot import exp

    reads = [exp.Select, exp.SetOperation, exp.Describe, exp.Show, exp.Subquery, exp.Values]
    if hasattr(exp, "Summarize"):
        reads.append(exp.Summarize)
    if hasattr(exp, "Pivot"):
        reads.append(exp.Pivot)  # DuckDB's PIVOT statement
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
    statements = _statements(sql, dialect)
    total = len(statements)
    for i, statement in enumerate(statements, start=1):
        _check_one(statement, dialect, i, total)


_OUTSIDE_VERBS = frozenset({"COPY", "ATTACH", "DETACH", "INSTALL", "LOAD", "EXPORT", "IMPORT", "PUT", "GET", "SET",
                            "RESET", "PRAGMA", "CALL", "EXECUTE"})


def check_in_warehouse(sql: str, dialect: str) -> None:
    """Raise :class:`StatementRefusedError` if ``sql`` reaches outside the warehouse.

    For the statements the autonomy policy lets write: they may change tables, never read or write
    files, URLs or the session (COPY, ATTACH, INSTALL, LOAD, SET, ... and the functions of the deny-list).

    >>> check_in_warehouse("insert into t select * from s", "duckdb")
    >>> check_in_warehouse("insert into t select * from read_csv('/etc/passwd')", "duckdb")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    dagster_agent_de.errors.StatementRefusedError: refused: statement 1 of 1 reads through the function read_csv, ...
    """
    from sqlglot import exp

    statements = _statements(sql, dialect)
    total = len(statements)
    _, write_nodes = _node_types()
    session = tuple(getattr(exp, n) for n in ("Copy", "Attach", "Detach", "Install", "Set", "Use", "LoadData", "Pragma",
                                               "Export") if hasattr(exp, n))
    for i, statement in enumerate(statements, start=1):
        for node in statement.walk():
            if isinstance(node, exp.Command) and str(node.this).upper() in _OUTSIDE_VERBS:
                raise _refuse(str(node.this).upper(), i, total)
            if isinstance(node, session):
                raise _refuse(node.key.upper(), i, total)
            what = _external_access(node, dialect)
            if what:
                raise _refuse_external(what, i, total)


def _statements(sql: str, dialect: str) -> list[Any]:
    """The parsed statements of ``sql``; refused when empty, too large (before parsing) or unparsable."""
    from sqlglot.errors import SqlglotError

    if not sql or not sql.strip():
        raise StatementRefusedError("refused: empty statement", reason="empty")
    if len(sql) > MAX_STATEMENT_CHARS:
        raise StatementRefusedError(
            f"refused: the statement is {len(sql):,} characters, more than the {MAX_STATEMENT_CHARS:,} the guard "
            "reads; split it into smaller statements",
            reason="too_large",
        )
    try:
        statements = _parse(sql, dialect)
    except SqlglotError as e:
        first = str(e).splitlines()[0]
        raise StatementRefusedError(
            f"refused in read-only mode: the statement could not be parsed as {dialect} SQL, "
            f"so it cannot be shown to be read-only ({first})",
            reason="unparsable",
        ) from e
    except RecursionError as e:
        raise StatementRefusedError(
            "refused in read-only mode: the statement nests too deeply to be parsed", reason="unparsable"
        ) from e
    if not statements:
        raise StatementRefusedError("refused: empty statement", reason="empty")
    return statements


def _refuse(what: str, i: int, total: int) -> StatementRefusedError:
    return StatementRefusedError(
        f"refused in read-only mode: statement {i} of {total} is {what}, not a read (only SELECT, WITH, "
        "DESCRIBE, SHOW and EXPLAIN run); the agent's warehouse access is read-only unless the "
        "autonomy policy allows writes",
        reason="write",
    )


def _refuse_external(what: str, i: int, total: int) -> StatementRefusedError:
    return StatementRefusedError(
        f"refused: statement {i} of {total} reads {what}, outside the warehouse; the agent reads only "
        "warehouse relations (declare a file or API source of truth in the spec instead)",
        reason="external",
    )


def _function_names(node: Any) -> set[str]:
    from sqlglot import exp

    if isinstance(node, exp.Anonymous):
        return {node.name.lower()}
    return {name.lower() for name in type(node).sql_names()}


_SNOWFLAKE_HISTORY = frozenset({"QUERY_HISTORY", "QUERY_HISTORY_BY_SESSION", "QUERY_HISTORY_BY_USER",
                                "QUERY_HISTORY_BY_WAREHOUSE"})
"""``INFORMATION_SCHEMA`` table functions a read may call on Snowflake (the performance investigation's evidence)."""


def _denied_function(node: Any, dialect: str) -> str | None:
    """The name of a denied function ``node`` calls, else None."""
    from sqlglot import exp

    denied = _DENIED_FUNCTIONS.get(dialect, frozenset())
    prefixes = _DENIED_PREFIXES.get(dialect, ())
    for name in _function_names(node):
        if name in denied or name.startswith(prefixes):
            return name
    if dialect != "duckdb" and isinstance(node, exp.Anonymous) and isinstance(node.parent, exp.Dot):
        qualified = node.parent.sql(dialect).split("(")[0].upper()
        if dialect == "snowflake" and qualified.split(".")[-2:-1] == ["INFORMATION_SCHEMA"] and str(
                node.this).upper() in _SNOWFLAKE_HISTORY:
            return None  # Snowflake's own query history: metadata the role may read, no external call
        return f"{node.parent.sql(dialect)} (a schema-qualified function: external functions are called this way)"
    return None


def _path_like(name: str) -> bool:
    """A table name that reads as a file path, URL or stage rather than a relation."""
    lowered = name.lower()
    return (
        name.startswith(("@", "~"))
        or any(ch in name for ch in "/\\:*?")
        or lowered.endswith(_FILE_EXTENSIONS)
        or "." in name
    )


def _external_access(node: Any, dialect: str) -> str | None:
    """What outside-the-warehouse access ``node`` makes, else None."""
    from sqlglot import exp

    if isinstance(node, exp.Func):
        name = _denied_function(node, dialect)
        return f"through the function {name}" if name else None
    if isinstance(node, exp.Table):
        this = node.this
        if isinstance(this, exp.Var) and str(this.this).startswith(("@", "~")):
            return f"the stage {this.this}"
        if isinstance(this, exp.Literal) and this.is_string:
            return f"the path {this.this!r}"
        if isinstance(this, exp.Identifier) and this.quoted and _path_like(this.this):
            return f"the path {this.this!r}"
    if isinstance(node, exp.Summarize) and isinstance(node.this, exp.Literal):
        return f"the path {node.this.this!r}"
    return None


_EXPLAIN_OPTIONS = re.compile(r"\(\s*ANALYZE\s*,\s*FORMAT\s+JSON\s*\)\s+", re.IGNORECASE)
"""The one option list EXPLAIN may carry (DuckDB): ``EXPLAIN (ANALYZE, FORMAT JSON) <read>``."""


def _explained(rest: str, dialect: str, i: int, total: int) -> str:
    """The statement an EXPLAIN runs, options removed; EXPLAIN ANALYZE executes it, so it must be a read.

    Only ``ANALYZE`` and, on DuckDB, exactly ``(ANALYZE, FORMAT JSON)`` are accepted as options: any other
    option list is refused rather than parsed (it could hide the statement it runs).
    """
    if rest.upper().startswith("ANALYZE ") or rest.upper().startswith("ANALYZE\n"):
        return rest[len("ANALYZE ") :]
    if rest.startswith("("):
        m = _EXPLAIN_OPTIONS.match(rest)
        if dialect != "duckdb" or m is None:
            raise StatementRefusedError(
                f"refused in read-only mode: statement {i} of {total} is an EXPLAIN with options "
                f"{rest.split(')')[0][:80]}); only EXPLAIN (ANALYZE, FORMAT JSON) of a read runs, on DuckDB",
                reason="write",
            )
        return rest[m.end() :]
    return rest


def _check_one(statement: Any, dialect: str, i: int, total: int) -> None:
    from sqlglot import exp

    read_roots, write_nodes = _node_types()
    if isinstance(statement, exp.Command):
        verb = str(statement.this).upper()
        if verb in _READ_COMMANDS:
            rest = statement.expression
            rest_sql = rest.name if isinstance(rest, exp.Literal) else str(rest or "")
            check_read_only(_explained(rest_sql.strip(), dialect, i, total), dialect)
            return
        raise _refuse(verb, i, total)
    if not isinstance(statement, read_roots):
        raise _refuse(statement.key.upper(), i, total)
    for node in statement.walk():
        if isinstance(node, write_nodes):
            kind = str(node.this).upper() if isinstance(node, exp.Command) else node.key.upper()
            raise _refuse(f"{kind} inside {statement.key.upper()}", i, total)
        what = _external_access(node, dialect)
        if what:
            raise _refuse_external(what, i, total)
