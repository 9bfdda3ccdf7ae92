"""Rebuild the evidence of a failure outside Dagster (for the CLI and CI)."""

from __future__ import annotations

from pathlib import Path

from dagster_agent_de.adapters.warehouse import Warehouse
from dagster_agent_de.engines.investigate.models import Failure
from dagster_agent_de.errors import ConfigError
from dagster_agent_de.manifest import Manifest, Node

# checks the agent defines on every model or source (see dagster/volume.py, dagster/pii.py, dagster/drift.py)
AGENT_CHECKS = ("schema_drift", "row_volume", "pii_tagging")


def known_checks(manifest: Manifest, node: Node) -> list[str]:
    """Every check that can fail on ``node``: its dbt tests, reconcile specs, intents and the agent's own."""
    from dagster_agent_de.engines.reconcile import parse_specs

    out: list[str] = []
    for test in manifest.data.get("nodes", {}).values():
        if test.get("resource_type") == "test" and node.unique_id in (test.get("depends_on") or {}).get("nodes", []):
            out.append(str(test.get("name")))
    if not node.is_source:
        out += [spec.name for spec in parse_specs(node.name, node.agent_de_meta.get("reconcile"))]
        out += _intent_checks(manifest, node)
        out.append("intent_summed_inputs_not_null")  # derived from lineage (see dagster/intents.py)
        out.append("model_runtime")  # see dagster/runtime.py
    out += list(AGENT_CHECKS)
    return sorted(dict.fromkeys(out))


def _intent_checks(manifest: Manifest, node: Node) -> list[str]:
    from dagster_agent_de.engines.intents import intents_from_manifest
    from dagster_agent_de.engines.intents.intents import check_name

    try:
        return [check_name(i) for i in intents_from_manifest(manifest) if i.model == node.name]
    except ConfigError:
        return []


def failure_from_check(
    manifest: Manifest, asset: str, check: str | None, warehouse: Warehouse, search_dirs: list[Path],
    *, strict: bool = False,
) -> Failure:
    """What the check reports now: reconciliation numbers, the dbt test, or schema drift.

    With ``strict`` (the CLI), a ``check`` that does not exist on the asset is a :class:`ConfigError`
    listing the checks that do (derived intents, which the project does not declare, are accepted
    by their ``intent_`` prefix).
    """
    node = manifest.find(asset)
    if check and strict:
        known = known_checks(manifest, node)
        if check not in known and not check.startswith("intent_not_null_"):
            raise ConfigError(f"--check {check!r} is not a check of {node.display_name}; its checks are: "
                              f"{', '.join(known)}")
    if check == "schema_drift":
        return Failure(asset=node.display_name, check=check, kind="schema_drift")
    if check == "model_runtime":
        return Failure(asset=node.display_name, check=check, kind="performance")
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
