"""A state dir written by the previous version (file stores) migrates into the store losslessly, once.

The fixture ``fixtures/legacy_state`` was written by the old code itself
(``scripts/make_legacy_state_fixture.py`` run against commit 50409ee).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from dagster_agent_de.adapters.state import open_state_store
from dagster_agent_de.cli import main
from dagster_agent_de.config import resolve_settings
from dagster_agent_de.core.models import AuditEvent, Escalation, parse_finding
from dagster_agent_de.engines.drift import SnapshotStore
from dagster_agent_de.engines.drift.models import Snapshot
from dagster_agent_de.engines.escalate.answering import answer_escalation
from dagster_agent_de.engines.escalate.context_store import load_rules
from dagster_agent_de.engines.escalate.policy import Policy, is_paused

FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "legacy_state"


@pytest.fixture
def legacy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    shutil.copytree(FIXTURE, tmp_path / "old")
    for var in ("AGENT_DE_STATE_URL", "DAGSTER_HOME"):
        monkeypatch.delenv(var, raising=False)
    return tmp_path / "old" / "state", tmp_path / "old" / "project"


def test_old_state_dir_migrates_losslessly_once(legacy: tuple[Path, Path]) -> None:
    state_dir, project = legacy
    old_events = [AuditEvent.model_validate_json(line) for line in
                  (state_dir / "audit" / "audit.jsonl").read_text().splitlines()[:-1]]  # the torn last line aside
    old_escalations = [Escalation.model_validate(e) for e in json.loads((state_dir / "escalations" / "escalations.json").read_text())]
    old_findings = [json.loads(line) for line in (state_dir / "findings" / "findings.jsonl").read_text().splitlines()]
    old_baseline = Snapshot.model_validate_json((state_dir / "drift" / "baseline.json").read_text())
    old_last = Snapshot.model_validate_json((state_dir / "drift" / "last.json").read_text())

    settings = resolve_settings(state_dir, project)
    store = open_state_store(settings)

    assert store.tail_audit(limit=None) == old_events and len(old_events) == 7
    assert store.escalations() == old_escalations and [e.id for e in old_escalations] == ["ESC-1", "ESC-2", "ESC-3"]
    assert [a.by for a in store.escalations()[2].approvals] == ["cfo@shop.example"]  # a four-eyes half-way
    recent = store.recent_findings(10)[::-1]
    assert [parse_finding({k: v for k, v in f.items() if k not in ("run_id", "check")}) for f in recent] == [
        parse_finding({k: v for k, v in f.items() if k not in ("run_id", "check")}) for f in old_findings]
    assert [(f["run_id"], f["check"]) for f in recent] == [("run-a", "orders_vs_stripe"), ("run-b", None)]
    drift = SnapshotStore(store)
    assert drift.baseline() == old_baseline and drift.load("last") == old_last
    assert is_paused(store)
    assert [r.id for r in store.rules()] == ["R-ESC-2"]  # the answer the old version wrote into the project
    assert [r.id for r in load_rules(project, store).rules] == ["R-ESC-2"]  # same rule committed and stored
    assert json.loads(store.get_artifact("onboarding", "billing__invoices") or "{}")["model_name"] == "stg_billing__invoices"
    assert store.get_artifact("entity_map", "dim_customers") == "customer_id,entity_id\n1,1\n2,1\n"

    # the files are kept as a backup, out of the way; a second start imports nothing again
    (backup,) = (state_dir / "backup").iterdir()
    assert (backup / "audit" / "audit.jsonl").read_text() == (FIXTURE / "state" / "audit" / "audit.jsonl").read_text()
    assert (backup / "escalations" / "escalations.json").exists() and not (state_dir / "escalations" / "escalations.json").exists()
    shutil.copytree(FIXTURE / "state" / "audit", state_dir / "audit", dirs_exist_ok=True)  # files put back by hand
    assert len(open_state_store(settings).tail_audit(limit=None)) == 7

    # the migrated queue keeps working: the four-eyes escalation closes with a second, distinct approver
    done = answer_escalation(store, "ESC-3", 0, by="controller@shop.example", policy=Policy())
    assert done.closed and [a.by for a in done.escalation.approvals] == ["cfo@shop.example", "controller@shop.example"]
    assert [e.id for e in store.raise_escalations([old_escalations[0].model_copy(update={"asset": "x"})],
                                                  lambda e, items: False)] == ["ESC-4"]


@pytest.mark.parametrize("content", ["null", "5", "[1]", "{oops"])
def test_a_corrupt_old_file_stops_the_import_naming_it(legacy: tuple[Path, Path], content: str) -> None:
    state_dir, project = legacy
    path = state_dir / "escalations" / "escalations.json"
    path.write_text(content)
    args = ["--state-dir", str(state_dir), "--project-dir", str(project)]
    r = CliRunner().invoke(main, [*args, "escalations", "list"])
    if content == "null":  # an empty store written as null: nothing to import, nothing lost
        assert r.exit_code == 0, r.output
        return
    assert r.exit_code == 2, r.output
    assert str(path) in r.output and "Traceback" not in r.output
    assert (state_dir / "audit" / "audit.jsonl").exists()  # nothing moved, nothing half-imported
    path.write_text("[]")
    ok = CliRunner().invoke(main, [*args, "audit", "tail", "-n", "100"])
    assert ok.exit_code == 0 and ok.output.count("why=") == 7


@pytest.mark.parametrize("body", ["null", "5"])
def test_a_corrupt_stored_row_is_a_clear_cli_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, body: str) -> None:
    from sqlalchemy import insert

    from dagster_agent_de.adapters.state import schema as t

    for var in ("AGENT_DE_STATE_URL", "DAGSTER_HOME"):
        monkeypatch.delenv(var, raising=False)
    store = open_state_store(resolve_settings(tmp_path))
    with store.engine.begin() as conn:  # type: ignore[attr-defined]
        conn.execute(insert(t.escalations).values(id="ESC-7", seq=7, state="open", kind="context_gap", created_at=0.0,
                                                  body=body))
    r = CliRunner().invoke(main, ["--state-dir", str(tmp_path), "escalations", "list"])
    assert r.exit_code == 2 and "Traceback" not in r.output
    assert f"escalations entry ESC-7 holds {body}, not an object; delete or repair that row" in r.output
