"""unmatched_left_join: a not-NULL check fails because a LEFT JOIN found no row on its right side.

On the team's own project (real ``dbt parse``, the team's loader, its models as views in DuckDB) and
on CTE-chain models; NULLs the right side holds itself are never blamed on the join.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from dagster_agent_de.adapters.audit import AuditLog
from dagster_agent_de.adapters.warehouse import DuckDBWarehouse
from dagster_agent_de.engines.intents import evaluate_intent, intents_from_manifest
from dagster_agent_de.engines.investigate import Failure, investigate
from dagster_agent_de.engines.investigate.context import InvestigationContext
from dagster_agent_de.engines.investigate.detectors import unmatched_left_join
from dagster_agent_de.engines.investigate.failure import failure_from_check
from dagster_agent_de.manifest import Manifest
from dagster_agent_de_tests.conftest import TEAM_PROJECT
from dagster_agent_de_tests.engines.test_detectors import ORDERS, SRC, ctx_for, project
from dagster_agent_de_tests.helpers import duck

IMPORTS = ("with orders as (\n    select * from {{ source('raw', 'orders') }}\n),\n"
           "customers as (\n    select * from {{ source('raw', 'customers') }}\n),\n")
FINAL = ("final as (\n    select orders.id, orders.customer_id, customers.segment\n    from orders\n"
         "    left join customers on orders.customer_id = customers.customer_id\n)\nselect * from final\n")
NOT_NULL_SEGMENT = Failure(asset="m", check="not_null_m_segment", kind="dbt_test",
                           metadata={"column": "segment", "test": "not_null"})


def _team_project(tmp_path: Path) -> tuple[Manifest, DuckDBWarehouse]:
    """The team's project with a not_null test and a not_null intent on orders.region, parsed by dbt;
    its raw data loaded by the team's loader (orders 1-20 reference customers not loaded yet)."""
    from dagster_agent_de.project import dbt_executable

    project = tmp_path / "acme"
    shutil.copytree(TEAM_PROJECT, project, ignore=shutil.ignore_patterns("target", "logs", "warehouse", "__pycache__"))
    yml = project / "models" / "marts" / "_marts.yml"
    yml.write_text(yml.read_text()
                   .replace("        owner: analytics\n",
                            "        owner: analytics\n        agent_de:\n          intents:\n"
                            "            - {kind: not_null, column: region, why: \"revenue is reported by region\"}\n", 1)
                   .replace("        agent_de:\n          reconcile:", "          reconcile:", 1)
                   .replace("        data_tests: [unique, not_null]\n",
                            "        data_tests: [unique, not_null]\n      - name: region\n        data_tests: [not_null]\n", 1))
    sys.path.insert(0, str(project))
    try:
        from seed_data import load_raw  # the team's loader
    finally:
        sys.path.remove(str(project))
    load_raw(project / "warehouse" / "acme_dev.duckdb")
    env = {k: v for k, v in os.environ.items() if k not in ("AGENT_DE_DUCKDB_PATH", "DBT_TARGET", "DBT_PROFILES_DIR")}
    proc = subprocess.run([dbt_executable(), "parse", "--quiet", "--project-dir", str(project), "--profiles-dir",
                           str(project)], cwd=project, capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    manifest = Manifest.load(project / "target" / "manifest.json", project)
    db = project / "warehouse" / "acme_dev.duckdb"
    duck(db, *[f"create view main.{name} as {manifest.compiled_sql(manifest.find(name).unique_id)}"
               for name in ("stg_orders", "stg_customers", "orders")])
    return manifest, DuckDBWarehouse(db, AuditLog(None))


def test_the_teams_region_is_null_for_orders_whose_customer_is_not_loaded(tmp_path: Path) -> None:
    manifest, wh = _team_project(tmp_path)
    intent = next(i for i in intents_from_manifest(manifest) if i.model == "orders" and i.column == "region")
    assert not evaluate_intent(intent, manifest, wh).passed  # the intent check fails: 20 orders without region
    for check in ("not_null_orders_region", "intent_not_null_region"):
        failure = failure_from_check(manifest, "orders", check, wh, [manifest.project_dir], strict=True)
        top = investigate(failure, manifest, wh).findings[0]
        assert top.pattern == "unmatched_left_join", (check, top.summary)
        assert top.model == "orders" and top.columns == ["region"] and top.confidence >= 0.9
        assert top.summary.startswith("region is NULL for 20 rows of orders because `left join customers` "
                                      "(in the CTE final) on orders.customer_id = customers.customer_id"), top.summary
        # 20 unmatched customer ids, sampled, and which upstream relation lacks them
        assert "20 orders rows reference 20 customer_id value(s) (51, 52, 53, 54, 55, …) missing from stg_customers" \
            in top.summary, top.summary
        assert any(e.rows_sample and e.rows_sample[0].get("unmatched_keys") == 20 for e in top.evidence)
        # a decision, not a code change; never the inner join that would drop the orders
        assert top.proposed_fix is not None and not top.proposed_fix.diff
        assert "Do not make the join INNER" in top.proposed_fix.description
        assert top.needs_context and "late" in top.needs_context
    # as Dagster records a dbt test's failure (no column in its metadata): the test is found by its name
    recorded = Failure(asset="orders", check="not_null_orders_region", kind="dbt_test", metadata={"failed_row_count": 20})
    ctx = InvestigationContext(manifest, wh, recorded)
    (h,) = unmatched_left_join.detect(ctx, manifest.find("orders"))
    assert h.columns == ["region"] and "missing from stg_customers" in h.summary
    assert unmatched_left_join.detect(ctx, manifest.find("stg_customers")) == []  # region is not NULL there


def test_a_cte_chain_model_names_the_unmatched_keys(tmp_path: Path) -> None:
    customers = "create table raw.customers as select range as customer_id, 's' || range as segment from range(3)"
    m, db = project(tmp_path, {"m": IMPORTS + FINAL}, [ORDERS, customers], sources=SRC)
    (h,) = unmatched_left_join.detect(ctx_for(m, db, NOT_NULL_SEGMENT), m.find("m"))
    assert h.summary.startswith("segment is NULL for 70 rows of m because `left join customers` (in the CTE final)")
    assert "reference 7 customer_id value(s) (3, 4, 5, 6, 7, …) missing from raw.customers" in h.summary, h.summary
    assert h.confidence == 0.95 and h.columns == ["segment"]
    # the same through an intent, and through a model that passes the column on unchanged
    (tmp_path / "chain").mkdir()
    m2, db2 = project(tmp_path / "chain", {"m": IMPORTS + FINAL, "mart": "select * from {{ ref('m') }}"},
                      [ORDERS, customers], sources=SRC)
    intent = Failure(asset="mart", check="intent_not_null_segment")
    assert unmatched_left_join.detect(ctx_for(m2, db2, intent), m2.find("mart")) == []
    (h2,) = unmatched_left_join.detect(ctx_for(m2, db2, intent), m2.find("m"))
    assert "70 rows of m" in h2.summary


def test_a_right_side_cte_that_filters_the_rows_out_is_said(tmp_path: Path) -> None:
    customers = "create table raw.customers as select range as customer_id, 's' || range as segment from range(10)"
    sql = IMPORTS.replace("select * from {{ source('raw', 'customers') }}",
                          "select * from {{ source('raw', 'customers') }} where customer_id < 3") + FINAL
    m, db = project(tmp_path, {"m": sql}, [ORDERS, customers], sources=SRC)
    (h,) = unmatched_left_join.detect(ctx_for(m, db, NOT_NULL_SEGMENT), m.find("m"))
    assert "5 of the 5 sampled are in raw.customers but the CTE customers leaves them out" in h.summary, h.summary


def test_nulls_the_matched_row_holds_are_not_blamed_on_the_join(tmp_path: Path) -> None:
    # every customer exists; 3 of them hold a NULL segment: the join found every row
    customers = ("create table raw.customers as select range as customer_id, "
                 "case when range < 3 then null else 's' || range end as segment from range(10)")
    m, db = project(tmp_path, {"m": IMPORTS + FINAL}, [ORDERS, customers], sources=SRC)
    assert unmatched_left_join.detect(ctx_for(m, db, NOT_NULL_SEGMENT), m.find("m")) == []
    report = investigate(NOT_NULL_SEGMENT, m, DuckDBWarehouse(db, AuditLog(None)))
    assert all(f.pattern != "unmatched_left_join" for f in report.findings)
    # both at once: only the unmatched rows are the join's, and confidence says it explains part
    (tmp_path / "mixed").mkdir()
    mixed = ("create table raw.customers as select range as customer_id, "
             "case when range < 3 then null else 's' || range end as segment from range(8)")
    m2, db2 = project(tmp_path / "mixed", {"m": IMPORTS + FINAL}, [ORDERS, mixed], sources=SRC)
    (h,) = unmatched_left_join.detect(ctx_for(m2, db2, NOT_NULL_SEGMENT), m2.find("m"))
    assert "segment is NULL for 20 rows" in h.summary
    assert "The other 30 NULL segment come from customers rows that exist but hold segment NULL: not the join." in h.summary
    assert h.confidence < 0.8


def test_silent_when_the_failure_is_not_a_not_null_check(tmp_path: Path) -> None:
    customers = "create table raw.customers as select range as customer_id, 's' || range as segment from range(3)"
    m, db = project(tmp_path, {"m": IMPORTS + FINAL}, [ORDERS, customers], sources=SRC)
    assert unmatched_left_join.detect(ctx_for(m, db, Failure(asset="m", check="unique_m_id")), m.find("m")) == []
    inner = project(tmp_path / "i", {"m": IMPORTS + FINAL.replace("left join", "inner join")}, [ORDERS, customers],
                    sources=SRC) if (tmp_path / "i").mkdir() is None else None
    assert inner is not None
    assert unmatched_left_join.detect(ctx_for(*inner, NOT_NULL_SEGMENT), inner[0].find("m")) == []
