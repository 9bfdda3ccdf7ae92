"""Derived intent checks on the demo: fct_revenue sums fct_orders.amount, so NULL amounts fail its check."""

from __future__ import annotations

from dagster import (
    AssetCheckKey,
    AssetKey,
    AssetSelection,
    DagsterInstance,
    Definitions,
    define_asset_job,
)

from dagster_agent_de.dagster.definitions import build_definitions
from dagster_agent_de.dagster.intents import DERIVED_CHECK

QUIET = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}
KEY = AssetCheckKey(AssetKey(["fct_revenue"]), DERIVED_CHECK)


def test_null_amounts_break_the_revenue_intent(demo_env) -> None:
    base = build_definitions(demo_env.settings)
    keys = {k for k in base.resolve_asset_graph().asset_check_keys if k.name == DERIVED_CHECK}
    assert KEY in keys and AssetCheckKey(AssetKey(["stg_orders"]), DERIVED_CHECK) not in keys  # only models that sum
    defs = Definitions.merge(base, Definitions(jobs=[define_asset_job("intents", selection=AssetSelection.checks(KEY))]))

    def evaluate(instance):
        result = defs.resolve_job_def("intents").execute_in_process(instance=instance, raise_on_error=False, run_config=QUIET)
        (ev,) = result.get_asset_check_evaluations()
        return ev

    with DagsterInstance.ephemeral() as instance:
        clean = evaluate(instance)
        assert clean.passed, clean.description
        assert "fct_orders.amount" in clean.metadata["why"].value
        demo_env.write("create table main._amounts as select order_id, amount from main.fct_orders; "
                       "update main.fct_orders set amount = null where order_id % 10 = 0")
        try:
            broken = evaluate(instance)
        finally:
            demo_env.write("update main.fct_orders f set amount = s.amount from main._amounts s where f.order_id = s.order_id; "
                           "drop table main._amounts")
        assert not broken.passed
        nulls = broken.metadata["violations"].value
        assert nulls > 0 and broken.metadata["fct_orders.violations"].value == nulls
        assert "silently drops its row from revenue" in broken.description


def test_a_bad_intent_or_runtime_meta_fails_its_own_check_and_the_location_loads(demo_env, monkeypatch) -> None:
    """One model's typo in meta.agent_de does not stop the code location from loading: the model gets a check
    that fails saying what to fix, and every other check (its valid intents too) is still there."""
    from dagster_agent_de.dagster.runtime import RUNTIME_CHECK
    from dagster_agent_de.engines.intents import INVALID_CHECK
    from dagster_agent_de.manifest import Node

    meta = Node.agent_de_meta.fget
    bad = {"intents": [{"kind": "not_null", "column": "amount", "why": "summed into revenue"}, {"kind": "not_null"}],
           "runtime": {"max_minutes": -5}}
    monkeypatch.setattr(Node, "agent_de_meta", property(lambda n: {**meta(n), **bad} if n.name == "fct_orders" else meta(n)))
    base = build_definitions(demo_env.settings)  # loads
    orders = AssetKey(["fct_orders"])
    invalid, runtime = AssetCheckKey(orders, INVALID_CHECK), AssetCheckKey(orders, RUNTIME_CHECK)
    checks = base.resolve_asset_graph().asset_check_keys
    assert {invalid, runtime, AssetCheckKey(orders, "intent_not_null_amount"), KEY} <= checks
    job = define_asset_job("bad_meta", selection=AssetSelection.checks(invalid, runtime))
    defs = Definitions.merge(base, Definitions(jobs=[job]))
    with DagsterInstance.ephemeral() as instance:
        result = defs.resolve_job_def("bad_meta").execute_in_process(instance=instance, raise_on_error=False, run_config=QUIET)
    got = {(e.asset_key, e.check_name): e for e in result.get_asset_check_evaluations()}
    assert set(got) == {(orders, INVALID_CHECK), (orders, RUNTIME_CHECK)} and not any(e.passed for e in got.values())
    assert "model fct_orders, meta.agent_de.intents[1]: " in got[(orders, INVALID_CHECK)].metadata["error"].value
    assert "column" in got[(orders, INVALID_CHECK)].metadata["error"].value
    assert ("fct_orders: meta.agent_de.runtime.max_minutes must be a positive number, got -5"
            in got[(orders, RUNTIME_CHECK)].metadata["error"].value)


def test_the_summed_inputs_check_of_a_model_it_cannot_read_fails_saying_so(demo_env) -> None:
    """A check that cannot read what it checks never passes: with fct_revenue's SQL unreadable, its
    summed-inputs check warns that the inputs are unchecked (it used to pass: 'no summed inputs found')."""
    base = build_definitions(demo_env.settings)
    defs = Definitions.merge(base, Definitions(jobs=[define_asset_job("intents", selection=AssetSelection.checks(KEY))]))
    with demo_env.patched("models/marts/fct_revenue.sql", "group by o.order_date, o.currency", "group by ("):
        with DagsterInstance.ephemeral() as instance:
            result = defs.resolve_job_def("intents").execute_in_process(instance=instance, raise_on_error=False,
                                                                         run_config=QUIET)
    (ev,) = result.get_asset_check_evaluations()
    assert not ev.passed and ev.severity.value == "WARN"
    assert ev.description.startswith("the inputs of fct_revenue's sums are not checked: its SQL could not be analysed")
    assert ev.metadata["checked_inputs"].value == 0


def test_an_intent_whose_query_fails_still_reports_a_result(demo_env, monkeypatch) -> None:
    """A declared intent on a column the model does not have: its query fails, so its check must report an error
    (not passed), as must the checks after it. `done.add(key)` before evaluating left it with no result at all."""
    from dagster_agent_de.manifest import Node

    meta = Node.agent_de_meta.fget
    bad = {"intents": [{"kind": "not_null", "column": "no_such_column", "why": "a typo in the column name"}]}
    monkeypatch.setattr(Node, "agent_de_meta", property(lambda n: {**meta(n), **bad} if n.name == "fct_orders" else meta(n)))
    key = AssetCheckKey(AssetKey(["fct_orders"]), "intent_not_null_no_such_column")
    base = build_definitions(demo_env.settings)
    defs = Definitions.merge(base, Definitions(jobs=[define_asset_job("typo", selection=AssetSelection.checks(key))]))
    with DagsterInstance.ephemeral() as instance:
        result = defs.resolve_job_def("typo").execute_in_process(
            instance=instance, raise_on_error=False, run_config={"loggers": {"console": {"config": {"log_level": "ERROR"}}}})
    got = {(e.asset_key, e.check_name): e for e in result.get_asset_check_evaluations()}
    assert set(got) == {(key.asset_key, key.name)}, result.all_events[-3:]
    assert not got[(key.asset_key, key.name)].passed
