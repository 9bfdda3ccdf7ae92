"""Entity resolution on constructed customers: merges only at high confidence, the rest asked."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from dagster_agent_de.adapters.audit import AuditLog
from dagster_agent_de.adapters.warehouse import DuckDBWarehouse
from dagster_agent_de.core.models import EscalationKind
from dagster_agent_de.engines.entities import (
    EntitySpec,
    pair_escalation,
    resolve_entities,
    specs_from_manifest,
)
from dagster_agent_de.errors import SpecError
from dagster_agent_de_tests.helpers import duck, make_manifest

SPEC = EntitySpec(model="customers", key="customer_id", match={"email": "email", "name": "full_name", "phone": "phone"})


@pytest.fixture
def customers(tmp_path: Path) -> Path:
    return duck(tmp_path / "wh.duckdb", """create table customers as select * from (values
        (1, 'Ann Lee',      'ann.lee@shop.test',      '+1 (555) 010-1000'),
        (2, 'Ann Lee',      ' ANN.LEE+promo@shop.test', null),                -- same person, tagged address: merge
        (3, 'Ann  Lee',     'a.lee@other.test',       '555 010 1000'),        -- same phone, same name: merge (joins 1 and 2)
        (4, 'Bob Stone',    'family@home.test',       null),
        (5, 'Carla Stone',  'family@home.test',       null),                  -- shared mailbox, different names: ask
        (6, 'Dan Wu',       'dan@wu.test',            '+44 20 7946 0000'),
        (7, 'Eve Park',     'eve@park.test',          '+44 20 7946 0000'),    -- same phone only: ignored
        (8, 'Fay Moss',     'fay@moss.test',          null)
    ) t(customer_id, full_name, email, phone)""")


def _run(path: Path, rules=None):
    audit = AuditLog(None)
    with DuckDBWarehouse(path, audit) as wh:
        return resolve_entities(SPEC, make_manifest({"customers": '"wh"."main"."customers"'}), wh, rules), audit


def test_merges_only_high_confidence_pairs_and_asks_about_the_middle_band(customers: Path) -> None:
    r, audit = _run(customers)
    assert r.rows == 8 and not r.truncated
    assert {(p.key_a, p.key_b) for p in r.merged} == {(1, 2), (1, 3)}
    assert r.entity_map == {1: 1, 2: 1, 3: 1}
    assert [(p.key_a, p.key_b, p.confidence) for p in r.review] == [(4, 5, 0.9)]
    assert "shared mailbox" in r.review[0].reason
    assert r.csv().splitlines() == ["customer_id,entity_id", "1,1", "2,1", "3,1"]
    assert len([e for e in audit.events if e.kind == "query"]) == 2  # block sizes, then the pairs: pushed down; the table never comes to Python
    esc = pair_escalation(SPEC, r.review[0])
    assert esc.kind == EscalationKind.CONTEXT_GAP and esc.applies_to == ["customers:4~5"] and esc.recommendation is None


@dataclass
class Rule:
    applies_to: list[str]
    suppresses: list[str] = field(default_factory=list)


def test_answers_are_used_next_time(customers: Path) -> None:
    same, _ = _run(customers, [Rule(["customers:4~5"], ["entity_review"])])
    assert same.review == [] and same.entity_map[5] == 4
    apart, _ = _run(customers, [Rule(["customers:4~5"], ["entity_match"])])
    assert apart.review == [] and 5 not in apart.entity_map


def test_spec_errors_name_the_model_and_field() -> None:
    bad = make_manifest({"customers": "x"}, meta={"customers": {"agent_de": {"entities": {"key": "id", "match": {"name": "n"}}}}})
    with pytest.raises(SpecError, match="model customers: meta.agent_de.entities is invalid.*needs email or phone"):
        specs_from_manifest(bad)
    bad = make_manifest({"customers": "x"}, meta={"customers": {"agent_de": {"entities": {
        "key": "id", "match": {"email": "e"}, "auto_merge_at": 0.8, "review_at": 0.9}}}})
    with pytest.raises(SpecError, match="review_at \\(0.9\\) must be below auto_merge_at \\(0.8\\)"):
        specs_from_manifest(bad)


def test_a_value_shared_by_many_records_is_not_an_identifier(tmp_path: Path) -> None:
    """Placeholder e-mails ('' or noreply@) would pair everyone with everyone: they are left out, and said."""
    path = duck(tmp_path / "wh.duckdb", """create table customers as
        select range as customer_id, 'Person ' || range as full_name,
               case when range < 500 then 'noreply@shop.test' else 'p' || range || '@mail.test' end as email,
               null as phone
        from range(600)
        union all select 1000, 'Zoe Grant', 'P599@MAIL.TEST', null""")
    r, audit = _run(path)
    assert r.rows == 601 and not r.truncated
    assert [(p.key_a, p.key_b) for p in r.review] == [(599, 1000)]  # same e-mail, names disagree
    assert r.merged == [] and r.notes == [
        "1 email value(s) shared by more than 20 records each (largest: 500) identify nobody and were not used to match"]
    assert "noreply" not in " ".join(r.notes)
