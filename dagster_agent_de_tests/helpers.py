"""Small builders shared by tests (one place, not copied per test file)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dagster_agent_de.demo.data import execute_sql
from dagster_agent_de.manifest import Manifest


def make_manifest(models: dict[str, str], *, meta: dict[str, dict[str, Any]] | None = None,
                  sources: dict[tuple[str, str], str] | None = None,
                  columns: dict[str, dict[str, Any]] | None = None) -> Manifest:
    """A minimal manifest: ``models`` maps model name to relation name."""
    nodes = {}
    for name, relation in models.items():
        nodes[f"model.t.{name}"] = {
            "name": name, "resource_type": "model", "relation_name": relation, "package_name": "t",
            "original_file_path": f"models/{name}.sql", "meta": (meta or {}).get(name, {}), "config": {},
            "columns": (columns or {}).get(name, {}), "depends_on": {"nodes": []},
        }
    srcs = {}
    for (s, t), relation in (sources or {}).items():
        srcs[f"source.t.{s}.{t}"] = {
            "name": t, "source_name": s, "resource_type": "source", "relation_name": relation,
            "identifier": t, "schema": s, "meta": {}, "source_meta": {}, "columns": {},
        }
    return Manifest({"nodes": nodes, "sources": srcs})


def duck(path: Path, *statements: str) -> Path:
    execute_sql(path, *statements)
    return path


GOLDEN_DIR = Path(__file__).parent / "fixtures" / "golden"


def golden(name: str, actual: str) -> None:
    """Compare ``actual`` with the golden file ``fixtures/golden/<name>``; ``AGENT_DE_UPDATE_GOLDEN=1`` rewrites it."""
    import os

    path = GOLDEN_DIR / name
    if os.environ.get("AGENT_DE_UPDATE_GOLDEN") == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(actual)
    assert path.exists(), f"no golden file {path}; write it with AGENT_DE_UPDATE_GOLDEN=1 and review it"
    assert actual == path.read_text(), f"{name} differs from its golden file {path} (AGENT_DE_UPDATE_GOLDEN=1 rewrites it)"


def stored_audit_text(store: Any) -> str:
    """Every audit row exactly as the state store holds it (to prove what never reaches it)."""
    from sqlalchemy import select

    from dagster_agent_de.adapters.state.schema import audit_events

    with store.engine.connect() as conn:
        return "\n".join(conn.execute(select(audit_events.c.body).order_by(audit_events.c.id)).scalars())


def drop_escalations(store: Any, keep: Any) -> None:
    """Delete the escalations ``keep(e)`` rejects (tests sharing one demo leave its queue as they found it)."""
    from sqlalchemy import delete

    from dagster_agent_de.adapters.state.schema import approvals, escalations

    gone = [e.id for e in store.escalations() if not keep(e)]
    with store.engine.begin() as conn:
        conn.execute(delete(approvals).where(approvals.c.escalation_id.in_(gone)))
        conn.execute(delete(escalations).where(escalations.c.id.in_(gone)))
