"""Resolve a spec's ``against`` into a relation on some warehouse.

Same warehouse (pushed down): ``source()``, ``ref()``, a relation name, and on DuckDB also a
file (CSV/Parquet, staged by the adapter into a session-local view) or an HTTP source (loaded
into a session-local view the same way); the agent's session itself never reads files. Otherwise the
truth lives on another connection (a spec's ``connection``: a DuckDB file or a PostgreSQL database such
as the application's) and the engine uses checksum bisection.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from dagster_agent_de.adapters.audit import AuditLog
from dagster_agent_de.adapters.warehouse import DuckDBWarehouse, Warehouse
from dagster_agent_de.engines.reconcile.spec import Connection, PostgresConnection, ReconcileSpec
from dagster_agent_de.errors import SpecError, WarehouseUnavailableError
from dagster_agent_de.manifest import Manifest

_SOURCE = re.compile(r"^\s*source\(\s*['\"]([^'\"]+)['\"]\s*,\s*['\"]([^'\"]+)['\"]\s*\)\s*$")
_REF = re.compile(r"^\s*ref\(\s*['\"]([^'\"]+)['\"]\s*\)\s*$")


@dataclass
class Truth:
    """Where the source of truth is: ``warehouse`` (maybe the pipeline's own) and ``relation`` SQL."""

    warehouse: Warehouse
    relation: str
    label: str
    same_warehouse: bool
    owned: bool = False  # the engine opened this connection and must close it

    def close(self) -> None:
        if self.owned:
            self.warehouse.close()


def open_connection(connection: Connection, audit: AuditLog) -> Warehouse:
    """Open a spec's ``connection`` read-only (the engine closes it when the reconciliation ends)."""
    if isinstance(connection, PostgresConnection):
        from dagster_agent_de.adapters.warehouse.postgres import PostgresWarehouse

        return PostgresWarehouse.from_profile_output(connection.profile_output(), audit)
    return DuckDBWarehouse(Path(connection.path), audit,
                           missing_fix="the spec's connection names it; point its path at the DuckDB file to read")


def resolve_truth(
    spec: ReconcileSpec,
    manifest: Manifest,
    warehouse: Warehouse,
    *,
    search_dirs: list[Path],
    audit: AuditLog,
) -> Truth:
    against = spec.against.strip()
    if spec.connection is not None:
        connection = spec.connection
        if isinstance(connection, str):
            from dagster_agent_de.engines.reconcile.connections import named_connection

            try:
                connection = named_connection(connection, manifest.project_dir)
            except SpecError as e:
                raise SpecError(f"model {spec.model}, reconcile spec {spec.name!r}: {e}") from e
        return Truth(open_connection(connection, audit), against, f"{against} on {connection.describe()}",
                     same_warehouse=False, owned=True)
    if m := _SOURCE.match(against):
        node = manifest.source(m.group(1), m.group(2))
        return Truth(warehouse, node.relation_name or "", against, same_warehouse=True)
    if m := _REF.match(against):
        node = manifest.find(m.group(1))
        return Truth(warehouse, node.relation_name or "", against, same_warehouse=True)
    if against.startswith("file:"):
        raw = Path(against[len("file:"):])
        candidates = [raw] if raw.is_absolute() else [d / raw for d in search_dirs]
        found = next((c for c in candidates if c.exists()), None)
        if found is None:
            raise WarehouseUnavailableError(
                f"source of truth file {raw} not found (looked in {', '.join(str(c) for c in candidates)})"
            )
        name = f"_agent_de_truth_{spec.name}"
        if isinstance(warehouse, DuckDBWarehouse):
            warehouse.stage_file(name, found.resolve())
            return Truth(warehouse, name, against, same_warehouse=True)
        local = DuckDBWarehouse.in_memory(audit)
        local.stage_file(name, found.resolve())
        return Truth(local, name, against, same_warehouse=False, owned=True)
    if against == "http":
        assert spec.http is not None
        import pandas as pd

        from dagster_agent_de.adapters.http_source import fetch_json_pages

        rows = fetch_json_pages(
            spec.http.url, audit, records=spec.http.records, next_key=spec.http.next,
            auth_env=spec.http.auth_env, max_pages=spec.http.max_pages, timeout_s=spec.http.timeout_s,
            total_timeout_s=spec.http.total_timeout_s, max_bytes=spec.http.max_bytes,
            rationale=f"load the source of truth of {spec.model}.{spec.name}",
        )
        frame = pd.DataFrame.from_records(rows)
        name = f"_agent_de_truth_{spec.name}"
        if isinstance(warehouse, DuckDBWarehouse):
            warehouse.register_dataframe(name, frame)
            return Truth(warehouse, name, f"http {spec.http.url}", same_warehouse=True)
        local = DuckDBWarehouse.in_memory(audit)
        local.register_dataframe(name, frame)
        return Truth(local, name, f"http {spec.http.url}", same_warehouse=False, owned=True)
    if re.match(r"^[A-Za-z_\"][\w\".$]*$", against):
        return Truth(warehouse, against, against, same_warehouse=True)
    raise SpecError(
        f"model {spec.model}, reconcile spec {spec.name!r}: against {against!r} is not source('s','t'), "
        "ref('m'), a relation name, 'file:PATH' or 'http'"
    )
