"""Import the file stores of earlier versions (``<state dir>/audit``, ``drift``, ``findings``,
``escalations``, ``paused``, ``proposals``) into the state store, once, keeping the files as a backup.

The import runs when a store is opened for a state dir that still holds those files. Each
file is imported in one transaction per kind and then moved to
``<state dir>/backup/pre-state-store-<timestamp>/``; a file that cannot be read stops the
import with a message naming it (nothing is moved, nothing half-imported is hidden).
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from dagster_agent_de.adapters.state.sql import SqlStateStore
from dagster_agent_de.core.context import ContextRule
from dagster_agent_de.core.models import AuditEvent, Escalation, parse_finding, validation_problems
from dagster_agent_de.core.state import ANY, StateCorruptError

LEGACY_FILES = (
    "audit/audit.jsonl", "findings/findings.jsonl", "escalations/escalations.json",
    "drift/baseline.json", "drift/last.json", "paused",
)
IMPORTED_FLAG = "imported:"


def legacy_files(state_dir: Path) -> list[Path]:
    """The old state files present in ``state_dir`` (proposal directories are copied, not moved)."""
    return [state_dir / rel for rel in LEGACY_FILES if (state_dir / rel).is_file()]


def _corrupt(path: Path, what: str) -> StateCorruptError:
    return StateCorruptError(f"{path}: {what}; repair the file or move it out of the state directory, then retry")


def _jsonl(path: Path) -> list[tuple[int, Any]]:
    rows = []
    lines = path.read_text().splitlines()
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            rows.append((n, json.loads(line)))
        except ValueError as e:
            if n == len(lines):
                continue  # a torn last line (a process killed mid-write): the old reader skipped it too
            raise _corrupt(path, f"line {n} is not JSON ({e})") from e
    return rows


def _model(validate: Callable[[Any], Any], data: Any, path: Path, where: str) -> Any:
    if not isinstance(data, dict):
        raise _corrupt(path, f"{where} holds {json.dumps(data)[:40]}, expected an object")
    try:
        return validate(data)
    except ValidationError as e:
        raise _corrupt(path, f"{where} is invalid ({validation_problems(e)})") from e


def read_legacy(state_dir: Path) -> dict[str, Any]:
    """Parse every old file first, so a corrupt one stops the import before anything is written."""
    out: dict[str, Any] = {"audit": [], "findings": [], "escalations": [], "snapshots": {}, "paused": None}
    path = state_dir / "audit" / "audit.jsonl"
    if path.is_file():
        out["audit"] = [_model(AuditEvent.model_validate, d, path, f"line {n}") for n, d in _jsonl(path)]
    path = state_dir / "findings" / "findings.jsonl"
    if path.is_file():
        for n, d in _jsonl(path):
            if not isinstance(d, dict):
                raise _corrupt(path, f"line {n} holds {json.dumps(d)[:40]}, expected an object")
            meta = {"run_id": d.pop("run_id", None), "check": d.pop("check", None)}
            out["findings"].append((_model(parse_finding, d, path, f"line {n}"), meta))
    path = state_dir / "escalations" / "escalations.json"
    if path.is_file():
        try:
            items = json.loads(path.read_text())
        except ValueError as e:
            raise _corrupt(path, f"not JSON ({e})") from e
        if items is None:
            items = []
        if not isinstance(items, list):
            raise _corrupt(path, f"holds {json.dumps(items)[:40]}, expected a JSON list of escalations")
        out["escalations"] = [_model(Escalation.model_validate, d, path, f"entry #{i + 1}") for i, d in enumerate(items)]
    for name in ("baseline", "last"):
        path = state_dir / "drift" / f"{name}.json"
        if path.is_file():
            try:
                data = json.loads(path.read_text())
            except ValueError as e:
                raise _corrupt(path, f"not JSON ({e})") from e
            if data is None:
                continue
            if not isinstance(data, dict) or "tables" not in data:
                raise _corrupt(path, f"holds {json.dumps(data)[:40]}, expected a schema snapshot object")
            out["snapshots"][name] = json.dumps(data)
    path = state_dir / "paused"
    if path.is_file():
        out["paused"] = path.read_text().strip() or "paused"
    return out


def _answered_rules(project_dir: Path | None) -> list[ContextRule]:
    """Rules the old version wrote into the project's context file when an escalation was answered."""
    from dagster_agent_de.engines.escalate.context_store import CONTEXT_FILE, parse_rules

    path = project_dir / CONTEXT_FILE if project_dir else None
    if path is None or not path.is_file():
        return []
    return [r for r in parse_rules(path.read_text(), path) if r.source.startswith("ESC-")]


def import_legacy(store: SqlStateStore, state_dir: Path, project_dir: Path | None = None) -> dict[str, int]:
    """Import the old files of ``state_dir`` into ``store`` once; returns counts per kind (empty if none).

    The answers the old version wrote into ``project_dir``'s ``agent_de_context.yml`` are imported as
    stored rules too (the file stays where it is, as the committed base layer).
    """
    files = legacy_files(state_dir)
    proposals = state_dir / "proposals"
    if not files:
        return {}
    marker = IMPORTED_FLAG + str(state_dir.resolve())
    if store.get_flag(marker):
        return {}  # imported already; files left behind by a crash before the move stay as they are
    data = read_legacy(state_dir)
    rules = _answered_rules(project_dir)
    artifacts: list[tuple[str, str, str]] = []
    if proposals.is_dir():
        artifacts += [("onboarding", p.parent.name, p.read_text()) for p in sorted(proposals.glob("*/proposal.json"))]
        artifacts += [("entity_map", p.stem, p.read_text()) for p in sorted((proposals / "entities").glob("*.csv"))]
    counts = {"audit": len(data["audit"]), "findings": len(data["findings"]), "escalations": 0,
              "snapshots": len(data["snapshots"]), "artifacts": len(artifacts), "rules": len(rules)}
    with store.import_transaction(marker) as tx:  # all or nothing, and only once
        if tx is None:
            return {}
        for event in data["audit"]:
            tx.append_audit(event)
        for finding, meta in data["findings"]:
            tx.record_findings([finding], run_id=meta["run_id"], check=meta["check"])
        for esc in data["escalations"]:
            counts["escalations"] += int(tx.import_escalation(esc))
        for name, body in data["snapshots"].items():
            tx.save_snapshot(name, body, if_current=ANY)
        if data["paused"]:
            tx.set_flag("paused", data["paused"])
        for kind, name, body in artifacts:
            tx.put_artifact(kind, name, body)
        for rule in rules:
            tx.put_rule(rule)
        tx.set_flag(marker, json.dumps(counts | {"at": time.time()}))
    backup = state_dir / "backup" / f"pre-state-store-{time.strftime('%Y%m%dT%H%M%S')}"
    for f in files:
        dest = backup / f.relative_to(state_dir)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(f), dest)
    return counts
