"""PII by lineage, property-style: random PII-tagged columns renamed through CTEs, aliases and joins
never leave the agent raw — not in an audit event, a log line, a report, check metadata or a finding."""

from __future__ import annotations

import json
import logging
import random
from pathlib import Path

import pytest

from dagster_agent_de.adapters.audit import AuditLog
from dagster_agent_de.adapters.warehouse import DuckDBWarehouse
from dagster_agent_de.core.masking import Masker, configure_masking, load_mask_key, masker
from dagster_agent_de.engines.investigate.context import InvestigationContext
from dagster_agent_de.engines.investigate.models import Failure
from dagster_agent_de.engines.pii_lineage import pii_index
from dagster_agent_de.engines.reconcile import ReconcileSpec, reconcile
from dagster_agent_de.manifest import Manifest
from dagster_agent_de_tests.helpers import duck, stored_audit_text

N_ROWS = 12


def _ident(rng: random.Random) -> str:
    return rng.choice("abcdefghkmnpqrstuvwxyz") + "".join(rng.choice("abcdefghkmnpqrstuvwxyz0123456789") for _ in range(6))


def _world(tmp_path: Path, seed: int):
    """A warehouse, a manifest and the raw PII values, all drawn from ``seed``."""
    rng = random.Random(seed)
    cols = [f"c{i}" for i in range(4)]
    pii = set(rng.sample(cols, 3))  # three tagged columns: used as key, segment and compared column
    key_col, seg_col, cmp_col = rng.sample(sorted(pii), 3)
    alias = {c: _ident(rng) for c in cols}  # renamed in a CTE
    final = {c: _ident(rng) for c in cols}  # renamed again by an alias in the model's select
    token = f"{seed:04d}{rng.randrange(10**6):06d}"
    values = {c: [f"raw{c}v{i}t{token}" if c != seg_col else f"raw{c}seg{i % 3}t{token}" for i in range(N_ROWS)]
              for c in cols}
    rows = ", ".join("(" + ", ".join([str(i)] + [f"'{values[c][i]}'" for c in cols]) + ")" for i in range(N_ROWS))
    model_sql = (
        f'with renamed as (select id, {", ".join(f"{c} as {alias[c]}" for c in cols)} from "wh"."raw"."people"), '
        f"joined as (select r.*, p.id as pid from renamed r join \"wh\".\"raw\".\"people\" p on p.id = r.id) "
        f'select {", ".join(f"upper({alias[c]}) as {final[c]}" if c == cmp_col else f"{alias[c]} as {final[c]}" for c in cols)} '
        f"from joined"
    )
    truth_key = _ident(rng)
    truth_rows = [(values[key_col][i].upper() if key_col == cmp_col else values[key_col][i], values[seg_col][i],
                   values[cmp_col][i].upper() if i % 4 else "different" + token) for i in range(N_ROWS - 2)]
    truth_values = ", ".join(f"('{a}', '{b}', '{c}')" for a, b, c in truth_rows)
    path = duck(
        tmp_path / "wh.duckdb",
        "create schema raw",
        f"create table raw.people as select * from (values {rows}) t(id, {', '.join(cols)})",
        f"create table main.people_model as {model_sql}",
        f"create table raw.truth as select * from (values {truth_values}) t({truth_key}, {final[seg_col]}, cmpval)",
    )
    tagged = {c: {"name": c, "meta": {"agent_de": {"pii": True}}} for c in sorted(pii)}
    manifest = Manifest({
        "nodes": {"model.t.people_model": {
            "name": "people_model", "resource_type": "model", "relation_name": '"wh"."main"."people_model"',
            "package_name": "t", "original_file_path": "models/people_model.sql", "meta": {}, "config": {},
            "columns": {}, "depends_on": {"nodes": ["source.t.raw.people"]}, "compiled_code": model_sql,
        }},
        "sources": {
            "source.t.raw.people": {"name": "people", "source_name": "raw", "resource_type": "source",
                                    "relation_name": '"wh"."raw"."people"', "identifier": "people", "schema": "raw",
                                    "meta": {}, "source_meta": {}, "columns": tagged},
            "source.t.raw.truth": {"name": "truth", "source_name": "raw", "resource_type": "source",
                                   "relation_name": '"wh"."raw"."truth"', "identifier": "truth", "schema": "raw",
                                   "meta": {}, "source_meta": {},
                                   "columns": {truth_key: {"name": truth_key, "meta": {"agent_de": {"pii": True}}}}},
        },
    })
    spec = ReconcileSpec.model_validate(dict(
        name="people_vs_truth", model="people_model", against="source('raw', 'truth')",
        key=[final[key_col]], key_against=[truth_key], segment_by=[final[seg_col]],
        compare={final[cmp_col]: {"against": "cmpval"}}, aggregates=["count(*)"], sample_size=20,
    ))
    raw = {v.lower() for c in pii for v in values[c]}
    return path, manifest, spec, raw, {c: final[c] for c in pii}


@pytest.mark.parametrize("seed", range(6))
def test_no_raw_pii_anywhere(tmp_path: Path, seed: int, caplog: pytest.LogCaptureFixture, state_store) -> None:
    from dagster_agent_de.dagster.translator import AgentDETranslator

    path, manifest, spec, raw, renamed = _world(tmp_path, seed)
    assert pii_index(manifest).relation_pii("wh.main.people_model") == {n.lower() for n in renamed.values()}
    lines: list[str] = []
    audit = AuditLog(state_store, sinks=[lambda e: lines.append(e.one_line())])
    caplog.set_level(logging.DEBUG)
    with DuckDBWarehouse(path, audit) as wh:
        report = reconcile(spec, manifest, wh)
        ctx = InvestigationContext(manifest, wh, Failure(asset="people_model", check=spec.name))
        cols = list(renamed.values())
        probes = [
            f"select {cols[0]} as a, {cols[1]} as b, count(*) as n from main.people_model group by all",
            f"with x as (select {cols[2]} as hidden from main.people_model) select hidden as y from x",
            "select * from main.people_model",
            f"select m.{cols[0]} as k from main.people_model m join raw.people p on p.id is not null limit 3",
            "select c0 as one, c1 as two, c2, c3 from raw.people union all select c1, c2, c3, c0 from raw.people",
        ]
        evidence = [ctx.run(sql, "probe")[1] for sql in probes]
    assert not report.passed and report.samples and report.segments
    texts = [
        report.model_dump_json(), report.summary(), report.to_markdown() if hasattr(report, "to_markdown") else "",
        json.dumps([f.model_dump(mode="json") for f in report.to_findings()]),
        json.dumps({k: str(v.value) for k, v in AgentDETranslator().reconcile_check_result(report).metadata.items()}),
        json.dumps([e.model_dump(mode="json") for e in evidence]),
        stored_audit_text(state_store), "\n".join(lines), caplog.text,
    ]
    blob = "\n".join(texts).lower()
    leaked = sorted(v for v in raw if v in blob)
    assert not leaked, f"raw PII escaped: {leaked[:3]}"
    assert any(ev.rows_sample for ev in evidence) and "pii:" in blob  # the values are there, masked


def test_masking_is_an_hmac_with_a_per_deployment_key(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("AGENT_DE_MASK_KEY", raising=False)
    key = load_mask_key(tmp_path)
    assert load_mask_key(tmp_path) == key and len(key) >= 32  # generated once, kept
    assert (tmp_path / "mask.key").stat().st_mode & 0o077 == 0
    one, other = Masker(key), Masker(load_mask_key(tmp_path / "elsewhere"))
    assert one.mask("ada@example.com") == one.mask("ada@example.com") != other.mask("ada@example.com")
    import hashlib

    assert hashlib.sha256(b"ada@example.com").hexdigest()[:16] not in one.mask("ada@example.com")  # not a plain hash
    monkeypatch.setenv("AGENT_DE_MASK_KEY", "k" * 32)
    assert configure_masking(tmp_path).mask("x") == Masker(b"k" * 32).mask("x") == masker().mask("x")


def test_counts_and_tests_of_pii_are_numbers_not_masked_values() -> None:
    """Detectors read counts over PII columns (through CTEs with ``*``): those carry no value and stay numbers;
    MIN/MAX and pass-through stars return values and are masked."""
    from dagster_agent_de_tests.helpers import make_manifest

    manifest = make_manifest({"customers": '"wh"."main"."customers"'},
                             columns={"customers": {"email": {"meta": {"agent_de": {"pii": True}}}}})
    sql = ("with c as (select * from wh.main.customers) select count(*) as rows_in, "
           "sum(case when c.email is null then 1 else 0 end) as nulls, count(distinct c.email) as n, "
           "typeof(c.email) as t, c.email is null as missing, max(c.email) as top, c.email as contact from c")
    assert pii_index(manifest).pii_outputs(sql) == {"top", "contact"}
    # the join_fanout detector's probe: a window count per e-mail, its max, a difference of counts
    fanout = ("select count(*) as key_rows, count(*) - count(distinct (email)) as extra_rows, max(n) as max_per_key "
              "from (select email, count(*) over (partition by email) as n from wh.main.customers) t")
    assert pii_index(manifest).pii_outputs(fanout) == set()
    ranked = ("with r as (select email, row_number() over (partition by email) as rn, (count(email) + 1) * 2 as x "
              "from wh.main.customers group by all) select rn, x, max(email) over (partition by rn) as m, email || '' as e "
              "from r")
    assert pii_index(manifest).pii_outputs(ranked) == {"m", "e"}
