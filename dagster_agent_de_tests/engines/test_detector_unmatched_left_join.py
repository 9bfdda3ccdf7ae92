"""unmatched_left_join: a not-NULL check fails because a LEFT JOIN found no row on its right side.

On the team's own project (real ``dbt parse``, the team's loader, its models as views in DuckDB) and
on CTE-chain models; NULLs the right side holds itself are never blamed on the join.
"""

from __future__ import annotations

import os
import re
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
from dagster_agent_de.engines.investigate.models import Hypothesis
from dagster_agent_de.manifest import Manifest
from dagster_agent_de.sql.scope import null_strict_column, parse
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


CUSTOMERS_3 = "create table raw.customers as select range as customer_id, 's' || range as segment from range(3)"


def test_a_right_join_blames_its_left_side(tmp_path: Path) -> None:
    # `customers right join orders`: customers' columns are NULL for the orders no customer row matches
    final = ("final as (\n    select orders.id, orders.status, customers.segment\n    from customers\n"
             "    right join orders on customers.customer_id = orders.customer_id\n)\nselect * from final\n")
    m, db = project(tmp_path, {"m": IMPORTS + final}, [ORDERS, CUSTOMERS_3], sources=SRC)
    (h,) = unmatched_left_join.detect(ctx_for(m, db, NOT_NULL_SEGMENT), m.find("m"))
    assert h.summary.startswith(
        "segment is NULL for 70 rows of m because `right join orders` (in the CTE final) on customers.customer_id = "
        "orders.customer_id found no customers row for them: 70 orders rows reference 7 customer_id value(s) "
        "(3, 4, 5, 6, 7, …) missing from raw.customers."), h.summary
    assert h.confidence == 0.95 and h.proposed_fix is not None and not h.proposed_fix.diff
    # the kept side's own NULLs (orders.status is NULL in the data) are not the join's
    status = Failure(asset="m", check="not_null_m_status", kind="dbt_test", metadata={"column": "status", "test": "not_null"})
    assert duck_count(db, "select count(*) from main.m where status is null") == 20
    assert unmatched_left_join.detect(ctx_for(m, db, status), m.find("m")) == []


def test_a_full_join_blames_whichever_side_found_no_row(tmp_path: Path) -> None:
    # customers 0-2 and 20-21: orders of customers 3-9 find no customer; customers 20, 21 have no order
    customers = ("create table raw.customers as select range as customer_id, 's' || range as segment from range(3) "
                 "union all select 20 + range, 'x' from range(2)")
    final = ("final as (\n    select orders.id, customers.customer_id, customers.segment\n    from orders\n"
             "    full outer join customers on orders.customer_id = customers.customer_id\n)\nselect * from final\n")
    m, db = project(tmp_path, {"m": IMPORTS + final}, [ORDERS, customers], sources=SRC)
    (h,) = unmatched_left_join.detect(ctx_for(m, db, NOT_NULL_SEGMENT), m.find("m"))
    assert h.summary.startswith("segment is NULL for 70 rows of m because `full join customers` (in the CTE final) on "
                                "orders.customer_id = customers.customer_id found no customers row for them: 70 orders "
                                "rows reference 7 customer_id value(s) (3, 4, 5, 6, 7, …) missing from raw.customers."), h.summary
    not_null_id = Failure(asset="m", check="not_null_m_id", kind="dbt_test", metadata={"column": "id", "test": "not_null"})
    (h2,) = unmatched_left_join.detect(ctx_for(m, db, not_null_id), m.find("m"))
    assert h2.summary.startswith("id is NULL for 2 rows of m because `full join customers` (in the CTE final) on "
                                 "orders.customer_id = customers.customer_id found no orders row for them: 2 customers "
                                 "rows reference 2 customer_id value(s) (20, 21) missing from raw.orders."), h2.summary


def test_a_null_propagating_function_over_the_joined_column_is_followed(tmp_path: Path) -> None:
    for i, wrapped in enumerate(("upper(customers.segment)", "cast(customers.segment as varchar)",
                                 "trim(customers.segment)", "substr(lower(customers.segment), 1, 2)")):
        final = FINAL.replace("customers.segment\n", f"{wrapped} as segment\n")
        (tmp_path / str(i)).mkdir()
        m, db = project(tmp_path / str(i), {"m": IMPORTS + final}, [ORDERS, CUSTOMERS_3], sources=SRC)
        (h,) = unmatched_left_join.detect(ctx_for(m, db, NOT_NULL_SEGMENT), m.find("m"))
        assert h.summary.startswith("segment is NULL for 70 rows of m because `left join customers` (in the CTE final)"), (wrapped, h.summary)
    # the function in a CTE above the join's, and the model read by another that trims it again
    shaped = FINAL.replace(")\nselect * from final\n", "),\nshaped as (\n    select id, trim(segment) as segment from final\n)\n"
                                                       "select * from shaped\n")
    (tmp_path / "up").mkdir()
    m, db = project(tmp_path / "up", {"m": IMPORTS + shaped, "mart": "select id, upper(segment) as segment from {{ ref('m') }}"},
                    [ORDERS, CUSTOMERS_3], sources=SRC)
    (h,) = unmatched_left_join.detect(ctx_for(m, db, Failure(asset="mart", check="intent_not_null_segment")), m.find("m"))
    assert "segment is NULL for 70 rows of m" in h.summary


def test_a_function_that_replaces_null_is_not_followed(tmp_path: Path) -> None:
    # each falls back to orders.status (NULL in 20 rows; nvl, not in DuckDB, in the next test): segment stays NULL for some unmatched rows, but the
    # NULL is not the join's alone and the expression is not the joined column: nothing is blamed on the join
    for i, wrapped in enumerate(("coalesce(customers.segment, orders.status)", "ifnull(customers.segment, orders.status)",
                                 "case when customers.segment is not null then customers.segment else orders.status end")):
        final = FINAL.replace("customers.segment\n", f"{wrapped} as segment, orders.status\n")
        (tmp_path / str(i)).mkdir()
        m, db = project(tmp_path / str(i), {"m": IMPORTS + final}, [ORDERS, CUSTOMERS_3], sources=SRC)
        assert duck_count(db, "select count(*) from main.m where segment is null") == 10, wrapped
        assert unmatched_left_join.detect(ctx_for(m, db, NOT_NULL_SEGMENT), m.find("m")) == [], wrapped


def test_which_functions_pass_a_null_through() -> None:
    followed = {"duckdb": ["upper(c.region)", "cast(c.region as varchar)", "c.region::text", "trim(both ' ' from c.region)",
                           "round(c.amount * 100, 2)", "date_trunc('day', c.seen_at)", "(c.region)"],
                "snowflake": ["ltrim(upper(c.region))", "c.region::varchar"]}
    stopped = {"duckdb": ["coalesce(c.region, 'n/a')", "ifnull(c.region, 'n/a')", "case when c.region is null then 'n/a' "
                          "else c.region end", "case when c.x then c.region end", "nullif(c.region, '')",
                          "try_cast(c.region as int)", "concat(c.region, 'x')", "c.amount / 2", "upper(c.region || c.x)",
                          "round(c.amount, c.places)", "c.region || 'x'", "my_udf(c.region)"],
               "snowflake": ["nvl(c.region, 'n/a')", "nvl2(c.region, c.region, 'n/a')", "iff(c.region is null, 'n/a', c.region)",
                             "zeroifnull(c.amount)"]}
    for dialect, exprs in followed.items():
        for e in exprs:
            col = null_strict_column(parse(f"select {e}", dialect).selects[0])
            assert col is not None and col.table == "c", (dialect, e)
    for dialect, exprs in stopped.items():
        for e in exprs:
            assert null_strict_column(parse(f"select {e}", dialect).selects[0]) is None, (dialect, e)


PII_KEY = {"columns": {"customer_id": {"name": "customer_id", "meta": {"pii": True}}}}
MASKED = re.compile(r"pii:[0-9a-f]{16}")


def _assert_keys_masked(h: Hypothesis) -> None:
    shown = h.summary.split("value(s) (", 1)[1].split(")", 1)[0]
    assert [MASKED.fullmatch(k) is not None for k in shown.split(", ")[:5]] == [True] * 5, h.summary
    assert h.needs_business_context is not None and shown in h.needs_business_context
    keys = next(e for e in h.evidence if e.rows_sample and "key_0" in e.rows_sample[0])
    assert all(MASKED.fullmatch(str(r["key_0"])) for r in keys.rows_sample), keys.rows_sample
    for e in h.evidence:  # no sampled value is written back into a query
        assert not re.search(r"\bIN \((\d|')", e.statement), e.statement


def test_sampled_keys_of_a_pii_column_are_masked(tmp_path: Path) -> None:
    # the key is PII by lineage: tagged on the source, renamed by a staging model the join reads
    stg = "select id, customer_id as customer_key from {{ source('raw', 'orders') }}"
    m_sql = ("with orders as (\n    select * from {{ ref('stg_orders') }}\n),\n"
             "customers as (\n    select * from {{ source('raw', 'customers') }}\n),\n"
             "final as (\n    select orders.id, customers.segment\n    from orders\n"
             "    left join customers on orders.customer_key = customers.customer_id\n)\nselect * from final\n")
    m, db = project(tmp_path, {"stg_orders": stg, "m": m_sql}, [ORDERS, CUSTOMERS_3],
                    sources={"orders": PII_KEY, "customers": {}})
    (h,) = unmatched_left_join.detect(ctx_for(m, db, NOT_NULL_SEGMENT), m.find("m"))
    assert "70 orders rows reference 7 customer_key value(s) (pii:" in h.summary, h.summary
    _assert_keys_masked(h)
    # PII on the side that has no row: the values it is compared with are masked as well
    (tmp_path / "right").mkdir()
    m2, db2 = project(tmp_path / "right", {"m": IMPORTS + FINAL}, [ORDERS, CUSTOMERS_3],
                      sources={"orders": {}, "customers": PII_KEY})
    (h2,) = unmatched_left_join.detect(ctx_for(m2, db2, NOT_NULL_SEGMENT), m2.find("m"))
    assert "(3, 4, 5" not in h2.summary
    _assert_keys_masked(h2)
    # the right-side CTE filters the keys out: said for masked keys too (their values are never queried back)
    (tmp_path / "filtered").mkdir()
    customers = CUSTOMERS_3.replace("range(3)", "range(10)")
    sql = IMPORTS.replace("select * from {{ source('raw', 'customers') }}",
                          "select * from {{ source('raw', 'customers') }} where customer_id < 3") + FINAL
    m3, db3 = project(tmp_path / "filtered", {"m": sql}, [ORDERS, customers], sources={"orders": PII_KEY, "customers": {}})
    ctx = ctx_for(m3, db3, NOT_NULL_SEGMENT)
    (h3,) = unmatched_left_join.detect(ctx, m3.find("m"))
    assert "5 of the 5 sampled are in raw.customers but the CTE customers leaves them out" in h3.summary, h3.summary
    assert not ctx.query_failures
    _assert_keys_masked(h3)
    # a key no PII reaches is shown as it is
    (tmp_path / "plain").mkdir()
    m4, db4 = project(tmp_path / "plain", {"m": IMPORTS + FINAL}, [ORDERS, CUSTOMERS_3],
                      sources={"orders": {"columns": {"status": {"name": "status", "meta": {"pii": True}}}}, "customers": {}})
    (h4,) = unmatched_left_join.detect(ctx_for(m4, db4, NOT_NULL_SEGMENT), m4.find("m"))
    assert "7 customer_id value(s) (3, 4, 5, 6, 7, …)" in h4.summary, h4.summary


def duck_count(db: Path, sql: str) -> int:
    import duckdb

    with duckdb.connect(str(db), read_only=True) as con:
        row = con.execute(sql).fetchone()
    assert row is not None
    return int(row[0])
