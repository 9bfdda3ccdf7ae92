"""The translator is the one seam to Dagster: no other module builds a Dagster event or metadata entry.

Every ``AssetCheckResult``, observation, materialization, ``Output`` with metadata and ``MetadataValue``
comes from ``dagster/translator.py``, so a user's ``AgentDETranslator`` subclass changes all of them.
Names are resolved through each module's imports, so the agent's own ``TableSchema`` (a drift
snapshot model) is not mistaken for Dagster's.
"""

from __future__ import annotations

import ast
from pathlib import Path

import dagster_agent_de

PKG = Path(dagster_agent_de.__file__).parent
SEAM = PKG / "dagster" / "translator.py"

EVENTS = {"AssetCheckResult", "AssetCheckEvaluation", "AssetObservation", "AssetMaterialization", "MaterializeResult",
          "ObserveResult", "TableRecord", "TableSchema", "TableColumn", "TableColumnConstraints", "TableColumnLineage"}
"""Dagster classes that are events or metadata values (built only by the translator)."""


def _dagster_names(tree: ast.AST) -> tuple[dict[str, str], set[str]]:
    """(local name -> Dagster name) of ``from dagster import ...``, and the local names of ``import dagster``."""
    names: dict[str, str] = {}
    modules: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "dagster":
            for alias in node.names:
                names[alias.asname or alias.name] = alias.name
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "dagster":
                    modules.add((alias.asname or alias.name).split(".")[0])
    return names, modules


def _dagster_name(node: ast.AST, names: dict[str, str], modules: set[str]) -> str | None:
    """The Dagster name ``node`` refers to (``X`` imported from dagster, or ``dagster.X``), else None."""
    if isinstance(node, ast.Name):
        return names.get(node.id)
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in modules:
        return node.attr
    return None


def violations(source: str) -> list[str]:
    """Where ``source`` builds a Dagster event or metadata entry itself (line: what)."""
    tree = ast.parse(source)
    names, modules = _dagster_names(tree)
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            name = _dagster_name(node.func, names, modules)
            if name in EVENTS:
                found.append((node.lineno, f"{name}(...)"))
            elif name == "Output" and any(k.arg == "metadata" for k in node.keywords):
                found.append((node.lineno, "Output(..., metadata=...)"))
        elif isinstance(node, ast.Attribute) and _dagster_name(node.value, names, modules) == "MetadataValue":
            found.append((node.lineno, f"MetadataValue.{node.attr}"))
    return [f"{line}: {what}" for line, what in sorted(found)]


def test_the_rule_sees_each_way_of_building_an_event() -> None:
    """The checker itself: every form it must catch is caught, the agent's own models are not."""
    sample = (
        "import dagster as dg\n"
        "from dagster import AssetCheckResult as ACR, MetadataValue, Output, AssetObservation\n"
        "from dagster_agent_de.engines.drift.models import TableSchema\n"
        "ACR(passed=True)\n"
        "dg.AssetMaterialization(asset_key='a')\n"
        "AssetObservation(asset_key='a')\n"
        "MetadataValue.int(1)\n"
        "Output(1, metadata={'a': 1})\n"
        "Output(1)\n"
        "TableSchema(relation='x')\n"
    )
    assert violations(sample) == ["4: AssetCheckResult(...)", "5: AssetMaterialization(...)",
                                  "6: AssetObservation(...)", "7: MetadataValue.int", "8: Output(..., metadata=...)"]


def test_only_the_translator_builds_dagster_events() -> None:
    modules = sorted(PKG.rglob("*.py"))
    assert SEAM in modules and len(modules) > 100
    assert violations(SEAM.read_text())  # the seam itself does build them (the rule is not vacuous)
    offenders = {str(p.relative_to(PKG)): v for p in modules if p != SEAM and (v := violations(p.read_text()))}
    assert offenders == {}, f"build these through AgentDETranslator: {offenders}"
