"""A user's ``AgentDETranslator`` subclass, passed once in library mode, changes the events of real runs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dagster import AssetKey, AssetObservation, DagsterInstance, MetadataValue

from dagster_agent_de import AgentDETranslator, build_agent_de_definitions

CHARGES = AssetKey(["stripe", "charges"])
RUNBOOK = "https://wiki.example.com/runbooks/schema-drift"


class TeamTranslator(AgentDETranslator):
    """The team links its runbook from every drift check and names the owner on every schema it records."""

    def drift_metadata(self, changes, notes=()) -> dict[str, Any]:
        return {**super().drift_metadata(changes, notes), "team/runbook": MetadataValue.url(RUNBOOK)}

    def schema_observation(self, asset_key, table, fingerprint=None):
        obs = super().schema_observation(asset_key, table, fingerprint)
        return AssetObservation(asset_key=obs.asset_key, description=obs.description,
                                metadata={**obs.metadata, "team/owner": MetadataValue.text("data-platform")})


def test_a_translator_subclass_changes_the_events_of_a_real_run(demo_env, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("AGENT_DE_DUCKDB_PATH", str(demo_env.settings.duckdb_path))
    mine = build_agent_de_definitions(dbt_project=demo_env.project_dir, state_dir=tmp_path,
                                      agent_translator=TeamTranslator())
    default = build_agent_de_definitions(dbt_project=demo_env.project_dir, state_dir=tmp_path / "default")
    with DagsterInstance.ephemeral() as instance:
        result = mine.resolve_job_def("schema_drift_check").execute_in_process(instance=instance)
        plain = default.resolve_job_def("schema_drift_check").execute_in_process(instance=instance)
    evals = {e.asset_key: e for e in result.get_asset_check_evaluations()}
    assert evals[CHARGES].passed and evals[CHARGES].metadata["team/runbook"].value == RUNBOOK
    observed = {e.asset_key: e.event_specific_data.asset_observation
                for e in result.all_events if e.event_type_value == "ASSET_OBSERVATION"}
    assert observed[CHARGES].metadata["team/owner"].value == "data-platform"
    assert "dagster/column_schema" in observed[CHARGES].metadata  # the default entries are still there
    # the default translator does neither (the subclass, not the job, made the difference)
    assert all("team/runbook" not in e.metadata for e in plain.get_asset_check_evaluations())
    assert all("team/owner" not in e.event_specific_data.asset_observation.metadata
               for e in plain.all_events if e.event_type_value == "ASSET_OBSERVATION")


def test_the_queue_shows_an_overdue_question_as_overdue_and_still_open() -> None:
    from datetime import timedelta

    from dagster_agent_de.core.models import Escalation, EscalationKind, EscalationOption, utcnow

    def question(i: int, due_in: timedelta) -> Escalation:
        return Escalation(id=f"ESC-{i}", kind=EscalationKind.CONTEXT_GAP, decision="Which column replaces it?",
                          options=[EscalationOption(label="none")], due_at=utcnow() + due_in)

    late, on_time = question(1, -timedelta(hours=1)), question(2, timedelta(days=2))
    md = AgentDETranslator().escalations_metadata([late, on_time])
    assert (md["open"].value, md["overdue"].value) == (2, 1)
    assert [(r.data["id"], r.data["status"]) for r in md["queue"].value.records] == [("ESC-1", "overdue"),
                                                                                      ("ESC-2", "open")]
    assert "state: overdue (was due " in md["detail"].value and "state: open · due " in md["detail"].value
