"""The CLI and the Dagster layer are thin callers: no SQL and no state I/O of their own.

Every statement goes through an engine function over the audited ``Warehouse``; every piece of
state through the ``StateStore`` or a ``Settings`` location handed to an engine.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import dagster_agent_de

PKG = Path(dagster_agent_de.__file__).parent
CALLERS = [PKG / "cli.py", *sorted((PKG / "dagster").glob("*.py"))]

_SQL = re.compile(r"^\s*\(?\s*(select|with|create|insert|update|delete|merge|drop|alter|copy|attach|pragma|"
                  r"set|show|describe|explain|truncate|call)\b", re.I)
_RUNS_SQL = {"query", "execute", "executemany", "_run", "sql", "fetch"}
_DRIVERS = {"sqlalchemy", "duckdb", "psycopg", "psycopg2", "sqlite3", "snowflake"}
_FILE_IO = {"open", "read_text", "write_text", "read_bytes", "write_bytes", "unlink", "mkdir", "rmdir", "rmtree",
            "copy", "copyfile", "copytree", "glob", "rglob", "iterdir", "touch"}
# (module, call as written): why it is not the agent's state
ALLOWED = {
    ("cli.py", "settings.dagster_home.mkdir(parents=True, exist_ok=True)"):
        "`agent-de dev` creates the Dagster instance's home before exec'ing `dagster dev`",
}


def _texts(node: ast.AST) -> list[str]:
    out = []
    for n in ast.walk(node):
        if isinstance(n, ast.Constant) and isinstance(n.value, str):
            out.append(n.value)
        elif isinstance(n, ast.JoinedStr):
            out.append("".join(v.value for v in n.values if isinstance(v, ast.Constant) and isinstance(v.value, str)))
    return out


def offenders(path: Path, name: str | None = None) -> list[str]:
    name = name or str(path.relative_to(PKG))
    out = []
    for n in ast.walk(ast.parse(path.read_text())):
        if isinstance(n, (ast.Import, ast.ImportFrom)):
            mods = [a.name for a in n.names] if isinstance(n, ast.Import) else [n.module or ""]
            out += [f"{name}:{n.lineno} imports the driver {m}" for m in mods if m.split(".")[0] in _DRIVERS]
        elif isinstance(n, ast.Call):
            fn = n.func
            called = fn.attr if isinstance(fn, ast.Attribute) else fn.id if isinstance(fn, ast.Name) else ""
            if called in _RUNS_SQL and n.args and any(_SQL.match(t) for t in _texts(n.args[0])):
                out.append(f"{name}:{n.lineno} sends its own SQL: {ast.unparse(n)[:80]}")
            if called in _FILE_IO and (name, ast.unparse(n)) not in ALLOWED:
                out.append(f"{name}:{n.lineno} does file I/O: {ast.unparse(n)[:80]}")
        elif isinstance(n, ast.BinOp) and isinstance(n.op, ast.Div) and "state_dir" in ast.unparse(n.left):
            out.append(f"{name}:{n.lineno} builds a state path by hand: {ast.unparse(n)[:80]}")
    return out


def test_the_cli_and_the_dagster_layer_run_no_sql_and_no_state_io_of_their_own() -> None:
    assert len(CALLERS) > 10
    found = [o for path in CALLERS for o in offenders(path)]
    assert not found, "\n".join(found)


def test_every_allowance_is_still_needed() -> None:
    calls = {(str(p.relative_to(PKG)), ast.unparse(n)) for p in CALLERS for n in ast.walk(ast.parse(p.read_text()))
             if isinstance(n, ast.Call)}
    assert set(ALLOWED) <= calls, sorted(set(ALLOWED) - calls)


def test_the_checker_catches_sql_io_and_state_paths(tmp_path: Path) -> None:
    bad = tmp_path / "probe.py"
    bad.write_text(
        "import duckdb\n"
        "from sqlalchemy import text\n"
        "def f(wh, settings, con):\n"
        "    wh.query('select count(*) from t', rationale='x')\n"
        "    con.execute(f\"\"\"insert into t values ({1})\"\"\")\n"
        "    p = settings.state_dir / 'proposals'\n"
        "    open(p).read()\n"
        "    return (p / 'x.json').read_text(), 'select is only text'.replace('a', 'b')\n"
    )
    found = offenders(bad, "dagster/probe.py")
    kinds = sorted(o.split(" ", 1)[1].split(":")[0].split(" the driver")[0] for o in found)
    assert len(found) == 7, found
    assert kinds == ["builds a state path by hand", "does file I/O", "does file I/O", "imports",
                     "imports", "sends its own SQL", "sends its own SQL"], kinds
