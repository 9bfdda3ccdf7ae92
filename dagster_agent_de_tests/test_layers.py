"""Imports point inward: core/ and engines/ never import Dagster."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import dagster_agent_de

PKG = Path(dagster_agent_de.__file__).parent
PURE_LAYERS = ("core", "engines", "sql")


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module.split(".")[0])
            if node.module.startswith("dagster_agent_de.dagster"):
                names.add("dagster_agent_de.dagster")
    return names


def test_pure_layers_do_not_import_dagster_in_source() -> None:
    offenders = []
    for layer in PURE_LAYERS:
        for path in (PKG / layer).rglob("*.py"):
            bad = _imports(path) & {"dagster", "dagster_dbt", "dagster_snowflake", "dagster_agent_de.dagster"}
            if bad:
                offenders.append(f"{path.relative_to(PKG)} imports {sorted(bad)}")
    assert not offenders, offenders


def test_pure_layers_do_not_import_dagster_at_runtime() -> None:
    modules = sorted(
        ".".join(p.relative_to(PKG.parent).with_suffix("").parts)
        for layer in PURE_LAYERS
        for p in (PKG / layer).rglob("*.py")
    )
    code = (
        "import importlib, sys\n"
        f"for m in {modules!r}: importlib.import_module(m.removesuffix('.__init__'))\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('dagster', 'dagster_dbt', 'dagster_snowflake')]\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "", f"pure layers pulled in: {out}"


def test_the_checker_catches_a_dagster_import(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("from dagster import asset\nimport os\n")
    assert "dagster" in _imports(bad)


def test_every_module_below_the_wiring_postpones_annotations() -> None:
    """``from __future__ import annotations`` everywhere but ``dagster/`` (where Dagster reads some
    annotations at definition time, so each module there is converted on its own)."""
    missing = [
        str(p.relative_to(PKG)) for p in sorted(PKG.rglob("*.py"))
        if p.relative_to(PKG).parts[0] != "dagster" and not any(
            isinstance(n, ast.ImportFrom) and n.module == "__future__" and any(a.name == "annotations" for a in n.names)
            for n in ast.parse(p.read_text()).body)
    ]
    assert not missing, missing
