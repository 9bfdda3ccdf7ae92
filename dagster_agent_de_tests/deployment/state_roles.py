"""The processes of a real deployment, each run as its own ``python -m`` process by the state test.

``poll``: one tick of the schema-poll sensor (what the daemon does); ``job NAME CONFIG``: one run of a job
(what a run worker does). Each prints one JSON line. Settings come from the environment only, as in a
container: ``AGENT_DE_PROJECT_DIR``, ``AGENT_DE_DUCKDB_PATH``, ``AGENT_DE_STATE_DIR`` (empty), ``DAGSTER_HOME``.
"""

from __future__ import annotations

import json
import sys

from dagster import DagsterInstance, build_sensor_context

from dagster_agent_de.dagster.definitions import build_definitions


def main(argv: list[str]) -> None:
    defs = build_definitions()
    instance = DagsterInstance.get()
    if argv[0] == "poll":
        sensor = defs.resolve_sensor_def("schema_poll_sensor")
        with build_sensor_context(instance=instance, repository_def=defs.get_repository_def(),
                                  resources={"agent_warehouse": defs.resources["agent_warehouse"]}) as ctx:
            result = sensor(ctx)
        skip = getattr(result, "skip_message", None) or getattr(getattr(result, "skip_reason", None), "skip_message", None)
        print(json.dumps({"skip": skip,
                          "requests": len(getattr(result, "run_requests", None) or [])}))
        return
    name, config = argv[1], json.loads(argv[2]) if len(argv) > 2 else {}
    run = defs.resolve_job_def(name).execute_in_process(
        instance=instance, raise_on_error=False,
        run_config={**config, "loggers": {"console": {"config": {"log_level": "ERROR"}}}})
    out: dict = {"success": run.success, "checks": {
        f"{e.asset_key.to_user_string()}:{e.check_name}": e.passed for e in run.get_asset_check_evaluations()}}
    if name == "investigate" and run.success:
        out["top"] = run.output_for_node("investigate_failure")["findings"][0]
    print(json.dumps(out, default=str))


if __name__ == "__main__":
    main(sys.argv[1:])
