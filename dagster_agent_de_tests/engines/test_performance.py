"""The performance pattern library on real DuckDB tables: each slow shape is found from its analyzed
plan, its fixed shape is not, and the proposed rewrite is verified (same rows, a better plan)."""

from __future__ import annotations

from pathlib import Path

import pytest

from dagster_agent_de.adapters.audit import AuditLog
from dagster_agent_de.adapters.warehouse import DuckDBWarehouse
from dagster_agent_de.engines.investigate.engine import investigate
from dagster_agent_de.engines.investigate.failure import failure_from_check
from dagster_agent_de.engines.performance import (
    PerfContext,
    detect,
    explain_analyze,
    investigate_sql,
)
from dagster_agent_de.engines.performance.plan import QueryPlan
from dagster_agent_de.errors import StatementRefusedError, WarehouseError
from dagster_agent_de.manifest import Manifest
from dagster_agent_de.sql.scope import parse
from dagster_agent_de_tests.helpers import duck

ORDERS = 200_000
ITEMS_PER_ORDER = 5


@pytest.fixture(scope="module")
def wh_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return duck(
        tmp_path_factory.mktemp("perf") / "shop.duckdb",
        "create schema app",
        f"create table app.orders as select range as order_id, range % 5000 as customer_id, "
        f"timestamp '2023-01-01' + to_seconds(range * 240) as ordered_at, (range * 7 % 1000) / 10.0 as amount, "
        f"['paid', 'open', 'refunded'][range % 3 + 1] as status from range({ORDERS})",
        f"create table app.order_items as select range as item_id, range // {ITEMS_PER_ORDER} as order_id, "
        f"range % 100 as sku from range({ORDERS * ITEMS_PER_ORDER})",
        "create table app.dup_orders as select * from app.orders union all select * from app.orders where order_id < 10",
        "create table app.regions as select range as region_id, 'region ' || range as region from range(10)",
        # a rate every 10th day per status (published on some days only): 56 rates per status
        "create table app.rates as select date '2023-01-01' + (range // 3 * 10)::int as rate_date, "
        "['paid', 'open', 'refunded'][range % 3 + 1] as status, 1 + range / 1000.0 as rate from range(168)",
        "create table app.calendar as select date '2023-03-01' + range::int as day from range(60)",
    )


@pytest.fixture()
def audit() -> AuditLog:
    return AuditLog(None)


@pytest.fixture()
def wh(wh_file: Path, audit: AuditLog):
    with DuckDBWarehouse(wh_file, audit) as w:
        yield w


def _jinja(sql: str) -> str:
    """The model file as a dbt user writes it: ``{{ ref() }}`` where the compiled SQL has the relation."""
    return sql.replace("shop.app.orders", "{{ ref('orders') }}").replace(
        "shop.app.order_items", "{{ ref('order_items') }}").replace("shop.app.dup_orders", "{{ ref('dup_orders') }}")


def _patterns(wh: DuckDBWarehouse, sql: str) -> list[str]:
    plan = explain_analyze(wh, sql, "test")
    return [h.pattern for h in detect(PerfContext(sql=sql, dialect="duckdb", tree=parse(sql, "duckdb"), plan=plan))]


def _plan(wh: DuckDBWarehouse, sql: str) -> QueryPlan:
    return explain_analyze(wh, sql, "test")


CASES = {
    "join_explosion": (
        "select distinct o.order_id, o.amount, o.status\nfrom shop.app.orders o\n"
        "join shop.app.order_items i on i.order_id = o.order_id\n",
        "select o.order_id, o.amount, o.status\nfrom shop.app.orders o\n"
        "join (select distinct order_id from shop.app.order_items) i on i.order_id = o.order_id\n",
    ),
    "union_distinct": (
        "select order_id, amount from shop.app.orders where status = 'paid'\nunion\n"
        "select order_id, amount from shop.app.orders where status = 'open'\n",
        "select order_id, amount from shop.app.orders where status = 'paid'\nunion all\n"
        "select order_id, amount from shop.app.orders where status = 'open'\n",
    ),
    "non_sargable": (
        "select order_id, amount\nfrom shop.app.orders\nwhere strftime(ordered_at, '%Y-%m') = '2023-06'\n",
        "select order_id, amount\nfrom shop.app.orders\n"
        "where ordered_at >= date '2023-06-01' and ordered_at < date '2023-07-01'\n",
    ),
    "repeated_scan": (
        "select (select count(*) from shop.app.orders where status = 'paid') as paid,\n"
        "  (select count(*) from shop.app.orders where status = 'open') as open,\n"
        "  (select sum(amount) from shop.app.orders where status = 'refunded') as refunded\n",
        "select count(*) filter (where status = 'paid') as paid, count(*) filter (where status = 'open') as open,\n"
        "  sum(amount) filter (where status = 'refunded') as refunded\nfrom shop.app.orders\n",
    ),
    "order_by": (
        "select order_id, customer_id, amount\nfrom shop.app.orders\norder by amount desc, order_id\n",
        "select order_id, customer_id, amount\nfrom shop.app.orders\n",
    ),
}


@pytest.mark.parametrize("pattern", list(CASES))
def test_the_slow_shape_is_found_and_its_fixed_shape_is_not(wh: DuckDBWarehouse, pattern: str) -> None:
    slow, fixed = CASES[pattern]
    assert _patterns(wh, slow)[0] == pattern
    assert pattern not in _patterns(wh, fixed)


@pytest.mark.parametrize("pattern", list(CASES))
def test_the_top_rewrite_is_verified_and_diffs_the_model_file(wh: DuckDBWarehouse, pattern: str) -> None:
    slow, _ = CASES[pattern]
    # min_speedup=0: these tests assert results and plan shapes, never wall time (the benchmark prints that)
    finding = investigate_sql(wh, slow, model="m", source=_jinja(slow), source_path="models/m.sql", min_speedup=0)
    assert finding.top is not None and finding.top.pattern == pattern
    assert finding.top.operators and all("operator" in o and "rows" in o for o in finding.top.operators)
    v = finding.verified
    assert v is not None, finding.summary()
    assert v.unchanged and v.rows_before == v.rows_after > 0
    assert finding.diff.startswith("--- a/models/m.sql\n+++ b/models/m.sql")
    assert "{{ ref(" in finding.diff  # the diff is of the file as written, jinja kept
    # the rewritten SELECT no longer has the pattern, by its plan
    assert pattern not in _patterns(wh, v.sql_after)


def test_join_explosion_plan_shows_the_fanout_gone(wh: DuckDBWarehouse) -> None:
    slow, _ = CASES["join_explosion"]
    finding = investigate_sql(wh, slow, model="m", source=_jinja(slow), min_speedup=0)
    assert finding.verified is not None
    before = max(j.rows for j in _plan(wh, slow).joins())
    after = max(j.rows for j in _plan(wh, finding.verified.sql_after).joins())
    assert before == ORDERS * ITEMS_PER_ORDER and after == ORDERS
    assert "-select distinct o.order_id" in finding.diff
    assert "+join (select distinct order_id from {{ ref('order_items') }}) i on" in finding.diff


def test_repeated_scan_becomes_one_scan(wh: DuckDBWarehouse) -> None:
    slow, _ = CASES["repeated_scan"]
    finding = investigate_sql(wh, slow, model="m", source=_jinja(slow), min_speedup=0)
    assert finding.verified is not None
    assert len(_plan(wh, slow).scans()) == 3 and len(_plan(wh, finding.verified.sql_after).scans()) == 1
    assert "+from {{ ref('orders') }}" in finding.diff


def test_non_sargable_rewrite_filters_the_bare_column(wh: DuckDBWarehouse) -> None:
    slow, _ = CASES["non_sargable"]
    finding = investigate_sql(wh, slow, model="m", source=_jinja(slow), min_speedup=0)
    assert finding.verified is not None
    filters = [s.info("Filters") for s in _plan(wh, finding.verified.sql_after).scans()]
    assert filters and not any("strftime" in f for f in filters)
    assert "+where ordered_at >= date '2023-06-01' and ordered_at < date '2023-07-01'" in finding.diff


def test_a_rewrite_that_changes_results_is_rejected_and_said_so(wh: DuckDBWarehouse) -> None:
    # dup_orders holds 10 duplicated rows: here `union` does remove rows, so `union all` changes the result
    slow = ("select order_id, amount from shop.app.dup_orders where status = 'paid'\nunion\n"
            "select order_id, amount from shop.app.dup_orders where status = 'open'\n")
    finding = investigate_sql(wh, slow, model="m", source=_jinja(slow))
    assert finding.top is not None and finding.top.pattern == "union_distinct"
    assert finding.verified is None and finding.diff == ""
    assert len(finding.rejected) == 1 and finding.rejected[0].rows_after > finding.rejected[0].rows_before
    assert "REJECTED: results change" in finding.summary() and "nothing is proposed" in finding.summary()


def test_a_rewrite_that_is_not_faster_is_not_proposed(wh: DuckDBWarehouse) -> None:
    slow, _ = CASES["union_distinct"]
    finding = investigate_sql(wh, slow, model="m", source=_jinja(slow), min_speedup=1e9)
    assert finding.verified is None and finding.diff == "" and finding.rejected[0].unchanged
    assert "REJECTED: not faster" in finding.summary()


def test_join_explosion_keeps_the_distinct_when_it_is_needed(wh: DuckDBWarehouse) -> None:
    slow = ("select distinct o.order_id, o.amount from shop.app.dup_orders o\n"
            "join shop.app.order_items i on i.order_id = o.order_id\n")
    finding = investigate_sql(wh, slow, model="m", source=_jinja(slow), min_speedup=0)
    assert finding.top is not None and finding.top.pattern == "join_explosion"
    assert [r.description for r in finding.rejected] == ["join the distinct order_id of order_items and drop the distinct"]
    assert finding.verified is not None and finding.verified.unchanged
    assert "select distinct o.order_id" in finding.verified.sql_after


def test_every_statement_goes_through_the_audited_guard(wh: DuckDBWarehouse, audit: AuditLog) -> None:
    slow, _ = CASES["union_distinct"]
    investigate_sql(wh, slow, model="m")
    statements = [e.statement for e in audit.events if e.kind != "session_setup"]
    assert sum(s.startswith("EXPLAIN (ANALYZE, FORMAT JSON) ") for s in statements) == 2
    assert any("hash_before" in s for s in statements)
    with pytest.raises(StatementRefusedError):
        wh.query("EXPLAIN (ANALYZE, FORMAT JSON) delete from app.orders", rationale="test")
    assert audit.events[-1].outcome == "refused"


def _project(tmp_path: Path, name: str, sql: str) -> Manifest:
    """A project whose model file is written with ref(); the manifest renders it to the compiled SELECT."""
    (tmp_path / "models").mkdir(exist_ok=True)
    (tmp_path / "models" / f"{name}.sql").write_text(_jinja(sql))

    def node(n: str, path: str | None = None, deps: tuple[str, ...] = ()) -> dict:
        return {"name": n, "resource_type": "model", "relation_name": f"shop.app.{n}", "database": "shop",
                "schema": "app", "package_name": "p", "original_file_path": path or f"models/{n}.sql",
                "depends_on": {"nodes": list(deps)}, "config": {"materialized": "table"}}

    return Manifest({"nodes": {
        "model.p.orders": node("orders"), "model.p.order_items": node("order_items"),
        f"model.p.{name}": node(name, deps=("model.p.orders", "model.p.order_items")),
    }}, tmp_path)


def test_a_failed_model_runtime_check_routes_to_the_performance_library(wh: DuckDBWarehouse, tmp_path: Path) -> None:
    manifest = _project(tmp_path, "fct_orders_slow", CASES["join_explosion"][0])
    failure = failure_from_check(manifest, "fct_orders_slow", "model_runtime", wh, [tmp_path], strict=True)
    assert failure.kind == "performance"
    report = investigate(failure, manifest, wh)
    top = report.findings[0]
    assert top.pattern == "join_explosion" and top.model == "fct_orders_slow" and top.verified
    assert top.proposed_fix is not None and top.proposed_fix.files == ["models/fct_orders_slow.sql"]
    assert "+join (select distinct order_id from {{ ref('order_items') }}) i" in top.proposed_fix.diff
    assert top.evidence[0].statement.startswith("EXPLAIN (ANALYZE, FORMAT JSON) ")
    assert {r["operator"] for r in top.evidence[0].rows_sample} == {"HASH_GROUP_BY", "HASH_JOIN"}
    measured = top.evidence[-1].rows_sample[0]
    assert measured["same_row_hash"] and measured["rows_before"] == measured["rows_after"] == ORDERS


def test_a_cartesian_product_is_named_without_a_guessed_rewrite(wh: DuckDBWarehouse) -> None:
    slow = "select o.order_id, r.region from shop.app.orders o cross join shop.app.regions r\n"
    finding = investigate_sql(wh, slow, model="m", source=_jinja(slow))
    assert finding.top is not None and finding.top.pattern == "cross_join"
    assert finding.top.operators[0]["rows"] == ORDERS * 10 and finding.top.operators[0]["input_rows"] in (
        [ORDERS, 10], [10, ORDERS])
    assert finding.verified is None and finding.diff == "" and "fix it by hand" in finding.summary()
    keyed = ("select o.order_id, r.region from shop.app.orders o "
             "join shop.app.regions r on r.region_id = o.customer_id % 10\n")
    assert "cross_join" not in _patterns(wh, keyed)
    tiny = "select r.region, s.region as other from shop.app.regions r cross join shop.app.regions s\n"
    assert "cross_join" not in _patterns(wh, tiny)  # 100 rows: a lookup, not a problem


def test_unparsable_sql_is_a_clear_error_not_a_crash(wh: DuckDBWarehouse) -> None:
    with pytest.raises(WarehouseError, match="could not be parsed"):
        investigate_sql(wh, "select from from where", model="broken")


def test_a_top_n_keeps_its_order_by(wh: DuckDBWarehouse) -> None:
    top_n = "select order_id, amount from shop.app.orders order by amount desc limit 100\n"
    assert "order_by" not in _patterns(wh, top_n)


LATEST_RATE = (
    "select o.order_id, o.amount * r.rate as converted\nfrom shop.app.orders as o\n"
    "left join shop.app.rates as r\n    on r.status = o.status and r.rate_date <= o.ordered_at\n"
    "qualify row_number() over (partition by o.order_id order by r.rate_date desc) = 1\n"
)


def test_a_latest_as_of_range_join_becomes_an_asof_join_with_the_same_rows(wh: DuckDBWarehouse) -> None:
    finding = investigate_sql(wh, LATEST_RATE, model="m", source=_jinja(LATEST_RATE), source_path="models/m.sql",
                              min_speedup=0)
    assert finding.top is not None and finding.top.pattern == "join_explosion"
    join = [o for o in finding.top.operators if "JOIN" in o["operator"]][0]
    assert join["rows"] > 10 * ORDERS  # every order paired with every earlier rate of its status
    v = finding.verified
    assert v is not None and v.unchanged and v.rows_after == ORDERS, finding.summary()
    assert "+asof left join shop.app.rates as r" in finding.diff
    assert "+    on r.status = o.status and o.ordered_at >= r.rate_date" in finding.diff
    assert "-qualify row_number()" in finding.diff
    assert max(o.rows for o in _plan(wh, v.sql_after).joins()) == ORDERS  # the rewrite pairs each order once


def test_a_latest_as_of_by_rank_is_the_same_shape_and_its_window_counts_in_its_time(wh: DuckDBWarehouse) -> None:
    """`qualify rank() ... = 1` (which DuckDB cannot turn into an arg_max): the same asof rewrite, verified; the
    time reported is the join's, the window's and the filter's together (it said 3% when the window dominated)."""
    import re

    sql = LATEST_RATE.replace("row_number()", "rank()")
    finding = investigate_sql(wh, sql, model="m", source=_jinja(sql), source_path="models/m.sql", min_speedup=0)
    assert finding.top is not None and finding.top.pattern == "join_explosion"
    assert finding.verified is not None and finding.verified.unchanged and "-qualify rank()" in finding.diff
    share = re.search(r"(\d+)% of the operators' time", finding.top.summary)
    assert share is not None and int(share.group(1)) >= 50, finding.top.summary


def test_floating_point_sums_are_compared_rounded_not_bit_for_bit(wh: DuckDBWarehouse) -> None:
    """A sum of doubles depends on the order threads add them: the same rows must not look changed."""
    from dagster_agent_de.engines.performance import verify

    before = "select status, sum(amount * 1.1::double) as s from shop.app.orders group by status"
    after = "select status, sum(amount * 1.1::double) as s from (select * from shop.app.orders order by order_id desc) group by status"
    assert verify(wh, before, after, "same sums").unchanged
    changed = "select status, sum(amount * 1.1::double) + 0.01 as s from shop.app.orders group by status"
    assert not verify(wh, before, changed, "different sums").unchanged


def test_a_window_without_partition_over_a_large_table_is_named(wh: DuckDBWarehouse) -> None:
    slow = "select order_id, row_number() over (order by ordered_at, order_id) as seq from shop.app.orders\n"
    finding = investigate_sql(wh, slow, model="m", source=slow)
    assert finding.top is not None and finding.top.pattern == "window_unpartitioned", finding.summary()
    op = finding.top.operators[0]
    assert op["operator"] == "WINDOW" and op["rows"] == ORDERS and "ORDER BY ordered_at" in op["window"]
    assert finding.verified is None and finding.diff == ""  # partitioning changes the results: no diff is guessed
    partitioned = ("select order_id, row_number() over (partition by customer_id order by ordered_at) as seq "
                   "from shop.app.orders\n")
    assert "window_unpartitioned" not in _patterns(wh, partitioned)
    small = "select region_id, row_number() over (order by region) from shop.app.regions\n"
    assert "window_unpartitioned" not in _patterns(wh, small)


def test_spill_is_read_from_the_plans_system_figures(wh_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """DuckDB reports spill in ``system`` (total_bytes_spilled, peak_temp_dir_size), not per operator."""
    monkeypatch.setenv("AGENT_DE_DUCKDB_MEMORY_LIMIT", "64MB")
    heavy = "select md5(item_id::varchar) as k, count(*) as n from shop.app.order_items group by k\n"
    with DuckDBWarehouse(wh_file, AuditLog(None)) as small:
        plan = _plan(small, heavy)
        assert plan.bytes_spilled > 0 and plan.peak_temp_bytes > 0
        finding = investigate_sql(small, heavy, model="m", source=heavy)
    spill = [h for h in finding.hypotheses if h.pattern == "spill"]
    assert spill and spill[0].operators[0]["operator"] == "HASH_GROUP_BY" and spill[0].operators[0]["size_bytes"] > 0
    assert f"spilled {finding.plan.bytes_spilled:,} bytes" in spill[0].summary
    with DuckDBWarehouse(wh_file, AuditLog(None)) as small:  # the same grouping on few keys fits in memory
        assert "spill" not in _patterns(small, heavy.replace("md5(item_id::varchar)", "item_id % 10"))


def _policy_manifest(tmp_path: Path, views: dict[str, tuple[str, ...]], model: str, model_deps: tuple[str, ...],
                     materialized: str = "table") -> Manifest:
    def node(n: str, kind: str, deps: tuple[str, ...]) -> dict:
        return {"name": n, "resource_type": "model", "relation_name": f"shop.app.{n}", "database": "shop",
                "schema": "app", "package_name": "p", "original_file_path": f"models/{n}.sql",
                "depends_on": {"nodes": [f"model.p.{d}" for d in deps]}, "config": {"materialized": kind}}

    (tmp_path / "models").mkdir(exist_ok=True)
    nodes = {f"model.p.{v}": node(v, "view", deps) for v, deps in views.items()}
    for v in views:
        (tmp_path / "models" / f"{v}.sql").write_text(f"select * from {{{{ ref('orders') }}}} -- {v}\n")
    nodes[f"model.p.{model}"] = node(model, materialized, model_deps)
    return Manifest({"nodes": nodes}, tmp_path)


def _escalations(finding, manifest: Manifest, tmp_path: Path):
    from dagster_agent_de.engines.escalate.policy import load_policy
    from dagster_agent_de.engines.escalate.raising import escalations_for

    return escalations_for(finding, manifest, load_policy(tmp_path), check="model_runtime")


def test_an_incremental_model_without_its_filter_is_an_authority_gap(wh: DuckDBWarehouse, tmp_path: Path) -> None:
    from dagster_agent_de.core.models import EscalationKind
    from dagster_agent_de.engines.performance.engine import as_finding

    model = "select order_id, customer_id, amount, ordered_at\nfrom shop.app.orders\n"
    finding = investigate_sql(wh, model, model="orders_inc", source=_jinja(model), source_path="models/orders_inc.sql",
                              materialized="incremental")
    assert finding.top is not None and finding.top.pattern == "incremental_filter", finding.summary()
    assert finding.top.operators[0]["rows"] == ORDERS
    assert "+where ordered_at > (select max(ordered_at) from {{ this }})" in finding.top.diff
    out = as_finding(finding, model)
    assert out.proposed_fix is not None and "is_incremental()" in out.proposed_fix.diff and not out.verified
    assert out.needs_authority and "changes what each run loads" in out.needs_authority
    manifest = _policy_manifest(tmp_path, {}, "orders_inc", (), materialized="incremental")
    (esc,) = _escalations(out, manifest, tmp_path)
    assert esc.kind == EscalationKind.AUTHORITY_GAP and "is_incremental()" in esc.fix_diff
    # the same model as a table, or with its filter, is not this pattern
    assert "incremental_filter" not in [h.pattern for h in investigate_sql(
        wh, model, model="t", source=_jinja(model), materialized="table").hypotheses]
    filtered = _jinja(model) + "{% if is_incremental() %}\nwhere ordered_at > (select max(ordered_at) from {{ this }})\n{% endif %}\n"
    assert "incremental_filter" not in [h.pattern for h in investigate_sql(
        wh, model, model="f", source=filtered, materialized="incremental").hypotheses]
    unprunable = filtered.replace("where ordered_at >", "where date(ordered_at) >")
    (h,) = [h for h in investigate_sql(wh, model, model="u", source=unprunable, materialized="incremental").hypotheses
            if h.pattern == "incremental_filter"]
    assert "cannot prune" in h.summary


def test_a_view_read_by_many_models_is_proposed_for_materialization_with_an_authority_gap(
        wh: DuckDBWarehouse, tmp_path: Path) -> None:
    from dagster_agent_de.core.models import EscalationKind
    from dagster_agent_de.engines.performance.engine import as_finding, upstream_views

    views = {"stg_orders": (), "int_orders": ("stg_orders",), "int_paid": ("int_orders",)}
    manifest = _policy_manifest(tmp_path, views, "fct_paid", ("int_paid",))
    for reader in ("fct_a", "fct_b"):  # two more models read int_orders: three recompute it on every build
        manifest.data["nodes"][f"model.p.{reader}"] = {**manifest.data["nodes"]["model.p.fct_paid"], "name": reader,
                                                       "depends_on": {"nodes": ["model.p.int_orders"]}}
    manifest = Manifest(manifest.data, tmp_path)
    chain = upstream_views(manifest, manifest.find("fct_paid"))
    assert [(v.name, v.depth, v.readers) for v in chain] == [("int_paid", 1, 1), ("int_orders", 2, 3), ("stg_orders", 3, 1)]
    sql = "select order_id, amount from shop.app.orders where status = 'paid'\n"
    finding = investigate_sql(wh, sql, model="fct_paid", source=sql, upstream_views=chain)
    (h,) = [h for h in finding.hypotheses if h.pattern == "view_chain"]
    assert "materialize int_orders as a table" in h.summary and h.operators[0]["table"].endswith("app.orders")
    assert h.diff.startswith("--- a/models/int_orders.sql") and "+{{ config(materialized='table') }}" in h.diff
    out = as_finding(finding if finding.top is h else _with_top(finding, h), sql)
    assert out.proposed_fix is not None and not out.verified
    (esc,) = _escalations(out, manifest, tmp_path)
    assert esc.kind == EscalationKind.AUTHORITY_GAP and "Materialize int_orders as a table" in esc.decision
    assert "view_chain" not in _patterns(wh, sql)  # no views upstream, no chain


def _with_top(finding, hypothesis):
    from dataclasses import replace

    return replace(finding, hypotheses=[hypothesis])


def test_a_cross_join_filtered_by_a_day_range_becomes_an_equality(wh: DuckDBWarehouse) -> None:
    slow = ("select d.day, count(*) as orders, sum(o.amount) as amount\nfrom shop.app.calendar d\n"
            "cross join shop.app.orders o\nwhere o.ordered_at >= d.day and o.ordered_at < d.day + interval 1 day\n"
            "group by d.day\n")
    finding = investigate_sql(wh, slow, model="m", source=_jinja(slow), source_path="models/m.sql", min_speedup=0)
    assert finding.top is not None and finding.top.pattern == "cross_join", finding.summary()
    assert finding.top.operators[0]["operator"] in ("PIECEWISE_MERGE_JOIN", "IE_JOIN", "NESTED_LOOP_JOIN")
    v = finding.verified
    assert v is not None and v.unchanged and v.rows_after == 60, finding.summary()
    assert "+where cast(o.ordered_at as date) = d.day" in finding.diff
    assert [o.name for o in _plan(wh, v.sql_after).joins()] == ["HASH_JOIN"]
    # a timestamp spine is not a day bucket: the equality would change the rows, and the rewrite is rejected
    shifted = slow.replace("shop.app.calendar d", "(select day + interval 6 hour as day from shop.app.calendar) d")
    rejected = investigate_sql(wh, shifted, model="m", source=shifted, min_speedup=0)
    assert rejected.verified is None and rejected.rejected and not rejected.rejected[0].unchanged
