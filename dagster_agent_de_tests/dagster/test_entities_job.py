"""The resolve_entities job on the demo's dim_customers: none to merge, then a re-registered customer."""

from __future__ import annotations

from dagster import DagsterInstance

from dagster_agent_de.dagster.definitions import build_definitions
from dagster_agent_de.dagster.entities import ENTITIES_ASSET

QUIET = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}


def test_resolve_entities_job_merges_a_re_registered_customer(demo_env) -> None:
    defs = build_definitions(demo_env.settings)
    job = defs.resolve_job_def("resolve_entities")
    with DagsterInstance.get() as instance:
        clean = job.execute_in_process(instance=instance, run_config=QUIET).output_for_node("entity_resolution")
        assert [(s["model"], s["keys_merged"], s["review"]) for s in clean] == [("dim_customers", 0, 0)]
        # the same person signs up again with an upper-cased, +tagged address
        demo_env.write("insert into main.dim_customers (customer_id, email, full_name) "
                       "select 900001, upper(replace(email, '@', '+again@')), full_name from main.dim_customers "
                       "where customer_id = (select min(customer_id) from main.dim_customers)")
        try:
            run = job.execute_in_process(instance=instance, run_config=QUIET)
        finally:
            demo_env.write("delete from main.dim_customers where customer_id = 900001")
        (summary,) = run.output_for_node("entity_resolution")
        assert (summary["keys_merged"], summary["entities"], summary["review"]) == (2, 1, 0)
        mat = instance.get_latest_materialization_event(ENTITIES_ASSET)
        assert mat.run_id == run.run_id and mat.asset_materialization.metadata["keys_merged"].value == 2
    csv = (demo_env.settings.state_dir / "proposals" / "entities" / "dim_customers.csv").read_text().splitlines()
    assert csv[0] == "customer_id,entity_id" and csv[-1].startswith("900001,")
