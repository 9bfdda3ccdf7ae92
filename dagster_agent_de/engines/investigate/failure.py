"""What kind of failure a failed check is (one classification for the CLI and Dagster), and its
evidence rebuilt outside Dagster (for the CLI, CI and re-investigations)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dagster_agent_de.adapters.warehouse import Warehouse
from dagster_agent_de.engines.investigate.models import Failure, FailureKind, Symptom
from dagster_agent_de.errors import AgentDEError, ConfigError
from dagster_agent_de.manifest import Manifest, Node

# the symptom of a failed dbt test, by its generic test's name (``test_metadata.name``)
TEST_SYMPTOMS: dict[str, Symptom] = {
    "unique": "duplicates", "unique_combination_of_columns": "duplicates",
    "not_null": "nulls", "accepted_values": "unaccepted_values", "relationships": "orphans",
}

# checks the agent defines on every source (dagster/drift.py, dagster/pii.py) and on models (dagster/volume.py)
SOURCE_CHECKS = ("schema_drift", "pii_tagging")
MODEL_CHECKS = ("row_volume",)


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
    out += list(SOURCE_CHECKS if node.is_source else MODEL_CHECKS)
    return sorted(dict.fromkeys(out))


def _intent_checks(manifest: Manifest, node: Node) -> list[str]:
    from dagster_agent_de.engines.intents import INVALID_CHECK, read_intents
    from dagster_agent_de.engines.intents.intents import check_name

    intents, invalid = read_intents(manifest)
    return [check_name(i) for i in intents if i.model == node.name] + [INVALID_CHECK for b in invalid if b.model == node.name]


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
    kind = failure_kind(manifest, node, check)
    if kind == "reconciliation":
        return Failure(asset=node.display_name, check=check, kind=kind,
                       metadata=reconciliation_now(manifest, node, check, warehouse, search_dirs, strict=True))
    test = find_dbt_test(manifest, check, node) if kind == "dbt_test" else None
    if test is not None:
        return Failure(asset=node.display_name, check=check, kind=kind,
                       metadata={"column": test.get("column_name"), "test": (test.get("test_metadata") or {}).get("name"),
                                 **dbt_test_now(manifest, check, warehouse, node)})
    return Failure(asset=node.display_name, check=check, kind=kind)


def reconciliation_now(manifest: Manifest, node: Node, check: str | None, warehouse: Warehouse,
                       search_dirs: list[Path], *, strict: bool = False) -> dict[str, Any]:
    """The reconciliation ``check`` of ``node`` run again (read-only: the pushed-down comparison): its numbers,
    the mismatched columns and ``passed``.

    ``{}`` when the spec is gone (renamed since the failure) or it cannot run now (no claim either way);
    with ``strict`` (the CLI, measuring the failure for the first time) those errors are raised.
    """
    from dagster_agent_de.engines.reconcile import reconcile
    from dagster_agent_de.errors import AgentDEError

    try:
        spec = next((s for s in _reconcile_specs(node, strict=strict) if s.name == check), None)
        if spec is None:
            if strict:
                raise ConfigError(f"{check!r} is not a reconcile spec of {node.display_name}")
            return {}
        report = reconcile(spec, manifest, warehouse, search_dirs=search_dirs)
    except AgentDEError:
        if strict:
            raise
        return {}
    return report.counts() | {"mismatched_columns": [c.column for c in report.columns if c.mismatched],
                              "passed": report.passed}


def dbt_test_now(manifest: Manifest, check: str | None, warehouse: Warehouse, node: Node | None = None) -> dict[str, Any]:
    """The dbt test measured again: its compiled SQL run read-only through the audited warehouse.

    ``{"failing_rows_now": n, "passed": n == 0}``; ``{}`` when the test was never compiled or its
    query cannot run here (no claim either way). A test that fails only above a threshold
    (``error_if``) is not said to pass unless it returns no row at all.
    """
    import sqlglot
    from sqlglot import exp

    from dagster_agent_de.errors import AgentDEError, StatementRefusedError

    test = find_dbt_test(manifest, check, node) if check else None
    sql = manifest.compiled_test_sql(test) if test is not None else None
    if not sql:
        return {}
    try:
        inner = sqlglot.parse_one(sql.strip().rstrip(";"), read=warehouse.dialect)
    except sqlglot.errors.ParseError:
        return {}
    if not isinstance(inner, exp.Query):
        return {}
    count = exp.select(exp.alias_(exp.Count(this=exp.Star()), "failing_rows")).from_(inner.subquery("dbt_internal_test"))
    try:
        res = warehouse.query(count.sql(dialect=warehouse.dialect),
                              rationale=f"does the dbt test {check} still return failing rows? (its compiled SQL, again)")
    except (AgentDEError, StatementRefusedError):
        return {}
    n = int(res.rows[0][0] or 0) if res.rows else 0
    return {"failing_rows_now": n, "passed": n == 0}


def _reconcile_specs(node: Node, *, strict: bool = True) -> list[Any]:
    """The node's reconcile specs; an invalid block raises its ``SpecError`` (with ``strict``) or gives none."""
    from dagster_agent_de.engines.reconcile import parse_specs
    from dagster_agent_de.errors import SpecError

    if node.is_source:
        return []
    try:
        return list(parse_specs(node.name, node.agent_de_meta.get("reconcile")))
    except SpecError:
        if strict:
            raise
        return []


def find_dbt_test(manifest: Manifest, check: str | None, node: Node | None = None) -> dict[str, Any] | None:
    """The dbt test called ``check``: the one on ``node`` when given (a package may hold a test of the same name
    on its own model, ``unique_orders_id``; Dagster names a check by the test's name under its asset), else any."""
    tests = [t for t in manifest.data.get("nodes", {}).values() if t.get("resource_type") == "test" and t.get("name") == check]
    if node is not None:
        on_node = [t for t in tests if (t.get("attached_node") or "") == node.unique_id
                   or node.unique_id in (t.get("depends_on") or {}).get("nodes", [])]
        tests = on_node or tests
    return tests[0] if tests else None


def failure_kind(manifest: Manifest, node: Node, check: str | None, metadata: dict[str, Any] | None = None) -> FailureKind:
    """The kind of a failed ``check`` on ``node``: by what the project declares, not by the check's name.

    ``metadata`` (the evaluation's, when Dagster recorded one) settles a reconciliation whose spec
    has since been renamed.
    """
    if check == "schema_drift":
        return "schema_drift"
    if check == "model_runtime":
        return "performance"
    if not check:
        return "other"
    if "missing_pct" in (metadata or {}) or any(s.name == check for s in _reconcile_specs(node, strict=False)):
        return "reconciliation"
    if find_dbt_test(manifest, check, node) is not None:
        return "dbt_test"
    return "other"


def failure_symptom(manifest: Manifest, failure: Failure) -> Symptom | None:
    """What the failed check says is wrong with the rows (``models.CANNOT_CAUSE`` says which patterns
    cannot cause it): by the dbt test's generic test, or the agent's not-NULL intents; ``None`` for
    reconciliations, singular tests and the rest.

    >>> failure_symptom(Manifest({"nodes": {}}), Failure(asset="m", check="intent_not_null_email"))
    'nulls'
    """
    check = failure.check or ""
    if check.startswith("intent_not_null_") or check == "intent_summed_inputs_not_null":
        return "nulls"
    try:
        node: Node | None = manifest.find(failure.asset)
    except AgentDEError:
        node = None
    test = find_dbt_test(manifest, check, node) if check else None
    name = str(((test or {}).get("test_metadata") or {}).get("name") or "")
    return TEST_SYMPTOMS.get(name)
