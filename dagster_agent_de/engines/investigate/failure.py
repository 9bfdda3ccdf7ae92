"""Rebuild the evidence of a failure outside Dagster (for the CLI and CI)."""

from __future__ import annotations

from pathlib import Path

from dagster_agent_de.adapters.warehouse import Warehouse
from dagster_agent_de.engines.investigate.models import Failure
from dagster_agent_de.manifest import Manifest


def failure_from_check(
    manifest: Manifest, asset: str, check: str | None, warehouse: Warehouse, search_dirs: list[Path]
) -> Failure:
    """What the check reports now: reconciliation numbers, the dbt test, or schema drift."""
    node = manifest.find(asset)
    if check == "schema_drift":
        return Failure(asset=node.display_name, check=check, kind="schema_drift")
    if check:
        from dagster_agent_de.engines.reconcile import parse_specs, reconcile

        for spec in parse_specs(node.name, node.agent_de_meta.get("reconcile")) if not node.is_source else []:
            if spec.name == check:
                report = reconcile(spec, manifest, warehouse, search_dirs=search_dirs)
                md = report.counts() | {"mismatched_columns": [c.column for c in report.columns if c.mismatched]}
                return Failure(asset=node.display_name, check=check, kind="reconciliation", metadata=md)
        for test in manifest.data.get("nodes", {}).values():
            if test.get("resource_type") == "test" and test.get("name") == check:
                return Failure(asset=node.display_name, check=check, kind="dbt_test",
                               metadata={"column": test.get("column_name"),
                                         "test": (test.get("test_metadata") or {}).get("name")})
    return Failure(asset=node.display_name, check=check, kind="other")
